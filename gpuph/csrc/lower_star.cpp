// gpuph::lower_star_pairs: exact (Z/2) persistence of lower-star filtrations of vertex values on a simplicial
// complex, for a batch of value vectors on one shared complex.
//
// lower_star_pairs(values, simplices, facets, maxdim, superlevel) -> int64 (N, 4)
//   values: contiguous float32/float64 (B, n) on the CPU, one row of vertex values per image.
//   simplices[d-1]: int64 (m_d, d+1), the d-simplices (d = 1..D) as vertex ids, each listed once (the complex is closed
//     and deduplicated in Python: gpuph/lower_star.py).
//   facets[d-2]: int64 (m_d, d+1), for d = 2..D: row i holds the indices into simplices[d-2] of the facets of simplex i.
//   rows: (image, dim, birth vertex, death vertex) with -1 for essential classes, zero-length pairs dropped, in the
//   pinned order: image, dim, lifetime descending (essential first, among themselves by birth in filtration order),
//   birth vertex, death vertex.
//
// Filtration order (a total order, so critical vertices and gradients are deterministic): vertices by (value, index),
// values descending for superlevel; a simplex by its vertex ranks sorted descending, compared lexicographically. The
// first of these ranks is its critical vertex, whose value is the simplex's value, so this orders simplices by value
// first, and every face comes before its cofaces (a proper prefix or a smaller rank at the first difference).
//
// Reduction: H0 by union-find with the elder rule over the edges; then the boundary matrices from the top dimension
// down, standard column reduction with clearing (columns of simplices found positive as pivots one dimension up are
// skipped: they reduce to zero) and, for the triangles, compression (rows of edges that killed an H0 class are dropped:
// they are never pivots). Images run in parallel with at::parallel_for.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <numeric>
#include <utility>
#include <vector>

