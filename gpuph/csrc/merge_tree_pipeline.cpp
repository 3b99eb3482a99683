// The merge-tree pipeline of the CUDA backend (kernels/merge_tree_cuda.cu), written once against a table of
// launchers: the CUDA binding (cubical_cuda.cpp) passes the kernels, and the test-only op
// gpuph::_cubical_pairs_pipeline (cubical_pipeline.cpp) the CPU emulation of those kernels below, so that CI (no GPU)
// checks the pipeline's logic (pointer jumping, candidate sort, per-image union-find) against the CPU engine.
#include "merge_tree_pipeline.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <atomic>
#include <climits>

#include "cubical_ops.h"
#include "merge_tree_steps.cuh"
#include "pipeline_helpers.h"

namespace gpuph {
namespace {

// Where the union-find runs: on the device when the batch gives it at least this many runs (image, phase) to do side
// by side, or when the grids are small; otherwise on the host (see merge_tree_pipeline).
constexpr int64_t kDeviceElderMinRuns = 16;
constexpr int64_t kHostElderMinPixels = int64_t(1) << 16;

// ---------------------------------------------------------------------------------------------- CPU emulation
const char* cpu_keys(const GridPlan& plan, const void* x, bool f64, int64_t B, bool superlevel, void* key,
                     int32_t* nan_image, void*) {
  const MTPlan g = make_mt_plan(plan);
  auto on_nan = [&](int64_t b) {
    // Serial below: the NaN report needs no atomics here.
    nan_image[0] = std::min(nan_image[0], int32_t(b));
  };
  each_element_serial(B * g.P, [&](int64_t t) {
    if (f64)
      steps::key_cell<double, uint64_t>(g, static_cast<const double*>(x), superlevel, static_cast<Key64*>(key), t,
                                        on_nan);
    else
      steps::key_cell<float, uint32_t>(g, static_cast<const float*>(x), superlevel, static_cast<Key32*>(key), t,
                                       on_nan);
  });
  return nullptr;
}

template <typename K>
void cpu_basins_typed(const MTPlan& g, const K* key, int64_t B, int32_t* ptr0, int32_t* ptr1, uint8_t* flag) {
  static const RingTables tables = make_ring_tables();
  const int64_t cells = B * g.P;
  if (g.D == 2)
    each_element(cells, [&](int64_t t) { steps::ring_cell(g, tables, key, ptr0, ptr1, flag, t); });
  else
    for (int k = 0; k < (ptr1 ? 2 : 1); ++k)
      each_element(cells, [&](int64_t t) { steps::steepest_cell(g, key, k == 0 ? ptr0 : ptr1, k, t); });
  // Serial rounds, in place: one of the interleavings the kernels may see.
  for (int r = steps::jump_rounds(g.P); r > 0; --r) {
    each_element_serial(cells, [&](int64_t t) { steps::jump_cell(g.P, ptr0, t); });
    if (ptr1) each_element_serial(cells, [&](int64_t t) { steps::jump_cell(g.P, ptr1, t); });
  }
  if (g.D != 2) each_element(cells, [&](int64_t t) { steps::flag_cell(g, key, ptr0, ptr1, flag, t); });
}

const char* cpu_basins(const GridPlan& plan, const void* key, bool f64, int64_t B, int32_t* ptr0, int32_t* ptr1,
                       uint8_t* flag, void*) {
  const MTPlan g = make_mt_plan(plan);
  if (f64)
    cpu_basins_typed(g, static_cast<const Key64*>(key), B, ptr0, ptr1, flag);
  else
    cpu_basins_typed(g, static_cast<const Key32*>(key), B, ptr0, ptr1, flag);
  return nullptr;
}

const char* cpu_sort_keys(const GridPlan& plan, const void* key, bool f64, const uint8_t* flag, int64_t B,
                          int64_t* cand_key, int64_t* first_key, void*) {
  const MTPlan g = make_mt_plan(plan);
  each_element(B * g.P, [&](int64_t t) {
    if (f64)
      steps::sort_keys_cell(g, static_cast<const Key64*>(key), flag, cand_key, first_key, t);
    else
      steps::sort_keys_cell(g, static_cast<const Key32*>(key), flag, cand_key, first_key, t);
  });
  return nullptr;
}

const char* cpu_elder(const GridPlan& plan, const void* key, bool f64, int32_t* ptr0, int32_t* ptr1,
                      const uint8_t* flag, const int64_t* order, const int64_t* ncand, const int64_t* first,
                      int64_t B, int64_t cap, int32_t* pairs, int32_t* counts, void*) {
  const MTPlan g = make_mt_plan(plan);
  std::atomic<bool> ok{true};
  // Runs (image, phase) write disjoint outputs and union-find arrays: side by side.
  at::parallel_for(0, B * 2, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const bool fits =
          f64 ? steps::elder_run(g, static_cast<const Key64*>(key), ptr0, ptr1, flag, order, ncand, first, cap, pairs,
                                 counts, t)
              : steps::elder_run(g, static_cast<const Key32*>(key), ptr0, ptr1, flag, order, ncand, first, cap, pairs,
                                 counts, t);
      if (!fits) ok = false;
    }
  });
  return ok ? nullptr : "more pairs than the output capacity";
}

