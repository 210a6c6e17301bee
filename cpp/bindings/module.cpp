// The private extension module layerkit._core: one init function per op family.
#include <layerkit/gemm.hpp>
#include <layerkit/parallel.hpp>

#include "common.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "layerkit's compiled layers (private: import layerkit instead)";
  m.attr("__version__") = LAYERKIT_VERSION;
  m.def(
      "set_num_threads",
      [](std::size_t n) {
        if (n < 1) layerkit::bind::fail("set_num_threads: n must be at least 1");
        layerkit::thread_pool().set_num_threads(n);
      },
      py::arg("n"));
  m.def("get_num_threads", [] { return layerkit::thread_pool().num_threads(); });
  // For tests: run the portable micro-kernels even where AVX2 is available.
  m.def(
      "_use_portable_kernels",
      [](bool on) {
        layerkit::detail::isa_override() =
            on ? layerkit::detail::Isa::generic : layerkit::detail::Isa::avx2;
      },
      py::arg("on"));
  m.def("_has_avx2", [] { return layerkit::detail::cpu_has_avx2_fma(); });
  layerkit::bind::init_dense(m);
  layerkit::bind::init_softmax(m);
  layerkit::bind::init_avgpool2d(m);
  layerkit::bind::init_activations(m);
  layerkit::bind::init_training(m);
}
