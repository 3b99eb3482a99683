#include "cubical_engine.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>

#include "grid_loops.h"
#include "radix_sort.h"
#include "union_find.cuh"

namespace gpuph {

namespace {

std::atomic<bool> force_wide{false};

// Writes the padded rank array, order and value classes from keys sorted together with padded indices.
template <typename U>
// Parts of the order run on torch's threads when parallel: each counts its new values first, for its first class.
void finish_ranking(const GridPlan& g, const std::vector<U>& sorted_keys, Workspace& ws, bool parallel) {
  const int64_t N = g.N;
  ws.rank.assign(size_t(g.P) + 1, kBorderRank);  // the last entry: T's outside (top_by_duality)
  ws.vclass.resize(size_t(N));
  const int parts = parallel && N >= (1 << 16) ? at::get_num_threads() : 1;
  const int64_t chunk = (N + parts - 1) / parts;
  std::vector<int32_t> first_class(size_t(parts) + 1, 0);
  auto new_value = [&](int64_t r) { return r > 0 && sorted_keys[size_t(r)] != sorted_keys[size_t(r - 1)]; };
  if (parts > 1) {
    at::parallel_for(0, parts, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        int32_t c = 0;
        for (int64_t r = t * chunk; r < std::min(N, (t + 1) * chunk); ++r) c += new_value(r);
        first_class[size_t(t) + 1] = c;
      }
    });
    for (int t = 0; t < parts; ++t) first_class[size_t(t) + 1] += first_class[size_t(t)];
  }
  at::parallel_for(0, parts, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      int32_t cls = first_class[size_t(t)];
      for (int64_t r = t * chunk; r < std::min(N, (t + 1) * chunk); ++r) {
        cls += new_value(r);
        ws.vclass[size_t(r)] = cls;
        ws.rank[size_t(ws.order[size_t(r)])] = int32_t(r);
      }
    }
  });
}

// -------------------------------------------------------------------------------------------------------------
// Star tests by bit operations. One streaming pass in memory order gives every vertex a word of bits (Workspace::
// star_bits): the cells of its stars that the loops in rank order visit. Those loops then find them with bit
// operations instead of one data-dependent branch per cell, and read one word per vertex instead of its
// neighbours' ranks.

StarBits star_bits_plan(const GridPlan& g) {
  StarBits s{};
  auto add_star = [&](int k) {
    const FlatStar st = flatten_star(g, k);
    for (int e = 0; e < st.n; ++e, ++s.n) {
      if (s.n == 64) throw std::logic_error("gpuph: more than 64 star cells per vertex");
      s.need[s.n] = 0;
      for (int j = 0; j < st.nother[e]; ++j) {
        const int nb = int(std::find(g.pix_nb, g.pix_nb + g.npix_nb, st.other[e][j]) - g.pix_nb);
        if (nb == g.npix_nb) throw std::logic_error("gpuph: a star cell's key vertex is not a grid neighbour");
        s.need[s.n] |= 1u << nb;
      }
    }
  };
  if (g.min_key) {
    s.flip_low = true;
    for (int nb = 0; nb < g.npix_nb; ++nb) s.need[s.n++] = 1u << nb;
  } else {
    add_star(1);
  }
  s.nlow = s.n;
  if (g.D >= 2) add_star(g.D - 1);
  s.ntop = s.n;
  if (g.min_key && g.D == 3) add_star(1);
  return s;
}

// Row by row: the comparisons one neighbour at a time over the row (contiguous lanes, vectorised), then each pixel's
// word.
template <bool Later>
void star_bits(const GridPlan& g, const StarBits& sb, const int32_t* rank, uint64_t* bits) {
  const int64_t len = g.n[g.D - 1];
  for_each_row_par(g, [&](int64_t row) {
    thread_local std::vector<uint32_t> mask;
    mask.resize(size_t(len));
    uint32_t* m = mask.data();
    const int32_t* rr = rank + row;
    for (int64_t c = 0; c < len; ++c) m[c] = 0;
    for (int k = 0; k < g.npix_nb; ++k) {
      const int32_t* rn = rr + g.pix_nb[k];
      const uint32_t bit = 1u << k;
      for (int64_t c = 0; c < len; ++c) m[c] |= (Later ? rn[c] > rr[c] : rn[c] < rr[c]) ? bit : 0u;
    }
    uint64_t* out = bits + row;
    auto words = [&](auto nlow, auto n) {
      uint32_t need[64];
      for (int i = 0; i < n; ++i) need[i] = sb.need[i];
      for (int64_t c = 0; c < len; ++c) {
        const uint32_t mc = m[c], mf = Later ? ~mc : mc;  // T (Later) tests the low bits on the clear bits
        uint64_t o = 0;
        for (int i = 0; i < nlow; ++i) o |= uint64_t((mf & need[i]) == need[i]) << i;
        for (int i = nlow; i < n; ++i) o |= uint64_t((mc & need[i]) == need[i]) << i;
        out[c] = o;
      }
    };
    // The 3D stars with their counts known at compile time (unrolled): V (6, 18), T (26, 44), freudenthal (14, 50).
    if (sb.nlow == 6 && sb.n == 18)
      words(std::integral_constant<int, 6>(), std::integral_constant<int, 18>());
    else if (sb.nlow == 26 && sb.n == 44)
      words(std::integral_constant<int, 26>(), std::integral_constant<int, 44>());
    else if (sb.nlow == 14 && sb.n == 50)
      words(std::integral_constant<int, 14>(), std::integral_constant<int, 50>());
    else
      words(sb.nlow, sb.n);
  });
}

