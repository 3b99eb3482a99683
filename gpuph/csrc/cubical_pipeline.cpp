// The device pipeline of cubical_pairs (cubical_pipeline.h), and its test-only ops: gpuph::_cubical_pairs_pipeline
// runs it on the CPU, with the emulation of the kernels or the kernel files compiled for the host (_host_kernels), so
// that CI (no GPU) checks its logic against the CPU engine row for row; gpuph::_middle_pipeline_stats reports how many
// columns of H1 of 3D the residual reduction gets.
#include "cubical_pipeline.h"

#include <ATen/record_function.h>
#include <torch/library.h>

#include <atomic>
#include <cstring>
#include <limits>
#include <sstream>
#include <vector>

#include "cubical_ops.h"
#include "merge_tree_pipeline.h"
#include "middle_pipeline.h"
#include "pipeline_helpers.h"

namespace gpuph {
namespace {

// Rows grouped by image then dim, into the pinned order within each group: lifetime descending (essential classes
// first), then birth pixel, then death pixel, as the CPU path's finish_image.
at::Tensor pinned_order(const at::Tensor& rows, const at::Tensor& x_flat, int64_t N) {
  if (rows.size(0) == 0) return rows;
  const at::Tensor b = rows.select(1, 0), dim = rows.select(1, 1), bi = rows.select(1, 2), di = rows.select(1, 3);
  const at::Tensor base = b * N;
  const at::Tensor bv = x_flat.index_select(0, base + bi).to(at::kDouble);
  const at::Tensor dv = x_flat.index_select(0, base + di.clamp_min(0)).to(at::kDouble);
  // Non-negative doubles order like their bit patterns; essential classes get one more than +inf.
  at::Tensor life = (bv - dv).abs().view(at::kLong);
  const double inf = std::numeric_limits<double>::infinity();
  int64_t inf_bits;
  std::memcpy(&inf_bits, &inf, sizeof(inf_bits));
  life = at::where(di < 0, at::full_like(life, inf_bits + 1), life);
  const at::Tensor tail = bi * (int64_t(1) << 32) + (di + 1);
  const at::Tensor group = b * 4 + dim;
  // Least significant key first; each later sort is stable.
  at::Tensor idx = std::get<1>(at::sort(tail, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  idx = idx.index_select(0, std::get<1>(at::sort(life.index_select(0, idx), true, 0, /*descending=*/true)));
  idx = idx.index_select(0, std::get<1>(at::sort(group.index_select(0, idx), true, 0, false)));
  return rows.index_select(0, idx);
}

// What the test-only ops below run the pipeline with (set_host_kernels): 0, the CPU emulation of the kernels (the
// per-element steps in loops, on torch's threads); 1, the kernel files themselves compiled for the host
// (cuda_on_host.h: one thread, launch by launch, so slower).
std::atomic<int> host_kernels{0};

PipelineLaunchers cpu_launchers() {
  if (host_kernels.load(std::memory_order_relaxed) == 1)
    return PipelineLaunchers{cuda_on_host::merge_tree_launchers(), cuda_on_host::middle_launchers()};
  return PipelineLaunchers{cpu_merge_tree_launchers(), cpu_middle_launchers()};
}

int64_t set_host_kernels(int64_t which) {
  TORCH_CHECK_VALUE(which == 0 || which == 1, "gpuph: host kernels are 0 (emulation) or 1 (kernel files)");
  return host_kernels.exchange(int(which));
}

at::Tensor cubical_pairs_pipeline_cpu(const at::Tensor& x, int64_t spatial_dims, int64_t construction,
                                      bool superlevel, int64_t dims_mask) {
  const GridPlan g = check_cubical_args(x, spatial_dims, construction);
  const at::Tensor xc = x.contiguous();
  if (xc.size(0) == 0) return at::empty({0, 4}, xc.options().dtype(at::kLong));
  return cubical_pipeline_in_slices(cpu_launchers(), xc, g, superlevel, dims_mask, nullptr);
}

// The intermediate buffers of the pipeline (pipeline_stages) on the CPU.
std::vector<at::Tensor> pipeline_stages_cpu(const at::Tensor& x, int64_t spatial_dims, int64_t construction,
                                            bool superlevel, int64_t dims_mask) {
  const GridPlan g = check_cubical_args(x, spatial_dims, construction);
  return pipeline_stages(cpu_launchers(), x.contiguous(), g, superlevel, dims_mask, nullptr);
}

// [the union-find mode it ran (merge_tree_pipeline.h), merging pixels, iterations of the relaxed elder rule, whether
// they converged (else its sequential fallback ran), rounds of pointer jumping launched, of which ran] of the merge
// trees of a batch, on the CPU.
std::vector<int64_t> merge_tree_stats(const at::Tensor& x, int64_t spatial_dims, int64_t construction,
                                      bool superlevel, int64_t dims_mask) {
  const GridPlan g = check_cubical_args(x, spatial_dims, construction);
  const at::Tensor xc = x.contiguous();
  TORCH_CHECK_VALUE(xc.size(0) > 0, "gpuph: merge-tree stats need a non-empty batch");
  const MTLaunchers launch = cpu_launchers().merge_tree;
  const at::Tensor nan_image = at::full({1}, INT32_MAX, xc.options().dtype(at::kInt));
  const at::Tensor keys = cell_keys(launch, xc, g, superlevel, nan_image, nullptr);
  UnionFindStats s;
  merge_tree_launch(launch, xc, g, keys, dims_mask, nullptr, &s);
  return {s.mode, s.candidates, s.iterations, int64_t(s.converged), s.jump_rounds, s.jump_rounds_run};
}

// [2-cells that are columns, columns in apparent pairs, columns left to the residual reduction, column additions
// and rounds of the device's residual reduction, columns given larger buffers, whether the host finished it, batches
// of rounds, entries of the residual columns' storage, entries they took past their first buffers]
// of H1 of a batch of 3D grids, on the CPU.
at::Tensor middle_pipeline_stats(const at::Tensor& x, int64_t construction, bool superlevel) {
  const GridPlan g = check_cubical_args(x, 3, construction);
  const at::Tensor xc = x.contiguous();
  MiddleStats s;
  if (xc.size(0) > 0) cubical_pipeline(cpu_launchers(), xc, g, superlevel, /*dims_mask=*/2, nullptr, &s);
  return at::tensor(std::vector<int64_t>{s.columns, s.apparent, s.residual, s.device_additions, s.rounds, s.grown,
                                         int64_t(s.finished_on_host), s.batches, s.pool, s.taken},
                    at::dtype(at::kLong));
}

}  // namespace

namespace {
// Which parts of the pipeline a call runs: H1 of 3D (middle), and the merge trees (tree) of the dimensions in
// tree_mask (H0 and the top dimension; they run, for nothing, also where no dimension is asked).
struct Parts {
  bool middle;
  int64_t tree_mask;
  bool tree;
};
Parts parts_of(const GridPlan& g, int64_t dims_mask) {
  const bool middle = g.D == 3 && ((dims_mask >> 1) & 1);
  const int64_t tree_mask = middle ? dims_mask & ~int64_t(2) : dims_mask;
  return {middle, tree_mask, (tree_mask & 1) || (g.D >= 2 && ((tree_mask >> (g.D - 1)) & 1)) || !middle};
}
}  // namespace

at::Tensor cubical_pipeline(const PipelineLaunchers& launch, const at::Tensor& xc, const GridPlan& g, bool superlevel,
                            int64_t dims_mask, void* stream, MiddleStats* stats, int64_t first_image) {
  const auto [middle, tree_mask, tree] = parts_of(g, dims_mask);
  // The merge trees and H1 of 3D share the cell keys, and are launched up to where their outputs need sizing; one
  // device-to-host copy then reads the NaN report and every size.
  const at::Tensor nan_image = at::full({1}, INT32_MAX, xc.options().dtype(at::kInt));
  TreeLaunch trees;
  MiddleLaunch mids;
  std::vector<at::Tensor> sizes(1);  // the NaN report first, once the keys have written it
  at::Tensor keys;
  {
    RECORD_FUNCTION("gpuph::keys", std::vector<c10::IValue>());
    keys = cell_keys(launch.merge_tree, xc, g, superlevel, nan_image, stream);
    sizes[0] = nan_image.to(at::kLong);
  }
  if (tree) {
    RECORD_FUNCTION("gpuph::merge_trees", std::vector<c10::IValue>());
    trees = merge_tree_launch(launch.merge_tree, xc, g, keys, tree_mask, stream);
    sizes.push_back(trees.total);
    sizes.push_back(trees.longest);
  }
  if (middle) {
    mids = middle_launch(launch.merge_tree, launch.middle, xc, g, keys, stream);  // stages gpuph::h1::...
    sizes.push_back(mids.sizes);
  }
  int64_t moved_at = -1;  // where the relaxed union-find's count lies in the copy (elements), if it is to learn
  if (trees.relaxed_moved.defined()) {
    moved_at = 0;
    for (const at::Tensor& t : sizes) moved_at += t.numel();
    sizes.push_back(trees.relaxed_moved);
  }
  keys.reset();
  at::Tensor host;
  {
    RECORD_FUNCTION("gpuph::sync", std::vector<c10::IValue>());
    host = at::cat(sizes).cpu();
  }
  const int64_t* h = host.data_ptr<int64_t>();
  if (h[0] != INT32_MAX) fail_on_nan(first_image + h[0]);
  if (moved_at >= 0) note_relaxed_iterations(trees, h[moved_at]);
  std::vector<at::Tensor> parts;
  if (tree) {
    RECORD_FUNCTION("gpuph::tree_rows", std::vector<c10::IValue>());
    // Only merge-tree rows, from short runs: ordered as they are written, and done.
    const bool ordered = !middle && ranked_order_fits(h[1], h[2]);
    parts.push_back(merge_tree_finish(launch.merge_tree, trees, h[1], g, xc, ordered, stream));
    if (ordered) return parts[0];
    trees = TreeLaunch{};  // spent: H1's residual reduction may take its memory
  }
  if (middle)
    parts.push_back(middle_finish(launch.middle, mids, xc, g, h[tree ? 3 : 1], h[tree ? 4 : 2], stream, stats));
  RECORD_FUNCTION("gpuph::pinned_order", std::vector<c10::IValue>());
  const at::Tensor rows = parts.size() == 1 ? parts[0] : at::cat(parts);
  return pinned_order(rows, xc.view({-1}), g.N);
}

std::vector<at::Tensor> pipeline_stages(const PipelineLaunchers& launch, const at::Tensor& xc, const GridPlan& g,
                                        bool superlevel, int64_t dims_mask, void* stream) {
  TORCH_CHECK_VALUE(xc.size(0) > 0, "gpuph: pipeline stages need a non-empty batch");
  const auto [middle, tree_mask, tree] = parts_of(g, dims_mask);
  const at::Tensor nan_image = at::full({1}, INT32_MAX, xc.options().dtype(at::kInt));
  const at::Tensor keys = cell_keys(launch.merge_tree, xc, g, superlevel, nan_image, stream);
  const at::Tensor none = at::empty({0}, xc.options().dtype(at::kLong));
  auto or_none = [&](const at::Tensor& t) { return t.defined() ? t : none; };
  std::vector<at::Tensor> out{keys.clone()};
  if (tree) {
    TreeStages s;
    const TreeLaunch t = merge_tree_launch(launch.merge_tree, xc, g, keys, tree_mask, stream, nullptr, &s);
    for (const at::Tensor& a : {s.ptr0, s.ptr1, s.flag, s.order, s.ncand, s.first, t.pairs.clone(), t.counts.clone()})
      out.push_back(or_none(a));
  } else {
    out.insert(out.end(), 8, none);
  }
  if (middle) {
    const MiddleLaunch l = middle_launch(launch.merge_tree, launch.middle, xc, g, keys, stream);
    for (const at::Tensor& a : {l.vkey, l.order, l.ekey, l.col_key, l.row_oldest, l.status, l.birth, l.death})
      out.push_back(a.clone());
  } else {
    out.insert(out.end(), 8, none);
  }
  return out;
}

namespace {
// Testing aid (set_slice_memory_limit): slices of more images raise the allocator's out-of-memory error; -1: off.
std::atomic<int64_t> slice_memory_limit{-1};
}  // namespace

int64_t set_slice_memory_limit(int64_t images) {
  TORCH_CHECK_VALUE(images >= -1, "gpuph: the simulated slice limit is -1 (off) or a number of images");
  return slice_memory_limit.exchange(images);
}

at::Tensor cubical_pipeline_in_slices(const PipelineLaunchers& launch, const at::Tensor& xc, const GridPlan& g,
                                      bool superlevel, int64_t dims_mask, void* stream) {
  const int64_t B = xc.size(0);
  std::vector<at::Tensor> parts;
  int64_t slice = B, done = 0;
  while (done < B) {
    const int64_t n = std::min(slice, B - done);
    try {
      const int64_t limit = slice_memory_limit.load(std::memory_order_relaxed);
      TORCH_CHECK_WITH(OutOfMemoryError, limit < 0 || n <= limit, "gpuph: simulated out of memory (", n,
                       " images; the test-only limit is ", limit, ")");
      at::Tensor rows = cubical_pipeline(launch, xc.narrow(0, done, n), g, superlevel, dims_mask, stream, nullptr, done);
      if (done > 0) rows.select(1, 0).add_(done);
      parts.push_back(std::move(rows));
      done += n;
    } catch (const c10::OutOfMemoryError& e) {
      // What the failed slice allocated is back in the allocator's cache (on this stream, so reusing it is ordered
      // after the kernels that were queued); the allocator frees cached blocks itself before it gives up again.
      if (n == 1) {
        std::ostringstream grid;
        for (int a = 0; a < g.D; ++a) grid << (a ? "x" : "") << g.n[a];
        TORCH_CHECK_WITH(OutOfMemoryError, false, "gpuph: one ", grid.str(), " grid does not fit in the device's ",
                         "memory (batches are split down to one image)",
                         parts_of(g, dims_mask).middle
                             ? "; H1 of 3D grids takes the most (on 40^3 noise about 190 bytes a pixel for V, 350 "
                               "for T, 980 for freudenthal): dims=(0, 2) need far less"
                             : "",
                         ". ", e.what_without_backtrace());
      }
      slice = (n + 1) / 2;
    }
  }
  return parts.size() == 1 ? parts[0] : at::cat(parts);
}

}  // namespace gpuph

TORCH_LIBRARY_FRAGMENT(gpuph, m) {
  m.def("_cubical_pairs_pipeline(Tensor x, int spatial_dims, int construction, bool superlevel, int dims_mask) "
        "-> Tensor");
  m.def("_middle_pipeline_stats(Tensor x, int construction, bool superlevel) -> Tensor");
  m.def("_pipeline_stages(Tensor x, int spatial_dims, int construction, bool superlevel, int dims_mask) "
        "-> Tensor[]");
  m.def("_merge_tree_stats(Tensor x, int spatial_dims, int construction, bool superlevel, int dims_mask) -> int[]");
  // Testing aid (middle_pipeline.h): returns the previous setting.
  m.def("_residual_round_limit(int rounds) -> int", &gpuph::set_max_residual_rounds);
  m.def("_residual_spare(int entries) -> int", &gpuph::set_residual_spare);
  m.def("_residual_hints(int construction, int first_rounds=-1, int spare_sixteenths=-1) -> int[]",
        &gpuph::residual_hints);
  m.def("_emulation_order(int order) -> int", &gpuph::set_emulation_order);
  m.def("_union_find_mode(int mode) -> int", &gpuph::set_union_find_mode);
  m.def("_relaxed_iterations(int iterations) -> int", &gpuph::set_relaxed_iterations);
  m.def("_relaxed_cap(int cap=-1) -> int", &gpuph::set_relaxed_cap);
  m.def("_relaxed_cells_per_iteration(int cells=-1) -> int", &gpuph::set_relaxed_cells_per_iteration);
  m.def("_host_kernels(int which) -> int", &gpuph::set_host_kernels);
  m.def("_ranked_order_limit(int longest) -> int", &gpuph::set_ranked_order_limit);
  m.def("_slice_memory_limit(int images) -> int", &gpuph::set_slice_memory_limit);
  m.def("_buffer_sort_cells(int cells) -> int", &gpuph::set_buffer_sort_cells);
}

TORCH_LIBRARY_IMPL(gpuph, CPU, m) {
  m.impl("_cubical_pairs_pipeline", &gpuph::cubical_pairs_pipeline_cpu);
  m.impl("_middle_pipeline_stats", &gpuph::middle_pipeline_stats);
  m.impl("_pipeline_stages", &gpuph::pipeline_stages_cpu);
  m.impl("_merge_tree_stats", &gpuph::merge_tree_stats);
}
