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

// Where the union-find runs by default (kAutoUnionFind): batches of small grids one run (image, phase) per GPU thread,
// the sequential union-find (elder_run), whose runs are short and many side by side; larger grids by the relaxed
// elder rule, every merging pixel at once. Neither bound is timed on a GPU yet: a GPU session must compare the modes
// (set_union_find_mode) and set it.
constexpr int64_t kRelaxedMinPixels = int64_t(1) << 12;
// Iterations of the relaxed elder rule before it gives up and runs the sequential union-find (one thread a run: on a
// large grid, far slower than more iterations). The CPU emulation needs 6-13 on noise and smooth fields up to 1024^2
// and 128^3 and on random walks, but 40 on 512^2 of x sin(x / 2) + y sin(y / 2) and one per minimum on a staircase;
// each one after convergence still costs two launches that return at once. So the cap is learned from the calls
// before (note_relaxed_iterations, from the one copy each call makes anyway): kRelaxedIterations at first, four
// times larger after a call that did not converge, up to kMostRelaxedIterations, and after one that did, twice the
// iterations it needed and kRelaxedSlack more, shrinking by at most a quarter a call, so that inputs that alternate
// between easy and hard keep a cap the hard ones converge under.
constexpr int kRelaxedIterations = 32;
constexpr int kFewestRelaxedIterations = 16;
constexpr int kMostRelaxedIterations = 4096;
constexpr int kRelaxedSlack = 8;
// Whatever it learned, a call on C padded cells (the whole batch) runs at least C / kRelaxedCellsPerIteration
// iterations (at most kMostRelaxedIterations): the two launches of an iteration past convergence return at once
// (a few microseconds), about what one working iteration's apply pass over 2^20 cells (16 bytes each) takes at an
// H100's bandwidth, so on a huge grid those extra launches cost about one working iteration more, while a first
// call that needs more than the learned cap would run the sequential fallback on one thread a run over all of its
// merging pixels (for one 1024^3 volume, seconds). Not timed on a GPU yet. The floor does not teach the learned cap
// (note_relaxed_iterations), so the small grids that follow a huge one keep their own.
constexpr int64_t kRelaxedCellsPerIteration = int64_t(1) << 20;

// The rows of the merge trees are put in the pinned order by ranking each among its run's (steps::ranked_row_copy,
// one launch) where the runs are short: at most kRankedOrderLongest rows in the longest, and kRankedOrderWork
// comparisons at most (total rows x the longest run's); else by the three sorts of the whole output and their gathers
// (cubical_pipeline's pinned_order), whose launches cost more than the ranking on batches of small images (256 x
// 28^2: about 10^7 comparisons). Neither bound is timed on a GPU yet.
constexpr int64_t kRankedOrderLongest = 1024;
constexpr int64_t kRankedOrderWork = int64_t(1) << 26;

// Batches of at least kBufferSortCells padded cells sort their candidates by cub's radix sort over double buffers
// (candidate_order), the two halves of the spent sort keys and two value buffers: 16 bytes a cell on top of what is
// held. torch's sort takes about 40 (its outputs, its indices, cub's alternate buffers), which would be the merge
// trees' peak: about 83 GB for one 1024^3 volume instead of 66 (the relaxed union-find's 57 bytes a cell, which
// tests/test_gpu_pipeline.py measures, and the input), which an 80 GB GPU then holds; no slice of a batch can help a
// single image. Not timed on a GPU yet.
constexpr int64_t kBufferSortCells = int64_t(1) << 24;

std::atomic<int> union_find_mode{kAutoUnionFind};
std::atomic<int64_t> buffer_sort_cells{kBufferSortCells};
std::atomic<int64_t> ranked_order_limit{kRankedOrderLongest};
std::atomic<int> relaxed_iterations{0};  // pinned by set_relaxed_iterations; 0: the learned cap
std::atomic<int> relaxed_cap{kRelaxedIterations};
std::atomic<int64_t> relaxed_cells_per_iteration{kRelaxedCellsPerIteration};

