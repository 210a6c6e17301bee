// Reusable buffers. Every buffer a layer or kernel keeps grows through grow(), which counts the
// times memory is actually requested, so tests can show that a training step, once warm,
// allocates nothing.
#pragma once

#include <atomic>
#include <cstddef>
#include <vector>

namespace layerkit {

inline std::atomic<std::size_t>& buffer_growths() {
  static std::atomic<std::size_t> count{0};
  return count;
}

// v.resize(n), counting it when the capacity has to grow. Shrinking keeps the capacity.
template <typename T>
void grow(std::vector<T>& v, std::size_t n) {
  if (n > v.capacity()) buffer_growths().fetch_add(1, std::memory_order_relaxed);
  v.resize(n);
}

}  // namespace layerkit
