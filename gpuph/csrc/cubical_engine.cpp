#include "cubical_engine.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "grid_loops.h"
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

// Edge ids / 2-cell ids: anchor * ntypes + type.
inline int64_t cell_id(const DimPlan& p, int64_t anchor, int ty) { return anchor * p.ntypes + ty; }

// -------------------------------------------------------------------------------------------------------------
// H0: vertices (V, freudenthal) in rank order, merging with the earlier endpoints of the edges of their lower star,
// visited in star-code order so that the negative edges are exactly those of the total order (for compression).
void h0_lower_star(const GridPlan& g, const Phases& ph, Workspace& ws, bool mark_negative, std::vector<RawPair>& out) {
  const FlatStar st = flatten_star(g, 1);
  const int nt1 = g.dim[1].ntypes;
  const int32_t* rank = ws.rank.data();
  const int32_t* order = ws.order.data();
  const int32_t* vcls = ws.vclass.data();
  ws.parent0.resize(size_t(g.P));
  int32_t* parent = ws.parent0.data();
  uint8_t* neg = nullptr;
  if (mark_negative) {
    ws.negative_edge.assign(size_t(g.P) * nt1, 0);
    neg = ws.negative_edge.data();
  }
  const bool emit = ph.emit[0];
  const int n = st.n;
  int64_t other[kMaxStar], edge_id[kMaxStar];
  for (int e = 0; e < n; ++e) {
    other[e] = st.other[e][0];
    edge_id[e] = st.anchor[e] * nt1 + st.type[e];
  }
  const int64_t N = g.N;
  for (int64_t r = 0; r < N; ++r) {
    const int32_t v = order[r];
    parent[v] = v;
    bool attached = false;
    for (int e = 0; e < n; ++e) {
      const int32_t u = int32_t(v + other[e]);
      if (rank[u] >= r) continue;
      const int32_t ru = uf_find(parent, u);
      const int32_t rv = attached ? uf_find(parent, v) : v;
      if (ru == rv) continue;
      // Elder rule: the root of smaller rank is older; the younger one dies here.
      const int32_t young = rank[ru] < rank[rv] ? rv : ru;
      parent[young] = young == ru ? rv : ru;
      if (neg) neg[int64_t(v) * nt1 + edge_id[e]] = 1;
      if (attached && emit && vcls[rank[young]] != vcls[r]) out.push_back({0, young, v});
      attached = true;
    }
  }
  if (emit) out.push_back({0, order[0], -1});
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
  const FlatStar st = flatten_star(g, D - 1);
  const int nface = g.dim[D - 1].ntypes;
  const DimPlan& top = g.dim[D];
  const int32_t* rank = ws.rank.data();
  const int32_t* order = ws.order.data();
  const int32_t* vcls = ws.vclass.data();
  const bool T = g.min_key;  // T: the top cells are the pixels themselves, keyed by their rank
  const int ntop = T ? 1 : top.ntypes;
  const int64_t ntop_ids = g.P * ntop;
  const int64_t outside = ntop_ids;
  // Key rank of each top cell; kBorderRank for cells that leave the grid (they are all "the outside").
  const int32_t* tkey = rank;
  if (!T) {
    ws.top_key.resize(size_t(ntop_ids));
    int32_t* k = ws.top_key.data();
    int nkey[kMaxTypes];
    int64_t key[kMaxTypes][kMaxKeyVerts];
    int64_t reach = 0;
    for (int ty = 0; ty < ntop; ++ty) {
      nkey[ty] = top.nkey[ty];
      for (int j = 0; j < nkey[ty]; ++j) {
        key[ty][j] = top.key[ty][j];
        reach = std::max(reach, key[ty][j]);
      }
    }
    // Anchors whose cells would read past the padded array sit on the high border: outside anyway.
    const int64_t last = g.P - reach;
    for (int64_t a = 0; a < g.P; ++a) {
      for (int ty = 0; ty < ntop; ++ty) {
        int32_t best = kBorderRank;
        if (a < last) {
          best = rank[a + key[ty][0]];
          for (int j = 1; j < nkey[ty]; ++j) best = std::max(best, rank[a + key[ty][j]]);
        }
        k[a * ntop + ty] = best;
      }
    }
    tkey = k;
  }
  ws.parent_top.resize(size_t(ntop_ids + 1));
  int64_t* parent = ws.parent_top.data();
  for (int64_t i = 0; i <= ntop_ids; ++i) parent[i] = i;
  uint8_t* pos = nullptr;
  if (mark_positive) {
    ws.positive_face.assign(size_t(g.P) * nface, 0);
    pos = ws.positive_face.data();
  }
  int64_t face_id[kMaxStar];
  for (int e = 0; e < st.n; ++e) face_id[e] = st.anchor[e] * nface + st.type[e];
  const bool emit = ph.emit[D - 1];
  for (int64_t r = g.N - 1; r >= 0; --r) {
    const int32_t v = order[r];
    const int64_t vbase = int64_t(v) * ntop;
    for (int e = st.n - 1; e >= 0; --e) {
      if (!in_flat_star(st, T, rank, v, int32_t(r), e)) continue;
      int64_t side0 = vbase + st.cof_id[e][0], side1 = vbase + st.cof_id[e][1];
      if (tkey[side0] == kBorderRank) side0 = outside;
      if (tkey[side1] == kBorderRank) side1 = outside;
      const int64_t r0 = uf_find(parent, side0), r1 = uf_find(parent, side1);
      if (r0 == r1) continue;
      // Older in reverse = larger forward key (key rank, then id); the outside is the oldest of all.
      bool r0_older;
      if (r0 == outside || r1 == outside)
        r0_older = r0 == outside;
      else
        r0_older = tkey[r0] != tkey[r1] ? tkey[r0] > tkey[r1] : r0 > r1;
      const int64_t young = r0_older ? r1 : r0;
      parent[young] = r0_older ? r0 : r1;
      if (pos) pos[int64_t(v) * nface + face_id[e]] = 1;
      const int32_t death_rank = tkey[young];
      if (emit && vcls[r] != vcls[death_rank]) out.push_back({D - 1, v, order[death_rank]});
    }
  }
}

