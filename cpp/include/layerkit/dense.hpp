// Fully connected layer over row-major buffers.
//   y[N, out] = x[N, in] @ W[in, out] + b[out]          (w_ij joins input i to output j)
//   dW = x^T @ dy,   db = sum_n dy[n, :],   dx = dy @ W^T
// Every product runs through one kernel, gemm_nn; the transposed operands are staged in
// layer-owned scratch, which costs O(in * (N + out)) against the O(N * in * out) product.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <vector>

namespace layerkit {

// at[cols, rows] = a[rows, cols]^T, in tiles so both sides stay in cache.
template <typename T>
void transpose(const T* a, T* at, std::size_t rows, std::size_t cols) {
  constexpr std::size_t B = 32;
  for (std::size_t r0 = 0; r0 < rows; r0 += B)
    for (std::size_t c0 = 0; c0 < cols; c0 += B) {
      const std::size_t r1 = std::min(rows, r0 + B), c1 = std::min(cols, c0 + B);
      for (std::size_t r = r0; r < r1; ++r)
        for (std::size_t c = c0; c < c1; ++c) at[c * rows + r] = a[r * cols + c];
    }
}

// C[M, N] += A[M, K] @ B[K, N], all row-major and contiguous.
// Blocks of B (kKc x kNc) stay in L2 while four rows of C are updated at once, so each
// loaded row of B feeds four multiply-adds; the innermost loop over j is contiguous and
// vectorizes.
template <typename T>
void gemm_nn_acc(const T* A, const T* B, T* C, std::size_t M, std::size_t N, std::size_t K) {
  constexpr std::size_t kKc = 128, kNc = 512;
  for (std::size_t k0 = 0; k0 < K; k0 += kKc) {
    const std::size_t k1 = std::min(K, k0 + kKc);
    for (std::size_t j0 = 0; j0 < N; j0 += kNc) {
      const std::size_t jn = std::min(N, j0 + kNc) - j0;
      std::size_t i = 0;
      for (; i + 4 <= M; i += 4) {
        T* __restrict c0 = C + (i + 0) * N + j0;
        T* __restrict c1 = C + (i + 1) * N + j0;
        T* __restrict c2 = C + (i + 2) * N + j0;
        T* __restrict c3 = C + (i + 3) * N + j0;
        for (std::size_t k = k0; k < k1; ++k) {
          const T* __restrict b = B + k * N + j0;
          const T a0 = A[(i + 0) * K + k], a1 = A[(i + 1) * K + k];
          const T a2 = A[(i + 2) * K + k], a3 = A[(i + 3) * K + k];
          for (std::size_t j = 0; j < jn; ++j) {
            const T bj = b[j];
            c0[j] += a0 * bj;
            c1[j] += a1 * bj;
            c2[j] += a2 * bj;
            c3[j] += a3 * bj;
          }
        }
      }
      for (; i < M; ++i) {
        T* __restrict c = C + i * N + j0;
        for (std::size_t k = k0; k < k1; ++k) {
          const T* __restrict b = B + k * N + j0;
          const T a = A[i * K + k];
          for (std::size_t j = 0; j < jn; ++j) c[j] += a * b[j];
        }
      }
    }
  }
}

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
  gemm_nn_acc(x, W, y, rows, out, in);
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
    x_.assign(x, x + rows * in_);  // reuses capacity after the largest batch
    rows_ = rows;
    has_cache_ = true;
    dense_forward(x_.data(), w_.data(), bias_ ? b_.data() : nullptr, y, rows, in_, out_);
  }

  // dy [rows, out] -> dx [rows, in] (skipped when dx is null); sets grad_weight and grad_bias.
  void backward(const T* dy, T* dx) {
    assert(has_cache_);
    // dW = x^T dy
    xt_.resize(in_ * rows_);
    transpose(x_.data(), xt_.data(), rows_, in_);
    std::fill(gw_.begin(), gw_.end(), T(0));
    gemm_nn_acc(xt_.data(), dy, gw_.data(), in_, out_, rows_);
    if (bias_) dense_bias_backward(dy, gb_.data(), rows_, out_);
    if (dx) {
      // dx = dy W^T
      wt_.resize(out_ * in_);
      transpose(w_.data(), wt_.data(), in_, out_);
      std::fill(dx, dx + rows_ * in_, T(0));
      gemm_nn_acc(dy, wt_.data(), dx, rows_, in_, out_);
    }
  }

  bool has_cache() const { return has_cache_; }
  std::size_t cached_rows() const { return rows_; }

 private:
  std::size_t in_, out_;
  bool bias_;
  std::vector<T> w_, gw_, b_, gb_;
  std::vector<T> x_, xt_, wt_;  // forward cache and transpose scratch
  std::size_t rows_ = 0;
  bool has_cache_ = false;
};

}  // namespace layerkit
