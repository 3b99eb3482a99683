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

namespace gpuph {

// 2D: the 8 neighbours of a pixel as a cycle (N, NE, E, SE, S, SW, W, NW); bit j of a mask says whether ring cell j
// comes earlier than the pixel. Even bits are the 4-neighbours. A pixel can only merge components if its earlier
// neighbours fall into two or more components of the ring (with 4- or 8-adjacency): otherwise they are already
// connected through earlier pixels of the ring. These tables count those components for every mask.
struct RingTables {
  uint8_t comp4[256];  // components touching a 4-neighbour, ring cells adjacent when consecutive
  uint8_t comp8[256];  // components, consecutive cells and consecutive 4-neighbours (N-E, E-S, ...) adjacent
};

inline RingTables make_ring_tables() {
  RingTables t{};
  for (int m = 0; m < 256; ++m) {
    for (int conn = 4; conn <= 8; conn += 4) {
      int label[8];
      for (int j = 0; j < 8; ++j) label[j] = (m >> j) & 1 ? j : -1;
      // Propagate the smallest label along adjacencies until stable (8 cells: a few sweeps suffice).
      for (int sweep = 0; sweep < 8; ++sweep)
        for (int j = 0; j < 8; ++j) {
          if (label[j] < 0) continue;
          const int nbr[3] = {(j + 1) % 8, (j + 7) % 8, (j % 2 == 0 && conn == 8) ? (j + 2) % 8 : -1};
          const int nbr2 = (j % 2 == 0 && conn == 8) ? (j + 6) % 8 : -1;
          for (int q : {nbr[0], nbr[1], nbr[2], nbr2}) {
            if (q < 0 || label[q] < 0) continue;
            const int l = label[j] < label[q] ? label[j] : label[q];
            label[j] = label[q] = l;
          }
        }
      int count = 0;
      for (int j = 0; j < 8; ++j) {
        if (label[j] != j) continue;  // not a component's representative
        bool counts = conn == 8;
        for (int q = 0; q < 8 && !counts; q += 2) counts = label[q] == j;
        count += counts;
      }
      (conn == 4 ? t.comp4 : t.comp8)[m] = uint8_t(count);
    }
  }
  return t;
}

// Forward ring mask of pixel v: bit j set if ring cell j is earlier in the forward order (the border never is).
// The reverse mask is its complement: keys are distinct and the border comes first in the reverse order.
template <typename K>
GPUPH_HD unsigned ring_mask(const K* key, int64_t v, const int64_t* ring) {
  const K kv = key[v];
  unsigned m = 0;
  for (int j = 0; j < 8; ++j) m |= unsigned(key[v + ring[j]] < kv) << j;
  return m;
}

// Earliest ring cell among the allowed bits of mask (in the given direction), or v if none.
template <typename K>
GPUPH_HD int64_t steepest_in_mask(const K* key, int64_t v, const int64_t* ring, unsigned mask, bool reverse) {
  int64_t best = v;
  bool have = false;
  K kb{};
  for (int j = 0; j < 8; ++j) {
    if (!((mask >> j) & 1)) continue;
    const int64_t u = v + ring[j];
    if (!have || earlier(key[u], kb, reverse)) {
      kb = key[u];
      best = u;
      have = true;
    }
  }
  return best;
}

// The whole ring step of a pixel for Key32, loading each ring key once: the forward ring mask, and the steepest
// earlier cell forward (min key over the allowed cells) and in reverse (max key; the border, key ~0, is the
// outside, cell 0). The key carries the padded index in its low 32 bits. A pointer equal to v marks an extremum.
GPUPH_HD uint64_t min2(uint64_t a, uint64_t b) { return a < b ? a : b; }
GPUPH_HD uint64_t max2(uint64_t a, uint64_t b) { return a > b ? a : b; }

GPUPH_HD unsigned ring_step_key32(const Key32* key, int64_t v, const int64_t* ring, bool four_fwd, bool four_rev,
                                  int64_t* fwd_ptr, int64_t* rev_ptr) {
  const uint64_t kv = key[v].k;
  uint64_t k[8];
  unsigned m = 0;
  for (int j = 0; j < 8; ++j) {
    k[j] = key[v + ring[j]].k;
    m |= unsigned(k[j] < kv) << j;
  }
  const uint64_t e_min = min2(min2(k[0], k[2]), min2(k[4], k[6]));
  const uint64_t e_max = max2(max2(k[0], k[2]), max2(k[4], k[6]));
  const uint64_t c_min = min2(min2(k[1], k[3]), min2(k[5], k[7]));
  const uint64_t c_max = max2(max2(k[1], k[3]), max2(k[5], k[7]));
  const uint64_t mn = four_fwd ? e_min : min2(e_min, c_min);
  const uint64_t mx = four_rev ? e_max : max2(e_max, c_max);
  *fwd_ptr = mn < kv ? int64_t(mn & 0xffffffffu) : v;
  *rev_ptr = mx > kv ? (mx == ~0ull ? 0 : int64_t(mx & 0xffffffffu)) : v;
  return m;
}

}  // namespace gpuph
