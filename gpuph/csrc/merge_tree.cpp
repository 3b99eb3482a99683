#include "merge_tree.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <atomic>

#include "grid_loops.h"
#include "merge_tree.cuh"
#include "merge_tree_plan.cuh"
#include "radix_sort.h"
#include "union_find.cuh"

namespace gpuph {
namespace {

struct PhaseSpec {
  const int64_t* nb;
  int nnb;
  bool reverse;
};

// A workspace serves one grid shape (MergeTreeWorkspaceHandle): buffers whose border entries must hold `fill` and
// whose pixel entries every image overwrites are filled once.
template <typename T>
void ensure(std::vector<T>& v, size_t n, const T& fill) {
  if (v.size() != n) v.assign(n, fill);
}

// Follows pointers from v to its root, compressing the path.
inline void resolve_root(int32_t* ptr, int32_t v) {
  int32_t r = v;
  while (ptr[r] != r) r = ptr[r];
  while (ptr[v] != r) {
    const int32_t nxt = ptr[v];
    ptr[v] = r;
    v = nxt;
  }
}

// Resolves pointer chains to roots, with path compression.
void resolve_roots(const GridPlan& g, int32_t* ptr) {
  for_each_pixel(g, [&](int64_t, int64_t v) { resolve_root(ptr, int32_t(v)); });
}

// Pointers to the steepest earlier neighbour, resolved to basin roots, and the flag of every pixel that has an
// earlier neighbour in another basin: only those pixels can merge components. In reverse mode the border cells
// all point at padded cell 0, the oldest component.
template <typename K>
void basins(const GridPlan& g, const K* key, const PhaseSpec& ph, int bit, MergeTreeScratch& s, uint8_t* merging) {
  s.ptr.assign(size_t(g.P), 0);
  int32_t* ptr = s.ptr.data();
  for_each_pixel(g, [&](int64_t, int64_t v) {
    const int64_t p = steepest_earlier(key, v, ph.nb, ph.nnb, ph.reverse);
    ptr[v] = int32_t(p);
  });
  resolve_roots(g, ptr);
  for_each_pixel(g, [&](int64_t, int64_t v) {
    if (borders_other_basin(key, ptr, v, ph.nb, ph.nnb, ph.reverse)) merging[v] |= uint8_t(1 << bit);
  });
}

// Elder-rule union-find over basin roots, visiting the merging pixels in processing order (kernels/merge_tree.cuh).
template <typename K>
void merge(const K* key, const PhaseSpec& ph, int bit, int dim, const uint8_t* merging,
           const std::vector<int32_t>& order, MergeTreeScratch& s, std::vector<RawPair>& out) {
  // Roots are their own parents already; other entries are only reached through find.
  elder_merge(key, s.ptr.data(), order.data(), int64_t(order.size()), ph.nb, ph.nnb, ph.reverse, bit, merging,
              [&](int64_t birth, int64_t death) { out.push_back({dim, birth, death}); });
}

// Sorts ws.order (pixels listed in index order) into (value, index) order: a stable LSD radix sort on the value key.
template <typename K>
void sort_candidates(const K* key, MergeTreeWorkspace& ws) {
  if constexpr (sizeof(K) == sizeof(Key32)) {
    ws.skey32.resize(ws.order.size());
    for (size_t i = 0; i < ws.order.size(); ++i) ws.skey32[i] = uint32_t(key[ws.order[i]].value_bits());
    radix_sort_pairs(ws.skey32, ws.order, ws.tmp32, ws.tmp_items);
  } else {
    ws.skey64.resize(ws.order.size());
    for (size_t i = 0; i < ws.order.size(); ++i) ws.skey64[i] = key[ws.order[i]].value_bits();
    radix_sort_pairs(ws.skey64, ws.order, ws.tmp64, ws.tmp_items);
  }
}

// Collects the flagged pixels and sorts them into (value, index) order; returns the earliest pixel of all, where
// the essential class is born. pre(v) runs on every pixel first, in the same pass.
template <typename K, typename Pre>
int64_t sort_flagged(const GridPlan& g, const K* key, const uint8_t* flag, MergeTreeWorkspace& ws, Pre&& pre) {
  ws.order.clear();
  int64_t first = -1;
  K kfirst = K::border();
  for_each_pixel(g, [&](int64_t, int64_t v) {
    pre(int32_t(v));
    if (flag[v]) ws.order.push_back(int32_t(v));
    if (key[v] < kfirst) {
      kfirst = key[v];
      first = v;
    }
  });
  sort_candidates(key, ws);
  return first;
}

template <typename F>
void maybe_parallel(bool parallel, F&& fn) {
  if (parallel) {
    at::parallel_for(0, 2, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) fn(int(k));
    });
  } else {
    fn(0);
    fn(1);
  }
}

