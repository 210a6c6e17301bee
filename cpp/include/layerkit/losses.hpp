// Losses over [rows, cols] buffers, each fused with its gradient (grad may be null to skip it).
// They return the loss summed over rows (the caller divides by rows), accumulated in double.
//   softmax cross-entropy:  loss_n = logsumexp(z_n) - sum_k t_nk z_nk,
//                           grad = (softmax(z) - t) / rows         (t one-hot for labels)
//   mse:                    loss_n = 1/2 sum_k (y_nk - t_nk)^2,    grad = (y - t) / rows
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace layerkit {

// One row of logits: its max, argmax and log-sum-exp (the max subtracted first, so exp cannot
// overflow and log sees a sum of at least 1).
template <typename T>
struct RowStats {
  T max;
  std::size_t argmax;
  double lse;
};

template <typename T>
RowStats<T> row_stats(const T* z, std::size_t cols) {
  RowStats<T> s{z[0], 0, 0.0};
  for (std::size_t k = 1; k < cols; ++k)
    if (z[k] > s.max) s.max = z[k], s.argmax = k;
  double sum = 0;
  for (std::size_t k = 0; k < cols; ++k) sum += std::exp(double(z[k]) - double(s.max));
  s.lse = double(s.max) + std::log(sum);
  return s;
}

// Integer labels; *correct counts rows whose largest logit is the label.
template <typename T>
double softmax_cross_entropy_labels(const T* z, const std::int64_t* labels, T* grad,
                                    std::size_t rows, std::size_t cols, std::size_t* correct) {
  double total = 0;
  std::size_t hits = 0;
  for (std::size_t n = 0; n < rows; ++n) {
    const T* zn = z + n * cols;
    const auto label = static_cast<std::size_t>(labels[n]);
    const RowStats<T> s = row_stats(zn, cols);
    total += s.lse - double(zn[label]);
    hits += s.argmax == label;
    if (grad) {
      T* gn = grad + n * cols;
      const T scale = T(1) / T(rows);
      for (std::size_t k = 0; k < cols; ++k) gn[k] = T(std::exp(double(zn[k]) - s.lse)) * scale;
      gn[label] -= scale;
    }
  }
  if (correct) *correct = hits;
  return total;
}

// Probability (or one-hot) targets; *correct counts rows whose largest logit is the target's
// largest entry.
template <typename T>
double softmax_cross_entropy_probs(const T* z, const T* t, T* grad, std::size_t rows,
                                   std::size_t cols, std::size_t* correct) {
  double total = 0;
  std::size_t hits = 0;
  for (std::size_t n = 0; n < rows; ++n) {
    const T* zn = z + n * cols;
    const T* tn = t + n * cols;
    const RowStats<T> s = row_stats(zn, cols);
    std::size_t best = 0;
    for (std::size_t k = 0; k < cols; ++k) {
      if (tn[k] > tn[best]) best = k;
      // A target of 0 contributes nothing, even against a probability of 0.
      if (tn[k] != T(0)) total += double(tn[k]) * (s.lse - double(zn[k]));
    }
    hits += s.argmax == best;
    if (grad) {
      T* gn = grad + n * cols;
      const T scale = T(1) / T(rows);
      for (std::size_t k = 0; k < cols; ++k)
        gn[k] = (T(std::exp(double(zn[k]) - s.lse)) - tn[k]) * scale;
    }
  }
  if (correct) *correct = hits;
  return total;
}

template <typename T>
double mse(const T* y, const T* t, T* grad, std::size_t rows, std::size_t cols) {
  double total = 0;
  const std::size_t n = rows * cols;
  const T scale = T(1) / T(rows ? rows : 1);
  for (std::size_t i = 0; i < n; ++i) {
    const T d = y[i] - t[i];
    total += 0.5 * double(d) * double(d);
    if (grad) grad[i] = d * scale;
  }
  return total;
}

}  // namespace layerkit