// The fewest relaxed iterations a call on `cells` padded cells runs (kRelaxedCellsPerIteration).
int relaxed_floor(int64_t cells) {
  return int(std::min<int64_t>(cells / relaxed_cells_per_iteration.load(std::memory_order_relaxed),
                               kMostRelaxedIterations));
}

// The (B, 2, cap, 2) int32 pair buffer of the union-find in the memory of `spent`, a contiguous int64 block of two
// slots of B x P cells that no later kernel reads: 16 B P bytes hold it, since cap = N + 1 < P.
at::Tensor pairs_view(const at::Tensor& spent, int64_t B, int64_t cap) {
  TORCH_INTERNAL_ASSERT(spent.is_contiguous() && spent.scalar_type() == at::kLong && B * 2 * cap <= spent.numel());
  return spent.view(-1).view(at::kInt).narrow(0, 0, B * 2 * cap * 2).view({B, 2, cap, 2});
}

// An int64 tensor's memory as uint64 (the links, claims and order keys, which compare unsigned); null if undefined.
uint64_t* as_u64(const at::Tensor& t) {
  return t.defined() ? reinterpret_cast<uint64_t*>(t.data_ptr<int64_t>()) : nullptr;
}

// Rounds that ran of those a flag array (int32, one a round: whether it changed anything; copied to the host unless
// there already) allowed: the first, and each after one that changed something.
int rounds_run(const at::Tensor& flags) {
  const at::Tensor c = flags.cpu();
  const int32_t* f = c.data_ptr<int32_t>();
  int run = 0;
  while (run < c.size(0) && (run == 0 || f[run - 1] != 0)) ++run;
  return run;
}

// ---------------------------------------------------------------------------------------------- CPU emulation
int32_t fetch_add1(int32_t* count) { return fetch_add(count, int32_t(1)); }

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
void cpu_basins_typed(const MTPlan& g, const K* key, int64_t B, int32_t* ptr0, int32_t* ptr1, uint8_t* flag,
                      int32_t* moved) {
  static const RingTables tables = make_ring_tables();
  const int64_t cells = B * g.P;
  if (g.D == 2)
    each_element(cells, [&](int64_t t) { steps::ring_cell(g, tables, key, ptr0, ptr1, flag, t); });
  else
    for (int k = 0; k < (ptr1 ? 2 : 1); ++k)
      each_element(cells, [&](int64_t t) { steps::steepest_cell(g, key, k == 0 ? ptr0 : ptr1, k, t); });
  // Serial rounds, in place: one of the interleavings the kernels may see. As the kernels: a round after one that
  // moved no pointer does nothing.
  const int rounds = steps::jump_rounds(g.P);
  std::fill(moved, moved + rounds, 0);
  for (int r = 0; r < rounds && (r == 0 || moved[r - 1] != 0); ++r) {
    bool any = false;
    each_element_serial(cells, [&](int64_t t) {
      any |= steps::jump_cell(g.P, ptr0, t);
      if (ptr1) any |= steps::jump_cell(g.P, ptr1, t);
    });
    moved[r] = any ? 1 : 0;
  }
  if (g.D != 2) each_element(cells, [&](int64_t t) { steps::flag_cell(g, key, ptr0, ptr1, flag, t); });
}

const char* cpu_basins(const GridPlan& plan, const void* key, bool f64, int64_t B, int32_t* ptr0, int32_t* ptr1,
                       uint8_t* flag, int32_t* moved, void*) {
  const MTPlan g = make_mt_plan(plan);
  if (f64)
    cpu_basins_typed(g, static_cast<const Key64*>(key), B, ptr0, ptr1, flag, moved);
  else
    cpu_basins_typed(g, static_cast<const Key32*>(key), B, ptr0, ptr1, flag, moved);
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
                      int64_t B, int64_t cap, int32_t* pairs, int32_t* counts, bool ring, void*) {
  const MTPlan g = make_mt_plan(plan);
  ring = ring && g.D == 2;
  const PhaseReps reps = ring ? phase_reps(g.ring_cells[0], g.ring_cells[1]) : PhaseReps{};
  const PhaseReps* r = ring ? &reps : nullptr;
  std::atomic<bool> ok{true};
  // Runs (image, phase) write disjoint outputs and union-find arrays: side by side.
  at::parallel_for(0, B * 2, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const bool fits =
          f64 ? steps::elder_run(g, r, static_cast<const Key64*>(key), ptr0, ptr1, flag, order, ncand, first, cap,
                                 pairs, counts, t)
              : steps::elder_run(g, r, static_cast<const Key32*>(key), ptr0, ptr1, flag, order, ncand, first, cap,
                                 pairs, counts, t);
      if (!fits) ok = false;
    }
  });
  return ok ? nullptr : "more pairs than the output capacity";
}