// 1D: basins and merges over the 2-neighbourhood (H0 only).
template <typename K>
void run_1d(const GridPlan& g, const K* key, MergeTreeWorkspace& ws, std::vector<RawPair>* out) {
  const PhaseSpec spec{g.axis_nb, g.naxis_nb, false};
  ws.merging.assign(size_t(g.P), 0);
  basins(g, key, spec, 0, ws.phase[0], ws.merging.data());
  const int64_t first = sort_flagged(g, key, ws.merging.data(), ws, [](int32_t) {});
  merge(key, spec, 0, 0, ws.merging.data(), ws.order, ws.phase[0], out[0]);
  out[0].push_back({0, first, -1});
}

// The candidates of one phase in its processing order: their order items (the Key32 key, whose low 32 bits are the
// pixel, or the pixel) and the phase's ring mask of each (the reverse mask for phase 1).
struct PhaseList {
  const uint64_t* item;
  const uint8_t* mask;
  int64_t n;
};

// Elder-rule union-find of one phase over its candidates, on the forest of steepest pointers uf (roots: the extrema,
// and the outside, cell 0, in reverse mode). A candidate already hangs, through its steepest pointer, under one of
// the components it touches; one find per component (RingReps) and a union with the elder rule for each other one,
// whose root dies there: pairs (root, pixel) forward, (pixel, root) in reverse, unless of length zero. Equals
// elder_merge (kernels/merge_tree.cuh) on the same candidates.
template <bool Reverse, typename K, typename KeyOf>
void merge_phase(const K* key, int32_t* uf, const PhaseList& list, KeyOf key_of, const RingReps& reps,
                 const int64_t* ring, int dim, std::vector<RawPair>& out) {
  // The candidates lie anywhere in the grid: the pointers of a later one and of the rows above and below it are
  // fetched while this one merges.
  constexpr int64_t kAhead = 8;
  const int64_t row = -ring[0], n = list.n;
  for (int64_t t = 0; t < n; ++t) {
    if (t + kAhead < n) {
      const int64_t u = int64_t(list.item[t + kAhead] & 0xffffffffu);
      __builtin_prefetch(uf + u, 1);
      __builtin_prefetch(uf + u - row, 1);
      __builtin_prefetch(uf + u + row, 1);
    }
    const int32_t v = int32_t(list.item[t] & 0xffffffffu);
    const unsigned m = list.mask[t];
    const int c = reps.count[m];
    const uint64_t value = key_of(list.item[t]).value_bits();
    int32_t a = uf_find(uf, int32_t(v + ring[reps.pos[m][0]]));
    for (int i = 1; i < c; ++i) {
      const int32_t b = uf_find(uf, int32_t(v + ring[reps.pos[m][i]]));
      if (a == b) continue;
      const bool a_older = Reverse ? key[b] < key[a] : key[a] < key[b];
      const int32_t young = a_older ? b : a;
      a = a_older ? a : b;
      uf[young] = a;
      if (key[young].value_bits() != value) {
        if (Reverse)
          out.push_back({dim, int64_t(v), int64_t(young)});
        else
          out.push_back({dim, int64_t(young), int64_t(v)});
      }
    }
  }
}