void star_bits(const GridPlan& g, Workspace& ws) {
  ws.star_bits.resize(size_t(g.P));
  ws.star_plan = star_bits_plan(g);
  if (g.min_key)
    star_bits<true>(g, ws.star_plan, ws.rank.data(), ws.star_bits.data());
  else
    star_bits<false>(g, ws.star_plan, ws.rank.data(), ws.star_bits.data());
}

// Compression marks of T in 3D: its H0 runs on pixels, which does not say which edges are negative. Those are the
// edges that join two components of the graph of the earlier edges (Kruskal in the total order: pixels in rank
// order, each one's edges in star-code order), whatever the vertices' own order: one union-find over the vertices.
void t_negative_edges(const GridPlan& g, Workspace& ws) {
  const FlatStar st = flatten_star(g, 1);
  const StarBits& sb = ws.star_plan;
  const DimPlan& d1 = g.dim[1];
  const int nt1 = d1.ntypes;
  int64_t edge_id[kMaxStar], end0[kMaxStar], end1[kMaxStar];
  for (int e = 0; e < st.n; ++e) {
    const int ty = st.type[e];
    edge_id[e] = st.anchor[e] * nt1 + ty;
    end0[e] = st.anchor[e] + d1.bnd_shift[ty][0];
    end1[e] = st.anchor[e] + d1.bnd_shift[ty][1];
  }
  ws.negative_edge.assign(size_t(g.P) * nt1, 0);
  uint8_t* neg = ws.negative_edge.data();
  ws.parent_vertex.resize(size_t(g.P));
  int32_t* parent = ws.parent_vertex.data();
  for (int64_t i = 0; i < g.P; ++i) parent[i] = int32_t(i);
  const int32_t* order = ws.order.data();
  const uint64_t* sbits = ws.star_bits.data();
  constexpr int64_t kAhead = 8;  // prefetch distance, in pixels
  for (int64_t r = 0; r < g.N; ++r) {
    if (r + kAhead < g.N) __builtin_prefetch(sbits + order[r + kAhead]);
    const int32_t v = order[r];
    for (uint64_t s = sb.edge_bits(sbits[v]); s; s &= s - 1) {
      const int e = __builtin_ctzll(s);
      const int32_t r0 = uf_find(parent, int32_t(v + end0[e])), r1 = uf_find(parent, int32_t(v + end1[e]));
      if (r0 == r1) continue;
      parent[std::max(r0, r1)] = std::min(r0, r1);
      neg[int64_t(v) * nt1 + edge_id[e]] = 1;
    }
  }
}