// The relaxed iterations and, if they converged, the pairs from the links; returns whether they converged.
template <typename K>
bool cpu_relaxed_typed(const MTPlan& g, const K* key, int32_t* ptr0, int32_t* ptr1, const uint8_t* flag,
                       const int64_t* order, const int64_t* ncand, const int64_t* first, int64_t B, int64_t cap,
                       uint64_t* link0, uint64_t* best0, uint64_t* link1, uint64_t* best1, int32_t* changed,
                       int iterations, int32_t* pairs, int32_t* counts) {
  const int64_t cells = B * g.P;
  std::fill(link0, link0 + cells, steps::kNoLink);
  std::fill(best0, best0 + cells, steps::kNoLink);
  if (link1) {
    std::fill(link1, link1 + cells, steps::kNoLink);
    std::fill(best1, best1 + cells, steps::kNoLink);
  }
  std::fill(changed, changed + iterations, 0);
  std::fill(counts, counts + B * 2, 0);
  for (int it = 0; it < iterations; ++it) {
    if (it > 0 && changed[it - 1] == 0) break;  // as the kernels: nothing moved, nothing will
    each_element(cells, [&](int64_t t) {
      steps::relaxed_claim(g, key, ptr0, ptr1, flag, order, ncand, link0, link1, best0, best1, t,
                           atomic_min<uint64_t>);
    });
    // Serial: a cell reads its parent's link, which may move in the same step (harmless on the device).
    bool moved = false;
    each_element_serial(cells, [&](int64_t t) {
      moved |= steps::relaxed_apply(link0, best0, g.P, t);
      if (link1) moved |= steps::relaxed_apply(link1, best1, g.P, t);
    });
    changed[it] = moved ? 1 : 0;
  }
  if (changed[iterations - 1] != 0) return false;
  each_element(cells, [&](int64_t t) {
    steps::relaxed_emit(g, key, ptr0 ? link0 : nullptr, link1, order, ncand, cap, pairs, counts, t, fetch_add1);
  });
  if (ptr0)
    for (int64_t b = 0; b < B; ++b) steps::essential_emit(g, first, cap, pairs, counts, b, fetch_add1);
  return true;
}

const char* cpu_relaxed(const GridPlan& plan, const void* key, bool f64, int32_t* ptr0, int32_t* ptr1,
                        const uint8_t* flag, const int64_t* order, const int64_t* ncand, const int64_t* first,
                        int64_t B, int64_t cap, uint64_t* link0, uint64_t* best0, uint64_t* link1, uint64_t* best1,
                        int32_t* changed, int iterations, int32_t* pairs, int32_t* counts, void*) {
  const MTPlan g = make_mt_plan(plan);
  const bool converged =
      f64 ? cpu_relaxed_typed(g, static_cast<const Key64*>(key), ptr0, ptr1, flag, order, ncand, first, B, cap, link0,
                              best0, link1, best1, changed, iterations, pairs, counts)
          : cpu_relaxed_typed(g, static_cast<const Key32*>(key), ptr0, ptr1, flag, order, ncand, first, B, cap, link0,
                              best0, link1, best1, changed, iterations, pairs, counts);
  // Not converged: the sequential union-find of every run, as the fallback kernel.
  return converged ? nullptr
                   : cpu_elder(plan, key, f64, ptr0, ptr1, flag, order, ncand, first, B, cap, pairs, counts,
                               /*ring=*/false, nullptr);
}

