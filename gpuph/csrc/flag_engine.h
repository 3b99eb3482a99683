// Persistent homology (H0, H1, H2; Z/2) of a flag complex filtered by edge length: the Vietoris-Rips complex of a
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
// H2: the same reduction one dimension up, the coboundary columns of triangles (in decreasing key) with tetrahedra
// as rows. A tetrahedron enters with its longest edge R and is keyed, among those with the same longest edge, by its
// two other vertices p < q: key = (R * n + p) * n + q, so the order refines the filtration by diameter as for
// triangles. Clearing: the triangles that H1's reduction paired (its pivots, emergent ones included) are no columns.
// Apparent pairs (almost every triangle) are found by a scan that stops at the first qualifying vertex, data-parallel
// over the edges, and are never stored: a reduction that meets a tetrahedron as its pivot recomputes whether its
// youngest facet owns it (as Ripser does). Of the columns left, most are emergent (their earliest cofacet is no
// column's pivot yet) and need no heap; the rest are reduced with the heap and a pivot table.
#pragma once
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace gpuph {
namespace flag {

constexpr int32_t kNoEdge = std::numeric_limits<int32_t>::max();
constexpr int64_t kNoOwner = std::numeric_limits<int64_t>::min();

// dim 0: birth = vertex, death = edge rank (-1: essential). dim 1 / 2: birth = rank of the (longest) edge of the
// creating edge / triangle, death = rank of the longest edge of the killing triangle / tetrahedron (-1: essential).
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

  // Smallest common neighbour k < limit of a and b with pred(k, rank(a, k), rank(b, k)), or -1. pred also sees
  // the vertices that are no common neighbours, with a rank kNoEdge (never below any rank it compares with).
  template <typename Pred>
  int32_t find_common(int32_t a, int32_t b, int32_t limit, Pred&& pred) const {
    const int32_t* Ra = R + int64_t(a) * n;
    const int32_t* Rb = R + int64_t(b) * n;
    const int32_t end = std::min(limit, n);
    for (int32_t k = 0; k < end; ++k)
      if (pred(k, Ra[k], Rb[k])) return k;
    return -1;
  }
  // Rank of the edge (u, w), kNoEdge if it is not in the complex.
  int32_t rank_of(int32_t u, int32_t w) const { return R[int64_t(u) * n + w]; }
  // The vertices k joined to both a and b by edges earlier than rank r, ascending, into out (replaced).
  void lower_common(int32_t a, int32_t b, int32_t r, std::vector<int32_t>& out) const {
    const int32_t* Ra = R + int64_t(a) * n;
    const int32_t* Rb = R + int64_t(b) * n;
    out.resize(size_t(n));
    size_t m = 0;
    for (int32_t k = 0; k < n; ++k) {  // branch-free: about half the vertices qualify, unpredictably
      out[m] = k;
      m += size_t(std::max(Ra[k], Rb[k]) < r);  // kNoEdge is never < r
    }
    out.resize(m);
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

// At most this many vertices for LowerSets (n^2 / 8 bytes: 8 MiB a thread); past it H2 scans the rank matrix
// instead (column search and emergent test). A setting only so that tests can take the scans (the op
// _flag_bitset_vertices).
inline std::atomic<int32_t> lower_sets_max_vertices{8192};

// The sets {k : rank(u, k) < T} of all vertices u of a dense complex as bitsets, for a threshold T that moves down
// one edge at a time: common lower neighbours by word-wise ANDs, 64 vertices at once.
class LowerSets {
 public:
  LowerSets(const DenseNeighbours& g, int32_t T) : words_(size_t(g.n + 63) / 64), bits_(size_t(g.n) * words_, 0) {
    for (int32_t u = 0; u < g.n; ++u) {
      const int32_t* Ru = g.R + int64_t(u) * g.n;
      uint64_t* row = &bits_[size_t(u) * words_];
      for (int32_t k = 0; k < g.n; ++k) row[size_t(k) >> 6] |= uint64_t(Ru[k] < T) << (k & 63);
    }
  }
  size_t words() const { return words_; }
  const uint64_t* row(int32_t u) const { return &bits_[size_t(u) * words_]; }
  // The intersection of a's and b's sets into w (words() words).
  void common(int32_t a, int32_t b, uint64_t* w) const {
    const uint64_t *xa = row(a), *xb = row(b);
    for (size_t i = 0; i < words_; ++i) w[i] = xa[i] & xb[i];
  }
  // Lowers T past the edge (a, b) of rank T - 1.
  void drop(int32_t a, int32_t b) {
    bits_[size_t(a) * words_ + (size_t(b) >> 6)] &= ~(uint64_t(1) << (b & 63));
    bits_[size_t(b) * words_ + (size_t(a) >> 6)] &= ~(uint64_t(1) << (a & 63));
  }
  // Whether the sets w and u share a vertex below v (w: a row of words() words).
  bool meet_below(const uint64_t* w, int32_t u, int32_t v) const {
    const uint64_t* x = row(u);
    const size_t full = size_t(v) >> 6;
    for (size_t i = 0; i < full; ++i)
      if (w[i] & x[i]) return true;
    const uint64_t mask = (uint64_t(1) << (v & 63)) - 1;
    return (v & 63) && (w[full] & x[full] & mask);
  }
  // The smallest vertex above v in both w and u's set, or -1.
  int32_t first_above(const uint64_t* w, int32_t u, int32_t v) const {
    const uint64_t* x = row(u);
    size_t i = size_t(v + 1) >> 6;
    uint64_t bits = i < words_ ? w[i] & x[i] & (~uint64_t(0) << ((v + 1) & 63)) : 0;
    while (!bits && ++i < words_) bits = w[i] & x[i];
    return bits ? int32_t(i * 64) + __builtin_ctzll(bits) : -1;
  }

 private:
  size_t words_;
  std::vector<uint64_t> bits_;
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

  int32_t rank_of(int32_t u, int32_t w) const {
    const auto first = nbr.begin() + offset[size_t(u)], last = nbr.begin() + offset[size_t(u) + 1];
    const auto it = std::lower_bound(first, last, w);
    return it != last && *it == w ? rank[size_t(it - nbr.begin())] : kNoEdge;
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
  template <typename Pred>
  int32_t find_common(int32_t a, int32_t b, int32_t limit, Pred&& pred) const {
    int32_t found = -1;
    merge(a, b, [&](int32_t k, int32_t ra, int32_t rb) {
      if (k >= limit) return true;
      if (!pred(k, ra, rb)) return false;
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
  void lower_common(int32_t a, int32_t b, int32_t r, std::vector<int32_t>& out) const {
    out.clear();
    for_common(a, b, [&](int32_t k, int32_t ra, int32_t rb) {
      if (ra < r && rb < r) out.push_back(k);
    });
  }
};

// Smallest vertex k joined to both a and b by edges earlier than rank r, or -1.
template <typename G>
int32_t first_lower_common(const G& g, int32_t a, int32_t b, int32_t r) {
  return g.find_common(a, b, std::numeric_limits<int32_t>::max(),
                       [r](int32_t, int32_t ra, int32_t rb) { return std::max(ra, rb) < r; });
}

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

// A column under reduction: a min-heap of row keys in which equal keys cancel in pairs (Z/2).
class ColumnHeap {
 public:
  void clear() { heap_.clear(); }
  void push(uint64_t key) { heap_.push_back(key); }
  size_t size() const { return heap_.size(); }
  // Restores the heap after the keys pushed since size() was `from` (0: all of them).
  void settle(size_t from) {
    if (from == 0) {
      std::make_heap(heap_.begin(), heap_.end(), later_);
      return;
    }
    for (size_t i = from; i < heap_.size(); ++i) std::push_heap(heap_.begin(), heap_.begin() + ptrdiff_t(i) + 1, later_);
  }
  // The smallest key left after cancellation, or -1 for a zero column.
  int64_t pivot() {
    while (!heap_.empty()) {
      const uint64_t p = heap_.front();
      pop();
      if (!heap_.empty() && heap_.front() == p) {
        pop();
        continue;
      }
      heap_.push_back(p);
      std::push_heap(heap_.begin(), heap_.end(), later_);
      return int64_t(p);
    }
    return -1;
  }

 private:
  void pop() {
    std::pop_heap(heap_.begin(), heap_.end(), later_);
    heap_.pop_back();
  }
  std::vector<uint64_t> heap_;
  std::greater<uint64_t> later_;
};

// A column addition cancels the pivot it was chosen for, so the next pivot is later. One that is not means the
// columns are inconsistent (a bug, not bad input): stop with an error instead of adding forever.
inline void check_pivot_rose(int64_t previous, int64_t pivot) {
  if (pivot >= 0 && pivot <= previous)
    throw std::logic_error("gpuph: internal error: a column addition did not raise the pivot (inconsistent columns)");
}

// Keeps the entries of v that occur an odd number of times, sorted (a column of V mod 2).
template <typename T>
void keep_odd(std::vector<T>& v) {
  std::sort(v.begin(), v.end());
  size_t w = 0;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j < v.size() && v[j] == v[i]) ++j;
    if ((j - i) & 1) v[w++] = v[i];
    i = j;
  }
  v.resize(w);
}

// The triangles H1's reduction paired with an edge (its pivots), which H2's clearing skips: the emergent pairs'
// (edge r with the triangle key r * n + emergent[r]) and the reduced columns' pivot keys.
struct H1Pivots {
  std::vector<int32_t> emergent;
  std::unordered_map<uint64_t, int32_t> keys;  // the reduction's pivot table, moved out of it
  std::vector<uint8_t> keyed;                  // per edge r: whether some key has longest edge r (spares lookups)
  void take(std::vector<int32_t>&& em, std::unordered_map<uint64_t, int32_t>&& table, uint64_t n) {
    emergent = std::move(em);
    keys = std::move(table);
    keyed.assign(emergent.size(), 0);
    for (const auto& kv : keys) keyed[size_t(kv.first / n)] = 1;
  }
  bool has(uint64_t triangle, uint64_t n) const {
    const size_t r = size_t(triangle / n);
    const int32_t v = emergent[r];
    return (v >= 0 && uint64_t(v) == triangle % n) || (keyed[r] && keys.count(triangle) > 0);
  }
};

// H1 pairs of nonzero length and the essential H1 classes into out (when emit). tree: from kruskal. pivots, if
// given, receives the triangles paired (for H2's clearing).
template <typename G>
void reduce_h1(const RankedEdges& e, const G& g, const std::vector<uint8_t>& tree, std::vector<FlagPair>& out,
               bool emit = true, H1Pivots* pivots = nullptr) {
  const int32_t M = e.size();
  const uint64_t n = uint64_t(e.n);
  // Emergent pairs, data-parallel (serial when already inside a parallel region, i.e. parallel over a batch).
  // A large grain: small complexes are done before a parallel region would even start.
  std::vector<int32_t> emergent(size_t(M), -1);
  at::parallel_for(0, M, int64_t(1) << 15, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      if (!tree[size_t(r)]) emergent[size_t(r)] = first_lower_common(g, e.a[size_t(r)], e.b[size_t(r)], int32_t(r));
  });

  ColumnHeap heap;
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
      heap.push(uint64_t(r1) * n + uint64_t(v));
    });
  };

  std::unordered_map<uint64_t, int32_t> owner;  // pivot key -> reduced column (index into columns)
  std::vector<std::vector<int32_t>> columns;    // V: the edges whose coboundaries sum to each reduced column
  std::vector<int32_t> v_col;
  for (int32_t r = M - 1; r >= 0; --r) {
    if (tree[size_t(r)] || emergent[size_t(r)] >= 0) continue;
    heap.clear();
    v_col.assign(1, r);
    add_coboundary(r);
    heap.settle(0);
    for (int64_t previous = -1;;) {
      const int64_t p = heap.pivot();
      check_pivot_rose(previous, p);
      previous = p;
      if (p < 0) {  // a cocycle that nothing kills: an essential class (possible in a truncated complex)
        if (emit) out.push_back({1, r, -1});
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
          keep_odd(v_col);
          owner.emplace(uint64_t(p), int32_t(columns.size()));
          columns.push_back(v_col);
          if (emit && e.len[size_t(r1)] > e.len[size_t(r)]) out.push_back({1, r, r1});
          break;
        }
        for (int32_t q : columns[size_t(it->second)]) {
          v_col.push_back(q);
          add_coboundary(q);
        }
      }
      heap.settle(before);
    }
  }
  if (pivots) pivots->take(std::move(emergent), std::move(owner), n);
}

