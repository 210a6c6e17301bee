// Training kernels: fused losses with their gradients, and in-place optimizer steps. They work on
// arrays the Python trainer owns, so they convert nothing: a wrong dtype, layout or size is an
// error, never a silent copy that would leave the caller's array unchanged.
#include <layerkit/buffers.hpp>
#include <layerkit/gather.hpp>
#include <layerkit/losses.hpp>
#include <layerkit/optim.hpp>

#include "common.hpp"

namespace layerkit::bind {
namespace {

// a's data as T*, after checking dtype, layout, size and (for outputs) writability.
template <typename T>
T* data_of(const py::array& a, const char* fn, const char* what, std::size_t n, bool writable) {
  if (!a.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(fn) + ": " + what + " must have dtype " +
                         py::str(py::dtype::of<T>()).cast<std::string>() + ", got " +
                         py::str(a.dtype()).cast<std::string>());
  if (!(a.flags() & py::array::c_style))
    fail(std::string(fn) + ": " + what + " must be C-contiguous");
  if (static_cast<std::size_t>(a.size()) != n)
    fail(std::string(fn) + ": " + what + " holds " + std::to_string(a.size()) +
         " values, expected " + std::to_string(n));
  if (writable && !a.writeable()) fail(std::string(fn) + ": " + what + " is read-only");
  return static_cast<T*>(const_cast<void*>(a.data()));
}

bool is_f32(const py::array& a, const char* fn) {
  if (a.dtype().is(py::dtype::of<float>())) return true;
  if (a.dtype().is(py::dtype::of<double>())) return false;
  throw py::type_error(std::string(fn) + ": expected float32 or float64 arrays, got " +
                       py::str(a.dtype()).cast<std::string>());
}

// (loss summed over rows, rows whose argmax is right); grad (None to skip) gets (softmax - t) / N.
template <typename T>
py::tuple cross_entropy_t(const py::array& z, const py::array& t, const py::object& grad) {
  const char* fn = "softmax_cross_entropy";
  if (z.ndim() != 2) fail(std::string(fn) + ": expected 2-D logits, got " + shape_str(shape_of(z)));
  const auto rows = static_cast<std::size_t>(z.shape(0)),
             cols = static_cast<std::size_t>(z.shape(1));
  if (cols == 0) fail(std::string(fn) + ": logits need at least one class");
  const T* zp = data_of<T>(z, fn, "logits", rows * cols, false);
  T* gp =
      grad.is_none() ? nullptr : data_of<T>(grad.cast<py::array>(), fn, "grad", rows * cols, true);
  std::size_t correct = 0;
  double total;
  if (t.ndim() == 1) {
    const auto* labels = data_of<std::int64_t>(t, fn, "labels", rows, false);
    for (std::size_t n = 0; n < rows; ++n)  // the kernel indexes with them: check every one
      if (labels[n] < 0 || static_cast<std::size_t>(labels[n]) >= cols)
        fail(std::string(fn) + ": label " + std::to_string(labels[n]) + " is outside [0, " +
             std::to_string(cols) + ")");
    py::gil_scoped_release release;
    total = softmax_cross_entropy_labels(zp, labels, gp, rows, cols, &correct);
  } else {
    const T* tp = data_of<T>(t, fn, "targets", rows * cols, false);
    py::gil_scoped_release release;
    total = softmax_cross_entropy_probs(zp, tp, gp, rows, cols, &correct);
  }
  return py::make_tuple(total, correct);
}

template <typename T>
double mse_t(const py::array& y, const py::array& t, const py::object& grad) {
  const char* fn = "mse";
  if (y.ndim() < 1) fail(std::string(fn) + ": expected outputs with a batch axis");
  const auto rows = static_cast<std::size_t>(y.shape(0));
  const auto n = static_cast<std::size_t>(y.size());
  const T* yp = data_of<T>(y, fn, "outputs", n, false);
  const T* tp = data_of<T>(t, fn, "targets", n, false);
  T* gp = grad.is_none() ? nullptr : data_of<T>(grad.cast<py::array>(), fn, "grad", n, true);
  py::gil_scoped_release release;
  return mse(yp, tp, gp, rows, n / (rows ? rows : 1));
}

template <typename T>
void sgd_t(const py::array& p, const py::array& g, const py::array& buf, double lr, double momentum,
           bool nesterov, double weight_decay, bool first) {
  const char* fn = "sgd_step";
  const auto n = static_cast<std::size_t>(p.size());
  T* pp = data_of<T>(p, fn, "param", n, true);
  const T* gp = data_of<T>(g, fn, "grad", n, false);
  T* bp = data_of<T>(buf, fn, "momentum_buffer", n, true);
  py::gil_scoped_release release;
  sgd_step<T>(pp, gp, bp, n, T(lr), T(momentum), nesterov, T(weight_decay), first);
}

template <typename T>
void adam_t(const py::array& p, const py::array& g, const py::array& m, const py::array& v,
            double step_size, double beta1, double beta2, double eps, double weight_decay,
            double bias2_sqrt) {
  const char* fn = "adam_step";
  const auto n = static_cast<std::size_t>(p.size());
  T* pp = data_of<T>(p, fn, "param", n, true);
  const T* gp = data_of<T>(g, fn, "grad", n, false);
  T* mp = data_of<T>(m, fn, "exp_avg", n, true);
  T* vp = data_of<T>(v, fn, "exp_avg_sq", n, true);
  py::gil_scoped_release release;
  adam_step<T>(pp, gp, mp, vp, n, T(step_size), T(beta1), T(beta2), T(eps), T(weight_decay),
               T(bias2_sqrt));
}

// out[:len(idx)] = src[idx] along the first axis, for C-contiguous src and out of one dtype and
// row shape; every index is checked.
void take_rows(const py::array& src, const py::array& idx, const py::array& out) {
  const char* fn = "take_rows";
  if (src.ndim() < 1 || out.ndim() != src.ndim())
    fail(std::string(fn) + ": src and out need the same number of dimensions, at least 1");
  if (!src.dtype().is(out.dtype()))
    throw py::type_error(std::string(fn) + ": src and out must have one dtype");
  for (py::ssize_t d = 1; d < src.ndim(); ++d)
    if (src.shape(d) != out.shape(d))
      fail(std::string(fn) + ": rows of src " + shape_str(shape_of(src)) + " and out " +
           shape_str(shape_of(out)) + " differ");
  if (!(src.flags() & py::array::c_style) || !(out.flags() & py::array::c_style))
    fail(std::string(fn) + ": src and out must be C-contiguous");
  if (!out.writeable()) fail(std::string(fn) + ": out is read-only");
  if (idx.ndim() != 1) fail(std::string(fn) + ": idx must be 1-D");
  const auto n = static_cast<std::size_t>(idx.shape(0));
  if (n > static_cast<std::size_t>(out.shape(0)))
    fail(std::string(fn) + ": " + std::to_string(n) + " indices for " +
         std::to_string(out.shape(0)) + " rows of out");
  const auto* ip = data_of<std::int64_t>(idx, fn, "idx", n, false);
  const auto rows = static_cast<std::int64_t>(src.shape(0));
  for (std::size_t r = 0; r < n; ++r)
    if (ip[r] < 0 || ip[r] >= rows)
      throw py::index_error(std::string(fn) + ": index " + std::to_string(ip[r]) +
                            " is outside [0, " + std::to_string(rows) + ")");
  const std::size_t row_bytes =
      src.shape(0) ? static_cast<std::size_t>(src.nbytes()) / static_cast<std::size_t>(rows) : 0;
  const auto* sp = static_cast<const unsigned char*>(src.data());
  auto* op = static_cast<unsigned char*>(const_cast<void*>(out.data()));
  py::gil_scoped_release release;
  gather_rows(sp, row_bytes, ip, n, op);
}

}  // namespace

void init_training(py::module_& m) {
  m.def("take_rows", &take_rows, py::arg("src"), py::arg("idx"), py::arg("out"));
  m.def(
      "softmax_cross_entropy",
      [](const py::array& z, const py::array& t, const py::object& grad) {
        return is_f32(z, "softmax_cross_entropy") ? cross_entropy_t<float>(z, t, grad)
                                                  : cross_entropy_t<double>(z, t, grad);
      },
      py::arg("logits"), py::arg("target"), py::arg("grad"));
  m.def(
      "mse",
      [](const py::array& y, const py::array& t, const py::object& grad) {
        return is_f32(y, "mse") ? mse_t<float>(y, t, grad) : mse_t<double>(y, t, grad);
      },
      py::arg("output"), py::arg("target"), py::arg("grad"));
  m.def(
      "sgd_step",
      [](const py::array& p, const py::array& g, const py::array& buf, double lr, double momentum,
         bool nesterov, double wd, bool first) {
        if (is_f32(p, "sgd_step"))
          sgd_t<float>(p, g, buf, lr, momentum, nesterov, wd, first);
        else
          sgd_t<double>(p, g, buf, lr, momentum, nesterov, wd, first);
      },
      py::arg("param"), py::arg("grad"), py::arg("buf"), py::arg("lr"), py::arg("momentum"),
      py::arg("nesterov"), py::arg("weight_decay"), py::arg("first_step"));
  m.def(
      "adam_step",
      [](const py::array& p, const py::array& g, const py::array& mm, const py::array& v,
         double step_size, double b1, double b2, double eps, double wd, double bias2_sqrt) {
        if (is_f32(p, "adam_step"))
          adam_t<float>(p, g, mm, v, step_size, b1, b2, eps, wd, bias2_sqrt);
        else
          adam_t<double>(p, g, mm, v, step_size, b1, b2, eps, wd, bias2_sqrt);
      },
      py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"),
      py::arg("step_size"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
      py::arg("weight_decay"), py::arg("bias2_sqrt"));
  m.def("buffer_growths", [] { return buffer_growths().load(); });
}

}  // namespace layerkit::bind
