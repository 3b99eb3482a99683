// CUDA kernels of the merge-tree pipeline for batches of V / T / freudenthal grids (1D, 2D; 3D for H0 and H2): the
// per-element steps of kernels/merge_tree_steps.cuh (the bodies the CPU driver and the CPU emulation of this pipeline
// also run), one thread per padded cell of the whole batch, then one thread per image and phase for the elder-rule
// union-find over the few merging pixels. Plain CUDA (and cub's radix sort), no torch headers: the driver
// (gpuph/csrc/merge_tree_pipeline.cpp) allocates, sorts small batches through torch, and passes its stream.
#include <algorithm>
#include <atomic>

#include "cuda_launch.cuh"
#ifndef GPUPH_CUDA_ON_HOST
#include <cub/device/device_radix_sort.cuh>
#endif

#include "merge_tree_launch.h"
#include "merge_tree_steps.cuh"

namespace gpuph {
namespace GPUPH_KERNELS {
namespace {

template <typename F, typename U, typename K>
__global__ void keys_kernel(MTPlan g, const F* __restrict__ x, int64_t B, bool superlevel, K* __restrict__ key,
                            int32_t* __restrict__ nan_image) {
  GPUPH_GRID_LOOP(t, B * g.P) {
    // The read first: an all-NaN volume would otherwise send one atomic per pixel to one address.
    steps::key_cell<F, U>(g, x, superlevel, key, t, [&](int64_t b) {
      if (int32_t(b) < racy_load(nan_image)) atomicMin(nan_image, int32_t(b));
    });
  }
}

template <typename K>
__global__ void ring_kernel(MTPlan g, RingTables tables, const K* __restrict__ key, int64_t B, int32_t* ptr0,
                            int32_t* ptr1, uint8_t* __restrict__ flag) {
  GPUPH_GRID_LOOP(t, B * g.P) { steps::ring_cell(g, tables, key, ptr0, ptr1, flag, t); }
}

template <typename K>
__global__ void steepest_kernel(MTPlan g, const K* __restrict__ key, int64_t B, int phase, int32_t* __restrict__ ptr) {
  GPUPH_GRID_LOOP(t, B * g.P) { steps::steepest_cell(g, key, ptr, phase, t); }
}

// Round r of pointer jumping, both phases at once (ptr1 may be null), unless round r - 1 moved no pointer. The
// pointers race (a cell reads another's while that one may move it): no __restrict__ on them.
__global__ void jump_kernel(int64_t P, int64_t B, int32_t* ptr0, int32_t* ptr1, int32_t* moved, int r) {
  if (r > 0 && moved[r - 1] == 0) return;
  bool any = false;
  GPUPH_GRID_LOOP(t, B * P) {
    any |= steps::jump_cell(P, ptr0, t);
    if (ptr1) any |= steps::jump_cell(P, ptr1, t);
  }
  if (any) moved[r] = 1;  // every writer writes 1
}

template <typename K>
__global__ void flag_kernel(MTPlan g, const K* __restrict__ key, const int32_t* ptr0, const int32_t* ptr1, int64_t B,
                            uint8_t* __restrict__ flag) {
  GPUPH_GRID_LOOP(t, B * g.P) { steps::flag_cell(g, key, ptr0, ptr1, flag, t); }
}

// cand_key and first_key may be one buffer (H1 of 3D sorts every pixel: all flags set, both stores the same).
template <typename K>
__global__ void sort_keys_kernel(MTPlan g, const K* __restrict__ key, const uint8_t* __restrict__ flag, int64_t B,
                                 int64_t* cand_key, int64_t* first_key) {
  GPUPH_GRID_LOOP(t, B * g.P) { steps::sort_keys_cell(g, key, flag, cand_key, first_key, t); }
}

// reps: read in place from the parameter space (__grid_constant__: no per-thread copy), where ring is set.
template <typename K>
__global__ void elder_kernel(MTPlan g, const __grid_constant__ PhaseReps reps, bool ring, const K* __restrict__ keys,
                             int32_t* ptr0, int32_t* ptr1, const uint8_t* __restrict__ flags,
                             const int64_t* __restrict__ orders, const int64_t* __restrict__ ncand,
                             const int64_t* __restrict__ first, int64_t B, int64_t cap, int32_t* __restrict__ pairs,
                             int32_t* __restrict__ counts) {
  GPUPH_GRID_LOOP(t, B * 2) {
    steps::elder_run(g, ring ? &reps : nullptr, keys, ptr0, ptr1, flags, orders, ncand, first, cap, pairs, counts, t);
  }
}

// The relaxed elder rule (steps::relaxed_claim): iteration `it` runs unless the previous one changed nothing.
__device__ __forceinline__ void atomic_min_u64(uint64_t* slot, uint64_t v) {
  atomicMin(reinterpret_cast<unsigned long long*>(slot), static_cast<unsigned long long>(v));
}
__device__ __forceinline__ int32_t reserve_slot(int32_t* count) { return atomicAdd(count, 1); }

template <typename K>
__global__ void claim_kernel(MTPlan g, const K* __restrict__ keys, const int32_t* __restrict__ ptr0,
                             const int32_t* __restrict__ ptr1, const uint8_t* __restrict__ flags,
                             const int64_t* __restrict__ orders, const int64_t* __restrict__ ncand,
                             const uint64_t* __restrict__ link0, const uint64_t* __restrict__ link1, uint64_t* best0,
                             uint64_t* best1, int64_t B, const int32_t* __restrict__ changed, int it) {
  if (it > 0 && changed[it - 1] == 0) return;
  GPUPH_GRID_LOOP(t, B * g.P) {
    steps::relaxed_claim(g, keys, ptr0, ptr1, flags, orders, ncand, link0, link1, best0, best1, t, atomic_min_u64);
  }
}

// The links race (a cell reads its parent's while that one may write it): no __restrict__ on them.
__global__ void apply_kernel(uint64_t* link0, uint64_t* __restrict__ best0, uint64_t* link1,
                             uint64_t* __restrict__ best1, int64_t P, int64_t cells, int32_t* changed, int it) {
  if (it > 0 && changed[it - 1] == 0) return;
  bool moved = false;
  GPUPH_GRID_LOOP(t, cells) {
    moved |= steps::relaxed_apply(link0, best0, P, t);
    if (link1) moved |= steps::relaxed_apply(link1, best1, P, t);
  }
  if (moved) changed[it] = 1;  // every writer writes 1
}

// Converged: every root's pair from its link, and each image's essential class.
template <typename K>
__global__ void emit_kernel(MTPlan g, const K* __restrict__ keys, const uint64_t* __restrict__ link0,
                            const uint64_t* __restrict__ link1, const int64_t* __restrict__ orders,
                            const int64_t* __restrict__ ncand, const int64_t* __restrict__ first, bool essential,
                            int64_t B, int64_t cap, int32_t* __restrict__ pairs, int32_t* __restrict__ counts,
                            const int32_t* __restrict__ changed, int iterations) {
  if (changed[iterations - 1] != 0) return;
  GPUPH_GRID_LOOP(t, B * g.P) {
    steps::relaxed_emit(g, keys, link0, link1, orders, ncand, cap, pairs, counts, t, reserve_slot);
  }
  if (essential) GPUPH_GRID_LOOP(b, B) { steps::essential_emit(g, first, cap, pairs, counts, b, reserve_slot); }
}

// Not converged within the iterations: the sequential union-find of every run.
template <typename K>
__global__ void fallback_kernel(MTPlan g, const K* __restrict__ keys, int32_t* ptr0, int32_t* ptr1,
                                const uint8_t* __restrict__ flags, const int64_t* __restrict__ orders,
                                const int64_t* __restrict__ ncand, const int64_t* __restrict__ first, int64_t B,
                                int64_t cap, int32_t* __restrict__ pairs, int32_t* __restrict__ counts,
                                const int32_t* __restrict__ changed, int iterations) {
  if (changed[iterations - 1] == 0) return;
  GPUPH_GRID_LOOP(t, B * 2) {
    steps::elder_run(g, nullptr, keys, ptr0, ptr1, flags, orders, ncand, first, cap, pairs, counts, t);
  }
}

// `parts` blocks per run (image and phase), so that one long run (a single large image) is not left to one block:
// block u's threads take rows (u % parts) * blockDim + threadIdx, then every parts * blockDim-th, of run u / parts.
#define GPUPH_RUN_ROWS(s, i, B, parts, counts)                                                         \
  for (int64_t u_ = blockIdx.x; u_ < (B) * 2 * (parts); u_ += gridDim.x)                               \
    for (int64_t s = u_ / (parts), i = (u_ % (parts)) * int64_t(blockDim.x) + threadIdx.x; i < (counts)[s]; \
         i += (parts) * int64_t(blockDim.x))

// Each run's rows copied in place or (life not null) to their ranks in the pinned order.
__global__ void rows_kernel(const int32_t* __restrict__ pairs, const int32_t* __restrict__ counts,
                            const int64_t* __restrict__ offsets, int64_t B, int64_t parts, int64_t cap,
                            int top_dim, const uint64_t* __restrict__ life, const uint64_t* __restrict__ tail,
                            int64_t* __restrict__ rows) {
  GPUPH_RUN_ROWS(s, i, B, parts, counts) {
    if (life)
      steps::ranked_row_copy(pairs, counts, offsets, cap, top_dim, life, tail, rows, s, i);
    else
      steps::row_copy(pairs, offsets, cap, top_dim, rows, s, i, i);
  }
}

template <typename F>
__global__ void order_keys_kernel(const int32_t* __restrict__ pairs, const int32_t* __restrict__ counts,
                                  const int64_t* __restrict__ offsets, int64_t B, int64_t parts, int64_t cap,
                                  const F* __restrict__ x, int64_t N, uint64_t* __restrict__ life,
                                  uint64_t* __restrict__ tail) {
  GPUPH_RUN_ROWS(s, i, B, parts, counts) steps::order_key(pairs, offsets, cap, x, N, life, tail, s, i);
}

const char* keys(const GridPlan& plan, const void* x, bool f64, int64_t B, bool superlevel, void* key,
                 int32_t* nan_image, void* stream) {
  const MTPlan g = make_mt_plan(plan);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (f64)
    GPUPH_LAUNCH(blocks_for(B * g.P), kThreads, s, keys_kernel<double, uint64_t, Key64>)(
        g, static_cast<const double*>(x), B, superlevel, static_cast<Key64*>(key), nan_image);
  else
    GPUPH_LAUNCH(blocks_for(B * g.P), kThreads, s, keys_kernel<float, uint32_t, Key32>)(
        g, static_cast<const float*>(x), B, superlevel, static_cast<Key32*>(key), nan_image);
  return last_error();
}

// Multiprocessors of the current device (the driver has made the input's device current), asked once a device.
int multiprocessors() {
  constexpr int kDevices = 64, kFallback = 132;  // an H100's, should the runtime not say
  static std::atomic<int> known[kDevices] = {};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kDevices) return kFallback;
  int n = known[device].load(std::memory_order_relaxed);
  if (n == 0) {
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || n <= 0) n = kFallback;
    known[device].store(n, std::memory_order_relaxed);
  }
  return n;
}

// Blocks for kernels launched round after round until a flag says they may stop (pointer jumping, the relaxed
// union-find): 8 of 256 threads a multiprocessor (the most that can run at once; kernels using more registers fit
// 4-6, and run these in two waves), each thread striding over several cells, so that the rounds after the last
// useful one cost a launch of few blocks that return at once, not one of a block per 256 cells.
int resident_blocks(int64_t cells) { return std::min(blocks_for(cells), 8 * multiprocessors()); }

template <typename K>
const char* basins_typed(const MTPlan& g, const K* key, int64_t B, int32_t* ptr0, int32_t* ptr1, uint8_t* flag,
                         int32_t* moved, cudaStream_t s) {
  const int blocks = blocks_for(B * g.P);
  if (g.D == 2) {
    static const RingTables tables = make_ring_tables();
    GPUPH_LAUNCH(blocks, kThreads, s, ring_kernel<K>)(g, tables, key, B, ptr0, ptr1, flag);
  } else {
    GPUPH_LAUNCH(blocks, kThreads, s, steepest_kernel<K>)(g, key, B, 0, ptr0);
    if (ptr1) GPUPH_LAUNCH(blocks, kThreads, s, steepest_kernel<K>)(g, key, B, 1, ptr1);
  }
  const int rounds = steps::jump_rounds(g.P);
  cudaMemsetAsync(moved, 0, rounds * sizeof(int32_t), s);
  const int jump_blocks = resident_blocks(B * g.P);
  for (int r = 0; r < rounds; ++r) GPUPH_LAUNCH(jump_blocks, kThreads, s, jump_kernel)(g.P, B, ptr0, ptr1, moved, r);
  if (g.D != 2) GPUPH_LAUNCH(blocks, kThreads, s, flag_kernel<K>)(g, key, ptr0, ptr1, B, flag);
  return last_error();
}

const char* basins(const GridPlan& plan, const void* key, bool f64, int64_t B, int32_t* ptr0, int32_t* ptr1,
                   uint8_t* flag, int32_t* moved, void* stream) {
  const MTPlan g = make_mt_plan(plan);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return f64 ? basins_typed(g, static_cast<const Key64*>(key), B, ptr0, ptr1, flag, moved, s)
             : basins_typed(g, static_cast<const Key32*>(key), B, ptr0, ptr1, flag, moved, s);
}

const char* sort_keys(const GridPlan& plan, const void* key, bool f64, const uint8_t* flag, int64_t B,
                      int64_t* cand_key, int64_t* first_key, void* stream) {
  const MTPlan g = make_mt_plan(plan);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (f64)
    GPUPH_LAUNCH(blocks_for(B * g.P), kThreads, s, sort_keys_kernel<Key64>)(g, static_cast<const Key64*>(key), flag, B,
        cand_key, first_key);
  else
    GPUPH_LAUNCH(blocks_for(B * g.P), kThreads, s, sort_keys_kernel<Key32>)(g, static_cast<const Key32*>(key), flag, B,
        cand_key, first_key);
  return last_error();
}

// Threads per block of the union-find. A run (image, phase) is one long serial thread that mostly waits on memory,
// and its branches diverge from any other run's: packed 32 to a warp, runs would take turns through every divergent
// branch, and 64 to a block, a batch of 128 runs would sit on two multiprocessors. One run per block spreads them
// over the multiprocessors (each with an L1 to itself while there are fewer runs than multiprocessors); only past
// 16 blocks a multiprocessor do runs share blocks (the limit is 32 resident blocks). Unmeasured: a GPU run must
// compare it with the previous 64.
int elder_threads(int64_t runs) {
  const int sms = multiprocessors();
  const int64_t per_sm = (runs + sms - 1) / sms;
  return per_sm <= 16 ? 1 : int(std::min<int64_t>(32, (per_sm + 15) / 16));
}

const char* elder(const GridPlan& plan, const void* key, bool f64, int32_t* ptr0, int32_t* ptr1, const uint8_t* flag,
                  const int64_t* order, const int64_t* ncand, const int64_t* first, int64_t B, int64_t cap,
                  int32_t* pairs, int32_t* counts, bool ring, void* stream) {
  const MTPlan g = make_mt_plan(plan);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int threads = elder_threads(B * 2);
  ring = ring && g.D == 2;
  const PhaseReps reps = ring ? phase_reps(g.ring_cells[0], g.ring_cells[1]) : PhaseReps{};
  if (f64)
    GPUPH_LAUNCH(blocks_for(B * 2, threads), threads, s, elder_kernel<Key64>)(g, reps, ring,
        static_cast<const Key64*>(key), ptr0, ptr1, flag, order, ncand, first, B, cap, pairs, counts);
  else
    GPUPH_LAUNCH(blocks_for(B * 2, threads), threads, s, elder_kernel<Key32>)(g, reps, ring,
        static_cast<const Key32*>(key), ptr0, ptr1, flag, order, ncand, first, B, cap, pairs, counts);
  return last_error();
}

template <typename K>
const char* relaxed_typed(const MTPlan& g, const K* key, int32_t* ptr0, int32_t* ptr1, const uint8_t* flag,
                          const int64_t* order, const int64_t* ncand, const int64_t* first, int64_t B, int64_t cap,
                          uint64_t* link0, uint64_t* best0, uint64_t* link1, uint64_t* best1, int32_t* changed,
                          int iterations, int32_t* pairs, int32_t* counts, cudaStream_t s) {
  const int64_t cells = B * g.P;
  // All bits set: kNoLink in every link and claim.
  cudaMemsetAsync(link0, 0xff, cells * sizeof(uint64_t), s);
  cudaMemsetAsync(best0, 0xff, cells * sizeof(uint64_t), s);
  if (link1) {
    cudaMemsetAsync(link1, 0xff, cells * sizeof(uint64_t), s);
    cudaMemsetAsync(best1, 0xff, cells * sizeof(uint64_t), s);
  }
  cudaMemsetAsync(changed, 0, iterations * sizeof(int32_t), s);
  cudaMemsetAsync(counts, 0, B * 2 * sizeof(int32_t), s);
  const int blocks = resident_blocks(cells);
  for (int it = 0; it < iterations; ++it) {
    GPUPH_LAUNCH(blocks, kThreads, s, claim_kernel<K>)(g, key, ptr0, ptr1, flag, order, ncand, link0, link1, best0,
        best1, B, changed, it);
    GPUPH_LAUNCH(blocks, kThreads, s, apply_kernel)(link0, best0, link1, best1, g.P, cells, changed, it);
  }
  GPUPH_LAUNCH(blocks, kThreads, s, emit_kernel<K>)(g, key, ptr0 ? link0 : nullptr, link1, order, ncand, first,
      ptr0 != nullptr, B, cap, pairs, counts, changed, iterations);
  const int threads = elder_threads(B * 2);
  GPUPH_LAUNCH(blocks_for(B * 2, threads), threads, s, fallback_kernel<K>)(g, key, ptr0, ptr1, flag, order, ncand,
      first, B, cap, pairs, counts, changed, iterations);
  return last_error();
}

const char* relaxed(const GridPlan& plan, const void* key, bool f64, int32_t* ptr0, int32_t* ptr1,
                    const uint8_t* flag, const int64_t* order, const int64_t* ncand, const int64_t* first, int64_t B,
                    int64_t cap, uint64_t* link0, uint64_t* best0, uint64_t* link1, uint64_t* best1, int32_t* changed,
                    int iterations, int32_t* pairs, int32_t* counts, void* stream) {
  const MTPlan g = make_mt_plan(plan);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return f64 ? relaxed_typed(g, static_cast<const Key64*>(key), ptr0, ptr1, flag, order, ncand, first, B, cap, link0,
                             best0, link1, best1, changed, iterations, pairs, counts, s)
             : relaxed_typed(g, static_cast<const Key32*>(key), ptr0, ptr1, flag, order, ncand, first, B, cap, link0,
                             best0, link1, best1, changed, iterations, pairs, counts, s);
}

const char* rows(const int32_t* pairs, const int32_t* counts, const int64_t* offsets, int64_t B, int64_t cap,
                 int64_t total, int top_dim, const void* x, bool f64, int64_t N, uint64_t* life, uint64_t* tail,
                 int64_t* out, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  constexpr int threads = 128;
  // Blocks per run for about one row a thread on the average run (a single image's H0 may be 10^7 rows).
  const int64_t parts = std::max<int64_t>(1, (total + B * 2 * threads - 1) / (B * 2 * threads));
  const int blocks = blocks_for(B * 2 * parts, 1);
  if (x && f64)
    GPUPH_LAUNCH(blocks, threads, s, order_keys_kernel<double>)(pairs, counts, offsets, B, parts, cap,
                                                                static_cast<const double*>(x), N, life, tail);
  else if (x)
    GPUPH_LAUNCH(blocks, threads, s, order_keys_kernel<float>)(pairs, counts, offsets, B, parts, cap,
                                                               static_cast<const float*>(x), N, life, tail);
  GPUPH_LAUNCH(blocks, threads, s, rows_kernel)(pairs, counts, offsets, B, parts, cap, top_dim,
                                                x ? life : nullptr, x ? tail : nullptr, out);
  return last_error();
}

// cub's radix sort over the caller's double buffers: its scratch is small (no copy of the keys or values).
const char* sort_pairs(int64_t* const* keys, int64_t* const* values, int* cur, int64_t n, int end_bit, void* temp,
                       size_t* temp_bytes, void* stream) {
#ifdef GPUPH_CUDA_ON_HOST
  (void)stream;
  return sort_pairs_on_host(keys, values, cur, n, end_bit, temp, temp_bytes, /*flip=*/false);
#else
  cub::DoubleBuffer<int64_t> k(keys[*cur], keys[1 - *cur]), v(values[*cur], values[1 - *cur]);
  const cudaError_t err = cub::DeviceRadixSort::SortPairs(temp, *temp_bytes, k, v, n, 0, end_bit,
                                                          static_cast<cudaStream_t>(stream));
  if (err != cudaSuccess) return cudaGetErrorString(err);
  if (temp != nullptr && v.selector != 0) *cur = 1 - *cur;  // selector 1: the buffers passed as the alternates
  return last_error();
#endif
}

}  // namespace

MTLaunchers merge_tree_launchers() {
  return MTLaunchers{keys, basins, sort_keys, sort_pairs, elder, relaxed, rows};
}

}  // namespace GPUPH_KERNELS
}  // namespace gpuph