// H2 pairs of nonzero length and the essential H2 classes into out; h1: the triangles H1 paired (reduce_h1).
template <typename G>
void reduce_h2(const RankedEdges& e, const G& g, const H1Pivots& h1, std::vector<FlagPair>& out) {
  const int32_t M = e.size();
  const uint64_t n = uint64_t(e.n);
  ColumnHeap heap;
  // The tetrahedra on triangle t = (longest edge r1 = (a, b), opposite vertex v): a fourth vertex k joined to a, b
  // and v. Each is keyed by its longest edge R and the other two vertices (p, q).
  auto for_cofacets = [&](uint64_t t, auto&& fn) {
    const int32_t r1 = int32_t(t / n), v = int32_t(t % n);
    const int32_t a = e.a[size_t(r1)], b = e.b[size_t(r1)];
    g.for_common(a, b, [&](int32_t k, int32_t ra, int32_t rb) {
      if (k == v) return;
      const int32_t rv = g.rank_of(v, k);
      if (rv == kNoEdge) return;
      int32_t R = r1, p = v, q = k;  // r1 is the longest edge of t: only edges at k can be longer
      if (ra > R) {
        R = ra;
        p = b;
        q = v;
      }
      if (rb > R) {
        R = rb;
        p = a;
        q = v;
      }
      if (rv > R) {
        R = rv;
        p = a;
        q = b;
      }
      if (p > q) std::swap(p, q);
      fn((uint64_t(R) * n + uint64_t(p)) * n + uint64_t(q));
    });
  };
  auto add_coboundary = [&](uint64_t t) { for_cofacets(t, [&](uint64_t key) { heap.push(key); }); };
  // Apparent pairs (most triangles): t = (r1, v) and its earliest cofacet T, when T has t's longest edge and t is
  // T's youngest facet. T's other two vertices are then v and a k < v (with k > v, t is not the youngest), and the
  // smallest such k gives the earliest T; so this stops at the first k < v whose three edges to a, b, v are earlier
  // than r1. Returns that k, or -1 (t is no apparent pair). No column reduced before t (younger triangles, and sums
  // of their coboundaries) has T, so T is t's pivot at once; the pair has length zero.
  auto apparent_vertex = [&](int32_t r1, int32_t v, int32_t limit) {
    return g.find_common(e.a[size_t(r1)], e.b[size_t(r1)], limit, [&](int32_t k, int32_t ra, int32_t rb) {
      return ra < r1 && rb < r1 && g.rank_of(v, k) < r1;  // kNoEdge is never < r1
    });
  };

  // Pivot key -> the reduced column that owns it: >= 0, a column that is one triangle's coboundary (that
  // triangle's key); < 0, -1 - its index into `columns` (V: the triangles whose coboundaries sum to it). Apparent
  // pairs are not stored: the owner of T = (R, p, q) is the triangle (R, q) when its apparent vertex is p, i.e. no
  // k < p qualifies (as Ripser looks up apparent pairs on the fly). That triangle is never one H1 cleared: an
  // apparent pair is a persistence pair, and no simplex is in two.
  std::unordered_map<uint64_t, int64_t> owner;
  auto owner_of = [&](uint64_t T) -> int64_t {  // the column that owns pivot T (as in `owner`), or kNoOwner
    const auto it = owner.find(T);
    if (it != owner.end()) return it->second;
    const uint64_t Rp = T / n;
    const int32_t R = int32_t(Rp / n), p = int32_t(Rp % n), q = int32_t(T % n);
    const uint64_t t = uint64_t(R) * n + uint64_t(q);
    if (apparent_vertex(R, q, p) < 0) return int64_t(t);
    return kNoOwner;
  };
  // The columns: the triangles neither cleared nor apparent, found data-parallel (serial when already inside a
  // parallel region, i.e. parallel over a batch) in chunks of edges, each chunk's in decreasing key; the chunks are
  // then reduced from the last, so the columns come in decreasing key. Few remain (under 1% of the triangles of
  // uniform clouds).
  // Edges a chunk: about 2^16 vertex visits, and at most 4096 chunks (each holds a vector).
  const int64_t chunk = std::max<int64_t>({1, (int64_t(1) << 16) / std::max<int64_t>(1, e.n), int64_t(M) / 4096});
  const int64_t chunks = (int64_t(M) + chunk - 1) / chunk;
  std::vector<std::vector<uint64_t>> found(static_cast<size_t>(chunks));
  // A small complex is done before a parallel region would even start.
  const int64_t grain = int64_t(M) * e.n < (int64_t(1) << 18) ? chunks : 1;
  at::parallel_for(0, chunks, grain, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same<G, DenseNeighbours>::value) {
      if (e.n <= lower_sets_max_vertices.load(std::memory_order_relaxed)) {
        // The same search on bitsets, walking this thread's edges down from the top.
        LowerSets lower(g, int32_t(std::min<int64_t>(M, end * chunk)));
        std::vector<uint64_t> w(lower.words());
        for (int64_t c = end - 1; c >= begin; --c) {
          const int32_t lo = int32_t(c * chunk), hi = int32_t(std::min<int64_t>(M, (c + 1) * chunk));
          for (int32_t r1 = hi - 1; r1 >= lo; --r1) {
            const int32_t a = e.a[size_t(r1)], b = e.b[size_t(r1)];
            lower.drop(a, b);
            lower.common(a, b, w.data());
            for (size_t i = w.size(); i-- > 0;)
              for (uint64_t bits = w[i]; bits;) {
                const int32_t hb = 63 - __builtin_clzll(bits);
                bits &= ~(uint64_t(1) << hb);
                const int32_t v = int32_t(i * 64) + hb;
                const uint64_t t = uint64_t(r1) * n + uint64_t(v);
                if (!h1.has(t, n) && !lower.meet_below(w.data(), v, v)) found[size_t(c)].push_back(t);
              }
          }
        }
        return;
      }
    }
    std::vector<int32_t> opposite;
    for (int64_t c = begin; c < end; ++c) {
      const int32_t lo = int32_t(c * chunk), hi = int32_t(std::min<int64_t>(M, (c + 1) * chunk));
      for (int32_t r1 = hi - 1; r1 >= lo; --r1) {
        // The triangles whose longest edge is r1, by decreasing opposite vertex.
        g.lower_common(e.a[size_t(r1)], e.b[size_t(r1)], r1, opposite);
        for (auto it = opposite.rbegin(); it != opposite.rend(); ++it) {
          const uint64_t t = uint64_t(r1) * n + uint64_t(*it);
          if (!h1.has(t, n) && apparent_vertex(r1, *it, *it) < 0) found[size_t(c)].push_back(t);
        }
      }
    }
  });

  // Dense complexes: the earliest cofacet of almost every column t = (r1, v) has t's longest edge r1, i.e. is
  // T = (r1, v, k) with k the smallest vertex above v joined to a, b and v by edges earlier than r1 (none is below v,
  // or t would be apparent). Bitsets lowered with the columns find it without visiting every vertex. T is then
  // nobody's pivot, and t emergent, unless (r1, k) is an apparent pair with T: the only facet of T reduced before t
  // is (r1, k) (the others have no edge r1, or an opposite vertex below v), and v qualifies for it, so (r1, k) is
  // apparent, with T or with an earlier (r1, j, k); in that case no column sums it in, since that pivot is a cofacet
  // of no other triangle reduced before t. So the pivot table need not be asked.
  std::unique_ptr<LowerSets> lowered;
  int32_t lowered_to = M;
  std::vector<uint64_t> w;
  if constexpr (std::is_same<G, DenseNeighbours>::value) {
    const bool any = std::any_of(found.begin(), found.end(), [](const auto& f) { return !f.empty(); });
    if (any && e.n <= lower_sets_max_vertices.load(std::memory_order_relaxed)) {
      lowered = std::make_unique<LowerSets>(g, M);
      w.resize(lowered->words());
    }
  }
  auto emergent_by_bitsets = [&](uint64_t t) {
    const int32_t r1 = int32_t(t / n), v = int32_t(t % n), a = e.a[size_t(r1)], b = e.b[size_t(r1)];
    for (; lowered_to > r1; --lowered_to) lowered->drop(e.a[size_t(lowered_to - 1)], e.b[size_t(lowered_to - 1)]);
    lowered->common(a, b, w.data());
    const int32_t k = lowered->first_above(w.data(), v, v);
    if (k < 0) return false;
    const uint64_t T = (uint64_t(r1) * n + uint64_t(v)) * n + uint64_t(k);
    if (!lowered->meet_below(w.data(), k, v)) return false;  // (r1, k)'s apparent vertex is v: T is its pivot
    owner.emplace(T, int64_t(t));  // a pair of length zero
    return true;
  };

  std::vector<std::vector<uint64_t>> columns;
  std::vector<uint64_t> v_col;
  for (int64_t c = chunks - 1; c >= 0; --c) {
    for (const uint64_t t : found[size_t(c)]) {
      if (lowered && emergent_by_bitsets(t)) continue;
      const int32_t r1 = int32_t(t / n);
      auto pair_with = [&](uint64_t T) {
        const int32_t R = int32_t(T / n / n);
        if (e.len[size_t(R)] > e.len[size_t(r1)]) out.push_back({2, r1, R});
      };
      heap.clear();
      uint64_t first = ~uint64_t(0);
      for_cofacets(t, [&](uint64_t key) {
        heap.push(key);
        first = std::min(first, key);
      });
      // Emergent (most columns left): t's earliest cofacet is no column's pivot yet, so it is t's; no heap.
      if (first != ~uint64_t(0) && owner_of(first) == kNoOwner) {
        owner.emplace(first, int64_t(t));
        pair_with(first);
        continue;
      }
      v_col.assign(1, t);
      heap.settle(0);
      for (int64_t previous = -1;;) {
        const int64_t p = heap.pivot();
        check_pivot_rose(previous, p);
        previous = p;
        if (p < 0) {  // nothing kills it: an essential class (possible in a truncated complex)
          out.push_back({2, r1, -1});
          break;
        }
        const size_t before = heap.size();
        const int64_t o = owner_of(uint64_t(p));
        if (o == kNoOwner) {
          keep_odd(v_col);
          if (v_col.size() == 1) {
            owner.emplace(uint64_t(p), int64_t(v_col[0]));
          } else {
            owner.emplace(uint64_t(p), -1 - int64_t(columns.size()));
            columns.push_back(v_col);
          }
          pair_with(uint64_t(p));
          break;
        }
        if (o >= 0) {
          v_col.push_back(uint64_t(o));
          add_coboundary(uint64_t(o));
        } else {
          for (uint64_t q : columns[size_t(-1 - o)]) {
            v_col.push_back(q);
            add_coboundary(q);
          }
        }
        heap.settle(before);
      }
    }
  }
}

template <typename G>
void flag_persistence(const RankedEdges& e, const G& g, bool h0, bool h1, bool h2, std::vector<FlagPair>& out) {
  std::vector<uint8_t> tree;
  kruskal(e, h0, tree, out);
  if (!h1 && !h2) return;
  H1Pivots pivots;
  reduce_h1(e, g, tree, out, h1, h2 ? &pivots : nullptr);
  if (h2) reduce_h2(e, g, pivots, out);
}

}  // namespace flag
}  // namespace gpuph
