// Elementwise activations over flat buffers of n values; each layer caches its output, which is
// all its derivative needs.
//   relu:    y = max(x, 0)          dx = dy * (y > 0)
//   sigmoid: y = 1 / (1 + exp(-x))  dx = dy * y * (1 - y)
//   tanh:    y = tanh(x)            dx = dy * (1 - y^2)
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

// Forward kernels write y and, when y2 is not null, the same values to y2 (the layer's cache).
template <typename T>
[[gnu::always_inline]] inline void relu_forward(const T* x, T* y, T* y2, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    // A plain x > 0 ? x : 0 would turn NaN into 0; NaN stays NaN here, as in PyTorch.
    const T v = x[i] > T(0) ? x[i] : (x[i] != x[i] ? x[i] : T(0));
    y[i] = v;
    if (y2) y2[i] = v;
  }
}

template <typename T>
[[gnu::always_inline]] inline void relu_backward(const T* y, const T* dy, T* dx, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

template <typename T>
void sigmoid_forward(const T* x, T* y, T* y2, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    // exp of a non-positive argument only, so it cannot overflow for large |x|.
    const T e = std::exp(-std::abs(x[i]));
    const T v = x[i] >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
    y[i] = v;
    if (y2) y2[i] = v;
  }
}

template <typename T>
[[gnu::always_inline]] inline void sigmoid_backward(const T* y, const T* dy, T* dx, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dx[i] = dy[i] * y[i] * (T(1) - y[i]);
}

template <typename T>
void tanh_forward(const T* x, T* y, T* y2, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const T v = std::tanh(x[i]);
    y[i] = v;
    if (y2) y2[i] = v;
  }
}

template <typename T>
[[gnu::always_inline]] inline void tanh_backward(const T* y, const T* dy, T* dx, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dx[i] = dy[i] * (T(1) - y[i] * y[i]);
}

#ifdef LAYERKIT_X86_KERNELS
// The same loops inlined into AVX2 functions (the compiler vectorizes them for AVX2), and a
// vectorized sigmoid.
template <typename T>
LAYERKIT_AVX2 void relu_forward_avx2(const T* x, T* y, T* y2, std::size_t n) {
  relu_forward(x, y, y2, n);
}
template <typename T>
LAYERKIT_AVX2 void relu_backward_avx2(const T* y, const T* dy, T* dx, std::size_t n) {
  relu_backward(y, dy, dx, n);
}

// e = exp(-|x|) <= 1, then y = 1 / (1 + e) for x >= 0 and e / (1 + e) below: no overflow.
template <typename T>
LAYERKIT_AVX2 inline typename detail::Avx<T>::V sigmoid_vec(typename detail::Avx<T>::V v) {
  using A = detail::Avx<T>;
  const auto one = A::set1(T(1)), zero = A::set1(T(0));
  const auto e = A::exp_nonpositive(A::sub(zero, A::max(v, A::sub(zero, v))));
  return A::div(A::blend(e, one, A::mask_ge(v, zero)), A::add(one, e));
}

template <typename T>
LAYERKIT_AVX2 void sigmoid_forward_avx2(const T* x, T* y, T* y2, std::size_t n) {
  using A = detail::Avx<T>;
  std::size_t i = 0;
  for (; i + A::W <= n; i += A::W) {
    const auto v = sigmoid_vec<T>(A::load(x + i));
    A::store(y + i, v);
    if (y2) A::store(y2 + i, v);
  }
  if (i < n) {
    const __m256i m = A::mask(n - i);
    const auto v = sigmoid_vec<T>(A::load(x + i, m));
    A::store(y + i, m, v);
    if (y2) A::store(y2 + i, m, v);
  }
}
template <typename T>
LAYERKIT_AVX2 void sigmoid_backward_avx2(const T* y, const T* dy, T* dx, std::size_t n) {
  sigmoid_backward(y, dy, dx, n);
}
template <typename T>
LAYERKIT_AVX2 void tanh_backward_avx2(const T* y, const T* dy, T* dx, std::size_t n) {
  tanh_backward(y, dy, dx, n);
}
#endif

// One class serves the three; Ops supplies the kernels for each instruction set.
template <typename T, typename Ops>
class Activation {
 public:
  using value_type = T;

  void forward(const T* x, T* y, std::size_t n) {
    grow(y_, n);  // keeps its capacity: no allocation once the largest batch has been seen
    has_cache_ = true;
    T* cache = y_.data();
    const bool avx2 = detail::use_avx2();
    parallel_for(n, kGrain, [&](std::size_t i0, std::size_t i1) {
      Ops::forward(avx2, x + i0, y + i0, cache + i0, i1 - i0);
    });
  }

  void backward(const T* dy, T* dx) const {
    assert(has_cache_);
    const T* y = y_.data();
    const bool avx2 = detail::use_avx2();
    parallel_for(y_.size(), kGrain, [&](std::size_t i0, std::size_t i1) {
      Ops::backward(avx2, y + i0, dy + i0, dx + i0, i1 - i0);
    });
  }

  bool has_cache() const { return has_cache_; }

 private:
  static constexpr std::size_t kGrain = 32768;  // values per task
  std::vector<T> y_;
  bool has_cache_ = false;
};

#ifdef LAYERKIT_X86_KERNELS
#define LAYERKIT_PICK(avx2, fast, plain, ...) ((avx2) ? fast(__VA_ARGS__) : plain(__VA_ARGS__))
#else
#define LAYERKIT_PICK(avx2, fast, plain, ...) plain(__VA_ARGS__)
#endif

template <typename T>
struct ReluOps {
  static void forward(bool avx2, const T* x, T* y, T* y2, std::size_t n) {
    LAYERKIT_PICK(avx2, relu_forward_avx2<T>, relu_forward<T>, x, y, y2, n);
  }
  static void backward(bool avx2, const T* y, const T* dy, T* dx, std::size_t n) {
    LAYERKIT_PICK(avx2, relu_backward_avx2<T>, relu_backward<T>, y, dy, dx, n);
  }
};

template <typename T>
struct SigmoidOps {
  static void forward(bool avx2, const T* x, T* y, T* y2, std::size_t n) {
    LAYERKIT_PICK(avx2, sigmoid_forward_avx2<T>, sigmoid_forward<T>, x, y, y2, n);
  }
  static void backward(bool avx2, const T* y, const T* dy, T* dx, std::size_t n) {
    LAYERKIT_PICK(avx2, sigmoid_backward_avx2<T>, sigmoid_backward<T>, y, dy, dx, n);
  }
};

template <typename T>
struct TanhOps {
  static void forward(bool, const T* x, T* y, T* y2, std::size_t n) { tanh_forward(x, y, y2, n); }
  static void backward(bool avx2, const T* y, const T* dy, T* dx, std::size_t n) {
    LAYERKIT_PICK(avx2, tanh_backward_avx2<T>, tanh_backward<T>, y, dy, dx, n);
  }
};

#undef LAYERKIT_PICK

template <typename T>
using ReLU = Activation<T, ReluOps<T>>;
template <typename T>
using Sigmoid = Activation<T, SigmoidOps<T>>;
template <typename T>
using Tanh = Activation<T, TanhOps<T>>;

}  // namespace layerkit
