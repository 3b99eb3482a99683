#include "cubical_engine.h"

#include <algorithm>
#include <cmath>

#include "radix_sort.h"
#include "union_find.cuh"

namespace gpuph {

namespace {

// Writes the padded rank array, order and value classes from keys sorted together with padded indices.
template <typename U>
void finish_ranking(const GridPlan& g, const std::vector<U>& sorted_keys, Workspace& ws) {
  const int64_t N = g.N;
  ws.rank.assign(size_t(g.P), kBorderRank);
  ws.vclass.resize(size_t(N));
  int32_t cls = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (r > 0 && sorted_keys[r] != sorted_keys[r - 1]) ++cls;
    ws.vclass[r] = cls;
    ws.rank[ws.order[r]] = int32_t(r);
  }
}

// Calls f(unpadded flat index, padded flat index) for every pixel in C order.
template <typename Fn>
void for_each_pixel(const GridPlan& g, Fn&& f) {
  const int D = g.D;
  const int64_t n0 = D == 3 ? g.n[0] : 1, n1 = D >= 2 ? g.n[D - 2] : 1, n2 = g.n[D - 1];
  const int64_t s0 = D == 3 ? g.pstride[0] : 0, s1 = D >= 2 ? g.pstride[D - 2] : 0;
  const int64_t base = (D == 3 ? g.pstride[0] : 0) + (D >= 2 ? g.pstride[D - 2] : 0) + 1;
  int64_t i = 0;
  for (int64_t a = 0; a < n0; ++a)
    for (int64_t b = 0; b < n1; ++b) {
      const int64_t row = base + a * s0 + b * s1;
      for (int64_t c = 0; c < n2; ++c) f(i++, row + c);
    }
}

// Edge ids / 2-cell ids: anchor * ntypes + type.
inline int64_t cell_id(const DimPlan& p, int64_t anchor, int ty) { return anchor * p.ntypes + ty; }

// -------------------------------------------------------------------------------------------------------------
// H0: vertices (V, freudenthal) in rank order, merging with the earlier endpoints of the edges of their lower star,
// visited in star-code order so that the negative edges are exactly those of the total order (for compression).
void h0_lower_star(const GridPlan& g, const Phases& ph, Workspace& ws, bool mark_negative, std::vector<RawPair>& out) {
  const DimPlan& e1 = g.dim[1];
  const int32_t* rank = ws.rank.data();
  const int32_t* order = ws.order.data();
  const int32_t* vcls = ws.vclass.data();
  ws.parent0.resize(size_t(g.P));
  int32_t* parent = ws.parent0.data();
  uint8_t* neg = nullptr;
  if (mark_negative) {
    ws.negative_edge.assign(size_t(g.P) * e1.ntypes, 0);
    neg = ws.negative_edge.data();
  }
  // For an edge the single other key vertex is at star_anchor + key[ty][1 - key_index].
  int64_t other[kMaxStar];
  for (int e = 0; e < e1.nstar; ++e)
    other[e] = e1.star_anchor[e] + e1.key[e1.star_type[e]][1 - e1.star_key_index[e]];
  for (int64_t r = 0; r < g.N; ++r) {
    const int32_t v = order[r];
    parent[v] = v;
    bool attached = false;
    for (int e = 0; e < e1.nstar; ++e) {
      const int32_t u = int32_t(v + other[e]);
      if (rank[u] >= r) continue;
      const int32_t ru = uf_find(parent, u);
      const int32_t rv = attached ? uf_find(parent, v) : v;
      if (ru == rv) continue;
      // Elder rule: the root of smaller rank is older; the younger one dies here.
      const int32_t young = rank[ru] < rank[rv] ? rv : ru;
      const int32_t old = young == ru ? rv : ru;
      parent[young] = old;
      if (neg) neg[cell_id(e1, v + e1.star_anchor[e], e1.star_type[e])] = 1;
      if (attached && ph.emit[0] && vcls[rank[young]] != vcls[r]) out.push_back({0, young, v});
      attached = true;
    }
  }
  if (ph.emit[0]) out.push_back({0, order[0], -1});
}

// H0 of T: pixels in rank order, merging with earlier pixels of their 8 / 26 neighbourhood.
void h0_pixels(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out) {
  const int32_t* rank = ws.rank.data();
  const int32_t* order = ws.order.data();
  const int32_t* vcls = ws.vclass.data();
  ws.parent0.resize(size_t(g.P));
  int32_t* parent = ws.parent0.data();
  for (int64_t r = 0; r < g.N; ++r) {
    const int32_t v = order[r];
    parent[v] = v;
    bool attached = false;
    for (int k = 0; k < g.npix_nb; ++k) {
      const int32_t u = int32_t(v + g.pix_nb[k]);
      if (rank[u] >= r) continue;
      const int32_t ru = uf_find(parent, u);
      const int32_t rv = attached ? uf_find(parent, v) : v;
      if (ru == rv) continue;
      const int32_t young = rank[ru] < rank[rv] ? rv : ru;
      const int32_t old = young == ru ? rv : ru;
      parent[young] = old;
      if (attached && ph.emit[0] && vcls[rank[young]] != vcls[r]) out.push_back({0, young, v});
      attached = true;
    }
  }
  if (ph.emit[0]) out.push_back({0, order[0], -1});
}

// -------------------------------------------------------------------------------------------------------------
// H_{D-1} by duality: (D-1)-cells in reverse total order join the top cells on their two sides (or the outside).
// A component is born, in reverse, with its latest top cell; when two meet, the one born last in reverse (the
// smaller forward key) dies: the (D-1)-cell is the birth of a class that this top cell kills.
void top_by_duality(const GridPlan& g, const Phases& ph, Workspace& ws, bool mark_positive, std::vector<RawPair>& out) {
  const int D = g.D;
  const DimPlan& f = g.dim[D - 1];
  const DimPlan& top = g.dim[D];
  const int32_t* rank = ws.rank.data();
  const int32_t* order = ws.order.data();
  const int32_t* vcls = ws.vclass.data();
  const bool pixel_tops = g.min_key;  // T: the top cells are the pixels themselves, keyed by their rank
  const int64_t ntop = g.P * top.ntypes;
  const int64_t outside = ntop;
  // Key rank of each top cell; kBorderRank for cells that leave the grid (they are all "the outside").
  const int32_t* tkey = rank;
  if (!pixel_tops) {
    ws.top_key.resize(size_t(ntop));
    int32_t* k = ws.top_key.data();
    for (int64_t a = 0; a < g.P; ++a) {
      // Anchors whose cells would read past the padded array sit on the high border: outside anyway.
      const bool inside = a + top.key[0][top.nkey[0] - 1] < g.P;
      for (int ty = 0; ty < top.ntypes; ++ty) {
        int32_t best = 0;
        if (!inside) {
          best = kBorderRank;
        } else {
          for (int j = 0; j < top.nkey[ty]; ++j) best = std::max(best, rank[a + top.key[ty][j]]);
        }
        k[a * top.ntypes + ty] = best;
      }
    }
    tkey = k;
  }
  ws.parent_top.resize(size_t(ntop + 1));
  int64_t* parent = ws.parent_top.data();
  for (int64_t i = 0; i <= ntop; ++i) parent[i] = i;
  uint8_t* pos = nullptr;
  if (mark_positive) {
    ws.positive_face.assign(size_t(g.P) * f.ntypes, 0);
    pos = ws.positive_face.data();
  }
  // Older in reverse = larger forward key (key rank, then id); the outside is the oldest of all.
  auto older = [&](int64_t a, int64_t b) {
    if (a == outside) return true;
    if (b == outside) return false;
    if (tkey[a] != tkey[b]) return tkey[a] > tkey[b];
    return a > b;
  };
  for (int64_t r = g.N - 1; r >= 0; --r) {
    const int32_t v = order[r];
    for (int e = f.nstar - 1; e >= 0; --e) {
      if (!in_star(g, f, rank, v, int32_t(r), e)) continue;
      const int ty = f.star_type[e];
      const int64_t anchor = v + f.star_anchor[e];
      int64_t side[2];
      for (int s = 0; s < 2; ++s) {
        const int64_t a = anchor + f.cof_shift[ty][s];
        const int64_t id = pixel_tops ? a : a * top.ntypes + f.cof_type[ty][s];
        side[s] = tkey[id] == kBorderRank ? outside : id;
      }
      const int64_t r0 = uf_find(parent, side[0]), r1 = uf_find(parent, side[1]);
      if (r0 == r1) continue;
      const int64_t young = older(r0, r1) ? r1 : r0;
      parent[young] = young == r0 ? r1 : r0;
      if (pos) pos[cell_id(f, anchor, ty)] = 1;
      const int32_t death_rank = tkey[young];
      if (ph.emit[D - 1] && vcls[r] != vcls[death_rank]) out.push_back({D - 1, v, order[death_rank]});
    }
  }
}

// -------------------------------------------------------------------------------------------------------------
// H1 of 3D: reduce the boundary columns of the negative 2-cells over the positive edges, in total order.
void middle_by_reduction(const GridPlan& g, const Phases& ph, Workspace& ws, bool compressed,
                         std::vector<RawPair>& out) {
  const DimPlan& e1 = g.dim[1];
  const DimPlan& e2 = g.dim[2];
  const int32_t* rank = ws.rank.data();
  const int32_t* order = ws.order.data();
  const int32_t* vcls = ws.vclass.data();
  const uint8_t* pos = ws.positive_face.data();
  const uint8_t* neg = compressed ? ws.negative_edge.data() : nullptr;
  ws.pivot.assign(size_t(g.P) * e1.ntypes, -1);
  int32_t* pivot = ws.pivot.data();
  ws.pool.clear();
  ws.col_start.clear();
  std::vector<int64_t>& work = ws.work;
  std::vector<int64_t>& merged = ws.merged;
  auto edge_id_of_key = [&](int64_t key) {
    const int32_t v = order[key >> 6];
    const int code = int(key & 63);
    return cell_id(e1, v + e1.star_anchor[code], e1.star_type[code]);
  };
  for (int64_t r = 0; r < g.N; ++r) {
    const int32_t v = order[r];
    for (int e = 0; e < e2.nstar; ++e) {
      if (!in_star(g, e2, rank, v, int32_t(r), e)) continue;
      const int ty = e2.star_type[e];
      const int64_t anchor = v + e2.star_anchor[e];
      if (pos[cell_id(e2, anchor, ty)]) continue;  // clearing: a positive 2-cell's column reduces to zero
      work.clear();
      for (int b = 0; b < e2.nbnd[ty]; ++b) {
        const int64_t ea = anchor + e2.bnd_shift[ty][b];
        const int et = e2.bnd_type[ty][b];
        if (neg && neg[cell_id(e1, ea, et)]) continue;  // compression
        int j = 0;
        const int32_t kr = cell_key_rank(g, e1, rank, ea, et, &j);
        work.push_back(pack_cell_key(kr, e1.star_code[et][j]));
      }
      std::sort(work.begin(), work.end());
      while (!work.empty()) {
        const int64_t low = work.back();
        const int64_t eid = edge_id_of_key(low);
        const int32_t j = pivot[eid];
        if (j < 0) {
          pivot[eid] = int32_t(ws.col_start.size());
          ws.col_start.push_back(int64_t(ws.pool.size()));
          ws.pool.insert(ws.pool.end(), work.begin(), work.end());
          ws.col_start.push_back(int64_t(ws.pool.size()));  // end marker, paired with the start
          const int32_t br = int32_t(low >> 6);
          if (ph.emit[1] && vcls[br] != vcls[r]) out.push_back({1, order[br], v});
          break;
        }
        // work ^= stored column j (both sorted ascending)
        const int64_t* a = ws.pool.data() + ws.col_start[j];
        const int64_t* a_end = ws.pool.data() + ws.col_start[j + 1];
        merged.clear();
        size_t i = 0;
        while (i < work.size() || a != a_end) {
          if (a == a_end || (i < work.size() && work[i] < *a)) {
            merged.push_back(work[i++]);
          } else if (i == work.size() || *a < work[i]) {
            merged.push_back(*a++);
          } else {
            ++i;
            ++a;
          }
        }
        work.swap(merged);
      }
    }
  }
}

}  // namespace