// Splits the candidates (items in ascending key order, the pixel in the low 32 bits) into the lists of the phases
// that run, the reverse phase's reversed, with the ring masks; branch-free.
inline void split_phases(const uint64_t* items, int64_t n, const uint8_t* ring_mask, const RingReps* const reps[2],
                         const bool run[2], MergeTreeWorkspace& ws, PhaseList list[2]) {
  int64_t count[2] = {0, 0};
  for (int k = 0; k < 2; ++k)
    if (ws.pitem[k].size() < size_t(n)) ws.pitem[k].resize(size_t(n)), ws.pmask[k].resize(size_t(n));
  uint64_t* item0 = ws.pitem[0].data();
  uint64_t* item1 = ws.pitem[1].data();
  uint8_t* mask0 = ws.pmask[0].data();
  uint8_t* mask1 = ws.pmask[1].data();
  const uint8_t* count0 = reps[0]->count;
  const uint8_t* count1 = reps[1]->count;
  int64_t n0 = 0, n1 = 0;
  for (int64_t t = 0; t < n; ++t) {
    const uint64_t it = items[t], rt = items[n - 1 - t];
    const uint8_t m0 = ring_mask[it & 0xffffffffu], m1 = uint8_t(~ring_mask[rt & 0xffffffffu]);
    item0[n0] = it, mask0[n0] = m0;
    n0 += run[0] && count0[m0] >= 2;
    item1[n1] = rt, mask1[n1] = m1;
    n1 += run[1] && count1[m1] >= 2;
  }
  count[0] = n0, count[1] = n1;
  for (int k = 0; k < 2; ++k) list[k] = PhaseList{ws.pitem[k].data(), ws.pmask[k].data(), count[k]};
}

// One phase's list from the sorted candidate keys of two parts of the grid, a[0, na) and b[0, nb): their union in
// the phase's processing order (ascending keys forward, descending in reverse), keeping the phase's candidates.
// Branch-free: both lists have sentinels, ~0 at [n] and 0 at [-1], which no pixel's key equals.
template <bool Reverse>
void merge_parts(const uint64_t* a, int64_t na, const uint64_t* b, int64_t nb, const uint8_t* ring_mask,
                 const RingReps& reps, std::vector<uint64_t>& items, std::vector<uint8_t>& masks, PhaseList& list) {
  if (items.size() < size_t(na + nb)) items.resize(size_t(na + nb)), masks.resize(size_t(na + nb));
  uint64_t* item = items.data();
  uint8_t* mask = masks.data();
  const uint8_t* count = reps.count;
  int64_t i = Reverse ? na - 1 : 0, j = Reverse ? nb - 1 : 0, n = 0;
  for (int64_t t = 0; t < na + nb; ++t) {
    const uint64_t x = a[i], y = b[j];
    const bool from_a = Reverse ? x > y : x < y;
    const uint64_t k = from_a ? x : y;
    const int64_t step = Reverse ? -1 : 1;
    i += from_a ? step : 0;
    j += from_a ? 0 : step;
    const uint8_t m = Reverse ? uint8_t(~ring_mask[k & 0xffffffffu]) : ring_mask[k & 0xffffffffu];
    item[n] = k, mask[n] = m;
    n += count[m] >= 2;
  }
  list = PhaseList{item, mask, n};
}

// Sorts the Key32 keys of the candidates (listed in index order) ascending; returns the sorted array, a or tmp (n
// entries each). The keys are distinct and carry the padded index in their low 32 bits: short lists take a
// comparison sort, long ones a stable radix sort on the value bits, which keeps the index order among equal values
// (the same order).
inline uint64_t* sort_keys(uint64_t* a, size_t n, uint64_t* tmp) {
  if (n <= 256) {
    std::sort(a, a + n);
    return a;
  }
  return radix_sort_hi32(a, n, tmp);
}

