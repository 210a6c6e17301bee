// Dense bindings: DenseF32 and DenseF64, with weight, bias and their gradients as zero-copy views.
#include <layerkit/dense.hpp>

#include "common.hpp"

namespace layerkit::bind {
namespace {

template <typename T>
using DenseHandle = Handle<Dense<T>>;

// A NumPy view of a buffer the layer owns; `self` as base keeps the layer alive.
template <typename T>
py::object view(py::object self, T* data, Shape shape) {
  return py::array_t<T>(std::move(shape), data, self);
}

template <typename T, T* (Dense<T>::*Get)()>
py::object weight_view(py::object self) {
  Dense<T>& d = self.cast<DenseHandle<T>&>().layer;
  return view(
      self, (d.*Get)(),
      {static_cast<py::ssize_t>(d.in_features()), static_cast<py::ssize_t>(d.out_features())});
}

template <typename T, T* (Dense<T>::*Get)()>
py::object bias_view(py::object self) {
  Dense<T>& d = self.cast<DenseHandle<T>&>().layer;
  if (!d.has_bias()) return py::none();
  return view(self, (d.*Get)(), {static_cast<py::ssize_t>(d.out_features())});
}

template <typename T>
py::array_t<T> forward(py::handle self, py::handle x_in, bool reuse) {
  auto& h = self.cast<DenseHandle<T>&>();
  const Site site{"Dense", "forward"};
  auto x = as_c<T>(x_in, site, "x");
  const auto in = static_cast<py::ssize_t>(h.layer.in_features());
  const Shape xs = shape_of(x);
  if (xs.empty() || xs.back() != in)
    fail(site.str() + ": expected x of shape (N, " + std::to_string(in) + "), got " +
         shape_str(xs));
  Shape ys = xs;
  ys.back() = static_cast<py::ssize_t>(h.layer.out_features());
  py::array_t<T> y = output<T>(self, h.out_buf, ys, reuse);
  BusyGuard busy(h.busy, site);
  const T* xp = x.data();
  T* yp = y.mutable_data();
  const std::size_t rows = count(xs) / static_cast<std::size_t>(in);
  // With reuse (the training loop), backward reads x in place: the handle holds the array, and
  // the loop leaves it unchanged until then. Users' calls get a copy, safe from later writes.
  h.borrowed = reuse ? py::object(x) : py::none();
  {
    py::gil_scoped_release release;
    if (reuse)
      h.layer.forward_borrowing(xp, yp, rows);
    else
      h.layer.forward(xp, yp, rows);
  }
  h.in_shape = xs;
  h.out_shape = ys;
  return y;
}

template <typename T>
py::object backward(py::handle self, py::handle dy_in, bool need_dx, bool reuse) {
  auto& h = self.cast<DenseHandle<T>&>();
  const Site site{"Dense", "backward"};
  auto dy = grad_output<T>(h, dy_in, site);
  py::object result = py::none();
  T* dxp = nullptr;
  if (need_dx) {
    py::array_t<T> dx = output<T>(self, h.grad_buf, h.in_shape, reuse);
    dxp = dx.mutable_data();
    result = std::move(dx);
  }
  BusyGuard busy(h.busy, site);
  const T* dyp = dy.data();
  {
    py::gil_scoped_release release;
    h.layer.backward(dyp, dxp);
  }
  return result;
}

template <typename T>
void bind(py::module_& m, const char* cls) {
  using H = DenseHandle<T>;
  py::class_<H>(m, cls)
      .def(py::init<std::size_t, std::size_t, bool>(), py::arg("in_features"),
           py::arg("out_features"), py::arg("bias"))
      .def_property_readonly("in_features", [](H& h) { return h.layer.in_features(); })
      .def_property_readonly("out_features", [](H& h) { return h.layer.out_features(); })
      .def_property_readonly("weight", &weight_view<T, &Dense<T>::weight>)
      .def_property_readonly("grad_weight", &weight_view<T, &Dense<T>::grad_weight>)
      .def_property_readonly("bias", &bias_view<T, &Dense<T>::bias>)
      .def_property_readonly("grad_bias", &bias_view<T, &Dense<T>::grad_bias>)
      .def("forward", &forward<T>, py::arg("x"), py::arg("reuse") = false)
      .def("backward", &backward<T>, py::arg("dy"), py::arg("need_dx") = true,
           py::arg("reuse") = false);
}

}  // namespace

void init_dense(py::module_& m) {
  bind<float>(m, "DenseF32");
  bind<double>(m, "DenseF64");
}

}  // namespace layerkit::bind
