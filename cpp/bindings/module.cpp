// The private extension module layerkit._core: one init function per op family.
#include "common.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "layerkit's compiled layers (private: import layerkit instead)";
  m.attr("__version__") = LAYERKIT_VERSION;
  layerkit::bind::init_dense(m);
  layerkit::bind::init_softmax(m);
  layerkit::bind::init_avgpool2d(m);
  layerkit::bind::init_activations(m);
}
