// 2-D average pooling over NCHW (or CHW) buffers, with PyTorch's avg_pool2d semantics.
//   y[p, oh, ow] = sum of x[p, h, w] over the window (clipped to the input) / divisor
// where p runs over the N * C planes; the window of (oh, ow) starts at (oh*sH - pH, ow*sW - pW).
// Backward spreads dy / divisor to every input of the window (overlaps add, uncovered inputs get 0).
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <vector>

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

// One window, clipped to the input, and the divisor PyTorch uses for it.
struct PoolWindow {
  std::int64_t h0, h1, w0, w1;
  std::int64_t divisor;  // 0 when the window holds no input at all
};

inline PoolWindow pool_window(const Pool2dParams& q, std::int64_t H, std::int64_t W,
                              std::int64_t oh, std::int64_t ow) {
  std::int64_t h0 = oh * q.sh - q.ph, w0 = ow * q.sw - q.pw;
  std::int64_t h1 = std::min(h0 + q.kh, H + q.ph), w1 = std::min(w0 + q.kw, W + q.pw);
  const std::int64_t padded_size = (h1 - h0) * (w1 - w0);  // counts padding, not overhang
  h0 = std::max<std::int64_t>(h0, 0);
  w0 = std::max<std::int64_t>(w0, 0);
  h1 = std::min(h1, H);
  w1 = std::min(w1, W);
  if (h0 >= h1 || w0 >= w1) return {h0, h1, w0, w1, 0};
  const std::int64_t d = q.divisor_override   ? q.divisor_override
                         : q.count_include_pad ? padded_size
                                               : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, d};
}

// x [planes, H, W] -> y [planes, OH, OW]
template <typename T>
void avgpool2d_nchw_forward(const T* x, T* y, std::size_t planes, std::int64_t H, std::int64_t W,
                            std::int64_t OH, std::int64_t OW, const Pool2dParams& q) {
  for (std::size_t p = 0; p < planes; ++p) {
    const T* xp = x + p * H * W;
    T* yp = y + p * OH * OW;
    for (std::int64_t oh = 0; oh < OH; ++oh)
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const PoolWindow w = pool_window(q, H, W, oh, ow);
        T s = 0;
        for (std::int64_t h = w.h0; h < w.h1; ++h)
          for (std::int64_t c = w.w0; c < w.w1; ++c) s += xp[h * W + c];
        yp[oh * OW + ow] = w.divisor ? s / T(w.divisor) : T(0);
      }
  }
}

// dy [planes, OH, OW] -> dx [planes, H, W]
template <typename T>
void avgpool2d_nchw_backward(const T* dy, T* dx, std::size_t planes, std::int64_t H,
                             std::int64_t W, std::int64_t OH, std::int64_t OW,
                             const Pool2dParams& q) {
  std::fill(dx, dx + planes * H * W, T(0));
  for (std::size_t p = 0; p < planes; ++p) {
    const T* gp = dy + p * OH * OW;
    T* dp = dx + p * H * W;
    for (std::int64_t oh = 0; oh < OH; ++oh)
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const PoolWindow w = pool_window(q, H, W, oh, ow);
        if (!w.divisor) continue;
        const T g = gp[oh * OW + ow] / T(w.divisor);
        for (std::int64_t h = w.h0; h < w.h1; ++h)
          for (std::int64_t c = w.w0; c < w.w1; ++c) dp[h * W + c] += g;
      }
  }
}

// The layer: pooling holds no parameters; backward needs only the shapes of the last forward.
template <typename T>
class AvgPool2d {
 public:
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
    avgpool2d_nchw_forward(x, y, planes, H, W, OH, OW, q_);
  }

  void backward(const T* dy, T* dx) const {
    assert(has_cache_);
    avgpool2d_nchw_backward(dy, dx, planes_, H_, W_, OH_, OW_, q_);
  }

  bool has_cache() const { return has_cache_; }

 private:
  Pool2dParams q_;
  std::size_t planes_ = 0;
  std::int64_t H_ = 0, W_ = 0, OH_ = 0, OW_ = 0;
  bool has_cache_ = false;
};

}  // namespace layerkit