// -------------------------------------------------------------------------------------------------------------
// H0: vertices (V, freudenthal) in rank order, merging with the earlier endpoints of the edges of their lower star,
// visited in star-code order so that the negative edges are exactly those of the total order (for compression).
void h0_lower_star(const GridPlan& g, const Phases& ph, Workspace& ws, bool mark_negative, std::vector<RawPair>& out) {
  const FlatStar st = flatten_star(g, 1);
  const uint64_t low = ws.star_plan.low_bits();
  const int nt1 = g.dim[1].ntypes;
  const int32_t* rank = ws.rank.data();
  const int32_t* order = ws.order.data();
  const int32_t* vcls = ws.vclass.data();
  const uint64_t* sbits = ws.star_bits.data();
  ws.parent0.resize(size_t(g.P));
  int32_t* parent = ws.parent0.data();
  uint8_t* neg = nullptr;
  if (mark_negative) {
    ws.negative_edge.assign(size_t(g.P) * nt1, 0);
    neg = ws.negative_edge.data();
  }
  const bool emit = ph.emit[0];
  int64_t other[kMaxStar], edge_id[kMaxStar];
  for (int e = 0; e < st.n; ++e) {
    other[e] = st.other[e][0];
    edge_id[e] = st.anchor[e] * nt1 + st.type[e];
  }
  const int64_t N = g.N;
  constexpr int64_t kAhead = 8;  // prefetch distance, in vertices
  for (int64_t r = 0; r < N; ++r) {
    if (r + kAhead < N) __builtin_prefetch(sbits + order[r + kAhead]);
    const int32_t v = order[r];
    parent[v] = v;
    bool attached = false;
    for (uint64_t s = sbits[v] & low; s; s &= s - 1) {
      const int e = __builtin_ctzll(s);
      const int32_t ru = uf_find(parent, int32_t(v + other[e]));
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

// H0 of T: pixels in rank order, merging with earlier pixels of their 8 / 26 neighbourhood (the low star bits).
void h0_pixels(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out) {
  const int32_t* rank = ws.rank.data();
  const int32_t* order = ws.order.data();
  const int32_t* vcls = ws.vclass.data();
  const uint64_t* sbits = ws.star_bits.data();
  const uint64_t low = ws.star_plan.low_bits();
  ws.parent0.resize(size_t(g.P));
  int32_t* parent = ws.parent0.data();
  constexpr int64_t kAhead = 8;  // prefetch distance, in pixels
  for (int64_t r = 0; r < g.N; ++r) {
    if (r + kAhead < g.N) __builtin_prefetch(sbits + order[r + kAhead]);
    const int32_t v = order[r];
    parent[v] = v;
    bool attached = false;
    for (uint64_t s = sbits[v] & low; s; s &= s - 1) {
      const int32_t ru = uf_find(parent, int32_t(v + g.pix_nb[__builtin_ctzll(s)]));
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
// smaller forward key) dies: the (D-1)-cell is the birth of a class that this top cell kills. The top cells that
// leave the grid start out joined to the outside, whose key (kBorderRank) is larger than every cell's: it is the
// oldest component, with no special case in the loop. I indexes the top cells (int32 where they fit).
template <typename I>
void top_union_find(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<I>& parent_buf, const int32_t* tkey,
                    int64_t ntop, bool mark_positive, std::vector<RawPair>& out) {
  const int D = g.D;
  const FlatStar st = flatten_star(g, D - 1);
  const StarBits& sb = ws.star_plan;
  const uint64_t* sbits = ws.star_bits.data();
  const int nface = g.dim[D - 1].ntypes;
  const int32_t* order = ws.order.data();
  const int32_t* vcls = ws.vclass.data();
  const I outside = I(g.P * ntop);
  parent_buf.resize(size_t(outside) + 1);
  I* parent = parent_buf.data();
  for (I i = 0; i <= outside; ++i) parent[i] = tkey[i] == kBorderRank ? outside : i;
  uint8_t* pos = nullptr;
  if (mark_positive) {
    ws.positive_face.assign(size_t(g.P) * nface, 0);
    pos = ws.positive_face.data();
  }
  int64_t face_id[kMaxStar];
  for (int e = 0; e < st.n; ++e) face_id[e] = st.anchor[e] * nface + st.type[e];
  const bool emit = ph.emit[D - 1];
  constexpr int64_t kAhead = 8;  // prefetch distance, in vertices
  for (int64_t r = g.N - 1; r >= 0; --r) {
    if (r >= kAhead) __builtin_prefetch(sbits + order[r - kAhead]);
    const int32_t v = order[r];
    const I vbase = I(int64_t(v) * ntop);
    for (uint64_t s = sb.top_bits(sbits[v]); s; s &= ~(uint64_t(1) << (63 - __builtin_clzll(s)))) {
      const int e = 63 - __builtin_clzll(s);
      const I r0 = uf_find(parent, I(vbase + st.cof_id[e][0])), r1 = uf_find(parent, I(vbase + st.cof_id[e][1]));
      if (r0 == r1) continue;
      // Older in reverse = larger forward key (key rank, then id).
      const bool r0_older = tkey[r0] != tkey[r1] ? tkey[r0] > tkey[r1] : r0 > r1;
      const I young = r0_older ? r1 : r0;
      parent[young] = r0_older ? r0 : r1;
      if (pos) pos[int64_t(v) * nface + face_id[e]] = 1;
      const int32_t death_rank = tkey[young];
      if (emit && vcls[r] != vcls[death_rank]) out.push_back({D - 1, v, order[death_rank]});
    }
  }
}

void top_by_duality(const GridPlan& g, const Phases& ph, Workspace& ws, bool mark_positive, std::vector<RawPair>& out) {
  const DimPlan& top = g.dim[g.D];
  const int32_t* rank = ws.rank.data();
  const bool T = g.min_key;  // T: the top cells are the pixels themselves, keyed by their rank
  const int ntop = T ? 1 : top.ntypes;
  const int64_t ntop_ids = g.P * ntop;
  // Key rank of each top cell and of the outside (the last entry); kBorderRank for cells that leave the grid.
  const int32_t* tkey = rank;  // T: rank has the outside's entry too
  if (!T) {
    ws.top_key.resize(size_t(ntop_ids + 1));
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
    // One key vertex at a time over all anchors: contiguous loads, vectorised.
    for (int ty = 0; ty < ntop; ++ty) {
      int32_t* kt = k + ty;
      const int32_t* r0 = rank + key[ty][0];
      for (int64_t a = 0; a < last; ++a) kt[a * ntop] = r0[a];
      for (int j = 1; j < nkey[ty]; ++j) {
        const int32_t* rj = rank + key[ty][j];
        for (int64_t a = 0; a < last; ++a) kt[a * ntop] = std::max(kt[a * ntop], rj[a]);
      }
    }
    std::fill(k + std::max<int64_t>(last, 0) * ntop, k + ntop_ids + 1, kBorderRank);
    tkey = k;
  }
  if (ntop_ids < std::numeric_limits<int32_t>::max() && !force_wide)
    top_union_find<int32_t>(g, ph, ws, ws.parent_top32, tkey, ntop, mark_positive, out);
  else
    top_union_find<int64_t>(g, ph, ws, ws.parent_top64, tkey, ntop, mark_positive, out);
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

// Per 2-cell type: key vertices, their star codes, and the id deltas of the boundary edges.
struct SquareType {
  int nt1;  // edge types per anchor (edge id = anchor * nt1 + type)
  int nkey;
  int64_t key[kMaxKeyVerts];
  int code[kMaxKeyVerts];
  int nbnd;
  int64_t bnd_id[kMaxBoundary];
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
template <typename K, int NK1, bool MinKey>
void edge_keys(const GridPlan& g, const int32_t* rank, const uint8_t* neg, bool parallel, K* ekey) {
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
        ekey[eid] = K(pack_cell_key(er, d1.star_code[ty][ej]));
      }
  });
}

// The square types of a 3D grid and the star of its key vertices in dimension 2, as the H1 passes read them.
struct SquareTables {
  int nt1, nt2;
  SquareType sq[kMaxTypes];
  FlatStar st;  // star code -> 2-cell anchor delta from its key vertex, and type
};

SquareTables square_tables(const GridPlan& g) {
  SquareTables t;
  const DimPlan& d1 = g.dim[1];
  const DimPlan& d2 = g.dim[2];
  t.nt1 = d1.ntypes;
  t.nt2 = d2.ntypes;
  for (int ty = 0; ty < t.nt2; ++ty) {
    SquareType& q = t.sq[ty];
    q.nt1 = t.nt1;
    q.nkey = d2.nkey[ty];
    for (int j = 0; j < q.nkey; ++j) {
      q.key[j] = d2.key[ty][j];
      q.code[j] = d2.star_code[ty][j];
    }
    q.nbnd = d2.nbnd[ty];
    for (int b = 0; b < q.nbnd; ++b) q.bnd_id[b] = d2.bnd_shift[ty][b] * t.nt1 + d2.bnd_type[ty][b];
  }
  t.st = flatten_star(g, 2);
  return t;
}

// Calls f(key, anchor << kCellTypeBits | type, boundary edge ids, their keys, their count, index of the pivot) for
// every 2-cell anchored in axis-0 planes [i0, i1), in memory order; the index of the pivot is -1 (and the rest
// meaningless) for those that are not columns: outside the grid, cleared, or with an empty compressed boundary. The
// counts are template parameters so that the loops unroll: (NK2, NB) = key vertices of a 2-cell and its boundary
// edges: V (4, 4), T (2, 4), freudenthal (3, 3).
template <typename K, int NK2, int NB, bool MinKey, typename Fn>
void for_each_column(const GridPlan& g, const SquareType* sq, int nt2, const int32_t* rank, const uint8_t* pos,
                     const K* ekey, int64_t i0, int64_t i1, Fn&& f) {
  // V / freudenthal anchors are vertices (padded coords 1..n); T anchors are upper incident pixels (1..n+1).
  for_each_anchor_3d(g, 1, MinKey ? 2 : 1, i0, i1, [&](int64_t anchor) {
    for (int ty = 0; ty < nt2; ++ty) {
      const SquareType& q = sq[ty];
      int bj;
      const int32_t best = key_rank<NK2, MinKey>(rank, anchor, q.key, &bj);
      if (best == kBorderRank || pos[anchor * nt2 + ty]) {  // not a cell of the grid, or cleared
        f(K(-1), anchor << kCellTypeBits | ty, nullptr, nullptr, 0, -1);
        continue;
      }
      int64_t eid[NB];
      K ek[NB];
      K piv = -1;
      int pb = -1;
      for (int b = 0; b < NB; ++b) {
        eid[b] = anchor * q.nt1 + q.bnd_id[b];
        ek[b] = ekey[eid[b]];
        if (ek[b] > piv) {
          piv = ek[b];
          pb = b;
        }
      }
      // pb < 0: an empty compressed boundary, a positive cell (clearing would have caught it)
      f(K(pack_cell_key(best, q.code[bj])), anchor << kCellTypeBits | ty, eid, ek, NB, pb);
    }
  });
}

// for_each_column with the construction's counts.
template <typename K, typename Fn>
void for_each_column_of(const GridPlan& g, const SquareType* sq, int nt2, const int32_t* rank, const uint8_t* pos,
                        const K* ekey, int64_t i0, int64_t i1, Fn&& f) {
  if (g.construction == kConstructionV)
    for_each_column<K, 4, 4, false>(g, sq, nt2, rank, pos, ekey, i0, i1, f);
  else if (g.construction == kConstructionT)
    for_each_column<K, 2, 4, true>(g, sq, nt2, rank, pos, ekey, i0, i1, f);
  else
    for_each_column<K, 3, 3, false>(g, sq, nt2, rank, pos, ekey, i0, i1, f);
}

// work ^= [a, a_end) (both sorted ascending), through merged.
template <typename E>
void xor_sorted(std::vector<E>& work, const E* a, const E* a_end, std::vector<E>& merged) {
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

// The reduction of H1 is helped by a second thread from this many columns on.
constexpr int64_t kHelpedMinColumns = 64;

// Compressed boundary of 2-cell (anchor, ty) into col, as entries (key << kEntryShift | edge id), ascending if sorted.
// rows (or null): the pivot table, whose entries of these edges are prefetched along with their keys: the reduction
// reads one of them next (the pivot after an addition), and both reads miss the cache on large grids.
template <typename K>
void boundary_entries(const SquareTables& t, const K* ekey, int64_t anchor, int ty,
                      std::vector<typename MiddleBuffers<K>::Entry>& col, bool sorted, const K* rows) {
  using E = typename MiddleBuffers<K>::Entry;
  const SquareType& q = t.sq[ty];
  col.clear();
  for (int b = 0; b < q.nbnd; ++b) {
    const int64_t eid = anchor * t.nt1 + q.bnd_id[b];
    if (rows) __builtin_prefetch(rows + eid);
    const K ek = ekey[eid];
    if (ek < 0) continue;
    E e = E(ek) << MiddleBuffers<K>::kEntryShift | E(eid);
    col.push_back(e);
    if (!sorted) continue;
    // Insertion sort: at most four entries.
    size_t j = col.size() - 1;
    for (; j > 0 && col[j - 1] > e; --j) col[j] = col[j - 1];
    col[j] = e;
  }
}

// work += b, where b (any order) is the boundary of the column whose pivot is work's pivot: the pivot cancels and
// each other entry of b (at most three) is toggled in by a binary search, cheaper than merging a long work column
// with a short one. An entry of b above the pivot, or a b without it, means an inconsistent pivot table: fail, as
// the reduction would not end.
template <typename E>
void add_short(std::vector<E>& work, const E* b, const E* b_end) {
  const E low = work.back();
  work.pop_back();
  bool cancelled = false;
  for (; b != b_end; ++b) {
    if (*b == low) {
      cancelled = true;
      continue;
    }
    TORCH_CHECK(*b < low, "gpuph: internal error: a column addition did not lower the pivot (inconsistent columns)");
    const auto it = std::lower_bound(work.begin(), work.end(), *b);
    if (it != work.end() && *it == *b)
      work.erase(it);
    else
      work.insert(it, *b);
  }
  TORCH_CHECK(cancelled, "gpuph: internal error: a column addition did not lower the pivot (inconsistent columns)");
}

// Pass 3 of the H1 reduction (middle_by_reduction; also the host half of the device pipeline): the standard
// reduction of the remaining columns `rest` (packed keys, ascending), in total order, with row_oldest as the pivot
// table: entries >= 0 (or the largest K): no column has this pivot yet; in [-kHalf, -1]: the apparent column with
// cell code -1 - entry (anchor << kCellTypeBits | type), whose boundary is regenerated from the grid; below -kHalf:
// the stored reduced column -kHalf - 1 - entry. order: rank -> padded pixel; vcls: rank -> value class (pairs of
// equal values are not emitted). start_cols: where the columns start if not from their boundaries (no helper then).
template <typename K>
void reduce_rest(const SquareTables& t, const int32_t* order, const int32_t* vcls, const K* ekey, K* row_oldest,
                 const std::vector<K>& rest, const StartColumns<K>* start_cols, bool emit, bool parallel,
                 MiddleBuffers<K>& mb, std::vector<RawPair>& out) {
  using E = typename MiddleBuffers<K>::Entry;
  constexpr int kShift = MiddleBuffers<K>::kEntryShift;
  constexpr E kEidMask = (E(1) << kShift) - 1;
  constexpr K kHalf = K(1) << (8 * sizeof(K) - 2);
  const FlatStar& st = t.st;
  // Column starts are sorted; the apparent columns added to them need not be (add_short).
  auto boundary = [&](int64_t anchor, int ty, std::vector<E>& col, bool sorted) {
    boundary_entries(t, ekey, anchor, ty, col, sorted, static_cast<const K*>(row_oldest));
  };

  // With a second thread, a helper runs ahead from the youngest columns backwards, block by block: it adds the
  // apparent columns to a column while its pivot is apparent, which are exactly the first steps the reduction takes
  // (a row with an apparent column never gets a stored one), and leaves the partial column for the reduction to
  // continue. The reduction writes stored-column codes only into rows that have no apparent column, and the helper
  // acts only on apparent codes, which never change: they agree whatever the interleaving (the shared entries are
  // read and written atomically).
  const int64_t nrest = int64_t(rest.size());
  const bool helped = !start_cols && parallel && at::get_num_threads() >= 2 && nrest >= kHelpedMinColumns;
  const int64_t block = std::min<int64_t>(256, std::max<int64_t>(8, nrest / 64));
  const int64_t nblocks = helped ? (nrest + block - 1) / block : 0;
  // Block states: 0 untouched, 1 the helper works on it, 2 its partial columns are ready, 3 the reduction took it,
  // 4 the helper failed on it (an exception): the reduction does it itself, and meets the error on its own thread
  // if it is one (an exception leaving the helper would have the reduction wait forever).
  std::unique_ptr<std::atomic<int>[]> state(new std::atomic<int>[size_t(nblocks)]);
  for (int64_t b = 0; b < nblocks; ++b) state[b].store(0, std::memory_order_relaxed);
  std::atomic<int64_t> reduction_block{0};
  mb.partial.resize(size_t(nblocks));
  auto load_entry = [&](int64_t eid) { return __atomic_load_n(row_oldest + eid, __ATOMIC_RELAXED); };
  auto column_of = [&](K key, std::vector<E>& col) {
    const int code = int(key & 63);
    boundary(order[key >> 6] + st.anchor[code], st.type[code], col, true);
  };

  auto helper = [&] {
    std::vector<E> work, regen;
    for (int64_t b = nblocks - 1; b >= 0; --b) {
      int untouched = 0;
      if (b <= reduction_block.load(std::memory_order_acquire) + 1 || !state[b].compare_exchange_strong(untouched, 1))
        return;  // the reduction is (nearly) there
      try {
        PartialColumns<E>& part = mb.partial[size_t(b)];
        part.entries.clear();
        part.start.clear();
        for (int64_t i = b * block; i < std::min(nrest, (b + 1) * block); ++i) {
          column_of(rest[size_t(i)], work);
          while (!work.empty()) {
            const K x = load_entry(int64_t(work.back() & kEidMask));
            if (x >= 0 || x < -kHalf) break;  // not apparent: the reduction goes on from here
            const int64_t cell = -1 - int64_t(x);
            boundary(cell >> kCellTypeBits, int(cell & ((1 << kCellTypeBits) - 1)), regen, false);
            add_short(work, regen.data(), regen.data() + regen.size());
          }
          part.start.push_back(int64_t(part.entries.size()));
          part.entries.insert(part.entries.end(), work.begin(), work.end());
        }
        part.start.push_back(int64_t(part.entries.size()));
      } catch (...) {
        state[b].store(4, std::memory_order_release);
        return;
      }
      state[b].store(2, std::memory_order_release);
    }
  };

  auto reduction = [&] {
    std::vector<E>& pool = mb.pool;
    std::vector<E>& work = mb.work;
    std::vector<E>& merged = mb.merged;
    std::vector<E>& regen = mb.regen;
    std::vector<int64_t>& col_start = mb.col_start;
    pool.clear();
    col_start.clear();
    const PartialColumns<E>* part = nullptr;
    for (int64_t i = 0; i < nrest; ++i) {
      const K key = rest[size_t(i)];
      if (helped && i % block == 0) {  // a new block: take it, or wait for the helper's partial columns
        const int64_t b = i / block;
        reduction_block.store(b, std::memory_order_release);
        int untouched = 0;
        part = nullptr;
        if (!state[b].compare_exchange_strong(untouched, 3)) {
          int now;
          while ((now = state[b].load(std::memory_order_acquire)) == 1) std::this_thread::yield();
          if (now == 2) part = &mb.partial[size_t(b)];
        }
      }
      if (start_cols) {
        const K* eid = start_cols->eid + start_cols->first[i];
        work.clear();
        for (int j = 0; j < start_cols->len[i]; ++j) {
          work.push_back(E(ekey[eid[j]]) << kShift | E(eid[j]));
          // The device's columns are sorted (the additions below rely on it): one that is not would loop forever.
          TORCH_CHECK(j == 0 || work[size_t(j) - 1] < work[size_t(j)],
                      "gpuph: internal error: a residual column from the device is not sorted");
        }
      } else if (part) {
        const int64_t j = i % block;
        work.assign(part->entries.begin() + part->start[size_t(j)], part->entries.begin() + part->start[size_t(j) + 1]);
      } else {
        column_of(key, work);
      }
      while (!work.empty()) {
        const E low = work.back();
        const int64_t eid = int64_t(low & kEidMask);
        const K x = load_entry(eid);
        if (x < -kHalf) {  // a stored column
          const size_t j = size_t(-kHalf - 1 - x);
          xor_sorted(work, pool.data() + col_start[j], pool.data() + col_start[j + 1], merged);
          // Both columns end at the pivot, which cancels: the pivot only ever falls. A column with another pivot (an
          // inconsistent pivot table) would not cancel it and loop forever; fail instead.
          TORCH_CHECK(work.empty() || work.back() < low,
                      "gpuph: internal error: a column addition did not lower the pivot (inconsistent columns)");
        } else if (x < 0) {  // an apparent column: its boundary, regenerated
          const int64_t cell = -1 - int64_t(x);
          boundary(cell >> kCellTypeBits, int(cell & ((1 << kCellTypeBits) - 1)), regen, false);
          add_short(work, regen.data(), regen.data() + regen.size());
        } else {  // no column has this pivot yet: store this one
          __atomic_store_n(row_oldest + eid, K(-kHalf - 1 - K(col_start.size())), __ATOMIC_RELAXED);
          col_start.push_back(int64_t(pool.size()));
          pool.insert(pool.end(), work.begin(), work.end());
          col_start.push_back(int64_t(pool.size()));  // end marker, paired with the start
          const int32_t br = int32_t(K(low >> kShift) >> 6), r = int32_t(key >> 6);
          if (emit && vcls[br] != vcls[r]) out.push_back({1, order[br], order[r]});
          break;
        }
      }
    }
  };

  if (!helped) return reduction();
  at::parallel_for(0, 2, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) k == 0 ? reduction() : helper();
  });
}

// H1 of 3D. The columns are the negative 2-cells (clearing), the rows the positive edges (compression), both in the
// total order. First, in memory order and without any sequential dependency (one thread per cell on a GPU):
// every row's oldest column (pass 1), then every column's pivot (its youngest row); a column that is the oldest
// column of its own pivot is an apparent pair and needs no reduction (pass 2). Only the remaining columns are
// reduced, in order (pass 3, reduce_rest); when one of them needs an apparent column, its boundary is regenerated
// from the grid instead of being stored. K holds a packed key: int32 when every key of the image fits (fewer than
// 2^25 pixels), which halves the memory the passes stream through.
template <typename K>
void middle_by_reduction(const GridPlan& g, const Phases& ph, Workspace& ws, MiddleBuffers<K>& mb, bool parallel,
                         std::vector<RawPair>& out) {
  const SquareTables tables = square_tables(g);
  const SquareType* sq = tables.sq;
  const int nt1 = tables.nt1;
  const int nt2 = tables.nt2;
  const bool T = g.min_key;
  const int32_t* rank = ws.rank.data();
  const int32_t* order = ws.order.data();
  const int32_t* vcls = ws.vclass.data();
  const uint8_t* pos = ws.positive_face.data();
  const bool emit = ph.emit[1];
  constexpr K kNone = std::numeric_limits<K>::max();
  const K* ekey = mb.edge_key.data();  // run_middle_edges

  // Squares of plane i touch edges of planes i and i + 1 only: slabs separated by one plane run in parallel, the
  // separating planes afterwards, so that no two threads touch one row.
  const int64_t planes = g.n[0] + (T ? 2 : 1);
  const int nslabs = parallel ? std::max(1, std::min<int>(at::get_num_threads(), int(planes / 8))) : 1;
  const int64_t width = (planes - 1 + nslabs - 1) / nslabs;
  auto over_slabs = [&](auto&& f) {  // f(first plane, end plane, slab)
    auto clipped = [&](int64_t i0, int64_t i1, int64_t k) {
      i0 = std::max<int64_t>(i0, 1);
      i1 = std::min(i1, planes);
      if (i0 < i1) f(i0, i1, k);
    };
    if (nslabs == 1) return clipped(1, planes, 0);
    at::parallel_for(0, nslabs, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) clipped(1 + k * width, 1 + (k + 1) * width - 1, k);
    });
    for (int64_t k = 0; k < nslabs; ++k) clipped(1 + (k + 1) * width - 1, 1 + (k + 1) * width, k);
  };
  auto columns = [&](int64_t i0, int64_t i1, auto&& f) {
    for_each_column_of<K>(g, sq, nt2, rank, pos, ekey, i0, i1, f);
  };

  // Pass 1: every row's oldest column (scatter-min); every column's key and pivot, kept for pass 2.
  mb.row_oldest.resize(size_t(g.P) * nt1);
  K* row_oldest = mb.row_oldest.data();
  at::parallel_for(0, g.P * nt1, parallel ? (int64_t(1) << 16) : g.P * nt1 + 1, [&](int64_t b, int64_t e) {
    std::fill(row_oldest + b, row_oldest + e, kNone);
  });
  mb.col_key.resize(size_t(g.P) * nt2);  // every entry pass 2 reads is written below
  mb.col_pivot.resize(size_t(g.P) * nt2);
  K* col_key = mb.col_key.data();
  uint8_t* col_pivot = mb.col_pivot.data();
  over_slabs([&](int64_t i0, int64_t i1, int64_t) {
    columns(i0, i1, [&](K key, int64_t cell, const int64_t* eid, const K* ek, int nb, int pb) {
      const int64_t sid = (cell >> kCellTypeBits) * nt2 + (cell & ((1 << kCellTypeBits) - 1));
      if (pb < 0) {
        col_key[sid] = kNone;
        return;
      }
      for (int b = 0; b < nb; ++b)
        if (ek[b] >= 0 && key < row_oldest[eid[b]]) row_oldest[eid[b]] = key;
      col_key[sid] = key;
      col_pivot[sid] = uint8_t(pb);
    });
  });

  // Pass 2: a column that is the oldest column of its pivot is apparent; its pivot's entry becomes the column's cell
  // (anchor << kCellTypeBits | type, encoded below), so that the reduction regenerates it from the grid without a
  // look-up of its key vertex. Any other column with that pivot still compares unequal, before or after the write:
  // not apparent either way. row_oldest is then the pivot table of reduce_rest.
  mb.rest_parts.resize(size_t(nslabs));
  for (auto& r : mb.rest_parts) r.clear();
  std::vector<std::vector<RawPair>> out_parts(static_cast<size_t>(nslabs));
  over_slabs([&](int64_t i0, int64_t i1, int64_t k) {
    std::vector<K>& rest = mb.rest_parts[size_t(k)];
    std::vector<RawPair>& found = out_parts[size_t(k)];
    for_each_anchor_3d(g, 1, T ? 2 : 1, i0, i1, [&](int64_t anchor) {
      for (int ty = 0; ty < nt2; ++ty) {
        const int64_t sid = anchor * nt2 + ty;
        const K key = col_key[sid];
        if (key == kNone) continue;
        const int64_t eid = anchor * nt1 + sq[ty].bnd_id[col_pivot[sid]];
        if (row_oldest[eid] != key) {
          rest.push_back(key);
          continue;
        }
        row_oldest[eid] = K(-1 - (anchor << kCellTypeBits | ty));
        const int32_t br = int32_t(ekey[eid] >> 6), dr = int32_t(key >> 6);
        // Most apparent pairs lie in one lower star (same key vertex): zero length without a look-up.
        if (emit && br != dr && vcls[br] != vcls[dr]) found.push_back({1, order[br], order[dr]});
      }
    });
  });
  std::vector<K>& rest = mb.rest_parts[0];
  for (int k = 0; k < nslabs; ++k) {
    if (k > 0) rest.insert(rest.end(), mb.rest_parts[size_t(k)].begin(), mb.rest_parts[size_t(k)].end());
    out.insert(out.end(), out_parts[size_t(k)].begin(), out_parts[size_t(k)].end());
  }
  std::sort(rest.begin(), rest.end());

  reduce_rest<K>(tables, order, vcls, ekey, row_oldest, rest, nullptr, emit, parallel, mb, out);
}

}  // namespace

template <typename F>
bool rank_image(const GridPlan& g, const F* x, bool superlevel, Workspace& ws, bool parallel) {
  using U = typename std::conditional<sizeof(F) == 4, uint32_t, uint64_t>::type;
  std::vector<U>& keys = [&]() -> std::vector<U>& {
    if constexpr (sizeof(F) == 4) return ws.keys32; else return ws.keys64;
  }();
  std::vector<U>& tmp = [&]() -> std::vector<U>& {
    if constexpr (sizeof(F) == 4) return ws.tmp32; else return ws.tmp64;
  }();
  keys.resize(size_t(g.N));
  ws.order.resize(size_t(g.N));
  std::atomic<bool> nan{false};
  for_each_pixel_par(g, parallel, [&](int64_t i, int64_t p) {
    const F v = x[i];
    if (v != v) nan.store(true, std::memory_order_relaxed);
    keys[i] = orderable_key<U>(v, superlevel);
    ws.order[i] = int32_t(p);
  });
  if (nan.load()) return false;
  radix_sort_pairs_parallel(keys, ws.order, tmp, ws.tmp_items, parallel ? at::get_num_threads() : 1);
  finish_ranking(g, keys, ws, parallel);
  star_bits(g, ws);
  return true;
}

template bool rank_image<float>(const GridPlan&, const float*, bool, Workspace&, bool);
template bool rank_image<double>(const GridPlan&, const double*, bool, Workspace&, bool);

// Compression needs the negative edges in the exact total order: the lower-star H0 marks them (V, freudenthal), a
// union-find of their own does for T (whose H0 runs on pixels).
static bool compresses(const GridPlan&, const Phases& ph) { return ph.middle; }

// T compresses when its H0 has at least one class per this many pixels.
constexpr int64_t kTCompressionMinPixelsPerClass = 256;

bool needs_h0(const GridPlan& g, const Phases& ph) { return ph.h0 || compresses(g, ph); }
bool needs_top(const GridPlan& g, const Phases& ph) { return g.D >= 2 && (ph.top || ph.middle); }

void run_h0(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out) {
  ws.compressed = compresses(g, ph);
  if (!g.min_key) return h0_lower_star(g, ph, ws, ws.compressed, out);
  const size_t before = out.size();
  if (ph.h0) h0_pixels(g, ph, ws, out);
  // T's marks cost a union-find of their own, which pays where the reduction has much to do (measured: about 20%
  // faster on noise, 5-15% slower on smooth fields); its H0 classes tell which (when H0 is asked for).
  if (ph.h0 && int64_t(out.size() - before) * kTCompressionMinPixelsPerClass < g.N) ws.compressed = false;
  if (ws.compressed) t_negative_edges(g, ws);
}

void run_top(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out) {
  top_by_duality(g, ph, ws, ph.middle, out);
}

// Packed keys (rank << 6 | star code) of every cell fit in int32 below 2^25 pixels; column entries then pack a key
// and an edge id in 64 bits, and the pivot table's codes of 2-cells need 30 bits.
static bool narrow_keys(const GridPlan& g) {
  return (g.N << 6) < std::numeric_limits<int32_t>::max() && g.P * g.dim[1].ntypes < (int64_t(1) << 32) &&
         (g.P << kCellTypeBits) < (int64_t(1) << 30) && !force_wide;
}

template <typename K>
static void middle_edge_keys(const GridPlan& g, const Phases& ph, Workspace& ws, MiddleBuffers<K>& mb, bool parallel) {
  mb.edge_key.resize(size_t(g.P) * g.dim[1].ntypes);
  const uint8_t* neg = ws.compressed ? ws.negative_edge.data() : nullptr;
  if (g.min_key)
    edge_keys<K, 4, true>(g, ws.rank.data(), neg, parallel, mb.edge_key.data());  // an edge of T has 4 pixels
  else
    edge_keys<K, 2, false>(g, ws.rank.data(), neg, parallel, mb.edge_key.data());  // V, freudenthal: 2 vertices
}

void run_middle_edges(const GridPlan& g, const Phases& ph, Workspace& ws, bool parallel) {
  ws.mid_narrow = narrow_keys(g);
  if (ws.mid_narrow)
    middle_edge_keys(g, ph, ws, ws.mid32, parallel);
  else
    middle_edge_keys(g, ph, ws, ws.mid64, parallel);
}

void run_middle(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out, bool parallel) {
  if (ws.mid_narrow)
    middle_by_reduction(g, ph, ws, ws.mid32, parallel, out);
  else
    middle_by_reduction(g, ph, ws, ws.mid64, parallel, out);
}

void reduce_middle_rest(const GridPlan& g, const int32_t* order, const int32_t* vcls, const int64_t* ekey,
                        int64_t* row_oldest, const std::vector<int64_t>& rest, const StartColumns<int64_t>& start_cols,
                        MiddleBuffers<int64_t>& mb, std::vector<RawPair>& out) {
  reduce_rest(square_tables(g), order, vcls, ekey, row_oldest, rest, &start_cols, true, false, mb, out);
}

void reduce_middle_rest(const GridPlan& g, const int32_t* order, const int32_t* vcls, const int32_t* ekey,
                        int32_t* row_oldest, const std::vector<int32_t>& rest, const StartColumns<int32_t>& start_cols,
                        MiddleBuffers<int32_t>& mb, std::vector<RawPair>& out) {
  reduce_rest(square_tables(g), order, vcls, ekey, row_oldest, rest, &start_cols, true, false, mb, out);
}

bool narrow_middle_keys(const GridPlan& g) { return narrow_keys(g); }

bool set_force_wide_indices(bool on) { return force_wide.exchange(on); }

void persistence_of_ranked_image(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out) {
  if (needs_h0(g, ph)) run_h0(g, ph, ws, out);
  if (needs_top(g, ph)) run_top(g, ph, ws, out);
  if (ph.middle) {
    run_middle_edges(g, ph, ws);
    run_middle(g, ph, ws, out);
  }
}

}  // namespace gpuph