const char* cpu_rows(const int32_t* pairs, const int32_t* counts, const int64_t* offsets, int64_t B, int64_t cap,
                     int64_t, int top_dim, const void* x, bool f64, int64_t N, uint64_t* life, uint64_t* tail,
                     int64_t* rows, void*) {
  // Runs side by side, as the kernels' blocks; each run's rows one at a time.
  if (x)
    each_element(B * 2, [&](int64_t s) {
      for (int64_t i = 0; i < counts[s]; ++i) {
        if (f64)
          steps::order_key(pairs, offsets, cap, static_cast<const double*>(x), N, life, tail, s, i);
        else
          steps::order_key(pairs, offsets, cap, static_cast<const float*>(x), N, life, tail, s, i);
      }
    });
  each_element(B * 2, [&](int64_t s) {
    for (int64_t i = 0; i < counts[s]; ++i) {
      if (x)
        steps::ranked_row_copy(pairs, counts, offsets, cap, top_dim, life, tail, rows, s, i);
      else
        steps::row_copy(pairs, offsets, cap, top_dim, rows, s, i, i);
    }
  });
  return nullptr;
}

const char* cpu_sort_pairs(int64_t* const* keys, int64_t* const* values, int* cur, int64_t n, int end_bit, void* temp,
                           size_t* temp_bytes, void*) {
  // The sorted pairs in the other buffers: the kernel files compiled for the host leave them in the same ones, so
  // the tests see both of cub's outcomes.
  return sort_pairs_on_host(keys, values, cur, n, end_bit, temp, temp_bytes, /*flip=*/true);
}

// launch.sort_pairs over the double buffers keys (two int64 blocks of n = B * P) and values; returns where the
// sorted pairs are.
int sort_pairs(const MTLaunchers& launch, int64_t* const* keys, int64_t* const* values, int cur, int64_t n,
               int end_bit, const at::TensorOptions& opts, void* stream) {
  size_t bytes = 0;
  check(launch.sort_pairs(keys, values, &cur, n, end_bit, nullptr, &bytes, stream), "sort (scratch size)");
  const at::Tensor temp = at::empty({int64_t(std::max<size_t>(bytes, 1))}, opts.dtype(at::kByte));
  check(launch.sort_pairs(keys, values, &cur, n, end_bit, temp.data_ptr(), &bytes, stream), "sort");
  return cur;
}

// Image by image, every padded cell in (cand_key, index) order, as a (B, P) int64 tensor of image-local padded
// indices: the merging pixels come first (ncand of them, all the union-find reads), the others (INT64_MAX) after.
// sort_keys: (2, B, P) int64, cand_key then first_key; both are spent afterwards (first_key's argmin is taken before).
at::Tensor candidate_order(const MTLaunchers& launch, const at::Tensor& sort_keys, void* stream) {
  const at::Tensor cand_key = sort_keys[0];
  const int64_t B = cand_key.size(0), P = cand_key.size(1), n = B * P;
  // Stable: equal values keep padded-index order, which is flat-index order, so candidates come in (value, index)
  // order (Key64's sort key holds the value only).
  if (n < buffer_sort_cells.load(std::memory_order_relaxed))
    return std::get<1>(at::sort(cand_key, /*stable=*/true, /*dim=*/1, false)).contiguous();
  // The keys' double buffer is the two halves of sort_keys; the values, the cells' flat indices in the batch, take
  // two more buffers, one of which is let go at the end. Radix sorts are stable.
  const at::TensorOptions opts = cand_key.options();
  at::Tensor values[2] = {at::arange(n, opts), at::empty({n}, opts)};
  int64_t* const kb[2] = {sort_keys[0].data_ptr<int64_t>(), sort_keys[1].data_ptr<int64_t>()};
  int64_t* const vb[2] = {values[0].data_ptr<int64_t>(), values[1].data_ptr<int64_t>()};
  int cur = sort_pairs(launch, kb, vb, 0, n, 64, opts, stream);
  if (B > 1) {
    // Then stably by image, on the image number's bits only (one or two radix passes): key order within an image.
    at::Tensor image = sort_keys[cur].view(-1);
    at::div_out(image, values[cur], at::scalar_tensor(P, at::kLong), "floor");
    int bits = 1;
    while (bits < 63 && (int64_t(1) << bits) < B) ++bits;
    cur = sort_pairs(launch, kb, vb, cur, n, bits, opts, stream);
  }
  at::Tensor order = values[cur].view({B, P});
  if (B > 1) order.sub_(at::arange(B, opts).mul_(P).unsqueeze(1));  // flat index -> the image's own
  return order;
}

}  // namespace

