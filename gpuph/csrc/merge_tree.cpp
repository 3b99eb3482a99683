#include "merge_tree.h"

#include <ATen/Parallel.h>

#include <algorithm>
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

// A workspace lives for one call, so for one grid shape: buffers whose border entries must hold `fill` and whose
// pixel entries every image overwrites are filled once.
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

// 2D: one fused pass computes, for both phases, the steepest earlier neighbour and whether the pixel is a saddle
// candidate (two or more earlier ring components); only the candidates are sorted and merged.
template <typename K>
void run_2d(const GridPlan& g, const K* key, const Phases& ph, MergeTreeWorkspace& ws, std::vector<RawPair>* out,
            bool parallel_phases) {
  static const RingTables tables = make_ring_tables();
  const bool T = g.min_key;
  // The neighbourhoods and the ring of both phases, as the GPU pipeline gets them.
  const MTPlan m = make_mt_plan(g);
  const int64_t* ring = m.ring;
  // Forward (H0): V 4-connectivity, T 8; reverse (H1 by duality): the other.
  const bool four[2] = {!T, T};
  const uint8_t* comp[2] = {four[0] ? tables.comp4 : tables.comp8, four[1] ? tables.comp4 : tables.comp8};
  const bool run[2] = {ph.emit[0], ph.emit[1]};
  for (int k = 0; k < 2; ++k)
    if (run[k]) ensure(ws.phase[k].ptr, size_t(g.P), 0);  // border cells point at cell 0, the outside
  int32_t* ptr0 = run[0] ? ws.phase[0].ptr.data() : nullptr;
  int32_t* ptr1 = run[1] ? ws.phase[1].ptr.data() : nullptr;
  ensure(ws.merging, size_t(g.P), uint8_t(0));
  uint8_t* flag = ws.merging.data();
  for_each_pixel_par(g, parallel_phases, [&](int64_t, int64_t v) {
    int64_t p0, p1;
    const unsigned fwd = ring_step(key, v, ring, four[0], four[1], &p0, &p1);
    if (ptr0) ptr0[v] = int32_t(p0);
    if (ptr1) ptr1[v] = int32_t(p1);
    flag[v] = ring_flags(fwd, comp[0], comp[1], run[0], run[1]);
  });
  const bool both = run[0] && run[1];
  int64_t first;
  if (parallel_phases && both) {
    maybe_parallel(true, [&](int k) { resolve_roots(g, ws.phase[k].ptr.data()); });
    first = sort_flagged(g, key, flag, ws, [](int32_t) {});
  } else {
    first = sort_flagged(g, key, flag, ws, [&](int32_t v) {
      if (ptr0) resolve_root(ptr0, v);
      if (ptr1) resolve_root(ptr1, v);
    });
  }
  const PhaseSpec spec[2] = {{m.nb[0], m.nnb[0], false}, {m.nb[1], m.nnb[1], true}};
  maybe_parallel(parallel_phases && both, [&](int k) {
    if (run[k]) merge(key, spec[k], k, k, flag, ws.order, ws.phase[k], out[k]);
  });
  if (run[0]) out[0].push_back({0, first, -1});
}

template <typename K>
void run_phases(const GridPlan& g, const K* key, const Phases& ph, MergeTreeWorkspace& ws, std::vector<RawPair>* out,
                bool parallel_phases) {
  if (g.D == 1) {
    if (ph.emit[0]) run_1d(g, key, ws, out);
  } else {
    run_2d(g, key, ph, ws, out, parallel_phases);
  }
}

// Keys every pixel (K: Key32 with a 32-bit value key U for float32, Key64 / uint64 for float64), then runs the
// phases. Returns false on NaN.
template <typename K, typename U, typename F>
bool key_and_run(const GridPlan& g, const F* x, bool superlevel, const Phases& ph, MergeTreeWorkspace& ws,
                 std::vector<K>& keys, std::vector<RawPair>* out, bool parallel_phases) {
  ensure(keys, size_t(g.P), K::border());
  K* k = keys.data();
  std::atomic<bool> ok{true};
  for_each_pixel_par(g, parallel_phases, [&](int64_t i, int64_t p) {
    const F v = x[i];
    if (v != v) ok = false;
    k[p] = K::make(orderable_key<U>(v, superlevel), uint32_t(p));
  });
  if (!ok) return false;
  run_phases(g, k, ph, ws, out, parallel_phases);
  return true;
}

}  // namespace

template <typename F>
bool merge_tree_image(const GridPlan& g, const F* x, bool superlevel, const Phases& ph, MergeTreeWorkspace& ws,
                      std::vector<RawPair>* out, bool parallel_phases) {
  if constexpr (sizeof(F) == 4)
    return key_and_run<Key32, uint32_t>(g, x, superlevel, ph, ws, ws.key32, out, parallel_phases);
  else
    return key_and_run<Key64, uint64_t>(g, x, superlevel, ph, ws, ws.key64, out, parallel_phases);
}

template bool merge_tree_image<float>(const GridPlan&, const float*, bool, const Phases&, MergeTreeWorkspace&,
                                      std::vector<RawPair>*, bool);
template bool merge_tree_image<double>(const GridPlan&, const double*, bool, const Phases&, MergeTreeWorkspace&,
                                       std::vector<RawPair>*, bool);

}  // namespace gpuph
