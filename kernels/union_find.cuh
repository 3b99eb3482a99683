// Union-find primitives with the elder rule, shared by the CPU engine and (later) the CUDA kernels.
#pragma once
#include "gpuph_common.cuh"

namespace gpuph {

// Root of x with path halving. Roots are founders: merges always link the younger root under the older one.
template <typename I>
GPUPH_HD I uf_find(I* parent, I x) {
  while (parent[x] != x) {
    I g = parent[parent[x]];
    parent[x] = g;
    x = g;
  }
  return x;
}

}  // namespace gpuph