int64_t set_buffer_sort_cells(int64_t cells) {
  TORCH_CHECK_VALUE(cells >= 0, "gpuph: the double-buffer sort's batch size is >= 0 cells");
  return buffer_sort_cells.exchange(cells);
}

MTLaunchers cpu_merge_tree_launchers() {
  return MTLaunchers{cpu_keys, cpu_basins, cpu_sort_keys, cpu_sort_pairs, cpu_elder, cpu_relaxed, cpu_rows};
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
                             const at::Tensor& keys, int64_t dims_mask, void* stream, UnionFindStats* stats,
                             TreeStages* stages) {
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
  const at::Tensor moved = at::empty({steps::jump_rounds(g.P)}, i32);
  int32_t* p1 = emit1 ? ptr1.data_ptr<int32_t>() : nullptr;
  check(launch.basins(g, keys.data_ptr(), f64, B, ptr0.data_ptr<int32_t>(), p1, flag.data_ptr<uint8_t>(),
                      moved.data_ptr<int32_t>(), stream),
        "basins");
  if (stages) {
    stages->ptr0 = ptr0.clone();
    stages->ptr1 = emit1 ? ptr1.clone() : at::Tensor();
    stages->flag = flag.clone();
  }

  // cand_key and first_key, one block: spent after the sort and the argmin, it then holds the serial union-find's
  // pairs, or the relaxed one's links (so the pairs need no memory of their own).
  const at::Tensor sort_keys = at::empty({2, B, g.P}, i64);
  const at::Tensor cand_key = sort_keys[0], first_key = sort_keys[1];
  check(launch.sort_keys(g, keys.data_ptr(), f64, flag.data_ptr<uint8_t>(), B, cand_key.data_ptr<int64_t>(),
                         first_key.data_ptr<int64_t>(), stream),
        "sort keys");
  const at::Tensor first = first_key.argmin(1).contiguous();  // the first of equal minima; first_key is then spent
  at::Tensor ncand, order;
  {
    RECORD_FUNCTION("gpuph::merge_trees::candidates", std::vector<c10::IValue>());
    ncand = flag.view({B, g.P}).ne(0).sum(1, /*keepdim=*/false, at::kLong);
    order = candidate_order(launch, sort_keys, stream);
  }
  if (stages) {
    stages->order = order.clone();
    stages->ncand = ncand.clone();
    stages->first = first.clone();
  }

  // Its own stage in profiles (gpuph.bench.breakdown): on the host path, the copies and the host's union-find.
  RECORD_FUNCTION("gpuph::merge_trees::union_find", std::vector<c10::IValue>());
  int64_t cap = g.N + 1;  // per image and phase: at most one pair per basin, plus the essential class
  const int requested = union_find_mode.load(std::memory_order_relaxed);
  const int mode = requested != kAutoUnionFind ? requested
                   : g.N >= kRelaxedMinPixels  ? kRelaxedUnionFind
                                               : kSerialUnionFind;
  if (stats) {
    stats->mode = mode;
    stats->candidates = ncand.sum().item<int64_t>();
    stats->jump_rounds = int(moved.size(0));
    stats->jump_rounds_run = rounds_run(moved);
  }
  at::Tensor pairs, counts, relaxed_moved;
  int learn_cap = 0, learned_before = 0;
  if (mode == kHostUnionFind) {
    // The sequential union-find on the host (torch's threads, one per run) on copies of what it reads; only the
    // pairs it wrote go back.
    const std::vector<at::Tensor> h = to_host({keys, flag, order, ncand, ptr0, ptr1, first});
    const at::Tensor &keys_h = h[0], &flag_h = h[1], &order_h = h[2], &ncand_h = h[3], &ptr0_h = h[4], &ptr1_h = h[5];
    const at::Tensor& first_h = h[6];
    const auto host_i32 = at::TensorOptions().dtype(at::kInt);
    at::Tensor pairs_h = at::empty({B, 2, cap, 2}, host_i32), counts_h = at::empty({B * 2}, host_i32);
    check(cpu_merge_tree_launchers().elder(
              g, keys_h.data_ptr(), f64, emit0 ? ptr0_h.data_ptr<int32_t>() : nullptr,
              emit1 ? ptr1_h.data_ptr<int32_t>() : nullptr, flag_h.data_ptr<uint8_t>(), order_h.data_ptr<int64_t>(),
              ncand_h.data_ptr<int64_t>(), first_h.data_ptr<int64_t>(), B, cap, pairs_h.data_ptr<int32_t>(),
              counts_h.data_ptr<int32_t>(), /*ring=*/false, nullptr),
          "union-find");
    cap = std::max<int64_t>(1, counts_h.max().item<int64_t>());
    pairs = pairs_h.narrow(2, 0, cap).contiguous().to(xc.device());
    counts = counts_h.to(xc.device());
  } else if (mode == kRelaxedUnionFind) {
    // The links take the spent sort keys' memory, the pairs the claims' once they are spent (neither the emit nor
    // the fallback kernel reads a claim), so the union-find holds 32 bytes a cell and leaves the pairs' 16.
    const at::Tensor best = at::empty({2, B, g.P}, i64);
    pairs = pairs_view(best, B, cap);
    counts = at::empty({B * 2}, i32);
    const at::Tensor link1 = emit1 ? first_key : at::Tensor(), best1 = emit1 ? best[1] : at::Tensor();
    const int pinned = relaxed_iterations.load(std::memory_order_relaxed);
    const int learned = relaxed_cap.load(std::memory_order_relaxed);
    const int iterations = pinned > 0 ? pinned : std::max(learned, relaxed_floor(B * g.P));
    const at::Tensor changed = at::empty({iterations}, i32);
    check(launch.relaxed(g, keys.data_ptr(), f64, emit0 ? ptr0.data_ptr<int32_t>() : nullptr, p1,
                         flag.data_ptr<uint8_t>(), order.data_ptr<int64_t>(), ncand.data_ptr<int64_t>(),
                         first.data_ptr<int64_t>(), B, cap, as_u64(cand_key), as_u64(best[0]), as_u64(link1),
                         as_u64(best1), changed.data_ptr<int32_t>(), iterations, pairs.data_ptr<int32_t>(),
                         counts.data_ptr<int32_t>(), stream),
          "union-find");
    if (stats) {
      const at::Tensor c = changed.cpu();  // one copy for both
      stats->iterations = rounds_run(c);
      stats->converged = c.data_ptr<int32_t>()[iterations - 1] == 0;
    }
    if (pinned == 0) {  // a pinned cap teaches nothing: no reduction, nothing in the copy
      // Iterations that moved a link (a prefix of them ran): fewer than the cap if converged.
      relaxed_moved = changed.sum(0, /*keepdim=*/false, at::kLong).view({1});
      learn_cap = iterations;
      learned_before = learned;
    }
  } else {
    pairs = pairs_view(sort_keys, B, cap);
    counts = at::empty({B * 2}, i32);
    check(launch.elder(g, keys.data_ptr(), f64, emit0 ? ptr0.data_ptr<int32_t>() : nullptr, p1,
                       flag.data_ptr<uint8_t>(), order.data_ptr<int64_t>(), ncand.data_ptr<int64_t>(),
                       first.data_ptr<int64_t>(), B, cap, pairs.data_ptr<int32_t>(), counts.data_ptr<int32_t>(),
                       mode == kSerialRingUnionFind, stream),
          "union-find");
  }

  const at::Tensor counts64 = counts.to(at::kLong);
  const at::Tensor ends = counts64.cumsum(0);
  return TreeLaunch{pairs, counts, (ends - counts64).contiguous(), ends.narrow(0, B * 2 - 1, 1),
                    counts64.max().view({1}), cap, relaxed_moved, learn_cap, learned_before};
}

