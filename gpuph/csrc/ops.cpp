// torch op registration and the CPU implementation of gpuph::cubical_pairs.
//
// cubical_pairs(x, spatial_dims, construction, superlevel, dims_mask) -> int64 (N, 4)
//   x: contiguous float32/float64, shape (B, *grid) with len(grid) == spatial_dims.
//   rows: (image, dim, birth pixel, death pixel) with flat C-order pixel indices in the grid (-1: essential), in the
//   pinned order: image, dim, lifetime descending (essential first), birth pixel, death pixel.
// The differentiable values are gathered from x by these indices in Python, so autograd is one scatter-add.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#include "cubical_engine.h"
#include "cubical_ops.h"
#include "merge_tree.h"
#include "radix_sort.h"

namespace gpuph {
namespace {

struct OutRow {
  // Sort key: (k1, k2) ascending == lifetime descending (essential first among infinite lifetimes), birth pixel,
  // death pixel. k1 holds the complemented bits of the non-negative lifetime; k2 = birth << 32 | (death + 1).
  uint64_t k1;
  uint64_t k2;
  int32_t dim;
  // One 128-bit comparison: no branch on which half decides.
  unsigned __int128 key() const { return (unsigned __int128)k1 << 64 | k2; }
  bool operator<(const OutRow& o) const { return key() < o.key(); }
  int64_t birth() const { return int64_t(k2 >> 32); }
  int64_t death() const { return int64_t(k2 & 0xffffffffu) - 1; }
};

// Padded index -> flat index of the grid in 32-bit arithmetic (padded grids have fewer than 2^31 cells).
struct Unpad {
  int D;
  uint32_t pstride[kMaxDim], n[kMaxDim];
  explicit Unpad(const GridPlan& g) : D(g.D) {
    for (int a = 0; a < D; ++a) pstride[a] = uint32_t(g.pstride[a]), n[a] = uint32_t(g.n[a]);
  }
  int64_t operator()(int64_t p) const {
    uint32_t q = uint32_t(p);
    int64_t flat = 0;
    for (int a = 0; a + 1 < D; ++a) {
      const uint32_t c = q / pstride[a];
      q -= c * pstride[a];
      flat = flat * n[a] + (c - 1);
    }
    return flat * n[D - 1] + (q - 1);
  }
};

// Scratch of sort_rows.
struct RowSortScratch {
  std::vector<uint64_t> keys, tmp;
  std::vector<OutRow> rows;
};

// Sorts rows[0, n) by (k1, k2). Short runs take a comparison sort. Long ones sort 8-byte keys, the high half of k1
// and the row's position, with a stable radix sort, move the rows into that order once, and sort the runs of equal
// high halves (rare: equal or nearly equal lifetimes) by the full key.
void sort_rows(OutRow* a, size_t n, RowSortScratch& s) {
  if (n <= 256) {
    std::sort(a, a + n);
    return;
  }
  if (s.keys.size() < n) s.keys.resize(n), s.tmp.resize(n), s.rows.resize(n);
  uint64_t* keys = s.keys.data();
  for (size_t i = 0; i < n; ++i) keys[i] = (a[i].k1 & 0xffffffff00000000ull) | i;
  keys = radix_sort_hi32(keys, n, s.tmp.data());
  OutRow* b = s.rows.data();
  for (size_t i = 0; i < n; ++i) b[i] = a[keys[i] & 0xffffffffu];
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && (keys[j] >> 32) == (keys[i] >> 32)) ++j;
    if (j - i > 1) std::sort(b + i, b + j);
    i = j;
  }
  std::copy(b, b + n, a);
}

// The pairs raw[0], ..., raw[nraw - 1] of one image as rows in the pinned order. The engines emit pairs mostly grouped
// by dimension, so each dimension's run is sorted on its own.
template <typename F>
void finish_image(const GridPlan& g, const F* x, const std::vector<RawPair>* raw, int nraw, std::vector<OutRow>& rows,
                  bool parallel = false) {
  rows.clear();
  size_t total = 0;
  for (int k = 0; k < nraw; ++k) total += raw[k].size();
  rows.reserve(total);
  const uint64_t essential_k1 = ~float_bits(std::numeric_limits<double>::infinity()) - 1;
  const Unpad unpad(g);
  for (int k = 0; k < nraw; ++k)
    for (const RawPair& p : raw[k]) {
      OutRow o;
      o.dim = p.dim;
      const int64_t birth = unpad(p.birth);
      const int64_t death = p.death < 0 ? -1 : unpad(p.death);
      o.k1 = death < 0 ? essential_k1 : ~float_bits(std::fabs(double(x[birth]) - double(x[death])));
      o.k2 = (uint64_t(birth) << 32) | uint64_t(death + 1);
      rows.push_back(o);
    }
  auto by_dim = [](const OutRow& a, const OutRow& b) { return a.dim < b.dim; };
  if (!std::is_sorted(rows.begin(), rows.end(), by_dim)) std::stable_sort(rows.begin(), rows.end(), by_dim);
  size_t cuts[kMaxDim + 2] = {0};
  int64_t nruns = 0;
  for (size_t i = 1; i <= rows.size(); ++i)
    if (i == rows.size() || rows[i].dim != rows[i - 1].dim) cuts[++nruns] = i;
  // The sorts' scratch: kept by each thread across images and calls, up to 2^17 rows (5 MB).
  thread_local RowSortScratch kept;
  auto sort_run = [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      const size_t n = cuts[q + 1] - cuts[q];
      RowSortScratch own;
      sort_rows(rows.data() + cuts[q], n, n <= (size_t(1) << 17) ? kept : own);
    }
  };
  if (parallel)
    at::parallel_for(0, nruns, 1, sort_run);  // one large image: its dimensions side by side
  else
    sort_run(0, nruns);
}

