// Persistent homology (H0, H1; Z/2) of a flag complex filtered by edge length: the Vietoris-Rips complex of a
// distance matrix (dense) or the flag complex of a graph, e.g. the Delaunay graph for weak Alpha (sparse).
//
// Filtration order. Edges are ranked 0..M-1 by (length, code) with code = i * N + j (i < j): a total order. A
// triangle enters with its longest edge (by rank, r1) and is keyed, among the triangles with the same longest edge,
// by the vertex v opposite to it: key = r1 * n + v. This refines the filtration by diameter, so the diagrams (pairs
// of nonzero length) are the usual ones; the order only fixes which edge is critical when lengths tie.
//
// H0: Kruskal's union-find over the ranked edges with the elder rule (all vertices are born at 0; the component
// whose smallest vertex is larger dies).
// H1: the persistent cohomology reduction of Ripser (Bauer 2021): the coboundary columns of edges, in decreasing
// rank, with pivot = the earliest cofacet; coboundaries are generated on the fly from the rank matrix / adjacency
// lists, never stored. Clearing: edges of the spanning forest are no columns. Emergent pairs: an edge e whose
// earliest cofacet has e as its longest edge (a vertex k with both other edges earlier than e) is paired with that
// triangle at once (the pair has length 0); such a triangle can be no earlier column's pivot, since those columns
// are sums of coboundaries of later edges. These pairs are found in one data-parallel pass and kept as one int per
// edge, so only the few remaining columns are reduced (with a heap and a hash table of pivots, as in Ripser, and
// the reduction matrix V stored per column).
#pragma once
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <vector>

namespace gpuph {
namespace flag {

constexpr int32_t kNoEdge = std::numeric_limits<int32_t>::max();

// dim 0: birth = vertex, death = edge rank (-1: essential). dim 1: birth = edge rank, death = rank of the longest
// edge of the killing triangle (-1: essential).
struct FlagPair {
  int32_t dim;
  int32_t birth;
  int32_t death;
};

// The edges in filtration order.
struct RankedEdges {
  int32_t n = 0;             // vertices
  std::vector<int32_t> a, b;  // endpoints of the edge of rank r, a < b
  std::vector<double> len;    // its length
  int32_t size() const { return int32_t(a.size()); }
  RankedEdges(int32_t vertices, size_t edges) : n(vertices), a(edges), b(edges), len(edges) {}
};

// Neighbourhoods from a dense n x n rank matrix (kNoEdge off the complex and on the diagonal).
struct DenseNeighbours {
  int32_t n;
  const int32_t* R;

  // Smallest vertex k joined to both a and b by edges earlier than rank r, or -1.
  int32_t first_lower_common(int32_t a, int32_t b, int32_t r) const {
    const int32_t* Ra = R + int64_t(a) * n;
    const int32_t* Rb = R + int64_t(b) * n;
    for (int32_t k = 0; k < n; ++k)
      if (std::max(Ra[k], Rb[k]) < r) return k;  // kNoEdge is never < r
    return -1;
  }
  template <typename Fn>
  void for_common(int32_t a, int32_t b, Fn&& fn) const {
    const int32_t* Ra = R + int64_t(a) * n;
    const int32_t* Rb = R + int64_t(b) * n;
    for (int32_t k = 0; k < n; ++k) {
      const int32_t ra = Ra[k], rb = Rb[k];
      if (ra != kNoEdge && rb != kNoEdge) fn(k, ra, rb);
    }
  }
};

// Neighbourhoods from adjacency lists sorted by neighbour (CSR): common neighbours by merging two lists.
struct SparseNeighbours {
  std::vector<int64_t> offset;  // n + 1
  std::vector<int32_t> nbr, rank;