// Which forward ring masks make a pixel a candidate of a phase that runs (two or more counted components).
struct CandidateTable {
  uint8_t is[256];
};

CandidateTable make_candidate_table(const RingReps& fwd, const RingReps& rev, bool run0, bool run1) {
  CandidateTable t{};
  for (int m = 0; m < 256; ++m) t.is[m] = (run0 && fwd.count[m] >= 2) || (run1 && rev.count[~m & 0xff] >= 2);
  return t;
}

// The ring pass over rows [r0, r1) for Key32: per pixel the forward ring mask, the steepest earlier neighbour of
// both phases (forward: min key over the allowed ring cells; reverse: max key, the border, key ~0, being the
// outside, cell 0; the pixel itself if none), the candidates' keys in index order (into cand, branch-free: room for
// every pixel; their number into ncand), and the least key. Offsets and pointers are locals so that the byte stores
// cannot force reloads.
template <Ring Fwd, Ring Rev>
uint64_t ring_rows_key32(const GridPlan& g, int64_t r0, int64_t r1, const uint64_t* __restrict key,
                         int32_t* __restrict ptr0, int32_t* __restrict ptr1, uint8_t* __restrict ring_mask,
                         const uint8_t* __restrict is_cand, uint64_t* __restrict cand, int64_t& ncand) {
  const int64_t s = g.pstride[0], w = g.n[1];
  uint64_t lo = ~0ull;
  int64_t nc = 0;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t v0 = (r + 1) * s + 1;
    for (int64_t v = v0; v < v0 + w; ++v) {
      const uint64_t kv = key[v];
      const uint64_t kn = key[v - s], kne = key[v - s + 1], ke = key[v + 1], kse = key[v + s + 1];
      const uint64_t ks = key[v + s], ksw = key[v + s - 1], kw = key[v - 1], knw = key[v - s - 1];
      const unsigned m = unsigned(kn < kv) | unsigned(kne < kv) << 1 | unsigned(ke < kv) << 2 |
                         unsigned(kse < kv) << 3 | unsigned(ks < kv) << 4 | unsigned(ksw < kv) << 5 |
                         unsigned(kw < kv) << 6 | unsigned(knw < kv) << 7;
      const uint64_t e_min = std::min(std::min(kn, ke), std::min(ks, kw));
      const uint64_t e_max = std::max(std::max(kn, ke), std::max(ks, kw));
      const uint64_t c_min = std::min(std::min(kne, kse), std::min(ksw, knw));
      const uint64_t c_max = std::max(std::max(kne, kse), std::max(ksw, knw));
      // V: forward 4-connectivity, reverse 8; T: forward 8, reverse 4; freudenthal: the hexagon both ways (the
      // 4-neighbours and the SE / NW diagonal).
      const uint64_t d_min = std::min(kse, knw), d_max = std::max(kse, knw);
      const uint64_t mn = Fwd == Ring::axis4 ? e_min : std::min(e_min, Fwd == Ring::all8 ? c_min : d_min);
      const uint64_t mx = Rev == Ring::axis4 ? e_max : std::max(e_max, Rev == Ring::all8 ? c_max : d_max);
      if (ptr0) ptr0[v] = mn < kv ? int32_t(uint32_t(mn)) : int32_t(v);
      if (ptr1) ptr1[v] = mx > kv ? (mx == ~0ull ? 0 : int32_t(uint32_t(mx))) : int32_t(v);
      ring_mask[v] = uint8_t(m);
      cand[nc] = kv;
      nc += is_cand[m];
      lo = std::min(lo, kv);
    }
  }
  ncand = nc;
  return lo;
}

