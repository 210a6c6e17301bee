// 2-D average pooling over NCHW (or CHW) buffers, with PyTorch's avg_pool2d semantics.
//   y[p, oh, ow] = sum of x[p, h, w] over the window (clipped to the input) / divisor
// where p runs over the N * C planes; the window of (oh, ow) starts at (oh*sH - pH, ow*sW - pW).
// Backward spreads dy / divisor to every input of the window (overlaps add, uncovered inputs get
// 0).
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "buffers.hpp"
#include "parallel.hpp"
#include "simd.hpp"

namespace layerkit {

struct Pool2dParams {
  std::int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;
  std::int64_t divisor_override = 0;  // 0: none
};

// Output length along one axis (PyTorch's rule, dilation 1); below 1 means the input is too
// small for the window.
inline std::int64_t pool_output_size(std::int64_t in, std::int64_t k, std::int64_t s,
                                     std::int64_t p, bool ceil_mode) {
  const std::int64_t num = in + 2 * p - k + (ceil_mode ? s - 1 : 0);
  // Floor division, also for a negative numerator.
  std::int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
  // A last window that would start inside the right padding is dropped.
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

// The windows of every output row and column, worked out once per call instead of per element.
struct PoolTables {
  std::vector<std::int64_t> h0, h1, hp, w0, w1, wp;  // clipped bounds and padded extents

  void build(const Pool2dParams& q, std::int64_t H, std::int64_t W, std::int64_t OH,
             std::int64_t OW) {
    axis(q.kh, q.sh, q.ph, H, OH, h0, h1, hp);
    axis(q.kw, q.sw, q.pw, W, OW, w0, w1, wp);
  }

  // The divisor of output (oh, ow), as PyTorch computes it; 0 for an empty window.
  std::int64_t divisor(const Pool2dParams& q, std::int64_t oh, std::int64_t ow) const {
    if (h0[oh] >= h1[oh] || w0[ow] >= w1[ow]) return 0;
    if (q.divisor_override) return q.divisor_override;
    return q.count_include_pad ? hp[oh] * wp[ow] : (h1[oh] - h0[oh]) * (w1[ow] - w0[ow]);
  }

 private:
  static void axis(std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t n, std::int64_t out,
                   std::vector<std::int64_t>& lo, std::vector<std::int64_t>& hi,
                   std::vector<std::int64_t>& padded) {
    grow(lo, out);
    grow(hi, out);
    grow(padded, out);
    for (std::int64_t o = 0; o < out; ++o) {
      const std::int64_t start = o * s - p, end = std::min(start + k, n + p);
      padded[o] = end - start;
      lo[o] = std::max<std::int64_t>(start, 0);
      hi[o] = std::min(end, n);
    }
  }
};

// True for the common case of whole, non-overlapping 2x2 windows inside the input, with the
// plain divisor 4: it gets its own fast loop.
inline bool is_plain_2x2(const Pool2dParams& q, std::int64_t H, std::int64_t W, std::int64_t OH,
                         std::int64_t OW) {
  return q.kh == 2 && q.kw == 2 && q.sh == 2 && q.sw == 2 && q.ph == 0 && q.pw == 0 &&
         !q.divisor_override && 2 * OH <= H && 2 * OW <= W;
}

// x [planes, H, W] -> y [planes, OH, OW]. Always inlined into a plain and an AVX2 wrapper, so
// the compiler vectorizes the same source for each instruction set.
template <typename T>
[[gnu::always_inline]] inline void avgpool2d_forward_body(const T* x, T* y, std::size_t planes,
                                                          std::int64_t H, std::int64_t W,
                                                          std::int64_t OH, std::int64_t OW,
                                                          const Pool2dParams& q,
                                                          const PoolTables& t) {
  for (std::size_t p = 0; p < planes; ++p) {
    const T* xp = x + p * H * W;
    T* yp = y + p * OH * OW;
    if (is_plain_2x2(q, H, W, OH, OW)) {
      for (std::int64_t oh = 0; oh < OH; ++oh) {
        const T* r0 = xp + 2 * oh * W;
        const T* r1 = r0 + W;
        T* yr = yp + oh * OW;
        // The same order of additions as the general loop below: row by row, left to right.
        for (std::int64_t ow = 0; ow < OW; ++ow)
          yr[ow] = (((r0[2 * ow] + r0[2 * ow + 1]) + r1[2 * ow]) + r1[2 * ow + 1]) / T(4);
      }
      continue;
    }
    for (std::int64_t oh = 0; oh < OH; ++oh)
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const std::int64_t d = t.divisor(q, oh, ow);
        T s = 0;
        for (std::int64_t h = t.h0[oh]; h < t.h1[oh]; ++h)
          for (std::int64_t c = t.w0[ow]; c < t.w1[ow]; ++c) s += xp[h * W + c];
        yp[oh * OW + ow] = d ? s / T(d) : T(0);
      }
  }
}

// dy [planes, OH, OW] -> dx [planes, H, W]
template <typename T>
[[gnu::always_inline]] inline void avgpool2d_backward_body(const T* dy, T* dx, std::size_t planes,
                                                           std::int64_t H, std::int64_t W,
                                                           std::int64_t OH, std::int64_t OW,
                                                           const Pool2dParams& q,
                                                           const PoolTables& t) {
  for (std::size_t p = 0; p < planes; ++p) {
    const T* gp = dy + p * OH * OW;
    T* dp = dx + p * H * W;
    if (is_plain_2x2(q, H, W, OH, OW)) {
      // Every input row is written: the covered part from dy / 4, an uncovered edge with 0.
      for (std::int64_t h = 0; h < H; ++h) {
        T* dr = dp + h * W;
        const std::int64_t oh = h / 2;
        if (oh >= OH) {
          std::fill(dr, dr + W, T(0));
          continue;
        }
        const T* gr = gp + oh * OW;
        for (std::int64_t ow = 0; ow < OW; ++ow) dr[2 * ow] = dr[2 * ow + 1] = gr[ow] / T(4);
        if (2 * OW < W) dr[W - 1] = T(0);
      }
      continue;
    }
    std::fill(dp, dp + H * W, T(0));
    for (std::int64_t oh = 0; oh < OH; ++oh)
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const std::int64_t d = t.divisor(q, oh, ow);
        if (!d) continue;
        const T g = gp[oh * OW + ow] / T(d);
        for (std::int64_t h = t.h0[oh]; h < t.h1[oh]; ++h)
          for (std::int64_t c = t.w0[ow]; c < t.w1[ow]; ++c) dp[h * W + c] += g;
      }
  }
}