namespace gpuph {
namespace {

struct Complex {
  int64_t n = 0;                               // vertices
  int D = 0;                                   // top dimension present (0 when there are no edges)
  std::vector<const int64_t*> verts;           // verts[d]: (m_d, d+1), d = 1..D (index 0 unused)
  std::vector<const int64_t*> facets;          // facets[d]: (m_d, d+1), d = 2..D
  std::vector<int64_t> m;                      // m[d]: number of d-simplices (m[0] = n)
};

struct Row {
  int32_t dim;
  int64_t birth;
  int64_t death;       // -1: essential
  double life;         // inf for essential classes
  int32_t birth_rank;  // the birth vertex's place in the filtration order
};

struct Workspace {
  std::vector<int32_t> vorder, vrank;            // vertices in filtration order; rank of each vertex
  std::vector<std::vector<int32_t>> order, pos;  // order[d][p]: simplex at position p; pos[d][id]: its position
  std::vector<std::vector<int32_t>> crit;        // crit[d][id]: critical vertex
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

int bits_for(int64_t n) {
  int b = 1;
  while ((int64_t(1) << b) < n) ++b;
  return b;
}

// Sorts the d-simplices by their descending rank tuples: fills order[d], pos[d] and crit[d].
void sort_simplices(const Complex& cx, int d, Workspace& ws) {
  const int64_t md = cx.m[size_t(d)];
  const int k = d + 1;
  const int64_t* V = cx.verts[size_t(d)];
  auto& ord = ws.order[size_t(d)];
  auto& ps = ws.pos[size_t(d)];
  auto& cr = ws.crit[size_t(d)];
  ord.resize(size_t(md));
  ps.resize(size_t(md));
  cr.resize(size_t(md));
  ws.tuples.resize(size_t(md * k));
  int32_t* T = ws.tuples.data();
  for (int64_t i = 0; i < md; ++i) {
    int32_t* t = T + i * k;
    for (int a = 0; a < k; ++a) t[a] = ws.vrank[size_t(V[i * k + a])];
    // insertion sort, descending (k is small)
    for (int a = 1; a < k; ++a)
      for (int b = a; b > 0 && t[b - 1] < t[b]; --b) std::swap(t[b - 1], t[b]);
    cr[size_t(i)] = ws.vorder[size_t(t[0])];
  }
  std::iota(ord.begin(), ord.end(), 0);
  const int bits = bits_for(cx.n);
  if (bits * k <= 64) {
    // Packed keys: one integer comparison per pair.
    ws.keys.resize(size_t(md));
    for (int64_t i = 0; i < md; ++i) {
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
  for (int64_t p = 0; p < md; ++p) ps[size_t(ord[size_t(p)])] = int32_t(p);
}

int32_t uf_find(std::vector<int32_t>& parent, int32_t x) {
  while (parent[size_t(x)] != x) {
    parent[size_t(x)] = parent[size_t(parent[size_t(x)])];
    x = parent[size_t(x)];
  }
  return x;
}

// a ^= b for sorted ascending index lists (symmetric difference, Z/2 column addition).
void add_column(std::vector<int32_t>& a, const std::vector<int32_t>& b, std::vector<int32_t>& tmp) {
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

template <typename F>
bool one_image(const Complex& cx, const F* x, bool superlevel, int maxdim, Workspace& ws, std::vector<Row>& rows) {
  rows.clear();
  const int64_t n = cx.n;
  for (int64_t v = 0; v < n; ++v)
    if (std::isnan(x[v])) return false;
  // Vertex order: (value, index), values descending for superlevel; -0.0 == +0.0 under this comparison.
  ws.vorder.resize(size_t(n));
  ws.vrank.resize(size_t(n));
  std::iota(ws.vorder.begin(), ws.vorder.end(), 0);
  if (superlevel)
    std::sort(ws.vorder.begin(), ws.vorder.end(),
              [x](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
  else
    std::sort(ws.vorder.begin(), ws.vorder.end(),
              [x](int32_t a, int32_t b) { return x[a] < x[b] || (x[a] == x[b] && a < b); });
  for (int64_t r = 0; r < n; ++r) ws.vrank[size_t(ws.vorder[size_t(r)])] = int32_t(r);

  const int D = cx.D;
  ws.order.resize(size_t(D + 1));
  ws.pos.resize(size_t(D + 1));
  ws.crit.resize(size_t(D + 1));
  ws.positive.assign(size_t(D + 1), {});
  ws.paired.assign(size_t(D + 1), {});
  for (int d = 1; d <= D; ++d) {
    sort_simplices(cx, d, ws);
    ws.positive[size_t(d)].assign(size_t(cx.m[size_t(d)]), 0);
    ws.paired[size_t(d)].assign(size_t(cx.m[size_t(d)]), 0);
  }
  auto emit = [&](int dim, int64_t bv, int64_t dv) {
    if (dim > maxdim) return;
    if (dv < 0) {
      rows.push_back({int32_t(dim), bv, -1, std::numeric_limits<double>::infinity(), ws.vrank[size_t(bv)]});
      return;
    }
    if (x[bv] == x[dv]) return;  // zero length: depends on tie-breaking, never returned
    rows.push_back({int32_t(dim), bv, dv, std::fabs(double(x[bv]) - double(x[dv])), ws.vrank[size_t(bv)]});
  };

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
      emit(0, a_elder ? ob : oa, ws.crit[1][size_t(e)]);
      if (ws.uf_size[size_t(a)] < ws.uf_size[size_t(b)]) std::swap(a, b);
      ws.uf_parent[size_t(b)] = a;
      ws.uf_size[size_t(a)] += ws.uf_size[size_t(b)];
      ws.uf_oldest[size_t(a)] = a_elder ? oa : ob;
    }
  }
  for (int64_t v = 0; v < n; ++v)
    if (ws.uf_parent[size_t(v)] == v) emit(0, ws.uf_oldest[size_t(v)], -1);

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
        const int32_t owner = ws.pivot_owner[size_t(col.back())];
        if (owner < 0) break;
        add_column(col, ws.stored[size_t(owner)], ws.tmp);
      }
      if (col.empty()) {
        pos_col[size_t(j)] = 1;
        continue;
      }
      const int32_t low = col.back();
      ws.pivot_owner[size_t(low)] = int32_t(j);
      paired_row[size_t(low)] = 1;
      pos_row[size_t(low)] = 1;  // (already known for edges; for higher rows implied by being a pivot)
      emit(d - 1, ws.crit[size_t(d - 1)][size_t(ws.order[size_t(d - 1)][size_t(low)])], ws.crit[size_t(d)][size_t(s)]);
      ws.stored[size_t(j)] = col;
    }
  }
  // Essential classes of dimension 1..min(maxdim, D): positive simplices whose class never dies.
  for (int k = 1; k <= std::min(maxdim, D); ++k) {
    const int64_t mk = cx.m[size_t(k)];
    for (int64_t p = 0; p < mk; ++p)
      if (ws.positive[size_t(k)][size_t(p)] && !ws.paired[size_t(k)][size_t(p)])
        emit(k, ws.crit[size_t(k)][size_t(ws.order[size_t(k)][size_t(p)])], -1);
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    if (a.dim != b.dim) return a.dim < b.dim;
    if (a.life != b.life) return a.life > b.life;
    if ((a.death < 0) != (b.death < 0)) return a.death < 0;  // essential first among infinite lifetimes
    // Essential classes by birth in filtration order: closed at the filtration's end (as the losses close them), the
    // earliest born lives longest, so the order of the lifetimes does not depend on how the vertices are numbered.
    if (a.death < 0 && a.birth_rank != b.birth_rank) return a.birth_rank < b.birth_rank;
    if (a.birth != b.birth) return a.birth < b.birth;
    return a.death < b.death;
  });
  return true;
}

template <typename F>
std::vector<std::vector<Row>> run_batch(const Complex& cx, const F* data, int64_t B, bool superlevel, int maxdim) {
  std::vector<std::vector<Row>> rows(static_cast<size_t>(B));
  std::vector<int64_t> nan_image;
  std::mutex mutex;
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    Workspace ws;
    for (int64_t b = begin; b < end; ++b) {
      if (!one_image(cx, data + b * cx.n, superlevel, maxdim, ws, rows[size_t(b)])) {
        std::lock_guard<std::mutex> lock(mutex);
        nan_image.push_back(b);
      }
    }
  });
  if (!nan_image.empty()) {
    const int64_t b = *std::min_element(nan_image.begin(), nan_image.end());
    TORCH_CHECK_VALUE(false, "gpuph: values contain NaN (first in batch element ", b,
                      "); NaN is not a filtration value. Replace it, e.g. with torch.nan_to_num.");
  }
  return rows;
}