// Generic ring pass (Key64) over rows [r0, r1), as ring_rows_key32; returns the earliest pixel.
template <typename K>
int64_t ring_rows_generic(const GridPlan& g, const MTPlan& m, int64_t r0, int64_t r1, const K* key, int32_t* ptr0,
                          int32_t* ptr1, uint8_t* ring_mask, const uint8_t* is_cand, uint64_t* cand,
                          int64_t& ncand) {
  ncand = 0;
  K lo = K::border();
  int64_t first = -1;
  for_each_pixel_rows(g, r0, r1, [&](int64_t, int64_t v) {
    int64_t p0, p1;
    const unsigned fwd = ring_step(key, v, m.ring, m.ring_cells[0], m.ring_cells[1], &p0, &p1);
    if (ptr0) ptr0[v] = int32_t(p0);
    if (ptr1) ptr1[v] = int32_t(p1);
    ring_mask[v] = uint8_t(fwd);
    if (is_cand[fwd]) cand[ncand++] = uint64_t(v);
    if (key[v] < lo) {
      lo = key[v];
      first = v;
    }
  });
  return first;
}

// 2D: one fused ring pass computes, for both phases, the steepest earlier neighbour and whether the pixel is a
// saddle candidate (two or more earlier ring components), and lists the candidates; only those are sorted and
// merged. The steepest pointers form the union-find forest of the merges as they are: its roots are the extrema,
// each tree a basin, and the finds (path halving) resolve only the chains that the candidates reach. With parallel,
// the rows are split into two parts, one per thread, and the two phases merge side by side.
template <typename K>
void run_2d(const GridPlan& g, const K* key, const Phases& ph, MergeTreeWorkspace& ws, std::vector<RawPair>* out,
            bool parallel, const PhaseDone* phase_done) {
  static const RingReps reps4 = make_ring_reps(Ring::axis4), reps8 = make_ring_reps(Ring::all8),
                        reps6 = make_ring_reps(Ring::freudenthal6);
  auto tables = [](const RingReps& f, const RingReps& r) {
    return std::array<CandidateTable, 4>{make_candidate_table(f, r, false, false), make_candidate_table(f, r, true, false),
                                         make_candidate_table(f, r, false, true), make_candidate_table(f, r, true, true)};
  };
  // [construction][run0 + 2 run1]
  static const std::array<CandidateTable, 4> cand_tables[3] = {tables(reps4, reps8), tables(reps8, reps4),
                                                               tables(reps6, reps6)};
  const int construction = g.construction;
  const bool T = g.min_key;
  // The ring of both phases, as the GPU pipeline gets it.
  const MTPlan m = make_mt_plan(g);
  // Forward (H0): V 4-connectivity, T 8; reverse (H1 by duality): the other.
  const RingReps* reps[2] = {T ? &reps8 : &reps4, T ? &reps4 : &reps8};
  if (construction == kConstructionFreudenthal) reps[0] = reps[1] = &reps6;
  const bool run[2] = {ph.emit[0], ph.emit[1]};
  const uint8_t* is_cand = cand_tables[construction][int(run[0]) + 2 * int(run[1])].is;
  for (int k = 0; k < 2; ++k)
    if (run[k]) ensure(ws.phase[k].ptr, size_t(g.P), 0);  // border cells point at cell 0, the outside
  int32_t* ptr0 = run[0] ? ws.phase[0].ptr.data() : nullptr;
  int32_t* ptr1 = run[1] ? ws.phase[1].ptr.data() : nullptr;
  ensure(ws.merging, size_t(g.P), uint8_t(0));
  uint8_t* ring_mask = ws.merging.data();
  const int64_t rows = grid_rows(g);
  const int nparts = parallel ? int(std::min<int64_t>(2, rows)) : 1;
  // Room for every pixel in both lists (part 1 lists its own, then joins part 0's; the second is the sort's spare).
  for (int k = 0; k < 2; ++k)
    if (ws.cand[k].size() < size_t(g.N)) ws.cand[k].resize(size_t(g.N));
  int64_t first_of[2] = {-1, -1}, ncand[2] = {0, 0};
  auto part = [&](int k) {
    uint64_t* cand = ws.cand[k].data();
    const int64_t r0 = rows * k / nparts, r1 = rows * (k + 1) / nparts;
    if constexpr (sizeof(K) == sizeof(Key32)) {
      const uint64_t* kk = reinterpret_cast<const uint64_t*>(key);
      constexpr Ring a4 = Ring::axis4, a8 = Ring::all8, h6 = Ring::freudenthal6;
      const uint64_t lo =
          construction == kConstructionV   ? ring_rows_key32<a4, a8>(g, r0, r1, kk, ptr0, ptr1, ring_mask, is_cand, cand, ncand[k])
          : construction == kConstructionT ? ring_rows_key32<a8, a4>(g, r0, r1, kk, ptr0, ptr1, ring_mask, is_cand, cand, ncand[k])
                                           : ring_rows_key32<h6, h6>(g, r0, r1, kk, ptr0, ptr1, ring_mask, is_cand, cand, ncand[k]);
      first_of[k] = int64_t(lo & 0xffffffffu);
    } else {
      first_of[k] = ring_rows_generic(g, m, r0, r1, key, ptr0, ptr1, ring_mask, is_cand, cand, ncand[k]);
    }
  };
  // Parallel (Key32): each part also sorts its own candidates, into a list with sentinels at both ends (merge_parts);
  // each phase's thread then merges the two lists.
  const bool two_lists = nparts == 2 && sizeof(K) == sizeof(Key32);
  uint64_t* sorted[2] = {nullptr, nullptr};
  if (two_lists)
    for (int k = 0; k < 2; ++k)
      if (ws.spare[k].size() < size_t(g.N) + 2) ws.spare[k].resize(size_t(g.N) + 2);
  maybe_parallel(nparts == 2, [&](int k) {
    if (k >= nparts) return;
    part(k);
    if (!two_lists) return;
    uint64_t* s = sort_keys(ws.cand[k].data(), size_t(ncand[k]), ws.spare[k].data() + 1);
    if (s != ws.spare[k].data() + 1) s = std::copy(s, s + ncand[k], ws.spare[k].data() + 1) - ncand[k];
    s[-1] = 0;
    s[ncand[k]] = ~0ull;
    sorted[k] = s;
  });
  int64_t first = first_of[0];
  if (nparts == 2 && key[first_of[1]] < key[first]) first = first_of[1];
  PhaseList list[2];
  if (!two_lists) {
    if (nparts == 2) {
      std::copy(ws.cand[1].begin(), ws.cand[1].begin() + ncand[1], ws.cand[0].begin() + ncand[0]);
      ncand[0] += ncand[1];
    }
    const uint64_t* items;
    if constexpr (sizeof(K) == sizeof(Key32)) {
      // The candidates' keys, sorted: the pixel is in their low 32 bits.
      items = sort_keys(ws.cand[0].data(), size_t(ncand[0]), ws.cand[1].data());
    } else {
      ws.order.assign(ws.cand[0].begin(), ws.cand[0].begin() + ncand[0]);
      sort_candidates(key, ws);
      std::copy(ws.order.begin(), ws.order.end(), ws.cand[0].begin());
      items = ws.cand[0].data();
    }
    split_phases(items, ncand[0], ring_mask, reps, run, ws, list);
  }
  auto key_of = [&](uint64_t item) {
    if constexpr (sizeof(K) == sizeof(Key32))
      return Key32{item};
    else
      return key[item];
  };
  maybe_parallel(parallel && run[0] && run[1], [&](int k) {
    if (!run[k]) return;
    int32_t* uf = ws.phase[k].ptr.data();
    if (k == 0) {
      if (two_lists)
        merge_parts<false>(sorted[0], ncand[0], sorted[1], ncand[1], ring_mask, *reps[0], ws.pitem[0], ws.pmask[0],
                           list[0]);
      merge_phase<false>(key, uf, list[0], key_of, *reps[0], m.ring, 0, out[0]);
      out[0].push_back({0, first, -1});  // the essential class
    } else {
      if (two_lists)
        merge_parts<true>(sorted[0], ncand[0], sorted[1], ncand[1], ring_mask, *reps[1], ws.pitem[1], ws.pmask[1],
                          list[1]);
      merge_phase<true>(key, uf, list[1], key_of, *reps[1], m.ring, 1, out[1]);
    }
    if (phase_done) (*phase_done)(k);
  });
}