// -------------------------------------------------------------------------------------------------------------
// H1 of 3D: reduce the boundary columns of the negative 2-cells over the positive edges, in total order.
// Calls f(padded anchor) for every anchor of a 3D grid whose padded coordinates lie in [lo, n + hi_extra) on every
// axis, restricted to axis-0 planes [i0, i1), in memory order.
template <typename Fn>
void for_each_anchor_3d(const GridPlan& g, int64_t lo, int64_t hi_extra, int64_t i0, int64_t i1, Fn&& f) {
  const int64_t h1 = g.n[1] + hi_extra, h2 = g.n[2] + hi_extra;
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t j = lo; j < h1; ++j) {
      const int64_t row = i * g.pstride[0] + j * g.pstride[1];
      for (int64_t k = lo; k < h2; ++k) f(row + k);
    }
}

// Per 2-cell type: key vertices, star codes, and boundary edges (id delta, key vertex deltas, star codes).
struct SquareType {
  int nt1;  // edge types per anchor (edge id = anchor * nt1 + type)
  int nkey;
  int64_t key[kMaxKeyVerts];
  int code[kMaxKeyVerts];
  int nbnd;
  int64_t bnd_id[kMaxBoundary];
  int bnd_nkey[kMaxBoundary];
  int64_t bnd_key[kMaxBoundary][kMaxKeyVerts];
  int bnd_code[kMaxBoundary][kMaxKeyVerts];
};

// Key rank and key-vertex index of the cell whose key vertices are anchor + key[0..NK); min for T, max otherwise.
template <int NK, bool MinKey>
inline int32_t key_rank(const int32_t* rank, int64_t anchor, const int64_t* key, int* arg) {
  int32_t best = rank[anchor + key[0]];
  int bj = 0;
  for (int j = 1; j < NK; ++j) {
    const int32_t r = rank[anchor + key[j]];
    if (MinKey ? r < best : r > best) {
      best = r;
      bj = j;
    }
  }
  *arg = bj;
  return best;
}

