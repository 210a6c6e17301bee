// Optimizer updates over n values, in place, with the update equations of torch.optim.
//   SGD  (dampening 0):  d = g + wd p;  b = d (first step) or momentum b + d;
//                        d = d + momentum b (nesterov) or b;  p = p - lr d
//   Adam (no amsgrad):   d = g + wd p;  m = m + (1 - beta1)(d - m);  v = beta2 v + (1 - beta2) d d;
//                        p = p - step_size m / (sqrt(v) / bias2_sqrt + eps)
// with step_size = lr / (1 - beta1^t) and bias2_sqrt = sqrt(1 - beta2^t) computed by the caller.
#pragma once

#include <cmath>
#include <cstddef>
#include <type_traits>

#include "parallel.hpp"

namespace layerkit {

// Elements are independent, so the updates are split across threads in chunks of this many.
constexpr std::size_t kOptimGrain = 32768;

namespace detail {

// f(std::true_type{}) or f(std::false_type{}): a run-time flag made a compile-time one, so that
// the loops below carry no branch and vectorize.
template <typename F>
void with_flag(bool flag, F&& f) {
  if (flag)
    f(std::true_type{});
  else
    f(std::false_type{});
}

template <typename T, bool kDecay, bool kMomentum, bool kFirst, bool kNesterov>
void sgd_range(T* p, const T* g, T* buf, std::size_t n, T lr, T momentum, T weight_decay) {
  for (std::size_t i = 0; i < n; ++i) {
    T d = kDecay ? g[i] + weight_decay * p[i] : g[i];
    if (kMomentum) {
      const T b = kFirst ? d : momentum * buf[i] + d;
      buf[i] = b;
      d = kNesterov ? d + momentum * b : b;
    }
    p[i] -= lr * d;
  }
}

template <typename T, bool kDecay>
void adam_range(T* p, const T* g, T* m, T* v, std::size_t n, T step_size, T beta1, T beta2, T eps,
                T weight_decay, T bias2_sqrt) {
  for (std::size_t i = 0; i < n; ++i) {
    const T d = kDecay ? g[i] + weight_decay * p[i] : g[i];
    const T mi = m[i] + (T(1) - beta1) * (d - m[i]);
    const T vi = v[i] * beta2 + (T(1) - beta2) * d * d;
    m[i] = mi;
    v[i] = vi;
    p[i] += -step_size * mi / (std::sqrt(vi) / bias2_sqrt + eps);
  }
}

}  // namespace detail

// Without momentum, buf is never read or written (it may be any pointer, p itself included).
template <typename T>
void sgd_step(T* p, const T* g, T* buf, std::size_t n, T lr, T momentum, bool nesterov,
              T weight_decay, bool first_step) {
  using detail::with_flag;
  parallel_for(n, kOptimGrain, [=](std::size_t i0, std::size_t i1) {
    with_flag(weight_decay != T(0), [&](auto decay) {
      with_flag(momentum != T(0), [&](auto mom) {
        with_flag(first_step, [&](auto first) {
          with_flag(nesterov, [&](auto nest) {
            detail::sgd_range<T, decay, mom, first, nest>(p + i0, g + i0, buf + i0, i1 - i0, lr,
                                                          momentum, weight_decay);
          });
        });
      });
    });
  });
}

template <typename T>
void adam_step(T* p, const T* g, T* m, T* v, std::size_t n, T step_size, T beta1, T beta2, T eps,
               T weight_decay, T bias2_sqrt) {
  parallel_for(n, kOptimGrain, [=](std::size_t i0, std::size_t i1) {
    detail::with_flag(weight_decay != T(0), [&](auto decay) {
      detail::adam_range<T, decay>(p + i0, g + i0, m + i0, v + i0, i1 - i0, step_size, beta1, beta2,
                                   eps, weight_decay, bias2_sqrt);
    });
  });
}

}  // namespace layerkit
