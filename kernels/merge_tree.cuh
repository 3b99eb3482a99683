// Merge trees of pixel graphs without sorting every pixel: the per-pixel bodies.
//
// H0 of a lower-star filtration on a pixel graph (V: 4/6-connectivity, T: 8/26, freudenthal: 6/14) and, by duality
// (DESIGN.md section 2), the top dimension of 2D / 3D grids (V: 8/26-connectivity, T: 4/6, freudenthal: 6/14 again,
// in the reverse order, the border being one component older than every pixel) are both "components of a growing
// pixel set". Freudenthal's top dimension: by Alexander duality its classes are the components of the complement of
// the filtered complex, i.e. of the union of the open stars of the later vertices plus the outside; two open stars
// meet iff the vertices share a simplex iff they are adjacent (the triangulation is a flag complex), and the outside
// meets exactly the stars of the grid's boundary vertices, so it is the same merge tree on the same neighbourhood in
// the reverse order.
//
// Every non-extremal pixel joins a component at its own step, through its steepest earlier neighbour: following these
// pointers gives every pixel the extremum of its basin, with no order needed. Only the edges between different basins
// can merge components; only those are sorted and union-found with the elder rule (GUDHI's Persistence_on_rectangle
// does the same kind of local pairing).
#pragma once
#include "gpuph_common.cuh"
#include "union_find.cuh"

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

// Whether pixel v (whose pointers are resolved to basin roots in ptr) has an earlier neighbour in another basin: only
// such pixels can merge components.
template <typename K, typename I>
GPUPH_HD bool borders_other_basin(const K* key, const I* ptr, int64_t v, const int64_t* nb, int nnb, bool reverse) {
  const K kv = key[v];
  const I rv = ptr[v];
  for (int j = 0; j < nnb; ++j) {
    const int64_t u = v + nb[j];
    if (ptr[u] != rv && earlier(key[u], kv, reverse)) return true;
  }
  return false;
}

}  // namespace gpuph

