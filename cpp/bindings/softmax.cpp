// Softmax bindings: SoftmaxF32 and SoftmaxF64, over any axis of an N-d array.
#include <layerkit/softmax.hpp>

#include "common.hpp"

namespace layerkit::bind {
namespace {

template <typename T>
using SoftmaxHandle = Handle<Softmax<T>>;

template <typename T>
py::array_t<T> forward(py::handle self, py::handle x_in, py::ssize_t axis, bool reuse) {
  auto& h = self.cast<SoftmaxHandle<T>&>();
  const Site site{"Softmax", "forward"};
  auto x = as_c<T>(x_in, site, "x");
  const Shape xs = shape_of(x);
  const auto nd = static_cast<py::ssize_t>(xs.size());
  if (nd < 1) fail(site.str() + ": expected x with at least 1 dimension, got shape ()");
  if (axis < -nd || axis >= nd)
    fail(site.str() + ": axis " + std::to_string(axis) + " is out of range for x of shape " +
         shape_str(xs));
  if (axis < 0) axis += nd;
  // View x as [outer, len, inner] around the softmax axis.
  std::size_t outer = 1, inner = 1;
  for (py::ssize_t d = 0; d < axis; ++d) outer *= static_cast<std::size_t>(xs[d]);
  for (py::ssize_t d = axis + 1; d < nd; ++d) inner *= static_cast<std::size_t>(xs[d]);
  const auto len = static_cast<std::size_t>(xs[axis]);
  py::array_t<T> y = output<T>(self, h.out_buf, xs, reuse);
  BusyGuard busy(h.busy, site);
  const T* xp = x.data();
  T* yp = y.mutable_data();
  {
    py::gil_scoped_release release;
    h.layer.forward(xp, yp, outer, len, inner);
  }
  h.in_shape = h.out_shape = xs;
  return y;
}

template <typename T>
void bind(py::module_& m, const char* cls) {
  py::class_<SoftmaxHandle<T>>(m, cls)
      .def(py::init<>())
      .def("forward", &forward<T>, py::arg("x"), py::arg("axis") = -1, py::arg("reuse") = false)
      .def(
          "backward",
          [](py::handle self, py::handle dy, bool reuse) {
            return backward_to_input<T, Softmax<T>>(self, dy, reuse, "Softmax");
          },
          py::arg("dy"), py::arg("reuse") = false);
}

}  // namespace

void init_softmax(py::module_& m) {
  bind<float>(m, "SoftmaxF32");
  bind<double>(m, "SoftmaxF64");
}

}  // namespace layerkit::bind
