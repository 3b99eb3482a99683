// Exact (Z/2) persistence of a filtered simplicial complex given as explicit tables, shared by the lower-star
// engine (lower_star.cpp: simplices ordered by the ranks of their vertices) and the flag filtration of an explicit
// complex (rips.cpp's complex_flag_pairs: simplices ordered by the ranks of their edges, e.g. the Delaunay complex).
//
// The caller fixes the filtration order: a rank for every vertex (the elder rule of H0) and, for every dimension
// d >= 1, the order of the d-simplices and the critical id of each (the vertex or edge whose value is the simplex's
// value). sort_by_rank_tuples builds that order from "elements" (a simplex's vertices or its edges): a simplex's key
// is the ranks of its elements sorted descending, compared lexicographically; its first entry names its critical
// element. Every face precedes its cofaces: a face's elements are a subset of the coface's, so its key is a proper
// prefix or smaller at the first difference.
//
// reduce_boundaries: H0 by union-find with the elder rule over the edges; then the boundary matrices from the top
// dimension down, standard column reduction with clearing (columns of simplices found positive as pivots one
// dimension up are skipped: they reduce to zero) and, for the triangles, compression (rows of edges that killed an
// H0 class are dropped: they are never pivots).
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <utility>
#include <vector>

namespace gpuph {
namespace simplicial {

struct Complex {
  int64_t n = 0;                      // vertices
  int D = 0;                          // top dimension present (0 when there are no edges)
  std::vector<const int64_t*> verts;  // verts[d]: (m_d, d+1), d = 1..D (index 0 unused; only verts[1] is read here)
  std::vector<const int64_t*> facets; // facets[d]: (m_d, d+1) row indices into the (d-1)-simplices, d = 2..D
  std::vector<int64_t> m;             // m[d]: number of d-simplices (m[0] = n)
};

struct Workspace {
  std::vector<int32_t> vorder, vrank;            // vertices by rank; rank of each (elder rule: smaller is older)
  std::vector<std::vector<int32_t>> order, pos;  // order[d][p]: simplex at position p; pos[d][id]: its position
  std::vector<std::vector<int32_t>> crit;        // crit[d][id]: critical element (vertex or edge)
  std::vector<std::vector<char>> positive;       // positive[d][p]: simplex at position p creates a class
  std::vector<std::vector<char>> paired;         // paired[d][p]: ... and that class dies
  std::vector<uint64_t> keys;
  std::vector<int32_t> tuples;
  std::vector<int32_t> uf_parent, uf_size, uf_oldest;
  std::vector<char> negative_edge;               // by position
  std::vector<int32_t> pivot_owner;              // row position -> column position owning it as pivot
  std::vector<std::vector<int32_t>> stored;      // reduced columns of pivot owners, by column position
  std::vector<int32_t> col, tmp;
};

inline int bits_for(int64_t n) {
  int b = 1;
  while ((int64_t(1) << b) < n) ++b;
  return b;
}

// Orders m simplices, each with k elements elems[i * k .. i * k + k) (ids ranked by rank[id]; of_rank[r] is the id
// of rank r; n_elements ids in all), by their descending rank tuples: fills order[d], pos[d] and crit[d]. Returns
// false when two simplices have the same elements (a simplex listed twice), which the caller reports.
inline bool sort_by_rank_tuples(int64_t m, int k, const int64_t* elems, const int32_t* rank, const int32_t* of_rank,
                                int64_t n_elements, int d, Workspace& ws) {
  auto& ord = ws.order[size_t(d)];
  auto& ps = ws.pos[size_t(d)];
  auto& cr = ws.crit[size_t(d)];
  ord.resize(size_t(m));
  ps.resize(size_t(m));
  cr.resize(size_t(m));
  ws.tuples.resize(size_t(m * k));
  int32_t* T = ws.tuples.data();
  for (int64_t i = 0; i < m; ++i) {
    int32_t* t = T + i * k;
    for (int a = 0; a < k; ++a) t[a] = rank[size_t(elems[i * k + a])];
    // insertion sort, descending (k is small)
    for (int a = 1; a < k; ++a)
      for (int b = a; b > 0 && t[b - 1] < t[b]; --b) std::swap(t[b - 1], t[b]);
    cr[size_t(i)] = of_rank[size_t(t[0])];
  }
  std::iota(ord.begin(), ord.end(), 0);
  const int bits = bits_for(n_elements);
  if (bits * k <= 64) {
    // Packed keys: one integer comparison per pair.
    ws.keys.resize(size_t(m));
    for (int64_t i = 0; i < m; ++i) {
      uint64_t key = 0;
      for (int a = 0; a < k; ++a) key = (key << bits) | uint64_t(T[i * k + a]);
      ws.keys[size_t(i)] = key;
    }
    const uint64_t* K = ws.keys.data();
    std::sort(ord.begin(), ord.end(), [K](int32_t a, int32_t b) { return K[a] < K[b]; });
  } else {
    std::sort(ord.begin(), ord.end(), [T, k](int32_t a, int32_t b) {
      return std::lexicographical_compare(T + int64_t(a) * k, T + int64_t(a) * k + k, T + int64_t(b) * k,
                                          T + int64_t(b) * k + k);
    });
  }
  for (int64_t p = 0; p < m; ++p) ps[size_t(ord[size_t(p)])] = int32_t(p);
  for (int64_t p = 1; p < m; ++p) {
    const int32_t* a = T + int64_t(ord[size_t(p - 1)]) * k;
    const int32_t* b = T + int64_t(ord[size_t(p)]) * k;
    if (std::equal(a, a + k, b)) return false;
  }
  return true;
}

inline int32_t uf_find(std::vector<int32_t>& parent, int32_t x) {
  while (parent[size_t(x)] != x) {
    parent[size_t(x)] = parent[size_t(parent[size_t(x)])];
    x = parent[size_t(x)];
  }
  return x;
}

// a ^= b for sorted ascending index lists (symmetric difference, Z/2 column addition).
inline void add_column(std::vector<int32_t>& a, const std::vector<int32_t>& b, std::vector<int32_t>& tmp) {
  tmp.clear();
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] < b[j]) {
      tmp.push_back(a[i++]);
    } else if (b[j] < a[i]) {
      tmp.push_back(b[j++]);
    } else {
      ++i;
      ++j;
    }
  }
  tmp.insert(tmp.end(), a.begin() + int64_t(i), a.end());
  tmp.insert(tmp.end(), b.begin() + int64_t(j), b.end());
  a.swap(tmp);
}

