// gpuph::lower_star_pairs: exact (Z/2) persistence of lower-star filtrations of vertex values on a simplicial
// complex, for a batch of value vectors on one shared complex.
//
// lower_star_pairs(values, simplices, facets, maxdim, superlevel) -> int64 (N, 4)
//   values: contiguous float32/float64 (B, n) on the CPU, one row of vertex values per image.
//   simplices[d-1]: int64 (m_d, d+1), the d-simplices (d = 1..D) as vertex ids, each listed once (the complex is closed
//     and deduplicated in Python: gpuph/lower_star.py).
//   facets[d-2]: int64 (m_d, d+1), for d = 2..D: row i holds the indices into simplices[d-2] of simplex i's facets,
//     in any order (checked, as is that no simplex repeats a vertex).
//   rows: (image, dim, birth vertex, death vertex) with -1 for essential classes, zero-length pairs dropped, in the
//   pinned order: image, dim, lifetime descending (essential first, among themselves by birth in filtration order),
//   birth vertex, death vertex.
//
// Filtration order (a total order, so critical vertices and gradients are deterministic): vertices by (value, index),
// values descending for superlevel; a simplex by its vertex ranks sorted descending, compared lexicographically. The
// first of these ranks is its critical vertex, whose value is the simplex's value, so this orders simplices by value
// first, and every face comes before its cofaces (a proper prefix or a smaller rank at the first difference).
//
// Reduction (boundary_reduction.h, shared with the flag filtration of explicit complexes): H0 by union-find with the
// elder rule over the edges; then the boundary matrices from the top dimension down, standard column reduction with
// clearing and, for the triangles, compression. Images run in parallel with at::parallel_for.
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

#include "boundary_reduction.h"

namespace gpuph {
namespace {

using simplicial::Complex;
using simplicial::Workspace;

struct Row {
  int32_t dim;
  int64_t birth;
  int64_t death;       // -1: essential
  double life;         // inf for essential classes
  int32_t birth_rank;  // the birth vertex's place in the filtration order
};

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
  for (int d = 1; d <= D; ++d)
    TORCH_CHECK_VALUE(simplicial::sort_by_rank_tuples(cx.m[size_t(d)], d + 1, cx.verts[size_t(d)], ws.vrank.data(),
                                                      ws.vorder.data(), n, d, ws),
                      "gpuph: simplices[", d - 1, "] lists the same simplex twice");
  simplicial::reduce_boundaries(cx, maxdim, ws, [&](int dim, int64_t bv, int64_t dv) {
    if (dim > maxdim) return;
    if (dv < 0) {
      rows.push_back({int32_t(dim), bv, -1, std::numeric_limits<double>::infinity(), ws.vrank[size_t(bv)]});
      return;
    }
    if (x[bv] == x[dv]) return;  // zero length: depends on tie-breaking, never returned
    rows.push_back({int32_t(dim), bv, dv, std::fabs(double(x[bv]) - double(x[dv])), ws.vrank[size_t(bv)]});
  });
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
    for (int64_t i = 0; i < cx.m[size_t(d)]; ++i)  // a degenerate simplex (an edge (v, v)) is no simplex
      for (int a = 0; a <= d; ++a)
        for (int b = a + 1; b <= d; ++b)
          TORCH_CHECK_VALUE(V[i * (d + 1) + a] != V[i * (d + 1) + b], "gpuph: simplices[", d - 1, "] row ", i,
                            " repeats vertex ", V[i * (d + 1) + a]);
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
    // Each row must name the simplex's d + 1 facets, in any order: its entries distinct (a facet named twice would
    // put a row twice in a column) and each a d-subset of the simplex. Both hold distinct vertices and simplices[d-2]
    // lists no simplex twice (checked when run_batch sorts it), so that makes them all its facets; else the boundary
    // matrix is another complex's and the diagrams are silently wrong.
    const int64_t* S = cx.verts[size_t(d)];
    const int64_t* below = cx.verts[size_t(d - 1)];
    for (int64_t i = 0; i < cx.m[size_t(d)]; ++i)
      for (int a = 0; a <= d; ++a) {
        const int64_t F = Fp[i * (d + 1) + a];
        for (int b = a + 1; b <= d; ++b)
          TORCH_CHECK_VALUE(F != Fp[i * (d + 1) + b], "gpuph: facets[", d - 2, "] row ", i,
                            " names the same facet twice");
        for (int k = 0; k < d; ++k) {
          bool in = false;
          for (int c = 0; c <= d; ++c) in |= S[i * (d + 1) + c] == below[F * d + k];
          TORCH_CHECK_VALUE(in, "gpuph: facets[", d - 2, "] row ", i, " names row ", F, " of simplices[", d - 2,
                            "], which is not a facet of simplex ", i, " of simplices[", d - 1, "]");
        }
      }
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