// Every edge's packed key (key rank, star code), computed once: an edge bounds up to four 2-cells. -1 for
// compressed (negative) edges and for anchors whose edge would leave the padded array (no 2-cell reaches them).
template <int NK1, bool MinKey>
void edge_keys(const GridPlan& g, const int32_t* rank, const uint8_t* neg, bool parallel, int64_t* ekey) {
  const DimPlan& d1 = g.dim[1];
  const int nt1 = d1.ntypes;
  int64_t lo = 0, hi = 0;  // the key vertices' offset range over all edge types
  for (int ty = 0; ty < nt1; ++ty)
    for (int j = 0; j < NK1; ++j) {
      lo = std::min(lo, d1.key[ty][j]);
      hi = std::max(hi, d1.key[ty][j]);
    }
  at::parallel_for(0, g.P, parallel ? 4096 : g.P, [&](int64_t a0, int64_t a1) {
    for (int64_t a = a0; a < a1; ++a)
      for (int ty = 0; ty < nt1; ++ty) {
        const int64_t eid = a * nt1 + ty;
        if (a + lo < 0 || a + hi >= g.P || (neg && neg[eid])) {
          ekey[eid] = -1;
          continue;
        }
        int ej;
        const int32_t er = key_rank<NK1, MinKey>(rank, a, d1.key[ty], &ej);
        ekey[eid] = pack_cell_key(er, d1.star_code[ty][ej]);
      }
  });
}

// Pass 1 of the H1 reduction over axis-0 planes [i0, i1): every column's key and pivot edge, and every row's oldest
// column (scatter-min). The counts are template parameters so that the loops unroll: (NK2, NB) = key vertices of a
// 2-cell and its boundary edges: V (4, 4), T (2, 4), freudenthal (3, 3).
template <int NK2, int NB, bool MinKey>
void column_pass(const GridPlan& g, const SquareType* sq, int nt2, const int32_t* rank, const uint8_t* pos,
                 const int64_t* ekey, int64_t i0, int64_t i1, int64_t* col_key, int64_t* col_pivot,
                 int64_t* col_pivot_key, int64_t* row_oldest) {
  // V / freudenthal anchors are vertices (padded coords 1..n); T anchors are upper incident pixels (1..n+1).
  for_each_anchor_3d(g, 1, MinKey ? 2 : 1, i0, i1, [&](int64_t anchor) {
    for (int ty = 0; ty < nt2; ++ty) {
      const int64_t sid = anchor * nt2 + ty;
      const SquareType& q = sq[ty];
      int bj;
      const int32_t best = key_rank<NK2, MinKey>(rank, anchor, q.key, &bj);
      if (best == kBorderRank || pos[sid]) continue;  // not a cell of the grid, or cleared
      const int64_t key = pack_cell_key(best, q.code[bj]);
      int64_t piv = -1, piv_id = -1;
      for (int b = 0; b < NB; ++b) {
        const int64_t eid = anchor * q.nt1 + q.bnd_id[b];
        const int64_t ek = ekey[eid];
        if (ek < 0) continue;  // compressed
        if (ek > piv) {
          piv = ek;
          piv_id = eid;
        }
        if (key < row_oldest[eid]) row_oldest[eid] = key;
      }
      if (piv_id < 0) continue;  // empty compressed boundary: a positive cell (clearing would have caught it)
      col_key[sid] = key;
      col_pivot[sid] = piv_id;
      col_pivot_key[sid] = piv;
    }
  });
}