// The persistence pairs of the filtration fixed in ws (vrank; order, pos, crit for d = 1..D), reported as
// emit(dim, birth, death): birth is a vertex for dim 0, else the critical element of the creating simplex; death the
// critical element of the destroying simplex, -1 for an essential class (dimensions 0..min(maxdim, D)). Pairs of
// zero length are reported too (the caller drops them by value). The facets of a simplex must be distinct (else a
// column holds a row twice and its pivot never cancels, which throws): the callers check their tables.
template <typename Emit>
void reduce_boundaries(const Complex& cx, int maxdim, Workspace& ws, Emit&& emit) {
  const int64_t n = cx.n;
  const int D = cx.D;
  ws.positive.assign(size_t(D + 1), {});
  ws.paired.assign(size_t(D + 1), {});
  for (int d = 1; d <= D; ++d) {
    ws.positive[size_t(d)].assign(size_t(cx.m[size_t(d)]), 0);
    ws.paired[size_t(d)].assign(size_t(cx.m[size_t(d)]), 0);
  }

  // H0: union-find over the edges in filtration order, elder rule (the younger component dies).
  ws.uf_parent.resize(size_t(n));
  ws.uf_size.assign(size_t(n), 1);
  ws.uf_oldest.resize(size_t(n));
  std::iota(ws.uf_parent.begin(), ws.uf_parent.end(), 0);
  std::iota(ws.uf_oldest.begin(), ws.uf_oldest.end(), 0);
  if (D >= 1) {
    const int64_t m1 = cx.m[1];
    const int64_t* E = cx.verts[1];
    ws.negative_edge.assign(size_t(m1), 0);
    for (int64_t p = 0; p < m1; ++p) {
      const int32_t e = ws.order[1][size_t(p)];
      int32_t a = uf_find(ws.uf_parent, int32_t(E[2 * int64_t(e)]));
      int32_t b = uf_find(ws.uf_parent, int32_t(E[2 * int64_t(e) + 1]));
      if (a == b) {
        ws.positive[1][size_t(p)] = 1;
        continue;
      }
      ws.negative_edge[size_t(p)] = 1;
      const int32_t oa = ws.uf_oldest[size_t(a)], ob = ws.uf_oldest[size_t(b)];
      const bool a_elder = ws.vrank[size_t(oa)] < ws.vrank[size_t(ob)];
      emit(0, int64_t(a_elder ? ob : oa), int64_t(ws.crit[1][size_t(e)]));
      if (ws.uf_size[size_t(a)] < ws.uf_size[size_t(b)]) std::swap(a, b);
      ws.uf_parent[size_t(b)] = a;
      ws.uf_size[size_t(a)] += ws.uf_size[size_t(b)];
      ws.uf_oldest[size_t(a)] = a_elder ? oa : ob;
    }
  }
  for (int64_t v = 0; v < n; ++v)
    if (ws.uf_parent[size_t(v)] == v) emit(0, int64_t(ws.uf_oldest[size_t(v)]), int64_t(-1));

  // Boundary matrices from the top dimension down, with clearing.
  for (int d = D; d >= 2; --d) {
    const int64_t md = cx.m[size_t(d)];
    const int64_t* FAC = cx.facets[size_t(d)];
    const auto& rowpos = ws.pos[size_t(d - 1)];
    const auto& colord = ws.order[size_t(d)];
    auto& pos_col = ws.positive[size_t(d)];
    auto& paired_row = ws.paired[size_t(d - 1)];
    auto& pos_row = ws.positive[size_t(d - 1)];
    const bool clear = d < D;
    const bool compress = d == 2;
    ws.pivot_owner.assign(size_t(cx.m[size_t(d - 1)]), -1);
    ws.stored.assign(size_t(md), {});
    for (int64_t j = 0; j < md; ++j) {
      if (clear && ws.paired[size_t(d)][size_t(j)]) {
        pos_col[size_t(j)] = 1;  // a pivot one dimension up: positive, its column reduces to zero
        continue;
      }
      const int32_t s = colord[size_t(j)];
      auto& col = ws.col;
      col.clear();
      for (int a = 0; a <= d; ++a) {
        const int32_t r = rowpos[size_t(FAC[int64_t(s) * (d + 1) + a])];
        if (compress && ws.negative_edge[size_t(r)]) continue;
        col.push_back(r);
      }
      std::sort(col.begin(), col.end());
      while (!col.empty()) {
        const int32_t low = col.back();
        const int32_t owner = ws.pivot_owner[size_t(low)];
        if (owner < 0) break;
        add_column(col, ws.stored[size_t(owner)], ws.tmp);
        // The stored column has the same pivot, so the sum's is lower; one that is not means inconsistent tables
        // (a bug, not bad input): stop with an error instead of adding forever.
        if (!col.empty() && col.back() >= low)
          throw std::logic_error("gpuph: internal error: a column addition did not lower the pivot (inconsistent "
                                 "columns)");
      }
      if (col.empty()) {
        pos_col[size_t(j)] = 1;
        continue;
      }
      const int32_t low = col.back();
      ws.pivot_owner[size_t(low)] = int32_t(j);
      paired_row[size_t(low)] = 1;
      pos_row[size_t(low)] = 1;  // (already known for edges; for higher rows implied by being a pivot)
      emit(d - 1, int64_t(ws.crit[size_t(d - 1)][size_t(ws.order[size_t(d - 1)][size_t(low)])]),
           int64_t(ws.crit[size_t(d)][size_t(s)]));
      ws.stored[size_t(j)] = col;
    }
  }
  // Essential classes of dimension 1..min(maxdim, D): positive simplices whose class never dies.
  for (int k = 1; k <= std::min(maxdim, D); ++k) {
    const int64_t mk = cx.m[size_t(k)];
    for (int64_t p = 0; p < mk; ++p)
      if (ws.positive[size_t(k)][size_t(p)] && !ws.paired[size_t(k)][size_t(p)])
        emit(k, int64_t(ws.crit[size_t(k)][size_t(ws.order[size_t(k)][size_t(p)])]), int64_t(-1));
  }
}

}  // namespace simplicial
}  // namespace gpuph