void note_relaxed_iterations(const TreeLaunch& t, int64_t moved) {
  if (t.relaxed_cap <= 0) return;
  // Not converged: four times the cap it ran under (the floor included); converged: shrinks from what was learned.
  const int64_t cap = t.relaxed_cap, learned = t.relaxed_learned;
  const int64_t next = moved >= cap ? cap * 4 : std::max(2 * moved + kRelaxedSlack, learned - learned / 4);
  relaxed_cap.store(int(std::clamp<int64_t>(next, kFewestRelaxedIterations, kMostRelaxedIterations)),
                    std::memory_order_relaxed);
}

int64_t set_union_find_mode(int64_t mode) {
  TORCH_CHECK_VALUE(mode >= kAutoUnionFind && mode <= kSerialRingUnionFind,
                    "gpuph: union-find mode is 0, 1, 2, 3 or 4");
  return union_find_mode.exchange(int(mode));
}

int64_t set_relaxed_iterations(int64_t iterations) {
  TORCH_CHECK_VALUE(iterations >= 0 && iterations <= kMostRelaxedIterations,
                    "gpuph: relaxed iterations are 1 to 4096, or 0 for the learned cap");
  return relaxed_iterations.exchange(int(iterations));
}

int64_t set_relaxed_cap(int64_t cap) {
  TORCH_CHECK_VALUE(cap == -1 || (cap >= 1 && cap <= kMostRelaxedIterations),
                    "gpuph: the learned relaxed cap is 1 to 4096 (-1: only read it)");
  return cap == -1 ? relaxed_cap.load() : relaxed_cap.exchange(int(cap));
}