template <typename F>
bool rank_image(const GridPlan& g, const F* x, bool superlevel, Workspace& ws) {
  using U = typename std::conditional<sizeof(F) == 4, uint32_t, uint64_t>::type;
  std::vector<U>& keys = [&]() -> std::vector<U>& {
    if constexpr (sizeof(F) == 4) return ws.keys32; else return ws.keys64;
  }();
  std::vector<U>& tmp = [&]() -> std::vector<U>& {
    if constexpr (sizeof(F) == 4) return ws.tmp32; else return ws.tmp64;
  }();
  keys.resize(size_t(g.N));
  ws.order.resize(size_t(g.N));
  bool ok = true;
  for_each_pixel(g, [&](int64_t i, int64_t p) {
    const F v = x[i];
    ok = ok && !(v != v);
    keys[i] = orderable_key<U>(v, superlevel);
    ws.order[i] = int32_t(p);
  });
  if (!ok) return false;
  radix_sort_pairs(keys, ws.order, tmp, ws.tmp_items);
  finish_ranking(g, keys, ws);
  return true;
}

template bool rank_image<float>(const GridPlan&, const float*, bool, Workspace&);
template bool rank_image<double>(const GridPlan&, const double*, bool, Workspace&);

// Compression needs the negative edges in the exact total order, which the lower-star H0 gives (V, freudenthal);
// T's H0 runs on pixels, so T reduces uncompressed.
static bool compresses(const GridPlan& g, const Phases& ph) { return ph.middle && !g.min_key; }

bool needs_h0(const GridPlan& g, const Phases& ph) { return ph.h0 || compresses(g, ph); }
bool needs_top(const GridPlan& g, const Phases& ph) { return g.D >= 2 && (ph.top || ph.middle); }

void run_h0(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out) {
  if (g.min_key)
    h0_pixels(g, ph, ws, out);
  else
    h0_lower_star(g, ph, ws, compresses(g, ph), out);
}

void run_top(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out) {
  top_by_duality(g, ph, ws, ph.middle, out);
}

void run_middle(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out) {
  middle_by_reduction(g, ph, ws, compresses(g, ph), out);
}

void persistence_of_ranked_image(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out) {
  if (needs_h0(g, ph)) run_h0(g, ph, ws, out);
  if (needs_top(g, ph)) run_top(g, ph, ws, out);
  if (ph.middle) run_middle(g, ph, ws, out);
}

}  // namespace gpuph