  void build(const RankedEdges& e) {
    const int32_t n = e.n, M = e.size();
    offset.assign(size_t(n) + 1, 0);
    for (int32_t r = 0; r < M; ++r) {
      ++offset[size_t(e.a[r]) + 1];
      ++offset[size_t(e.b[r]) + 1];
    }
    for (int32_t v = 0; v < n; ++v) offset[size_t(v) + 1] += offset[size_t(v)];
    nbr.resize(size_t(2) * M);
    rank.resize(size_t(2) * M);
    std::vector<int64_t> fill(offset.begin(), offset.end() - 1);
    // Ranks ascending per vertex; then sorted by neighbour below.
    for (int32_t r = 0; r < M; ++r) {
      int64_t p = fill[size_t(e.a[r])]++;
      nbr[size_t(p)] = e.b[r];
      rank[size_t(p)] = r;
      p = fill[size_t(e.b[r])]++;
      nbr[size_t(p)] = e.a[r];
      rank[size_t(p)] = r;
    }
    std::vector<std::pair<int32_t, int32_t>> tmp;
    for (int32_t v = 0; v < n; ++v) {
      const int64_t s = offset[size_t(v)], t = offset[size_t(v) + 1];
      tmp.clear();
      for (int64_t p = s; p < t; ++p) tmp.emplace_back(nbr[size_t(p)], rank[size_t(p)]);
      std::sort(tmp.begin(), tmp.end());
      for (int64_t p = s; p < t; ++p) {
        nbr[size_t(p)] = tmp[size_t(p - s)].first;
        rank[size_t(p)] = tmp[size_t(p - s)].second;
      }
    }
  }
  // True when some vertex has the same neighbour twice (a repeated edge).
  bool has_repeated_edge() const {
    for (size_t v = 0; v + 1 < offset.size(); ++v)
      for (int64_t p = offset[v] + 1; p < offset[v + 1]; ++p)
        if (nbr[size_t(p)] == nbr[size_t(p - 1)]) return true;
    return false;
  }

  template <typename Fn>
  bool merge(int32_t a, int32_t b, Fn&& fn) const {  // fn(k, ra, rb) returns true to stop
    int64_t i = offset[size_t(a)], ie = offset[size_t(a) + 1];
    int64_t j = offset[size_t(b)], je = offset[size_t(b) + 1];
    while (i < ie && j < je) {
      const int32_t ki = nbr[size_t(i)], kj = nbr[size_t(j)];
      if (ki < kj) {
        ++i;
      } else if (kj < ki) {
        ++j;
      } else {
        if (fn(ki, rank[size_t(i)], rank[size_t(j)])) return true;
        ++i;
        ++j;
      }
    }
    return false;
  }
  int32_t first_lower_common(int32_t a, int32_t b, int32_t r) const {
    int32_t found = -1;
    merge(a, b, [&](int32_t k, int32_t ra, int32_t rb) {
      if (std::max(ra, rb) >= r) return false;
      found = k;
      return true;
    });
    return found;
  }
  template <typename Fn>
  void for_common(int32_t a, int32_t b, Fn&& fn) const {
    merge(a, b, [&](int32_t k, int32_t ra, int32_t rb) {
      fn(k, ra, rb);
      return false;
    });
  }
};

// H0 pairs of nonzero length and the essential classes into out (when emit_h0); marks the spanning-forest edges.
inline void kruskal(const RankedEdges& e, bool emit_h0, std::vector<uint8_t>& tree, std::vector<FlagPair>& out) {
  const int32_t n = e.n, M = e.size();
  std::vector<int32_t> parent(static_cast<size_t>(n)), size(static_cast<size_t>(n), 1), oldest(static_cast<size_t>(n));
  std::iota(parent.begin(), parent.end(), 0);
  std::iota(oldest.begin(), oldest.end(), 0);
  auto find = [&](int32_t v) {
    while (parent[size_t(v)] != v) {
      parent[size_t(v)] = parent[size_t(parent[size_t(v)])];  // path halving
      v = parent[size_t(v)];
    }
    return v;
  };
  tree.assign(size_t(M), 0);
  int32_t components = n;
  for (int32_t r = 0; r < M && components > 1; ++r) {
    int32_t u = find(e.a[r]), w = find(e.b[r]);
    if (u == w) continue;
    tree[size_t(r)] = 1;
    --components;
    // Elder rule: every vertex is born at 0, so the component whose smallest vertex is larger dies.
    const int32_t young = std::max(oldest[size_t(u)], oldest[size_t(w)]);
    const int32_t old = std::min(oldest[size_t(u)], oldest[size_t(w)]);
    if (emit_h0 && e.len[size_t(r)] > 0) out.push_back({0, young, r});
    if (size[size_t(u)] < size[size_t(w)]) std::swap(u, w);
    parent[size_t(w)] = u;
    size[size_t(u)] += size[size_t(w)];
    oldest[size_t(u)] = old;
  }
  if (emit_h0)
    for (int32_t v = 0; v < n; ++v)
      if (find(v) == v) out.push_back({0, oldest[size_t(v)], -1});
}

// H1 pairs of nonzero length and the essential H1 classes into out. tree: from kruskal.
template <typename G>
void reduce_h1(const RankedEdges& e, const G& g, const std::vector<uint8_t>& tree, std::vector<FlagPair>& out) {
  const int32_t M = e.size();
  const uint64_t n = uint64_t(e.n);
  // Emergent pairs, data-parallel (serial when already inside a parallel region, i.e. parallel over a batch).
  // A large grain: small complexes are done before a parallel region would even start.
  std::vector<int32_t> emergent(size_t(M), -1);
  at::parallel_for(0, M, int64_t(1) << 15, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      if (!tree[size_t(r)]) emergent[size_t(r)] = g.first_lower_common(e.a[size_t(r)], e.b[size_t(r)], int32_t(r));
  });

