// Gathering rows: out[r] = src[idx[r]] for rows of row_bytes bytes, as a training loop builds a
// shuffled batch. The rows of a random batch lie far apart in memory, so each read waits on main
// memory; the rows are split across threads, which keeps more reads in flight.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "parallel.hpp"

namespace layerkit {

// The caller checks that every index lies in [0, rows of src).
inline void gather_rows(const unsigned char* src, std::size_t row_bytes, const std::int64_t* idx,
                        std::size_t n, unsigned char* out) {
  const std::size_t grain = std::max<std::size_t>(1, (std::size_t(64) << 10) / (row_bytes + 1));
  parallel_for(n, grain, [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r)
      std::memcpy(out + r * row_bytes, src + static_cast<std::size_t>(idx[r]) * row_bytes,
                  row_bytes);
  });
}

}  // namespace layerkit