const char* cpu_rows(const int32_t* pairs, const int32_t* counts, const int64_t* offsets, int64_t B, int64_t cap,
                     int top_dim, int64_t* rows, void*) {
  for (int64_t s = 0; s < B * 2; ++s)
    for (int64_t i = 0; i < counts[s]; ++i) steps::row_copy(pairs, offsets, cap, top_dim, rows, s, i);
  return nullptr;
}

}  // namespace

MTLaunchers cpu_merge_tree_launchers() {
  return MTLaunchers{cpu_keys, cpu_basins, cpu_sort_keys, cpu_elder, cpu_rows};
}

at::Tensor cell_keys(const MTLaunchers& launch, const at::Tensor& xc, const GridPlan& g, bool superlevel,
                     const at::Tensor& nan_image, void* stream) {
  const bool f64 = xc.scalar_type() == at::kDouble;
  // Key64 is 16 bytes (value, index, padding), Key32 8.
  at::Tensor keys = at::empty({xc.size(0) * g.P, f64 ? 2 : 1}, xc.options().dtype(at::kLong));
  check(launch.keys(g, xc.data_ptr(), f64, xc.size(0), superlevel, keys.data_ptr(), nan_image.data_ptr<int32_t>(),
                    stream),
        "keys");
  return keys;
}