template <typename F>
std::vector<std::vector<OutRow>> run_batch(const F* data, int64_t B, const GridPlan& g, const Phases& ph,
                                           bool superlevel) {
  // Image b's rows: rows[2b], then rows[2b + 1] (the second dimension of a 2D image split over the threads).
  std::vector<std::vector<OutRow>> rows(static_cast<size_t>(2 * B));
  std::vector<int64_t> nan_image;
  std::mutex nan_mutex;
  auto fail_nan = [&](int64_t b) {
    std::lock_guard<std::mutex> lock(nan_mutex);
    nan_image.push_back(b);
  };
  // Many images: one per task. Few large ones: one at a time, with the phases (and passes) of each split over the
  // threads.
  const int nthreads = at::get_num_threads();
  const bool per_image = B >= nthreads || nthreads == 1;
  auto over_images = [&](auto make_workspace, auto&& one) {
    if (per_image) {
      at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
        auto ws = make_workspace();
        std::vector<RawPair> raw[2];
        for (int64_t b = begin; b < end; ++b) one(b, ws, raw);
      });
    } else {
      auto ws = make_workspace();
      std::vector<RawPair> raw[2];
      for (int64_t b = 0; b < B; ++b) one(b, ws, raw);
    }
  };
  // raw[0] and raw[1] hold the pairs of one image (two phases that may have run side by side).
  auto finish = [&](int64_t b, std::vector<RawPair>* raw) {
    finish_image(g, data + b * g.N, raw, 2, rows[size_t(2 * b)], !per_image);
  };
  if (merge_tree_applies(g)) {
    // 1D / 2D V and T: sort-free merge trees.
    auto one = [&](int64_t b, MergeTreeWorkspaceHandle& ws, std::vector<RawPair>* raw) {
      raw[0].clear();
      raw[1].clear();
      if (per_image) {
        if (!merge_tree_image(g, data + b * g.N, superlevel, ph, ws.get(), raw, false)) return fail_nan(b);
        return finish(b, raw);
      }
      // One image over the threads: the thread that merged a phase turns its pairs (one dimension) into sorted rows
      // while the other phase may still be merging.
      const PhaseDone done = [&](int k) { finish_image(g, data + b * g.N, &raw[k], 1, rows[size_t(2 * b + k)]); };
      if (!merge_tree_image(g, data + b * g.N, superlevel, ph, ws.get(), raw, true, &done)) return fail_nan(b);
    };
    over_images([&] { return MergeTreeWorkspaceHandle(g); }, one);
  } else {
    over_images([&] { return WorkspaceHandle(g); }, [&](int64_t b, WorkspaceHandle& handle, std::vector<RawPair>* raw) {
      Workspace& ws = handle.get();
      raw[0].clear();
      raw[1].clear();
      if (!rank_image(g, data + b * g.N, superlevel, ws, !per_image)) return fail_nan(b);
      if (per_image) {
        persistence_of_ranked_image(g, ph, ws, raw[0]);
      } else {
        // The union-finds of H0 and H_{D-1} are independent: side by side; then H1 of 3D, its passes split.
        at::parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
          for (int64_t k = begin; k < end; ++k) {
            if (k == 0 && needs_h0(g, ph)) run_h0(g, ph, ws, raw[0]);
            if (k == 0 && ph.middle) run_middle_edges(g, ph, ws);  // while H_{D-1} may still be running
            if (k == 1 && needs_top(g, ph)) run_top(g, ph, ws, raw[1]);
          }
        });
        if (ph.middle) run_middle(g, ph, ws, raw[1], true);
      }
      finish(b, raw);
    });
  }
  if (!nan_image.empty()) fail_on_nan(*std::min_element(nan_image.begin(), nan_image.end()));
  return rows;
}

}  // namespace