// H1 of 3D. The columns are the negative 2-cells (clearing), the rows the positive edges (compression), both in the
// total order. First, in memory order and without any sequential dependency (one thread per cell on a GPU):
// every column's pivot (its youngest row) and every row's oldest column; a column that is the oldest column of its
// own pivot is an apparent pair and needs no reduction. Only the remaining columns are reduced, in order; when one
// of them needs an apparent column, its boundary is regenerated from the grid instead of being stored.
void middle_by_reduction(const GridPlan& g, const Phases& ph, Workspace& ws, bool compressed, bool parallel,
                         std::vector<RawPair>& out) {
  const FlatStar st = flatten_star(g, 2);
  const FlatStar edges = flatten_star(g, 1);
  const DimPlan& d1 = g.dim[1];
  const DimPlan& d2 = g.dim[2];
  const int nt1 = d1.ntypes;
  const int nt2 = d2.ntypes;
  const bool T = g.min_key;
  const int32_t* rank = ws.rank.data();
  const int32_t* order = ws.order.data();
  const int32_t* vcls = ws.vclass.data();
  const uint8_t* pos = ws.positive_face.data();
  const uint8_t* neg = compressed ? ws.negative_edge.data() : nullptr;
  const bool emit = ph.emit[1];
  constexpr int64_t kNone = INT64_MAX;

  SquareType sq[kMaxTypes];
  for (int ty = 0; ty < nt2; ++ty) {
    SquareType& q = sq[ty];
    q.nt1 = nt1;
    q.nkey = d2.nkey[ty];
    for (int j = 0; j < q.nkey; ++j) {
      q.key[j] = d2.key[ty][j];
      q.code[j] = d2.star_code[ty][j];
    }
    q.nbnd = d2.nbnd[ty];
    for (int b = 0; b < q.nbnd; ++b) {
      const int et = d2.bnd_type[ty][b];
      const int64_t ea = d2.bnd_shift[ty][b];
      q.bnd_id[b] = ea * nt1 + et;
      q.bnd_nkey[b] = d1.nkey[et];
      for (int j = 0; j < d1.nkey[et]; ++j) {
        q.bnd_key[b][j] = ea + d1.key[et][j];
        q.bnd_code[b][j] = d1.star_code[et][j];
      }
    }
  }
  // Sorted compressed boundary of 2-cell (anchor, ty) into col.
  ws.edge_key.resize(size_t(g.P) * nt1);
  int64_t* ekey = ws.edge_key.data();
  if (T)
    edge_keys<4, true>(g, rank, neg, parallel, ekey);  // an edge of T has 4 incident pixels
  else
    edge_keys<2, false>(g, rank, neg, parallel, ekey);  // V, freudenthal: 2 vertices
  auto boundary = [&](int64_t anchor, int ty, std::vector<int64_t>& col) {
    const SquareType& q = sq[ty];
    col.clear();
    for (int b = 0; b < q.nbnd; ++b) {
      const int64_t ek = ekey[anchor * nt1 + q.bnd_id[b]];
      if (ek >= 0) col.push_back(ek);
    }
    std::sort(col.begin(), col.end());
  };


  // Pass 1: column keys and pivots; every row's oldest column (scatter-min).
  const int64_t ncell2 = g.P * nt2;
  ws.col_key.assign(size_t(ncell2), kNone);
  ws.col_pivot.resize(size_t(ncell2));
  ws.col_pivot_key.resize(size_t(ncell2));
  ws.row_oldest.assign(size_t(g.P) * nt1, kNone);
  int64_t* col_key = ws.col_key.data();
  int64_t* col_pivot = ws.col_pivot.data();
  int64_t* col_pivot_key = ws.col_pivot_key.data();
  int64_t* row_oldest = ws.row_oldest.data();
  // Squares of plane i touch edges of planes i and i + 1 only: slabs separated by one plane run in parallel, the
  // separating planes afterwards.
  const int64_t planes = g.n[0] + (T ? 2 : 1);
  auto pass = [&](int64_t i0, int64_t i1) {
    if (i0 < 1) i0 = 1;
    if (i1 > planes) i1 = planes;
    if (i0 >= i1) return;
    if (g.construction == kConstructionV)
      column_pass<4, 4, false>(g, sq, nt2, rank, pos, ekey, i0, i1, col_key, col_pivot, col_pivot_key, row_oldest);
    else if (g.construction == kConstructionT)
      column_pass<2, 4, true>(g, sq, nt2, rank, pos, ekey, i0, i1, col_key, col_pivot, col_pivot_key, row_oldest);
    else
      column_pass<3, 3, false>(g, sq, nt2, rank, pos, ekey, i0, i1, col_key, col_pivot, col_pivot_key, row_oldest);
  };
  const int nslabs = parallel ? std::min<int>(at::get_num_threads(), int(planes / 8)) : 1;
  if (nslabs <= 1) {
    pass(1, planes);
  } else {
    const int64_t width = (planes - 1 + nslabs - 1) / nslabs;
    at::parallel_for(0, nslabs, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) pass(1 + k * width, 1 + (k + 1) * width - 1);
    });
    for (int64_t k = 0; k < nslabs; ++k) pass(1 + (k + 1) * width - 1, 1 + (k + 1) * width);
  }

  // Pass 2: apparent pairs go straight into the pivot table (encoded as -(column key) - 1: regenerate on demand).
  // The pivot table is indexed by the row's position in the total order (rank * edge star size + star code), not
  // by its edge id: the reduction visits columns in order and their lows are recent rows, so the look-ups stay
  // near each other in memory instead of jumping over the whole grid.
  const int nstar1 = edges.n;
  auto row_slot = [nstar1](int64_t key) { return (key >> 6) * nstar1 + (key & 63); };
  ws.pivot64.assign(size_t(g.N) * nstar1, kNone);
  int64_t* pivot = ws.pivot64.data();
  std::vector<int64_t>& rest = ws.rest;
  rest.clear();
  for (int64_t sid = 0; sid < ncell2; ++sid) {
    const int64_t key = col_key[sid];
    if (key == kNone) continue;
    const int64_t eid = col_pivot[sid];
    if (row_oldest[eid] == key) {
      pivot[row_slot(col_pivot_key[sid])] = -key - 1;
      const int32_t br = int32_t(col_pivot_key[sid] >> 6), dr = int32_t(key >> 6);
      // Most apparent pairs lie in one lower star (same key vertex): zero length without a look-up.
      if (emit && br != dr && vcls[br] != vcls[dr]) out.push_back({1, order[br], order[dr]});
    } else {
      rest.push_back(key);
    }
  }
  std::sort(rest.begin(), rest.end());

  // Pass 3: the standard reduction of the remaining columns, in total order.
  ws.pool.clear();
  ws.col_start.clear();
  std::vector<int64_t>& work = ws.work;
  std::vector<int64_t>& merged = ws.merged;
  std::vector<int64_t>& regen = ws.regen;
  for (const int64_t key : rest) {
    const int32_t r = int32_t(key >> 6);
    const int code = int(key & 63);
    const int32_t v = order[r];
    boundary(v + st.anchor[code], st.type[code], work);
    while (!work.empty()) {
      const int64_t low = work.back();
      int64_t& slot = pivot[row_slot(low)];
      const int64_t j = slot;
      if (j == kNone) {
        slot = int64_t(ws.col_start.size());
        ws.col_start.push_back(int64_t(ws.pool.size()));
        ws.pool.insert(ws.pool.end(), work.begin(), work.end());
        ws.col_start.push_back(int64_t(ws.pool.size()));  // end marker, paired with the start
        const int32_t br = int32_t(low >> 6);
        if (emit && vcls[br] != vcls[r]) out.push_back({1, order[br], v});
        break;
      }
      const int64_t* a;
      const int64_t* a_end;
      if (j < 0) {  // an apparent column: its boundary, regenerated
        const int64_t k2 = -j - 1;
        const int c2 = int(k2 & 63);
        boundary(order[k2 >> 6] + st.anchor[c2], st.type[c2], regen);
        a = regen.data();
        a_end = a + regen.size();
      } else {
        a = ws.pool.data() + ws.col_start[j];
        a_end = ws.pool.data() + ws.col_start[j + 1];
      }
      // work ^= that column (both sorted ascending)
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

void run_middle(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out, bool parallel) {
  middle_by_reduction(g, ph, ws, compresses(g, ph), parallel, out);
}

void persistence_of_ranked_image(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out) {
  if (needs_h0(g, ph)) run_h0(g, ph, ws, out);
  if (needs_top(g, ph)) run_top(g, ph, ws, out);
  if (ph.middle) run_middle(g, ph, ws, out);
}

}  // namespace gpuph
