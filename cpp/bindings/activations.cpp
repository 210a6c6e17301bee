// Activation bindings: ReLU, Sigmoid and Tanh, each as F32 and F64, over arrays of any shape.
#include <layerkit/activations.hpp>

#include "common.hpp"

namespace layerkit::bind {
namespace {

template <typename T, typename L>
py::array_t<T> forward(py::handle self, py::handle x_in, bool reuse, const char* layer) {
  auto& h = self.cast<Handle<L>&>();
  const Site site{layer, "forward"};
  auto x = as_c<T>(x_in, site, "x");
  const Shape xs = shape_of(x);
  py::array_t<T> y = output<T>(self, h.out_buf, xs, reuse);
  BusyGuard busy(h.busy, site);
  const T* xp = x.data();
  T* yp = y.mutable_data();
  const std::size_t n = count(xs);
  {
    py::gil_scoped_release release;
    h.layer.forward(xp, yp, n);
  }
  h.in_shape = h.out_shape = xs;
  return y;
}

template <typename T, typename L>
void bind(py::module_& m, const char* layer, const char* suffix) {
  py::class_<Handle<L>>(m, (std::string(layer) + suffix).c_str())
      .def(py::init<>())
      .def(
          "forward",
          [layer](py::handle self, py::handle x, bool reuse) {
            return forward<T, L>(self, x, reuse, layer);
          },
          py::arg("x"), py::arg("reuse") = false)
      .def(
          "backward",
          [layer](py::handle self, py::handle dy, bool reuse) {
            return backward_to_input<T, L>(self, dy, reuse, layer);
          },
          py::arg("dy"), py::arg("reuse") = false);
}

}  // namespace

void init_activations(py::module_& m) {
  bind<float, ReLU<float>>(m, "ReLU", "F32");
  bind<double, ReLU<double>>(m, "ReLU", "F64");
  bind<float, Sigmoid<float>>(m, "Sigmoid", "F32");
  bind<double, Sigmoid<double>>(m, "Sigmoid", "F64");
  bind<float, Tanh<float>>(m, "Tanh", "F32");
  bind<double, Tanh<double>>(m, "Tanh", "F64");
}

}  // namespace layerkit::bind