template <typename K>
void run_phases(const GridPlan& g, const K* key, const Phases& ph, MergeTreeWorkspace& ws, std::vector<RawPair>* out,
                bool parallel_phases, const PhaseDone* phase_done) {
  if (g.D == 1) {
    if (!ph.emit[0]) return;
    run_1d(g, key, ws, out);
    if (phase_done) (*phase_done)(0);
  } else {
    run_2d(g, key, ph, ws, out, parallel_phases, phase_done);
  }
}

// Keys every pixel (K: Key32 with a 32-bit value key U for float32, Key64 / uint64 for float64), then runs the
// phases. Returns false on NaN.
template <typename K, typename U, typename F>
bool key_and_run(const GridPlan& g, const F* x, bool superlevel, const Phases& ph, MergeTreeWorkspace& ws,
                 std::vector<K>& keys, std::vector<RawPair>* out, bool parallel_phases, const PhaseDone* phase_done) {
  ensure(keys, size_t(g.P), K::border());
  K* k = keys.data();
  std::atomic<bool> ok{true};
  const int64_t rows = grid_rows(g);
  auto key_rows = [&](int64_t r0, int64_t r1) {
    bool nan = false;
    for_each_pixel_rows(g, r0, r1, [&](int64_t i, int64_t p) {
      const F v = x[i];
      nan |= v != v;
      k[p] = K::make(orderable_key<U>(v, superlevel), uint32_t(p));
    });
    if (nan) ok = false;
  };
  if (parallel_phases)
    at::parallel_for(0, rows, 16, key_rows);
  else
    key_rows(0, rows);
  if (!ok) return false;
  run_phases(g, k, ph, ws, out, parallel_phases, phase_done);
  return true;
}

}  // namespace