  std::vector<uint64_t> heap;  // min-heap of cofacet keys; equal keys cancel in pairs (Z/2)
  const std::greater<uint64_t> later;
  auto add_coboundary = [&](int32_t r) {
    g.for_common(e.a[size_t(r)], e.b[size_t(r)], [&](int32_t k, int32_t ra, int32_t rb) {
      int32_t r1 = r;
      int32_t v = k;
      if (ra > r1) {  // the edge (a, k) is the longest: b is opposite
        r1 = ra;
        v = e.b[size_t(r)];
      }
      if (rb > r1) {
        r1 = rb;
        v = e.a[size_t(r)];
      }
      heap.push_back(uint64_t(r1) * n + uint64_t(v));
    });
  };
  auto pivot = [&]() -> int64_t {
    while (!heap.empty()) {
      const uint64_t p = heap.front();
      std::pop_heap(heap.begin(), heap.end(), later);
      heap.pop_back();
      if (!heap.empty() && heap.front() == p) {
        std::pop_heap(heap.begin(), heap.end(), later);
        heap.pop_back();
        continue;
      }
      heap.push_back(p);
      std::push_heap(heap.begin(), heap.end(), later);
      return int64_t(p);
    }
    return -1;
  };

  std::unordered_map<uint64_t, int32_t> owner;  // pivot key -> reduced column (index into columns)
  std::vector<std::vector<int32_t>> columns;    // V: the edges whose coboundaries sum to each reduced column
  std::vector<int32_t> v_col;
  for (int32_t r = M - 1; r >= 0; --r) {
    if (tree[size_t(r)] || emergent[size_t(r)] >= 0) continue;
    heap.clear();
    v_col.assign(1, r);
    add_coboundary(r);
    std::make_heap(heap.begin(), heap.end(), later);
    while (true) {
      const int64_t p = pivot();
      if (p < 0) {  // a cocycle that nothing kills: an essential class (possible in a truncated complex)
        out.push_back({1, r, -1});
        break;
      }
      const int32_t r1 = int32_t(uint64_t(p) / n);
      const int32_t v = int32_t(uint64_t(p) % n);
      const size_t before = heap.size();
      if (emergent[size_t(r1)] == v) {
        v_col.push_back(r1);
        add_coboundary(r1);
      } else {
        auto it = owner.find(uint64_t(p));
        if (it == owner.end()) {
          std::sort(v_col.begin(), v_col.end());  // keep V mod 2
          size_t w = 0;
          for (size_t i = 0; i < v_col.size();) {
            size_t j = i;
            while (j < v_col.size() && v_col[j] == v_col[i]) ++j;
            if ((j - i) & 1) v_col[w++] = v_col[i];
            i = j;
          }
          v_col.resize(w);
          owner.emplace(uint64_t(p), int32_t(columns.size()));
          columns.push_back(v_col);
          if (e.len[size_t(r1)] > e.len[size_t(r)]) out.push_back({1, r, r1});
          break;
        }
        for (int32_t q : columns[size_t(it->second)]) {
          v_col.push_back(q);
          add_coboundary(q);
        }
      }
      for (size_t i = before; i < heap.size(); ++i) std::push_heap(heap.begin(), heap.begin() + ptrdiff_t(i) + 1, later);
    }
  }
}

template <typename G>
void flag_persistence(const RankedEdges& e, const G& g, bool h0, bool h1, std::vector<FlagPair>& out) {
  std::vector<uint8_t> tree;
  kruskal(e, h0, tree, out);
  if (h1) reduce_h1(e, g, tree, out);
}

}  // namespace flag
}  // namespace gpuph
