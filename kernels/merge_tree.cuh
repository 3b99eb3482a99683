// Merge trees of pixel graphs without sorting every pixel: the per-pixel bodies.
//
// H0 of a lower-star filtration on a pixel graph (V: 4/6-connectivity, T: 8/26) and, by duality (DESIGN.md section
// 2), the top dimension of 2D grids (V: 8-connectivity, T: 4, in the reverse order, the border being one component
// older than every pixel) are both "components of a growing pixel set". Every non-extremal pixel joins a component
// at its own step, through its steepest earlier neighbour: following these pointers gives every pixel the extremum
// of its basin, with no order needed. Only the edges between different basins can merge components; only those are
// sorted and union-found with the elder rule (GUDHI's Persistence_on_rectangle does the same kind of local pairing).
#pragma once
#include "gpuph_common.cuh"

namespace gpuph {

// Total-order key of a pixel: (orderable value, padded index) packed in 64 bits for float32. The border gets the
// largest key: never earlier in the forward order, always earlier (and so the oldest) in the reverse order.
struct Key32 {
  uint64_t k;
  GPUPH_HD bool operator<(const Key32& o) const { return k < o.k; }
  GPUPH_HD bool operator>(const Key32& o) const { return k > o.k; }
  GPUPH_HD bool operator==(const Key32& o) const { return k == o.k; }
  GPUPH_HD bool operator!=(const Key32& o) const { return k != o.k; }
  GPUPH_HD uint64_t value_bits() const { return k >> 32; }
  GPUPH_HD uint64_t sort_bits() const { return k; }
  static GPUPH_HD Key32 border() { return Key32{~0ull}; }
  static GPUPH_HD Key32 make(uint32_t value_key, uint32_t index) { return Key32{(uint64_t(value_key) << 32) | index}; }
};

// float64: the value key alone takes 64 bits; the index breaks ties.
struct Key64 {
  uint64_t v;
  uint32_t i;
  GPUPH_HD bool operator<(const Key64& o) const { return v != o.v ? v < o.v : i < o.i; }
  GPUPH_HD bool operator>(const Key64& o) const { return o < *this; }
  GPUPH_HD bool operator==(const Key64& o) const { return v == o.v && i == o.i; }
  GPUPH_HD bool operator!=(const Key64& o) const { return !(*this == o); }
  GPUPH_HD uint64_t value_bits() const { return v; }
  static GPUPH_HD Key64 border() { return Key64{~0ull, ~0u}; }
  static GPUPH_HD Key64 make(uint64_t value_key, uint32_t index) { return Key64{value_key, index}; }
};

// "a comes before b" in the processing order (forward: ascending keys; reverse: descending).
template <typename K>
GPUPH_HD bool earlier(const K& a, const K& b, bool reverse) {
  return reverse ? b < a : a < b;
}

// Steepest earlier neighbour of pixel v (the earliest of its earlier neighbours), or v itself if it has none (an
// extremum: a component is born there).
template <typename K>
GPUPH_HD int64_t steepest_earlier(const K* key, int64_t v, const int64_t* nb, int nnb, bool reverse) {
  const K kv = key[v];
  int64_t best = v;
  K kb = kv;
  for (int j = 0; j < nnb; ++j) {
    const int64_t u = v + nb[j];
    const K ku = key[u];
    if (earlier(ku, kb, reverse)) {
      kb = ku;
      best = u;
    }
  }
  return best;
}

}  // namespace gpuph