namespace gpuph {

// 2D: the 8 neighbours of a pixel as a cycle (N, NE, E, SE, S, SW, W, NW); bit j of a mask says whether ring cell j
// comes earlier than the pixel. Even bits are the 4-neighbours. A pixel can only merge components if its earlier
// neighbours fall into two or more components of the ring (with 4- or 8-adjacency): otherwise they are already
// connected through earlier pixels of the ring. These tables count those components for every mask.
// Freudenthal: the neighbours are the 4-neighbours and the two corners SE, NW of the (1, 1) diagonal; they form the
// hexagon N, E, SE, S, W, NW (the link of the pixel: consecutive cells span a triangle with it, others are not
// adjacent), so the count is that of runs of earlier cells around the hexagon (NE and SW ignored).
struct RingTables {
  uint8_t comp4[256];  // components touching a 4-neighbour, ring cells adjacent when consecutive
  uint8_t comp8[256];  // components, consecutive cells and consecutive 4-neighbours (N-E, E-S, ...) adjacent
  uint8_t comp6[256];  // runs of set cells around the freudenthal hexagon N, E, SE, S, W, NW
};

// The ring cells of a phase's neighbourhood, as a mask of ring cells (the value).
enum class Ring : uint8_t {
  axis4 = 0x55,        // N, E, S, W
  all8 = 0xff,         // the whole ring
  freudenthal6 = 0xdd  // N, E, SE, S, W, NW
};

// Components of the set cells of ring mask m under a phase's adjacency: label[j] is the smallest cell of j's
// component, -1 for cells not set (or, on the hexagon, not in it). axis4 and all8: consecutive ring cells are adjacent
// (a corner joins its two 4-neighbours), and with all8 also consecutive 4-neighbours (N-E, E-S, ...); freudenthal6:
// consecutive cells of the hexagon N, E, SE, S, W, NW (ring cells 0, 2, 3, 4, 6, 7), NE and SW left out.
inline void ring_components(unsigned m, Ring ring, int label[8]) {
  const int hex_next[8] = {2, -1, 3, 4, 6, -1, 7, 0};  // the next hexagon cell, cyclically
  const bool hex = ring == Ring::freudenthal6;
  for (int j = 0; j < 8; ++j) label[j] = ((m >> j) & 1) && (!hex || ((unsigned(Ring::freudenthal6) >> j) & 1)) ? j : -1;
  // Propagate the smallest label along adjacencies until stable (8 cells: 8 sweeps suffice).
  for (int sweep = 0; sweep < 8; ++sweep)
    for (int j = 0; j < 8; ++j) {
      if (label[j] < 0) continue;
      const int nbr[2] = {hex ? hex_next[j] : (j + 1) % 8, !hex && ring == Ring::all8 && j % 2 == 0 ? (j + 2) % 8 : -1};
      for (const int q : nbr) {
        if (q < 0 || label[q] < 0) continue;
        const int l = label[j] < label[q] ? label[j] : label[q];
        label[j] = label[q] = l;
      }
    }
}

inline RingTables make_ring_tables() {
  RingTables t{};
  for (int m = 0; m < 256; ++m) {
    int label[8];
    // 4-connectivity counts only the components that reach a 4-neighbour (a corner alone is no graph neighbour).
    ring_components(unsigned(m), Ring::axis4, label);
    int count = 0;
    for (int c = 0; c < 8; ++c) {
      bool counts = false;
      for (int q = 0; q < 8; q += 2) counts = counts || label[q] == c;
      count += counts;
    }
    t.comp4[m] = uint8_t(count);
    const Ring whole[2] = {Ring::all8, Ring::freudenthal6};
    uint8_t* table[2] = {t.comp8, t.comp6};
    for (int k = 0; k < 2; ++k) {
      ring_components(unsigned(m), whole[k], label);
      count = 0;
      for (int j = 0; j < 8; ++j) count += label[j] == j;
      table[k][m] = uint8_t(count);
    }
  }
  return t;
}

// The component table of a phase's ring neighbourhood.
GPUPH_HD const uint8_t* ring_comp(const RingTables& t, Ring r) {
  return r == Ring::axis4 ? t.comp4 : r == Ring::all8 ? t.comp8 : t.comp6;
}

// 2D merges, per ring mask: one ring cell in each component of the earlier ring cells that counts, a graph
// neighbour of the pixel (4-connectivity: a 4-neighbour). Earlier neighbours in one ring component are connected
// through earlier pixels, so one find per component suffices (the CPU engine's merge_phase and elder_merge_ring).
struct RingReps {
  uint8_t count[256];
  uint8_t pos[256][4];
};

inline RingReps make_ring_reps(Ring ring) {
  RingReps t{};
  for (int m = 0; m < 256; ++m) {
    int label[8];
    ring_components(unsigned(m), ring, label);  // the components that make_ring_tables counts
    for (int c = 0; c < 8; ++c) {  // c: a component's label; its first cell of the phase's neighbourhood represents it
      for (int j = 0; j < 8; ++j)
        if (label[j] == c && ((unsigned(ring) >> j) & 1)) {
          t.pos[m][t.count[m]++] = uint8_t(j);
          break;
        }
    }
  }
  return t;
}

// The RingReps of both phases of a 2D grid, by value (2.5 KB: kernels take them as a __grid_constant__ parameter).
struct PhaseReps {
  RingReps phase[2];
};

// Those of a grid whose phases use the ring cells ring0 and ring1, each ring's built once.
inline PhaseReps phase_reps(Ring ring0, Ring ring1) {
  static const RingReps axis4 = make_ring_reps(Ring::axis4), all8 = make_ring_reps(Ring::all8),
                        hex6 = make_ring_reps(Ring::freudenthal6);
  auto of = [&](Ring r) -> const RingReps& { return r == Ring::axis4 ? axis4 : r == Ring::all8 ? all8 : hex6; };
  return PhaseReps{{of(ring0), of(ring1)}};
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
// earlier cell forward (min key over the phase's ring cells) and in reverse (max key; the border, key ~0, is the
// outside, cell 0). The key carries the padded index in its low 32 bits. A pointer equal to v marks an extremum.
GPUPH_HD uint64_t min2(uint64_t a, uint64_t b) { return a < b ? a : b; }
GPUPH_HD uint64_t max2(uint64_t a, uint64_t b) { return a > b ? a : b; }

GPUPH_HD unsigned ring_step_key32(const Key32* key, int64_t v, const int64_t* ring, Ring cells_fwd, Ring cells_rev,
                                  int64_t* fwd_ptr, int64_t* rev_ptr) {
  const uint64_t kv = key[v].k;
  uint64_t k[8];
  unsigned m = 0;
  for (int j = 0; j < 8; ++j) {
    k[j] = key[v + ring[j]].k;
    m |= unsigned(k[j] < kv) << j;
  }
  // Even cells (the 4-neighbours), the freudenthal diagonal (SE, NW), all odd cells (the corners).
  const uint64_t e_min = min2(min2(k[0], k[2]), min2(k[4], k[6]));
  const uint64_t e_max = max2(max2(k[0], k[2]), max2(k[4], k[6]));
  const uint64_t d_min = min2(k[3], k[7]), d_max = max2(k[3], k[7]);
  const uint64_t c_min = min2(d_min, min2(k[1], k[5]));
  const uint64_t c_max = max2(d_max, max2(k[1], k[5]));
  const uint64_t mn = cells_fwd == Ring::axis4 ? e_min : min2(e_min, cells_fwd == Ring::all8 ? c_min : d_min);
  const uint64_t mx = cells_rev == Ring::axis4 ? e_max : max2(e_max, cells_rev == Ring::all8 ? c_max : d_max);
  *fwd_ptr = mn < kv ? int64_t(mn & 0xffffffffu) : v;
  *rev_ptr = mx > kv ? (mx == ~0ull ? 0 : int64_t(mx & 0xffffffffu)) : v;
  return m;
}

// The ring step for any key type: forward ring mask, steepest earlier cell forward among the ring cells cells_fwd
// and in reverse among cells_rev. Key32 takes the branch-free version above.
template <typename K>
GPUPH_HD unsigned ring_step(const K* key, int64_t v, const int64_t* ring, Ring cells_fwd, Ring cells_rev,
                            int64_t* fwd_ptr, int64_t* rev_ptr) {
  if constexpr (sizeof(K) == sizeof(Key32)) {
    return ring_step_key32(key, v, ring, cells_fwd, cells_rev, fwd_ptr, rev_ptr);
  } else {
    const unsigned fwd = ring_mask(key, v, ring);
    const unsigned m0 = fwd & unsigned(cells_fwd);
    const unsigned m1 = ~fwd & unsigned(cells_rev) & 0xffu;
    *fwd_ptr = m0 ? steepest_in_mask(key, v, ring, m0, false) : v;
    *rev_ptr = m1 ? steepest_in_mask(key, v, ring, m1, true) : v;
    return fwd;
  }
}

// V / T: four_fwd / four_rev pick the 4-neighbours, otherwise the whole ring.
template <typename K>
GPUPH_HD unsigned ring_step(const K* key, int64_t v, const int64_t* ring, bool four_fwd, bool four_rev,
                            int64_t* fwd_ptr, int64_t* rev_ptr) {
  return ring_step(key, v, ring, four_fwd ? Ring::axis4 : Ring::all8, four_rev ? Ring::axis4 : Ring::all8, fwd_ptr,
                   rev_ptr);
}

// Saddle-candidate flags of a pixel from its forward ring mask: bit 0 if its earlier ring cells fall into two or more
// components forward (H0), bit 1 likewise in reverse (H1 by duality). comp_fwd / comp_rev: the RingTables counts for
// each phase's connectivity.
GPUPH_HD uint8_t ring_flags(unsigned fwd, const uint8_t* comp_fwd, const uint8_t* comp_rev, bool run_fwd, bool run_rev) {
  return uint8_t(run_fwd && comp_fwd[fwd] >= 2) | uint8_t(uint8_t(run_rev && comp_rev[~fwd & 0xffu] >= 2) << 1);
}

// Elder-rule union-find of one image over its merging pixels, the body shared by the CPU loop and the CUDA kernel
// (one thread per image and phase). uf holds, for every padded cell, its basin root (roots point at themselves);
// order lists the n candidate pixels in ascending key order, visited backwards in reverse mode. Each union of two
// components emits emit(birth, death) in padded indices, unless the pair has length zero. Forward (H0): birth = the
// younger root, death = the merging pixel; reverse (top dimension by duality): birth = the merging pixel, death = the
// younger root.
template <typename K, typename I, typename Order, typename Emit>
GPUPH_HD void elder_merge(const K* key, I* uf, const Order* order, int64_t n, const int64_t* nb, int nnb, bool reverse,
                          int bit, const uint8_t* flag, Emit&& emit) {
  for (int64_t t = 0; t < n; ++t) {
    const I v = I(order[reverse ? n - 1 - t : t]);
    if (!((flag[v] >> bit) & 1)) continue;
    const K kv = key[v];
    for (int j = 0; j < nnb; ++j) {
      const int64_t u = v + nb[j];
      if (!earlier(key[u], kv, reverse)) continue;
      const I a = uf_find(uf, v);
      const I b = uf_find(uf, I(u));
      if (a == b) continue;
      const bool a_older = earlier(key[a], key[b], reverse);
      const I young = a_older ? b : a;
      uf[young] = a_older ? a : b;
      if (key[young].value_bits() != kv.value_bits()) {
        if (reverse)
          emit(int64_t(v), int64_t(young));
        else
          emit(int64_t(young), int64_t(v));
      }
    }
  }
}

// elder_merge for 2D grids with one find per component of the candidate's earlier ring cells (reps: the phase's
// RingReps; ring: the 8-ring as padded-index deltas) instead of two per earlier neighbour. The candidate itself
// already hangs, through its steepest pointer, under one of those components. The same pairs as elder_merge (not
// in the same order: the rows are ordered afterwards).
template <typename K, typename I, typename Order, typename Emit>
GPUPH_HD void elder_merge_ring(const K* key, I* uf, const Order* order, int64_t n, const int64_t* ring,
                               const RingReps& reps, bool reverse, int bit, const uint8_t* flag, Emit&& emit) {
  for (int64_t t = 0; t < n; ++t) {
    const int64_t v = int64_t(order[reverse ? n - 1 - t : t]);
    if (!((flag[v] >> bit) & 1)) continue;
    const K kv = key[v];
    unsigned m = 0;  // the phase's ring mask: earlier ring cells (in reverse: later forward, the border included)
    for (int j = 0; j < 8; ++j) m |= unsigned(earlier(key[v + ring[j]], kv, reverse)) << j;
    const int c = reps.count[m];
    if (c < 2) continue;  // one component: nothing merges
    I a = uf_find(uf, I(v + ring[reps.pos[m][0]]));
    for (int i = 1; i < c; ++i) {
      const I b = uf_find(uf, I(v + ring[reps.pos[m][i]]));
      if (a == b) continue;
      const bool a_older = earlier(key[a], key[b], reverse);
      const I young = a_older ? b : a;
      a = a_older ? a : b;
      uf[young] = a;
      if (key[young].value_bits() != kv.value_bits()) {
        if (reverse)
          emit(v, int64_t(young));
        else
          emit(int64_t(young), v);
      }
    }
  }
}

// The merge-tree parameters of one grid shape, small enough to pass to a kernel by value (no constant-memory symbol,
// so concurrent calls on different streams and shapes cannot race). Phase 0 is H0 (forward), phase 1 the top
// dimension of 2D / 3D grids (reverse order, by duality).
struct MTPlan {
  int D;
  bool T;                 // T construction: H0 8 / 26-connected, the dual 4 / 6 (V: the other way round)
  int64_t n[3], pn[3], pstride[3];
  int64_t N, P;           // pixels, padded pixels of one grid
  int nnb[2];
  int64_t nb[2][26];      // each phase's neighbourhood as padded-index deltas
  int64_t ring[8];        // 2D: the 8-ring (N, NE, E, SE, S, SW, W, NW)
  Ring ring_cells[2];     // 2D: each phase's neighbourhood as ring cells (V: 4, 8; T: 8, 4; freudenthal: 6, 6)
};

// Pixel or border cell: the padded cell c of a grid, and its unpadded flat index if it is a pixel (-1 otherwise).
GPUPH_HD int64_t pixel_of_cell(const MTPlan& g, int64_t c) {
  int64_t flat = 0;
  for (int a = 0; a < g.D; ++a) {
    const int64_t q = (c / g.pstride[a]) % g.pn[a];
    if (q == 0 || q == g.pn[a] - 1) return -1;
    flat = flat * g.n[a] + (q - 1);
  }
  return flat;
}

// Unpadded flat index of padded cell p (a pixel, not a border cell).
GPUPH_HD int64_t unpad_index(const int64_t* n, const int64_t* pstride, const int64_t* pn, int D, int64_t p) {
  int64_t flat = 0;
  for (int a = 0; a < D; ++a) flat = flat * n[a] + ((p / pstride[a]) % pn[a] - 1);
  return flat;
}

}  // namespace gpuph