template <typename T>
void avgpool2d_nchw_forward(const T* x, T* y, std::size_t planes, std::int64_t H, std::int64_t W,
                            std::int64_t OH, std::int64_t OW, const Pool2dParams& q,
                            const PoolTables& t) {
  avgpool2d_forward_body(x, y, planes, H, W, OH, OW, q, t);
}

template <typename T>
void avgpool2d_nchw_backward(const T* dy, T* dx, std::size_t planes, std::int64_t H, std::int64_t W,
                             std::int64_t OH, std::int64_t OW, const Pool2dParams& q,
                             const PoolTables& t) {
  avgpool2d_backward_body(dy, dx, planes, H, W, OH, OW, q, t);
}

#ifdef LAYERKIT_X86_KERNELS
template <typename T>
LAYERKIT_AVX2 void avgpool2d_nchw_forward_avx2(const T* x, T* y, std::size_t planes, std::int64_t H,
                                               std::int64_t W, std::int64_t OH, std::int64_t OW,
                                               const Pool2dParams& q, const PoolTables& t) {
  avgpool2d_forward_body(x, y, planes, H, W, OH, OW, q, t);
}

template <typename T>
LAYERKIT_AVX2 void avgpool2d_nchw_backward_avx2(const T* dy, T* dx, std::size_t planes,
                                                std::int64_t H, std::int64_t W, std::int64_t OH,
                                                std::int64_t OW, const Pool2dParams& q,
                                                const PoolTables& t) {
  avgpool2d_backward_body(dy, dx, planes, H, W, OH, OW, q, t);
}
#endif

// The layer: pooling holds no parameters; backward needs only the shapes of the last forward.
// Planes are independent, so they are split across threads.
template <typename T>
class AvgPool2d {
 public:
  using value_type = T;

  explicit AvgPool2d(const Pool2dParams& q) : q_(q) {}

  const Pool2dParams& params() const { return q_; }

  void forward(const T* x, T* y, std::size_t planes, std::int64_t H, std::int64_t W,
               std::int64_t OH, std::int64_t OW) {
    planes_ = planes;
    H_ = H;
    W_ = W;
    OH_ = OH;
    OW_ = OW;
    has_cache_ = true;
    t_.build(q_, H, W, OH, OW);
    const bool avx2 = detail::use_avx2();
    parallel_for(planes, grain(), [&](std::size_t p0, std::size_t p1) {
      const T* xp = x + p0 * H * W;
      T* yp = y + p0 * OH * OW;
#ifdef LAYERKIT_X86_KERNELS
      if (avx2) return avgpool2d_nchw_forward_avx2(xp, yp, p1 - p0, H, W, OH, OW, q_, t_);
#endif
      avgpool2d_nchw_forward(xp, yp, p1 - p0, H, W, OH, OW, q_, t_);
    });
  }

  void backward(const T* dy, T* dx) const {
    assert(has_cache_);
    const bool avx2 = detail::use_avx2();
    parallel_for(planes_, grain(), [&](std::size_t p0, std::size_t p1) {
      const T* gp = dy + p0 * OH_ * OW_;
      T* dp = dx + p0 * H_ * W_;
#ifdef LAYERKIT_X86_KERNELS
      if (avx2) return avgpool2d_nchw_backward_avx2(gp, dp, p1 - p0, H_, W_, OH_, OW_, q_, t_);
#endif
      avgpool2d_nchw_backward(gp, dp, p1 - p0, H_, W_, OH_, OW_, q_, t_);
    });
  }

  bool has_cache() const { return has_cache_; }

 private:
  // Planes per task: enough input values that a task outweighs waking a thread.
  std::size_t grain() const {
    return std::max<std::size_t>(
        1, 32768 / static_cast<std::size_t>(std::max<std::int64_t>(H_ * W_, 1)));
  }

  Pool2dParams q_;
  PoolTables t_;
  std::size_t planes_ = 0;
  std::int64_t H_ = 0, W_ = 0, OH_ = 0, OW_ = 0;
  bool has_cache_ = false;
};

}  // namespace layerkit