MergeTreeWorkspaceHandle::MergeTreeWorkspaceHandle(const GridPlan& g)
    // about 9 MB for float32 input (a 512 x 512 image) on every thread, 36 MB (1024 x 1024) on the calling thread
    : KeptWorkspace(g.P, 19, 21) {
  MergeTreeWorkspace* ws = &get();
  bool same = ws->D == g.D;
  for (int a = 0; a < g.D; ++a) same = same && ws->n[a] == g.n[a];
  if (!same) {
    *ws = MergeTreeWorkspace();  // the border entries of another shape: fill again
    ws->D = g.D;
    for (int a = 0; a < g.D; ++a) ws->n[a] = g.n[a];
  }
}

template <typename F>
bool merge_tree_image(const GridPlan& g, const F* x, bool superlevel, const Phases& ph, MergeTreeWorkspace& ws,
                      std::vector<RawPair>* out, bool parallel_phases, const PhaseDone* phase_done) {
  if constexpr (sizeof(F) == 4)
    return key_and_run<Key32, uint32_t>(g, x, superlevel, ph, ws, ws.key32, out, parallel_phases, phase_done);
  else
    return key_and_run<Key64, uint64_t>(g, x, superlevel, ph, ws, ws.key64, out, parallel_phases, phase_done);
}

template bool merge_tree_image<float>(const GridPlan&, const float*, bool, const Phases&, MergeTreeWorkspace&,
                                      std::vector<RawPair>*, bool, const PhaseDone*);
template bool merge_tree_image<double>(const GridPlan&, const double*, bool, const Phases&, MergeTreeWorkspace&,
                                       std::vector<RawPair>*, bool, const PhaseDone*);

}  // namespace gpuph
