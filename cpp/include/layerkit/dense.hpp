// Fully connected layer over row-major buffers.
//   y[N, out] = x[N, in] @ W[in, out] + b[out]          (w_ij joins input i to output j)
//   dW = x^T @ dy,   db = sum_n dy[n, :],   dx = dy @ W^T
// The three products run through gemm, which reads the transposed operands through strides.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <vector>

#include "buffers.hpp"
#include "gemm.hpp"

namespace layerkit {

// y[rows, out] = x[rows, in] @ W + b (b may be null).
template <typename T>
void dense_forward(const T* x, const T* W, const T* b, T* y, std::size_t rows, std::size_t in,
                   std::size_t out) {
  for (std::size_t r = 0; r < rows; ++r) {
    T* yr = y + r * out;
    if (b)
      std::copy(b, b + out, yr);
    else
      std::fill(yr, yr + out, T(0));
  }
  gemm<T>(rows, out, in, x, in, 1, W, out, 1, y, out, /*accumulate=*/true);
}

// db[out] = sum over rows of dy[rows, out].
template <typename T>
void dense_bias_backward(const T* dy, T* db, std::size_t rows, std::size_t out) {
  std::fill(db, db + out, T(0));
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < out; ++j) db[j] += dy[r * out + j];
}

// The layer: owns W [in, out], b [out], their gradients, and the last input.
template <typename T>
class Dense {
 public:
  using value_type = T;

  Dense(std::size_t in, std::size_t out, bool bias)
      : in_(in),
        out_(out),
        bias_(bias),
        w_(in * out),
        gw_(in * out),
        b_(bias ? out : 0),
        gb_(bias ? out : 0) {}

  std::size_t in_features() const { return in_; }
  std::size_t out_features() const { return out_; }
  bool has_bias() const { return bias_; }
  T* weight() { return w_.data(); }
  T* bias() { return b_.data(); }
  T* grad_weight() { return gw_.data(); }
  T* grad_bias() { return gb_.data(); }

  // x [rows, in] -> y [rows, out]; x is copied for backward.
  void forward(const T* x, T* y, std::size_t rows) {
    grow(x_, rows * in_);  // reuses capacity after the largest batch
    std::copy(x, x + rows * in_, x_.begin());
    forward_borrowing(x_.data(), y, rows);
  }

  // As forward, but backward reads x where it lies: the caller keeps x alive and unchanged until
  // then (a training loop whose batches and activations live in buffers it reuses).
  void forward_borrowing(const T* x, T* y, std::size_t rows) {
    xin_ = x;
    rows_ = rows;
    has_cache_ = true;
    dense_forward(x, w_.data(), bias_ ? b_.data() : nullptr, y, rows, in_, out_);
  }

  // dy [rows, out] -> dx [rows, in] (skipped when dx is null); sets grad_weight and grad_bias.
  void backward(const T* dy, T* dx) {
    assert(has_cache_);
    // dW[in, out] = x^T dy: x read transposed (row stride 1, column stride in).
    gemm<T>(in_, out_, rows_, xin_, 1, in_, dy, out_, 1, gw_.data(), out_, false);
    if (bias_) dense_bias_backward(dy, gb_.data(), rows_, out_);
    // dx[rows, in] = dy W^T: W read transposed (row stride 1, column stride out).
    if (dx) gemm<T>(rows_, in_, out_, dy, out_, 1, w_.data(), 1, out_, dx, in_, false);
  }

  bool has_cache() const { return has_cache_; }

 private:
  std::size_t in_, out_;
  bool bias_;
  std::vector<T> w_, gw_, b_, gb_;
  std::vector<T> x_;        // a copy of the last forward's input, unless it was borrowed
  const T* xin_ = nullptr;  // the last forward's input, as backward reads it
  std::size_t rows_ = 0;
  bool has_cache_ = false;
};

}  // namespace layerkit
