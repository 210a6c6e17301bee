// Softmax along one axis of a C-contiguous buffer viewed as [outer, len, inner]
// (inner == 1 is the common row-wise case: softmax over the last axis).
//   y[o, k, i]  = exp(x[o, k, i] - max_j x[o, j, i]) / sum_j exp(x[o, j, i] - max_j x[o, j, i])
//   dx[o, k, i] = y[o, k, i] * (dy[o, k, i] - sum_j dy[o, j, i] * y[o, j, i])   -- O(len), no Jacobian.
#pragma once

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <vector>

namespace layerkit {

// Row-wise softmax: x and y are [rows, cols].
template <typename T>
void softmax_rows_forward(const T* x, T* y, std::size_t rows, std::size_t cols) {
  for (std::size_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    // Subtract the row max so exp cannot overflow; the largest term becomes exp(0) = 1.
    T m = xr[0];
    for (std::size_t j = 1; j < cols; ++j) m = std::max(m, xr[j]);
    T s = 0;
    for (std::size_t j = 0; j < cols; ++j) {
      yr[j] = std::exp(xr[j] - m);
      s += yr[j];
    }
    const T inv = T(1) / s;
    for (std::size_t j = 0; j < cols; ++j) yr[j] *= inv;
  }
}

template <typename T>
void softmax_rows_backward(const T* y, const T* dy, T* dx, std::size_t rows, std::size_t cols) {
  for (std::size_t r = 0; r < rows; ++r) {
    const T* yr = y + r * cols;
    const T* gr = dy + r * cols;
    T* dr = dx + r * cols;
    T dot = 0;
    for (std::size_t j = 0; j < cols; ++j) dot += gr[j] * yr[j];
    for (std::size_t j = 0; j < cols; ++j) dr[j] = yr[j] * (gr[j] - dot);
  }
}

// Strided case (inner > 1): the reduction runs over len with stride inner, so the loops keep
// inner innermost and contiguous. `acc` is caller-owned scratch of at least 2 * inner values.
template <typename T>
void softmax_strided_forward(const T* x, T* y, T* acc, std::size_t outer, std::size_t len,
                             std::size_t inner) {
  T* m = acc;
  T* s = acc + inner;
  for (std::size_t o = 0; o < outer; ++o) {
    const T* xo = x + o * len * inner;
    T* yo = y + o * len * inner;
    std::copy(xo, xo + inner, m);
    for (std::size_t k = 1; k < len; ++k)
      for (std::size_t i = 0; i < inner; ++i) m[i] = std::max(m[i], xo[k * inner + i]);
    std::fill(s, s + inner, T(0));
    for (std::size_t k = 0; k < len; ++k)
      for (std::size_t i = 0; i < inner; ++i) {
        const T e = std::exp(xo[k * inner + i] - m[i]);
        yo[k * inner + i] = e;
        s[i] += e;
      }
    for (std::size_t i = 0; i < inner; ++i) s[i] = T(1) / s[i];
    for (std::size_t k = 0; k < len; ++k)
      for (std::size_t i = 0; i < inner; ++i) yo[k * inner + i] *= s[i];
  }
}

template <typename T>
void softmax_strided_backward(const T* y, const T* dy, T* dx, T* acc, std::size_t outer,
                              std::size_t len, std::size_t inner) {
  T* dot = acc;
  for (std::size_t o = 0; o < outer; ++o) {
    const std::size_t base = o * len * inner;
    std::fill(dot, dot + inner, T(0));
    for (std::size_t k = 0; k < len; ++k)
      for (std::size_t i = 0; i < inner; ++i)
        dot[i] += dy[base + k * inner + i] * y[base + k * inner + i];
    for (std::size_t k = 0; k < len; ++k)
      for (std::size_t i = 0; i < inner; ++i) {
        const std::size_t p = base + k * inner + i;
        dx[p] = y[p] * (dy[p] - dot[i]);
      }
  }
}

// The layer: keeps its last output, which is all that backward needs.
template <typename T>
class Softmax {
 public:
  // x and y hold outer * len * inner values; y is written, and cached for backward.
  void forward(const T* x, T* y, std::size_t outer, std::size_t len, std::size_t inner) {
    outer_ = outer;
    len_ = len;
    inner_ = inner;
    const std::size_t n = outer * len * inner;
    y_.resize(n);  // keeps its capacity: no allocation once the largest batch has been seen
    if (len > 0 && n > 0) {
      if (inner == 1) {
        softmax_rows_forward(x, y_.data(), outer, len);
      } else {
        acc_.resize(2 * inner);
        softmax_strided_forward(x, y_.data(), acc_.data(), outer, len, inner);
      }
    }
    std::copy(y_.begin(), y_.end(), y);
    has_cache_ = true;
  }

  // dy and dx hold as many values as the last forward's output.
  void backward(const T* dy, T* dx) {
    assert(has_cache_);
    if (y_.empty()) return;
    if (inner_ == 1) {
      softmax_rows_backward(y_.data(), dy, dx, outer_, len_);
    } else {
      acc_.resize(2 * inner_);
      softmax_strided_backward(y_.data(), dy, dx, acc_.data(), outer_, len_, inner_);
    }
  }

  bool has_cache() const { return has_cache_; }
  std::size_t cached_size() const { return y_.size(); }

 private:
  std::vector<T> y_, acc_;
  std::size_t outer_ = 0, len_ = 0, inner_ = 1;
  bool has_cache_ = false;
};

}  // namespace layerkit
