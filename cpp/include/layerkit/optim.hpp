// Optimizer updates over n values, in place, with the update equations of torch.optim.
//   SGD  (dampening 0):  d = g + wd p;  b = d (first step) or momentum b + d;
//                        d = d + momentum b (nesterov) or b;  p = p - lr d
//   Adam (no amsgrad):   d = g + wd p;  m = m + (1 - beta1)(d - m);  v = beta2 v + (1 - beta2) d d;
//                        p = p - step_size m / (sqrt(v) / bias2_sqrt + eps)
// with step_size = lr / (1 - beta1^t) and bias2_sqrt = sqrt(1 - beta2^t) computed by the caller.
#pragma once

#include <cmath>
#include <cstddef>

#include "parallel.hpp"

namespace layerkit {

// Elements are independent, so the updates are split across threads in chunks of this many.
constexpr std::size_t kOptimGrain = 32768;

template <typename T>
void sgd_step(T* p, const T* g, T* buf, std::size_t n, T lr, T momentum, bool nesterov,
              T weight_decay, bool first_step) {
  parallel_for(n, kOptimGrain, [&](std::size_t i0, std::size_t i1) {
    for (std::size_t i = i0; i < i1; ++i) {
      T d = weight_decay != T(0) ? g[i] + weight_decay * p[i] : g[i];
      if (momentum != T(0)) {
        const T b = first_step ? d : momentum * buf[i] + d;
        buf[i] = b;
        d = nesterov ? d + momentum * b : b;
      }
      p[i] -= lr * d;
    }
  });
}

template <typename T>
void adam_step(T* p, const T* g, T* m, T* v, std::size_t n, T step_size, T beta1, T beta2, T eps,
               T weight_decay, T bias2_sqrt) {
  parallel_for(n, kOptimGrain, [&](std::size_t i0, std::size_t i1) {
    for (std::size_t i = i0; i < i1; ++i) {
      const T d = weight_decay != T(0) ? g[i] + weight_decay * p[i] : g[i];
      m[i] += (T(1) - beta1) * (d - m[i]);
      v[i] = v[i] * beta2 + (T(1) - beta2) * d * d;
      const T denom = std::sqrt(v[i]) / bias2_sqrt + eps;
      p[i] += -step_size * m[i] / denom;
    }
  });
}

}  // namespace layerkit
