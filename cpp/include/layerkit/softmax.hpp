// Softmax along one axis of a C-contiguous buffer viewed as [outer, len, inner]
// (inner == 1 is the common row-wise case: softmax over the last axis).
//   y[o, k, i]  = exp(x[o, k, i] - max_j x[o, j, i]) / sum_j exp(x[o, j, i] - max_j x[o, j, i])
//   dx[o, k, i] = y[o, k, i] * (dy[o, k, i] - sum_j dy[o, j, i] * y[o, j, i])   -- O(len), no
//   Jacobian.
#pragma once

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <vector>

#include "buffers.hpp"
#include "parallel.hpp"
#include "simd.hpp"

namespace layerkit {

// Row-wise softmax: x and y are [rows, cols]; y2, when not null, receives a second copy of y.
template <typename T>
void softmax_rows_forward(const T* x, T* y, T* y2, std::size_t rows, std::size_t cols) {
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
    if (y2) std::copy(yr, yr + cols, y2 + r * cols);
  }
}

#ifdef LAYERKIT_X86_KERNELS
// The same three passes 8 (float) or 4 (double) lanes at a time; the tail of each row goes
// through masked loads, with its unused lanes kept out of the max and the sum.
template <typename T>
LAYERKIT_AVX2 void softmax_rows_forward_avx2(const T* x, T* y, T* y2, std::size_t rows,
                                             std::size_t cols) {
  using A = detail::Avx<T>;
  using V = typename A::V;
  constexpr std::size_t W = A::W;
  const std::size_t full = cols / W * W;
  const __m256i tail = A::mask(cols - full);
  const V neg_inf = A::set1(-__builtin_inf());
  for (std::size_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    // Four independent accumulators hide the latency of max and add.
    V vm = neg_inf, vm1 = neg_inf, vm2 = neg_inf, vm3 = neg_inf;
    std::size_t j = 0;
    for (; j + 4 * W <= full; j += 4 * W) {
      vm = A::max(vm, A::load(xr + j));
      vm1 = A::max(vm1, A::load(xr + j + W));
      vm2 = A::max(vm2, A::load(xr + j + 2 * W));
      vm3 = A::max(vm3, A::load(xr + j + 3 * W));
    }
    for (; j < full; j += W) vm = A::max(vm, A::load(xr + j));
    if (full < cols) vm = A::max(vm, A::blend(neg_inf, A::load(xr + full, tail), tail));
    vm = A::max(A::max(vm, vm1), A::max(vm2, vm3));
    // Subtract the row max so exp cannot overflow; the largest term becomes exp(0) = 1.
    const V m = A::set1(A::hmax(vm));
    V vs = A::set1(T(0)), vs1 = A::set1(T(0));
    for (j = 0; j + 2 * W <= full; j += 2 * W) {
      const V e0 = A::exp_nonpositive(A::sub(A::load(xr + j), m));
      const V e1 = A::exp_nonpositive(A::sub(A::load(xr + j + W), m));
      A::store(yr + j, e0);
      A::store(yr + j + W, e1);
      vs = A::add(vs, e0);
      vs1 = A::add(vs1, e1);
    }
    for (; j < full; j += W) {
      const V e = A::exp_nonpositive(A::sub(A::load(xr + j), m));
      A::store(yr + j, e);
      vs = A::add(vs, e);
    }
    if (full < cols) {
      const V e =
          A::blend(A::set1(T(0)), A::exp_nonpositive(A::sub(A::load(xr + full, tail), m)), tail);
      A::store(yr + full, tail, e);
      vs = A::add(vs, e);
    }
    const V inv = A::set1(T(1) / A::hsum(A::add(vs, vs1)));
    for (j = 0; j < full; j += W) {
      const V v = A::mul(A::load(yr + j), inv);
      A::store(yr + j, v);
      if (y2) A::store(y2 + r * cols + j, v);
    }
    if (full < cols) {
      const V v = A::mul(A::load(yr + full, tail), inv);
      A::store(yr + full, tail, v);
      if (y2) A::store(y2 + r * cols + full, tail, v);
    }
  }
}