torch::Tensor lower_star_pairs_cpu(const torch::Tensor& values, at::TensorList simplices, at::TensorList facets,
                                   int64_t maxdim, bool superlevel) {
  TORCH_CHECK_VALUE(values.dim() == 2, "gpuph: lower_star_pairs expects values of shape (B, n)");
  TORCH_CHECK_TYPE(values.scalar_type() == at::kFloat || values.scalar_type() == at::kDouble,
                   "gpuph: lower_star_pairs expects float32 or float64 values, got ", values.scalar_type());
  TORCH_CHECK(values.device().is_cpu(), "gpuph: lower_star_pairs_cpu got a tensor on ", values.device());
  TORCH_CHECK_VALUE(maxdim >= 0, "gpuph: maxdim must be >= 0");
  TORCH_CHECK_VALUE(facets.size() + 1 == simplices.size() || (simplices.empty() && facets.empty()),
                    "gpuph: lower_star_pairs needs one facet table per simplex dimension >= 2");
  const torch::Tensor vals = values.contiguous();
  Complex cx;
  cx.n = vals.size(1);
  TORCH_CHECK_VALUE(cx.n < (int64_t(1) << 31), "gpuph: at most 2^31 - 1 vertices");
  cx.D = int(simplices.size());
  cx.verts.assign(size_t(cx.D + 1), nullptr);
  cx.facets.assign(size_t(cx.D + 1), nullptr);
  cx.m.assign(size_t(cx.D + 1), 0);
  cx.m[0] = cx.n;
  std::vector<torch::Tensor> keep;  // contiguous copies stay alive while we point into them
  for (int d = 1; d <= cx.D; ++d) {
    const torch::Tensor& s = simplices[size_t(d - 1)];
    TORCH_CHECK_VALUE(s.dim() == 2 && s.size(1) == d + 1 && s.scalar_type() == at::kLong && s.device().is_cpu(),
                      "gpuph: simplices[", d - 1, "] must be a CPU int64 tensor of shape (m, ", d + 1, ")");
    TORCH_CHECK_VALUE(s.size(0) < (int64_t(1) << 31), "gpuph: at most 2^31 - 1 simplices per dimension");
    keep.push_back(s.contiguous());
    cx.verts[size_t(d)] = keep.back().data_ptr<int64_t>();
    cx.m[size_t(d)] = s.size(0);
    const int64_t* V = cx.verts[size_t(d)];
    for (int64_t i = 0; i < s.numel(); ++i)
      TORCH_CHECK_VALUE(V[i] >= 0 && V[i] < cx.n, "gpuph: vertex id ", V[i], " out of range for ", cx.n, " vertices");
  }
  for (int d = 2; d <= cx.D; ++d) {
    const torch::Tensor& f = facets[size_t(d - 2)];
    TORCH_CHECK_VALUE(f.dim() == 2 && f.size(0) == cx.m[size_t(d)] && f.size(1) == d + 1 &&
                          f.scalar_type() == at::kLong && f.device().is_cpu(),
                      "gpuph: facets[", d - 2, "] must be a CPU int64 tensor of shape (", cx.m[size_t(d)], ", ", d + 1,
                      ")");
    keep.push_back(f.contiguous());
    cx.facets[size_t(d)] = keep.back().data_ptr<int64_t>();
    const int64_t* Fp = cx.facets[size_t(d)];
    for (int64_t i = 0; i < f.numel(); ++i)
      TORCH_CHECK_VALUE(Fp[i] >= 0 && Fp[i] < cx.m[size_t(d - 1)], "gpuph: facet index out of range");
  }
  const int64_t B = vals.size(0);
  std::vector<std::vector<Row>> rows;
  if (B > 0) {
    if (vals.scalar_type() == at::kFloat)
      rows = run_batch(cx, vals.data_ptr<float>(), B, superlevel, int(maxdim));
    else
      rows = run_batch(cx, vals.data_ptr<double>(), B, superlevel, int(maxdim));
  }
  int64_t total = 0;
  for (const auto& r : rows) total += int64_t(r.size());
  torch::Tensor out = torch::empty({total, 4}, torch::dtype(torch::kInt64));
  int64_t* o = out.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    for (const Row& r : rows[size_t(b)]) {
      o[0] = b;
      o[1] = r.dim;
      o[2] = r.birth;
      o[3] = r.death;
      o += 4;
    }
  return out;
}

}  // namespace
}  // namespace gpuph

TORCH_LIBRARY_FRAGMENT(gpuph, m) {
  m.def("lower_star_pairs(Tensor values, Tensor[] simplices, Tensor[] facets, int maxdim, bool superlevel) -> Tensor");
}

TORCH_LIBRARY_IMPL(gpuph, CPU, m) { m.impl("lower_star_pairs", &gpuph::lower_star_pairs_cpu); }
