// Glue shared by the binding files: input conversion, shape checks, and the handle that pairs a
// core layer with the shapes of its last forward. Only files in this folder include pybind11.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <layerkit/buffers.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace layerkit::bind {

namespace py = pybind11;

template <typename T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;
using Shape = std::vector<py::ssize_t>;

// Where an error comes from, e.g. {"Dense", "forward"}. Messages are built only when an error is
// raised: the success path of a call allocates no strings.
struct Site {
  const char* layer;
  const char* method;
  std::string str() const { return std::string(layer) + "." + method; }
};

// Raised as ValueError in Python (pybind11 maps std::invalid_argument to ValueError).
[[noreturn]] inline void fail(const std::string& msg) { throw std::invalid_argument(msg); }

// The element count of a shape.
inline std::size_t count(const Shape& s) {
  std::size_t n = 1;
  for (auto d : s) n *= static_cast<std::size_t>(d);
  return n;
}

inline Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

inline std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

// obj as a C-contiguous array of T: a copy only when dtype or layout differ. Anything that is not
// a real number (objects, strings, complex) is a TypeError rather than a silent cast.
template <typename T>
carray<T> as_c(py::handle obj, const Site& site, const char* arg) {
  py::array a = py::array::ensure(obj);
  if (!a) throw py::type_error(site.str() + ": " + arg + " must be array-like");
  const char k = a.dtype().kind();
  if (k != 'b' && k != 'i' && k != 'u' && k != 'f')
    throw py::type_error(site.str() + ": " + arg + " must hold real numbers, got dtype " +
                         py::str(a.dtype()).cast<std::string>());
  return carray<T>::ensure(a);
}

// A core layer, the shapes of its last forward, and a flag that turns concurrent use of one
// layer from two threads into a clear error instead of a data race on its cache.
template <typename L>
struct Handle {
  using T = typename L::value_type;
  template <typename... A>
  explicit Handle(A&&... a) : layer(std::forward<A>(a)...) {}
  L layer;
  Shape in_shape, out_shape;
  std::atomic<bool> busy{false};
  std::vector<T> out_buf, grad_buf;  // outputs of calls made with reuse (the training loop's)
  py::object borrowed;  // with reuse, the input a core layer reads at backward in place of a copy
};

// The array a call returns: a new one, or with reuse a view of a buffer the layer keeps, which
// the next call overwrites. The training loop uses reuse, since each output is consumed by the
// next layer before the same layer runs again; users get new arrays.
template <typename T>
py::array_t<T> output(py::handle self, std::vector<T>& buf, const Shape& shape, bool reuse) {
  const std::size_t n = count(shape);
  if (!reuse || n == 0) return py::array_t<T>(shape);
  grow(buf, n);
  return py::array_t<T>(shape, buf.data(), self);
}

class BusyGuard {
 public:
  BusyGuard(std::atomic<bool>& flag, const Site& site) : flag_(flag) {
    if (flag_.exchange(true))
      throw std::runtime_error(site.str() +
                               ": this layer is already running in another thread; "
                               "give each thread its own layer or model");
  }
  ~BusyGuard() { flag_.store(false); }
  BusyGuard(const BusyGuard&) = delete;
  BusyGuard& operator=(const BusyGuard&) = delete;

 private:
  std::atomic<bool>& flag_;
};

// Converts dy for a backward pass and checks it against the last forward's output.
template <typename T, typename H>
carray<T> grad_output(const H& h, py::handle dy_in, const Site& site) {
  if (!h.layer.has_cache()) fail(std::string(site.layer) + ".backward called before forward");
  carray<T> dy = as_c<T>(dy_in, site, "dy");
  if (dy.ndim() != static_cast<py::ssize_t>(h.out_shape.size()) ||
      !std::equal(h.out_shape.begin(), h.out_shape.end(), dy.shape()))
    fail(site.str() + ": expected dy of shape " + shape_str(h.out_shape) +
         " (the last forward's output), got " + shape_str(shape_of(dy)));
  return dy;
}

// Backward for layers whose core backward is (dy, dx) with dx shaped like the last input.
template <typename T, typename L>
py::array_t<T> backward_to_input(py::handle self, py::handle dy_in, bool reuse, const char* layer) {
  auto& h = self.cast<Handle<L>&>();
  const Site site{layer, "backward"};
  auto dy = grad_output<T>(h, dy_in, site);
  py::array_t<T> dx = output<T>(self, h.grad_buf, h.in_shape, reuse);
  BusyGuard busy(h.busy, site);
  const T* dyp = dy.data();
  T* dxp = dx.mutable_data();
  {
    py::gil_scoped_release release;
    h.layer.backward(dyp, dxp);
  }
  return dx;
}

void init_dense(py::module_& m);
void init_softmax(py::module_& m);
void init_avgpool2d(py::module_& m);
void init_activations(py::module_& m);
void init_training(py::module_& m);

}  // namespace layerkit::bind
