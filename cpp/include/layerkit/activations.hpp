// Elementwise activations over flat buffers of n values; each layer caches its output,
// which is all its derivative needs.
//   relu:    y = max(x, 0)          dx = dy * (y > 0)
//   sigmoid: y = 1 / (1 + exp(-x))  dx = dy * y * (1 - y)
//   tanh:    y = tanh(x)            dx = dy * (1 - y^2)
#pragma once

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <vector>

namespace layerkit {

template <typename T>
void relu_forward(const T* x, T* y, std::size_t n) {
  // A plain x > 0 ? x : 0 would turn NaN into 0; NaN stays NaN here, as in PyTorch.
  for (std::size_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : (x[i] != x[i] ? x[i] : T(0));
}

template <typename T>
void relu_backward(const T* y, const T* dy, T* dx, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

template <typename T>
void sigmoid_forward(const T* x, T* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    // exp of a non-positive argument only, so it cannot overflow for large |x|.
    const T e = std::exp(-std::abs(x[i]));
    y[i] = x[i] >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
  }
}

template <typename T>
void sigmoid_backward(const T* y, const T* dy, T* dx, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dx[i] = dy[i] * y[i] * (T(1) - y[i]);
}

template <typename T>
void tanh_forward(const T* x, T* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

template <typename T>
void tanh_backward(const T* y, const T* dy, T* dx, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dx[i] = dy[i] * (T(1) - y[i] * y[i]);
}

// One class serves the three; the template arguments are the two kernels.
template <typename T, void (*Fwd)(const T*, T*, std::size_t),
          void (*Bwd)(const T*, const T*, T*, std::size_t)>
class Activation {
 public:
  void forward(const T* x, T* y, std::size_t n) {
    y_.resize(n);
    Fwd(x, y_.data(), n);
    std::copy(y_.begin(), y_.end(), y);
    has_cache_ = true;
  }

  void backward(const T* dy, T* dx) const {
    assert(has_cache_);
    Bwd(y_.data(), dy, dx, y_.size());
  }

  bool has_cache() const { return has_cache_; }
  std::size_t cached_size() const { return y_.size(); }

 private:
  std::vector<T> y_;
  bool has_cache_ = false;
};

template <typename T>
using ReLU = Activation<T, relu_forward<T>, relu_backward<T>>;
template <typename T>
using Sigmoid = Activation<T, sigmoid_forward<T>, sigmoid_backward<T>>;
template <typename T>
using Tanh = Activation<T, tanh_forward<T>, tanh_backward<T>>;

}  // namespace layerkit