// The combinatorial tables of a construction (built under a lock, as they always were).
static ComplexTable complex_table_for(int D, int construction) {
  static std::mutex table_mutex;
  std::lock_guard<std::mutex> lock(table_mutex);
  return make_complex_table(D, construction);
}

GridPlan grid_plan_for(int D, int construction, const int64_t* n) {
  return make_grid_plan(complex_table_for(D, construction), n);
}

MiddlePlan middle_plan_for(int construction, const int64_t* n) {
  return make_middle_plan(complex_table_for(3, construction), n);
}

void fail_on_nan(int64_t image) {
  TORCH_CHECK_VALUE(false, "gpuph: input contains NaN (first in batch element ", image,
                    "); NaN is not a filtration value. Replace it, e.g. with torch.nan_to_num.");
  std::abort();  // not reached: TORCH_CHECK_VALUE(false, ...) throws
}

GridPlan check_cubical_args(const at::Tensor& x, int64_t spatial_dims, int64_t construction) {
  TORCH_CHECK_VALUE(spatial_dims >= 1 && spatial_dims <= 3, "gpuph: spatial_dims must be 1, 2 or 3");
  TORCH_CHECK_VALUE(x.dim() == spatial_dims + 1, "gpuph: cubical_pairs expects (B, *grid)");
  TORCH_CHECK_VALUE(construction >= 0 && construction <= 2, "gpuph: unknown construction ", construction);
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
                   "gpuph: cubical_pairs expects float32 or float64, got ", x.scalar_type());
  const int D = int(spatial_dims);
  int64_t n[kMaxDim];
  int64_t padded = 1;
  for (int a = 0; a < D; ++a) {
    n[a] = x.size(a + 1);
    TORCH_CHECK_VALUE(n[a] >= 1, "gpuph: the grid is empty (size 0 along a spatial axis)");
    padded *= n[a] + 2;
    TORCH_CHECK_VALUE(padded < (int64_t(1) << 31) - 1, "gpuph: grid too large (at most 2^31 pixels including a "
                      "one-pixel border)");
  }
  return grid_plan_for(D, int(construction), n);
}

torch::Tensor cubical_pairs_cpu(const torch::Tensor& x, int64_t spatial_dims, int64_t construction, bool superlevel,
                                int64_t dims_mask) {
  TORCH_CHECK(x.device().is_cpu(), "gpuph: cubical_pairs_cpu got a tensor on ", x.device());
  const GridPlan g = check_cubical_args(x, spatial_dims, construction);
  const torch::Tensor xc = x.contiguous();
  const int D = int(spatial_dims);
  const int64_t B = xc.size(0);
  Phases ph{};
  for (int k = 0; k < kMaxDim; ++k) ph.emit[k] = k < D && ((dims_mask >> k) & 1);
  ph.h0 = ph.emit[0];
  ph.top = D >= 2 && ph.emit[D - 1];
  ph.middle = D == 3 && ph.emit[1];

  std::vector<std::vector<OutRow>> rows;
  if (B > 0) {
    if (xc.scalar_type() == at::kFloat)
      rows = run_batch(xc.data_ptr<float>(), B, g, ph, superlevel);
    else
      rows = run_batch(xc.data_ptr<double>(), B, g, ph, superlevel);
  }
  // Row offsets of the parts, then the parts written side by side.
  const int64_t nparts = int64_t(rows.size());
  std::vector<int64_t> offset(size_t(nparts) + 1, 0);
  for (int64_t q = 0; q < nparts; ++q) offset[size_t(q) + 1] = offset[size_t(q)] + int64_t(rows[size_t(q)].size());
  torch::Tensor out = torch::empty({offset.back(), 4}, torch::dtype(torch::kInt64));
  int64_t* o = out.data_ptr<int64_t>();
  at::parallel_for(0, nparts, offset.back() < (1 << 14) ? nparts : 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      int64_t* w = o + 4 * offset[size_t(q)];
      for (const OutRow& r : rows[size_t(q)]) {
        w[0] = q / 2;
        w[1] = r.dim;
        w[2] = r.birth();
        w[3] = r.death();
        w += 4;
      }
    }
  });
  return out;
}

}  // namespace gpuph

TORCH_LIBRARY(gpuph, m) {
  m.def("cubical_pairs(Tensor x, int spatial_dims, int construction, bool superlevel, int dims_mask) -> Tensor");
  // Testing aid (cubical_engine.h): returns the previous setting.
  m.def("_engine_force_wide_indices(bool on) -> bool", &gpuph::set_force_wide_indices);
}

TORCH_LIBRARY_IMPL(gpuph, CPU, m) { m.impl("cubical_pairs", &gpuph::cubical_pairs_cpu); }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.doc() = "gpuph C++ extension (ops are registered under torch.ops.gpuph)"; }