template <typename T>
LAYERKIT_AVX2 void softmax_rows_backward_avx2(const T* y, const T* dy, T* dx, std::size_t rows,
                                              std::size_t cols) {
  using A = detail::Avx<T>;
  using V = typename A::V;
  constexpr std::size_t W = A::W;
  const std::size_t full = cols / W * W;
  const __m256i tail = A::mask(cols - full);
  for (std::size_t r = 0; r < rows; ++r) {
    const T* yr = y + r * cols;
    const T* gr = dy + r * cols;
    T* dr = dx + r * cols;
    V vd = A::set1(T(0)), vd1 = A::set1(T(0));
    std::size_t j = 0;
    for (; j + 2 * W <= full; j += 2 * W) {
      vd = A::fmadd(A::load(gr + j), A::load(yr + j), vd);
      vd1 = A::fmadd(A::load(gr + j + W), A::load(yr + j + W), vd1);
    }
    for (; j < full; j += W) vd = A::fmadd(A::load(gr + j), A::load(yr + j), vd);
    if (full < cols) vd = A::fmadd(A::load(gr + full, tail), A::load(yr + full, tail), vd);
    const V dot = A::set1(A::hsum(A::add(vd, vd1)));
    for (std::size_t j = 0; j < full; j += W)
      A::store(dr + j, A::mul(A::load(yr + j), A::sub(A::load(gr + j), dot)));
    if (full < cols)
      A::store(dr + full, tail,
               A::mul(A::load(yr + full, tail), A::sub(A::load(gr + full, tail), dot)));
  }
}
#endif

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

// Rows per task: enough values that a task outweighs waking a thread.
inline std::size_t softmax_grain(std::size_t cols) {
  return std::max<std::size_t>(1, 16384 / std::max<std::size_t>(cols, 1));
}

// The layer: keeps its last output, which is all that backward needs. Rows (or outer slices) are
// independent, so they are split across threads.
template <typename T>
class Softmax {
 public:
  using value_type = T;

  // x and y hold outer * len * inner values; y is written, and a copy kept for backward.
  void forward(const T* x, T* y, std::size_t outer, std::size_t len, std::size_t inner) {
    outer_ = outer;
    len_ = len;
    inner_ = inner;
    const std::size_t n = outer * len * inner;
    grow(y_, n);  // keeps its capacity: no allocation once the largest batch has been seen
    has_cache_ = true;
    if (n == 0) return;
    T* cache = y_.data();
    if (inner == 1) {
      const bool avx2 = detail::use_avx2();
      parallel_for(outer, softmax_grain(len), [&](std::size_t r0, std::size_t r1) {
        const std::size_t off = r0 * len;
#ifdef LAYERKIT_X86_KERNELS
        if (avx2) return softmax_rows_forward_avx2(x + off, y + off, cache + off, r1 - r0, len);
#endif
        softmax_rows_forward(x + off, y + off, cache + off, r1 - r0, len);
      });
    } else {
      grow(acc_, 2 * inner);
      softmax_strided_forward(x, cache, acc_.data(), outer, len, inner);
      std::copy(y_.begin(), y_.end(), y);
    }
  }

  // dy and dx hold as many values as the last forward's output.
  void backward(const T* dy, T* dx) {
    assert(has_cache_);
    if (y_.empty()) return;
    const T* y = y_.data();
    if (inner_ == 1) {
      const bool avx2 = detail::use_avx2();
      const std::size_t len = len_;
      parallel_for(outer_, softmax_grain(len), [&](std::size_t r0, std::size_t r1) {
        const std::size_t off = r0 * len;
#ifdef LAYERKIT_X86_KERNELS
        if (avx2) return softmax_rows_backward_avx2(y + off, dy + off, dx + off, r1 - r0, len);
#endif
        softmax_rows_backward(y + off, dy + off, dx + off, r1 - r0, len);
      });
    } else {
      grow(acc_, 2 * inner_);
      softmax_strided_backward(y, dy, dx, acc_.data(), outer_, len_, inner_);
    }
  }

  bool has_cache() const { return has_cache_; }

 private:
  std::vector<T> y_, acc_;
  std::size_t outer_ = 0, len_ = 0, inner_ = 1;
  bool has_cache_ = false;
};

}  // namespace layerkit
