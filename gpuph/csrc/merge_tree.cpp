#include "merge_tree.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <numeric>

#include "merge_tree.cuh"
#include "radix_sort.h"
#include "union_find.cuh"

namespace gpuph {
namespace {

// Padded pixel loops in memory order (the border stays as initialised).
template <typename Fn>
void for_each_padded_pixel(const GridPlan& g, Fn&& f) {
  const int D = g.D;
  const int64_t n1 = D >= 2 ? g.n[0] : 1, n2 = g.n[D - 1];
  const int64_t s1 = D >= 2 ? g.pstride[0] : 0;
  const int64_t base = (D >= 2 ? g.pstride[0] : 0) + 1;
  int64_t i = 0;
  for (int64_t b = 0; b < n1; ++b) {
    const int64_t row = base + b * s1;
    for (int64_t c = 0; c < n2; ++c) f(i++, row + c);
  }
}

// One merge tree. Forward (H0): pairs (birth = root, death = merge pixel). Reverse (top dimension by duality):
// pairs (birth = merge pixel, death = root); every border cell belongs to the component of padded cell 0, the
// oldest of all.
template <typename K>
void merge_tree(const GridPlan& g, const K* key, const int64_t* nb, int nnb, bool reverse, int dim, bool emit,
                MergeTreeScratch& s, std::vector<RawPair>& out) {
  const int64_t P = g.P;
  s.ptr.assign(size_t(P), 0);  // border cells point at cell 0 (only read in reverse mode)
  int32_t* ptr = s.ptr.data();
  int64_t first = -1;
  for_each_padded_pixel(g, [&](int64_t, int64_t v) {
    const int64_t p = steepest_earlier(key, v, nb, nnb, reverse);
    ptr[v] = int32_t(p);
    if (!reverse && p == v && (first < 0 || key[v] < key[first])) first = v;
  });
  // Basin roots, with path compression.
  for_each_padded_pixel(g, [&](int64_t, int64_t v) {
    int32_t r = int32_t(v);
    while (ptr[r] != r) r = ptr[r];
    int32_t c = int32_t(v);
    while (ptr[c] != r) {
      const int32_t nxt = ptr[c];
      ptr[c] = r;
      c = nxt;
    }
  });
  // Edges between different basins, keyed by their merge pixel (the later endpoint).
  s.cand_v.clear();
  s.cand_u.clear();
  s.cand_key.clear();
  for_each_padded_pixel(g, [&](int64_t, int64_t v) {
    const K kv = key[v];
    const int32_t rv = ptr[v];
    for (int j = 0; j < nnb; ++j) {
      const int64_t u = v + nb[j];
      if (earlier(key[u], kv, reverse) && ptr[u] != rv) {
        s.cand_v.push_back(int32_t(v));
        s.cand_u.push_back(int32_t(u));
      }
    }
  });
  const size_t nc = s.cand_v.size();
  s.cand_idx.resize(nc);
  std::iota(s.cand_idx.begin(), s.cand_idx.end(), 0);
  if constexpr (sizeof(K) == sizeof(uint64_t)) {
    s.cand_key.resize(nc);
    for (size_t c = 0; c < nc; ++c) {
      const uint64_t k = key[s.cand_v[c]].sort_bits();
      s.cand_key[c] = reverse ? ~k : k;
    }
    radix_sort_pairs(s.cand_key, s.cand_idx, s.tmp_key, s.tmp_idx);
  } else {
    std::sort(s.cand_idx.begin(), s.cand_idx.end(), [&](int32_t a, int32_t b) {
      return earlier(key[s.cand_v[a]], key[s.cand_v[b]], reverse);
    });
  }
  // Elder-rule union-find over the basin roots.
  s.uf.resize(size_t(P));
  int32_t* uf = s.uf.data();
  uf[0] = 0;
  for_each_padded_pixel(g, [&](int64_t, int64_t v) {
    if (ptr[v] == v) uf[v] = int32_t(v);
  });
  for (size_t c = 0; c < nc; ++c) {
    const int32_t idx = s.cand_idx[c];
    const int32_t v = s.cand_v[idx];
    const int32_t a = uf_find(uf, ptr[v]);
    const int32_t b = uf_find(uf, ptr[s.cand_u[idx]]);
    if (a == b) continue;
    const bool a_older = earlier(key[a], key[b], reverse);
    const int32_t young = a_older ? b : a;
    uf[young] = a_older ? a : b;
    if (emit && key[young].value_bits() != key[v].value_bits()) {
      if (reverse)
        out.push_back({dim, v, young});
      else
        out.push_back({dim, young, v});
    }
  }
  if (emit && !reverse) out.push_back({dim, first, -1});
}

template <typename K>
void run_phases(const GridPlan& g, const K* key, const Phases& ph, MergeTreeWorkspace& ws, std::vector<RawPair>* out,
                bool parallel_phases) {
  const bool T = g.min_key;
  // Forward H0 connectivity: V 2/4, T 2/8; the dual's is the other one.
  const int64_t* nb0 = T ? g.pix_nb : g.axis_nb;
  const int nnb0 = T ? g.npix_nb : g.naxis_nb;
  const int64_t* nb1 = T ? g.axis_nb : g.pix_nb;
  const int nnb1 = T ? g.naxis_nb : g.npix_nb;
  const bool top = g.D == 2 && ph.emit[1];
  auto phase = [&](int k) {
    if (k == 0 && ph.emit[0]) merge_tree(g, key, nb0, nnb0, false, 0, true, ws.phase[0], out[0]);
    if (k == 1 && top) merge_tree(g, key, nb1, nnb1, true, 1, true, ws.phase[1], out[1]);
  };
  if (parallel_phases && ph.emit[0] && top) {
    at::parallel_for(0, 2, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) phase(int(k));
    });
  } else {
    phase(0);
    phase(1);
  }
}

}  // namespace

template <typename F>
bool merge_tree_image(const GridPlan& g, const F* x, bool superlevel, const Phases& ph, MergeTreeWorkspace& ws,
                      std::vector<RawPair>* out, bool parallel_phases) {
  bool ok = true;
  if constexpr (sizeof(F) == 4) {
    ws.key32.assign(size_t(g.P), Key32::border());
    Key32* k = ws.key32.data();
    for_each_padded_pixel(g, [&](int64_t i, int64_t p) {
      const F v = x[i];
      ok = ok && !(v != v);
      k[p] = Key32::make(orderable_key<uint32_t>(v, superlevel), uint32_t(p));
    });
    if (!ok) return false;
    run_phases(g, k, ph, ws, out, parallel_phases);
  } else {
    ws.key64.assign(size_t(g.P), Key64::border());
    Key64* k = ws.key64.data();
    for_each_padded_pixel(g, [&](int64_t i, int64_t p) {
      const F v = x[i];
      ok = ok && !(v != v);
      k[p] = Key64::make(orderable_key<uint64_t>(v, superlevel), uint32_t(p));
    });
    if (!ok) return false;
    run_phases(g, k, ph, ws, out, parallel_phases);
  }
  return true;
}

template bool merge_tree_image<float>(const GridPlan&, const float*, bool, const Phases&, MergeTreeWorkspace&,
                                      std::vector<RawPair>*, bool);
template bool merge_tree_image<double>(const GridPlan&, const double*, bool, const Phases&, MergeTreeWorkspace&,
                                       std::vector<RawPair>*, bool);

}  // namespace gpuph
