// AvgPool2d bindings: AvgPool2dF32 and AvgPool2dF64, over NCHW or CHW input.
#include <layerkit/avgpool2d.hpp>

#include "common.hpp"

namespace layerkit::bind {
namespace {

template <typename T>
using PoolHandle = Handle<AvgPool2d<T>>;

template <typename T>
py::array_t<T> forward(py::handle self, py::handle x_in, bool reuse) {
  auto& h = self.cast<PoolHandle<T>&>();
  const Site site{"AvgPool2d", "forward"};
  auto x = as_c<T>(x_in, site, "x");
  const Shape xs = shape_of(x);
  const std::size_t nd = xs.size();
  if (nd != 3 && nd != 4)
    fail(site.str() + ": expected x of shape (N, C, H, W) or (C, H, W), got " + shape_str(xs));
  const std::int64_t H = xs[nd - 2], W = xs[nd - 1];
  if (H <= 0 || W <= 0 || xs[nd - 3] <= 0)
    fail(site.str() + ": expected non-empty C, H and W, got x of shape " + shape_str(xs));
  const Pool2dParams& q = h.layer.params();
  const std::int64_t OH = pool_output_size(H, q.kh, q.sh, q.ph, q.ceil_mode);
  const std::int64_t OW = pool_output_size(W, q.kw, q.sw, q.pw, q.ceil_mode);
  if (OH < 1 || OW < 1)
    fail(site.str() + ": input of shape " + shape_str(xs) +
         " is too small for the window: output would be " + std::to_string(OH) + "x" +
         std::to_string(OW));
  Shape ys = xs;
  ys[nd - 2] = OH;
  ys[nd - 1] = OW;
  py::array_t<T> y = output<T>(self, h.out_buf, ys, reuse);
  const std::size_t planes = count(xs) / static_cast<std::size_t>(H * W);
  BusyGuard busy(h.busy, site);
  const T* xp = x.data();
  T* yp = y.mutable_data();
  {
    py::gil_scoped_release release;
    h.layer.forward(xp, yp, planes, H, W, OH, OW);
  }
  h.in_shape = xs;
  h.out_shape = ys;
  return y;
}

template <typename T>
void bind(py::module_& m, const char* cls) {
  py::class_<PoolHandle<T>>(m, cls)
      .def(py::init([](std::int64_t kh, std::int64_t kw, std::int64_t sh, std::int64_t sw,
                       std::int64_t ph, std::int64_t pw, bool ceil_mode, bool count_include_pad,
                       std::int64_t divisor_override) {
             // Argument ranges are checked by the Python layer; these guard the core anyway.
             if (kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 || ph < 0 || pw < 0 || 2 * ph > kh ||
                 2 * pw > kw || divisor_override < 0)
               fail("AvgPool2d: invalid window arguments");
             Pool2dParams q{kh, kw, sh, sw, ph, pw, ceil_mode, count_include_pad, divisor_override};
             return new PoolHandle<T>(q);
           }),
           py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
           py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"))
      .def("forward", &forward<T>, py::arg("x"), py::arg("reuse") = false)
      .def(
          "backward",
          [](py::handle self, py::handle dy, bool reuse) {
            return backward_to_input<T, AvgPool2d<T>>(self, dy, reuse, "AvgPool2d");
          },
          py::arg("dy"), py::arg("reuse") = false);
}

}  // namespace

void init_avgpool2d(py::module_& m) {
  bind<float>(m, "AvgPool2dF32");
  bind<double>(m, "AvgPool2dF64");
}

}  // namespace layerkit::bind
