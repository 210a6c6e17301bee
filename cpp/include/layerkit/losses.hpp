// Losses over [rows, cols] buffers, each fused with its gradient (grad may be null to skip it).
// They return the loss summed over rows (the caller divides by rows), accumulated in double.
//   softmax cross-entropy:  loss_n = logsumexp(z_n) - sum_k t_nk z_nk,
//                           grad = (softmax(z) - t) / rows         (t one-hot for labels)
//   mse:                    loss_n = 1/2 sum_k (y_nk - t_nk)^2,    grad = (y - t) / rows
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "simd.hpp"

namespace layerkit {

// One row of logits: its max, argmax, sum of exp(z - max) and log-sum-exp (the max subtracted
// first, so exp cannot overflow and log sees a sum of at least 1).
template <typename T>
struct RowStats {
  T max;
  std::size_t argmax;
  double sum, lse;
};

namespace detail {

template <typename T>
RowStats<T> row_max(const T* z, std::size_t cols) {
  RowStats<T> s{z[0], 0, 0.0, 0.0};
  for (std::size_t k = 1; k < cols; ++k)
    if (z[k] > s.max) s.max = z[k], s.argmax = k;
  return s;
}

// e[k] = exp(z[k] - max) over one row (e may be null); returns the sum of the e[k].
template <typename T>
double row_exp(const T* z, T* e, std::size_t cols, T max) {
  double sum = 0;
  for (std::size_t k = 0; k < cols; ++k) {
    const double v = std::exp(double(z[k]) - double(max));
    if (e) e[k] = T(v);
    sum += v;
  }
  return sum;
}

#ifdef LAYERKIT_X86_KERNELS
template <typename T>
LAYERKIT_AVX2 double row_exp_avx2(const T* z, T* e, std::size_t cols, T max) {
  using A = Avx<T>;
  using V = typename A::V;
  constexpr std::size_t W = A::W;
  const V m = A::set1(max);
  V sum = A::set1(T(0));
  std::size_t k = 0;
  for (; k + W <= cols; k += W) {
    const V v = A::exp_nonpositive(A::sub(A::load(z + k), m));
    A::store(e + k, v);
    sum = A::add(sum, v);
  }
  if (k < cols) {
    const __m256i tail = A::mask(cols - k);
    const V v = A::blend(A::set1(T(0)), A::exp_nonpositive(A::sub(A::load(z + k, tail), m)), tail);
    A::store(e + k, tail, v);
    sum = A::add(sum, v);
  }
  return double(A::hsum(sum));
}
#endif

// The row's statistics; when e is not null it receives exp(z - max), vectorized where the CPU
// allows (the loss alone keeps the scalar double-precision path).
template <typename T>
RowStats<T> row_stats(const T* z, T* e, std::size_t cols) {
  RowStats<T> s = row_max(z, cols);
#ifdef LAYERKIT_X86_KERNELS
  s.sum = e && use_avx2() ? row_exp_avx2(z, e, cols, s.max) : row_exp(z, e, cols, s.max);
#else
  s.sum = row_exp(z, e, cols, s.max);
#endif
  s.lse = double(s.max) + std::log(s.sum);
  return s;
}

}  // namespace detail

// Integer labels; *correct counts rows whose largest logit is the label.
template <typename T>
double softmax_cross_entropy_labels(const T* z, const std::int64_t* labels, T* grad,
                                    std::size_t rows, std::size_t cols, std::size_t* correct) {
  double total = 0;
  std::size_t hits = 0;
  for (std::size_t n = 0; n < rows; ++n) {
    const T* zn = z + n * cols;
    T* gn = grad ? grad + n * cols : nullptr;
    const auto label = static_cast<std::size_t>(labels[n]);
    const RowStats<T> s = detail::row_stats(zn, gn, cols);
    total += s.lse - double(zn[label]);
    hits += s.argmax == label;
    if (gn) {  // gn holds exp(z - max): scale it to softmax(z) / rows
      const T scale = T(1) / T(rows);
      const T f = T(double(scale) / s.sum);
      for (std::size_t k = 0; k < cols; ++k) gn[k] *= f;
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
    T* gn = grad ? grad + n * cols : nullptr;
    const RowStats<T> s = detail::row_stats(zn, gn, cols);
    std::size_t best = 0;
    for (std::size_t k = 0; k < cols; ++k) {
      if (tn[k] > tn[best]) best = k;
      // A target of 0 contributes nothing, even against a probability of 0.
      if (tn[k] != T(0)) total += double(tn[k]) * (s.lse - double(zn[k]));
    }
    hits += s.argmax == best;
    if (gn) {
      const T scale = T(1) / T(rows);
      const T f = T(double(scale) / s.sum);
      for (std::size_t k = 0; k < cols; ++k) gn[k] = gn[k] * f - tn[k] * scale;
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