int64_t set_relaxed_cells_per_iteration(int64_t cells) {
  TORCH_CHECK_VALUE(cells == -1 || cells >= 1, "gpuph: relaxed cells per iteration are at least 1 (-1: only read)");
  return cells == -1 ? relaxed_cells_per_iteration.load() : relaxed_cells_per_iteration.exchange(cells);
}

bool ranked_order_fits(int64_t total, int64_t longest) {
  const int64_t limit = ranked_order_limit.load(std::memory_order_relaxed);
  return longest <= limit && total <= kRankedOrderWork / std::max<int64_t>(longest, 1);
}

int64_t set_ranked_order_limit(int64_t longest) {
  TORCH_CHECK_VALUE(longest >= 0, "gpuph: the ranked order's run limit is >= 0");
  return ranked_order_limit.exchange(longest);
}

at::Tensor merge_tree_finish(const MTLaunchers& launch, const TreeLaunch& t, int64_t total, const GridPlan& g,
                             const at::Tensor& xc, bool ordered, void* stream) {
  const auto opts = t.counts.options().dtype(at::kLong);
  at::Tensor rows = at::empty({total, 4}, opts);
  if (total == 0) return rows;
  at::Tensor life, tail;
  if (ordered) {
    life = at::empty({total}, opts);
    tail = at::empty({total}, opts);
  }
  check(launch.rows(t.pairs.data_ptr<int32_t>(), t.counts.data_ptr<int32_t>(), t.offsets.data_ptr<int64_t>(),
                    t.counts.size(0) / 2, t.cap, total, g.D - 1, ordered ? xc.data_ptr() : nullptr,
                    xc.scalar_type() == at::kDouble, g.N, as_u64(life), as_u64(tail), rows.data_ptr<int64_t>(), stream),
        "rows");
  return rows;
}

}  // namespace gpuph