TreeLaunch merge_tree_launch(const MTLaunchers& launch, const at::Tensor& xc, const GridPlan& g,
                             const at::Tensor& keys, int64_t dims_mask, void* stream) {
  const int64_t B = xc.size(0);
  const bool f64 = xc.scalar_type() == at::kDouble;
  const bool emit0 = dims_mask & 1;
  const bool emit1 = g.D >= 2 && ((dims_mask >> (g.D - 1)) & 1);
  const auto opts = xc.options();
  const auto i32 = opts.dtype(at::kInt), i64 = opts.dtype(at::kLong), u8 = opts.dtype(at::kByte);
  const int64_t cells = B * g.P;

  at::Tensor ptr0 = at::empty({cells}, i32);  // always: the 2D ring pass writes both phases
  at::Tensor ptr1 = emit1 ? at::empty({cells}, i32) : at::Tensor();
  at::Tensor flag = at::empty({cells}, u8);
  int32_t* p1 = emit1 ? ptr1.data_ptr<int32_t>() : nullptr;
  check(launch.basins(g, keys.data_ptr(), f64, B, ptr0.data_ptr<int32_t>(), p1, flag.data_ptr<uint8_t>(), stream),
        "basins");

  at::Tensor cand_key = at::empty({B, g.P}, i64), first_key = at::empty({B, g.P}, i64);
  check(launch.sort_keys(g, keys.data_ptr(), f64, flag.data_ptr<uint8_t>(), B, cand_key.data_ptr<int64_t>(),
                         first_key.data_ptr<int64_t>(), stream),
        "sort keys");
  // Stable: equal values keep padded-index order, which is flat-index order, so candidates come in (value, index)
  // order; argmin returns the first of equal minima.
  const at::Tensor order = std::get<1>(at::sort(cand_key, /*stable=*/true, /*dim=*/1, false)).contiguous();
  const at::Tensor ncand = flag.view({B, g.P}).ne(0).sum(1).to(at::kLong).contiguous();
  const at::Tensor first = first_key.argmin(1).contiguous();

  // Its own stage in profiles (gpuph.bench.breakdown): on the host path, the copies and the host's union-find.
  RECORD_FUNCTION("gpuph::merge_trees::union_find", std::vector<c10::IValue>());
  int64_t cap = g.N + 1;  // per image and phase: at most one pair per basin, plus the essential class
  at::Tensor pairs, counts;
  if (B * 2 < kDeviceElderMinRuns && g.N >= kHostElderMinPixels) {
    // A few large grids: the union-find is sequential per image and phase, and one GPU thread runs it far slower than
    // a CPU core. Run it on the host (torch's threads, one per run) on copies of what it reads, and send back only
    // the pairs it wrote.
    const std::vector<at::Tensor> h = to_host({keys, flag, order, ncand, ptr0, ptr1, first});
    const at::Tensor &keys_h = h[0], &flag_h = h[1], &order_h = h[2], &ncand_h = h[3], &ptr0_h = h[4], &ptr1_h = h[5];
    const at::Tensor& first_h = h[6];
    const auto host_i32 = at::TensorOptions().dtype(at::kInt);
    at::Tensor pairs_h = at::empty({B, 2, cap, 2}, host_i32), counts_h = at::empty({B * 2}, host_i32);
    check(cpu_merge_tree_launchers().elder(
              g, keys_h.data_ptr(), f64, emit0 ? ptr0_h.data_ptr<int32_t>() : nullptr,
              emit1 ? ptr1_h.data_ptr<int32_t>() : nullptr, flag_h.data_ptr<uint8_t>(), order_h.data_ptr<int64_t>(),
              ncand_h.data_ptr<int64_t>(), first_h.data_ptr<int64_t>(), B, cap, pairs_h.data_ptr<int32_t>(),
              counts_h.data_ptr<int32_t>(), nullptr),
          "union-find");
    cap = std::max<int64_t>(1, counts_h.max().item<int64_t>());
    pairs = pairs_h.narrow(2, 0, cap).contiguous().to(xc.device());
    counts = counts_h.to(xc.device());
  } else {
    pairs = at::empty({B, 2, cap, 2}, i32);
    counts = at::empty({B * 2}, i32);
    check(launch.elder(g, keys.data_ptr(), f64, emit0 ? ptr0.data_ptr<int32_t>() : nullptr, p1,
                       flag.data_ptr<uint8_t>(), order.data_ptr<int64_t>(), ncand.data_ptr<int64_t>(),
                       first.data_ptr<int64_t>(), B, cap, pairs.data_ptr<int32_t>(), counts.data_ptr<int32_t>(),
                       stream),
          "union-find");
  }

  const at::Tensor counts64 = counts.to(at::kLong);
  const at::Tensor ends = counts64.cumsum(0);
  return TreeLaunch{pairs, counts, (ends - counts64).contiguous(), ends.narrow(0, B * 2 - 1, 1), cap};
}

at::Tensor merge_tree_finish(const MTLaunchers& launch, const TreeLaunch& t, int64_t total, const GridPlan& g,
                             void* stream) {
  at::Tensor rows = at::empty({total, 4}, t.counts.options().dtype(at::kLong));
  if (total > 0)
    check(launch.rows(t.pairs.data_ptr<int32_t>(), t.counts.data_ptr<int32_t>(), t.offsets.data_ptr<int64_t>(),
                      t.counts.size(0) / 2, t.cap, g.D - 1, rows.data_ptr<int64_t>(), stream),
          "rows");
  return rows;
}

}  // namespace gpuph
