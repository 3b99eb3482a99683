// CUDA kernels of the device pipeline of H1 of 3D grids: the per-cell passes of kernels/middle_steps.cuh (the bodies
// the CPU emulation also runs), one thread per cell of the whole batch. Plain CUDA, no torch headers: the driver
// (gpuph/csrc/middle_pipeline.cpp) allocates through torch and passes its stream. The plan (about 6 KB) goes by
// value, as a kernel parameter (over 4 KB: CUDA 12.1 or newer on Volta or newer): no constant-memory symbol that
// concurrent streams could race on.
#include "cuda_launch.cuh"

#if defined(__CUDACC__)
#include <cooperative_groups.h>
#include <cooperative_groups/reduce.h>
#endif

#include "middle_launch.h"

namespace gpuph {
namespace GPUPH_KERNELS {
namespace {

template <typename K>
__global__ void edge_keys_kernel(const MiddlePlan m, const int32_t* __restrict__ rank, int64_t B,
                                 K* __restrict__ ekey) {
  GPUPH_GRID_LOOP(t, B * m.P * m.ntypes[1]) { mid::edge_key_cell(m, rank, ekey, t); }
}

__device__ __forceinline__ void atomic_min(int32_t* slot, int32_t key) { atomicMin(slot, key); }
__device__ __forceinline__ void atomic_min(int64_t* slot, int64_t key) {
  atomicMin(reinterpret_cast<long long*>(slot), static_cast<long long>(key));
}

template <typename K>
__global__ void columns_kernel(const MiddlePlan m, const int32_t* __restrict__ rank, const K* __restrict__ ekey,
                               int64_t B, K* __restrict__ col_key, uint8_t* __restrict__ col_pivot, K* row_oldest) {
  GPUPH_GRID_LOOP(t, B * m.P * m.ntypes[2]) {
    mid::column_cell(m, rank, ekey, col_key, col_pivot, row_oldest, t, [](K* slot, K key) { atomic_min(slot, key); });
  }
}

template <typename K>
__global__ void apparent_kernel(const MiddlePlan m, const K* __restrict__ col_key,
                                const uint8_t* __restrict__ col_pivot, const K* __restrict__ ekey,
                                const int32_t* __restrict__ order, const int64_t* __restrict__ vkey, int64_t B,
                                K* row_oldest, uint8_t* __restrict__ status, int32_t* __restrict__ birth,
                                int32_t* __restrict__ death) {
  GPUPH_GRID_LOOP(t, B * m.P * m.ntypes[2]) {
    mid::apparent_cell(m, col_key, col_pivot, ekey, order, vkey, row_oldest, status, birth, death, t);
  }
}

template <typename K>
const char* edge_keys_typed(const MiddlePlan& m, const int32_t* rank, int64_t B, void* ekey, cudaStream_t s) {
  GPUPH_LAUNCH(blocks_for(B * m.P * m.ntypes[1]), kThreads, s, edge_keys_kernel<K>)(m, rank, B, static_cast<K*>(ekey));
  return last_error();
}

const char* edge_keys(const MiddlePlan& m, bool wide, const int32_t* rank, int64_t B, void* ekey, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return wide ? edge_keys_typed<int64_t>(m, rank, B, ekey, s) : edge_keys_typed<int32_t>(m, rank, B, ekey, s);
}

template <typename K>
const char* columns_typed(const MiddlePlan& m, const int32_t* rank, const void* ekey, int64_t B, void* col_key,
                          uint8_t* col_pivot, void* row_oldest, cudaStream_t s) {
  GPUPH_LAUNCH(blocks_for(B * m.P * m.ntypes[2]), kThreads, s, columns_kernel<K>)(m, rank, static_cast<const K*>(ekey),
      B, static_cast<K*>(col_key), col_pivot, static_cast<K*>(row_oldest));
  return last_error();
}

const char* columns(const MiddlePlan& m, bool wide, const int32_t* rank, const void* ekey, int64_t B, void* col_key,
                    uint8_t* col_pivot, void* row_oldest, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return wide ? columns_typed<int64_t>(m, rank, ekey, B, col_key, col_pivot, row_oldest, s)
              : columns_typed<int32_t>(m, rank, ekey, B, col_key, col_pivot, row_oldest, s);
}

template <typename K>
const char* apparent_typed(const MiddlePlan& m, const void* col_key, const uint8_t* col_pivot, const void* ekey,
                           const int32_t* order, const int64_t* vkey, int64_t B, void* row_oldest, uint8_t* status,
                           int32_t* birth, int32_t* death, cudaStream_t s) {
  GPUPH_LAUNCH(blocks_for(B * m.P * m.ntypes[2]), kThreads, s, apparent_kernel<K>)(m, static_cast<const K*>(col_key),
      col_pivot, static_cast<const K*>(ekey), order, vkey, B, static_cast<K*>(row_oldest), status, birth, death);
  return last_error();
}

const char* apparent(const MiddlePlan& m, bool wide, const void* col_key, const uint8_t* col_pivot, const void* ekey,
                     const int32_t* order, const int64_t* vkey, int64_t B, void* row_oldest, uint8_t* status,
                     int32_t* birth, int32_t* death, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return wide ? apparent_typed<int64_t>(m, col_key, col_pivot, ekey, order, vkey, B, row_oldest, status, birth,
                                        death, s)
              : apparent_typed<int32_t>(m, col_key, col_pivot, ekey, order, vkey, B, row_oldest, status, birth,
                                        death, s);
}

template <typename K>
__global__ void residual_init_kernel(const MiddlePlan m, const K* __restrict__ ekey, const int64_t* __restrict__ res,
                                     int64_t nres, mid::ResidualColumns<K> c) {
  GPUPH_GRID_LOOP(j, nres) { mid::residual_init_cell(m, ekey, res, c, j); }
}

// A round after one that added nothing (prev: its count) returns at once: every column is final or stuck, and the
// next claims are the same, so the rounds the driver launched past that point cost a launch each.
template <typename K>
__global__ void residual_claim_kernel(const MiddlePlan m, const int64_t* __restrict__ res, mid::ResidualColumns<K> c,
                                      const K* __restrict__ row_oldest, int64_t nres, int64_t* owner, int64_t round,
                                      const int64_t* prev) {
  if (prev && *prev == 0) return;
  GPUPH_GRID_LOOP(j, nres) {
    mid::residual_claim_cell(m, res, c, row_oldest, owner, round, j, [](int64_t* slot, int64_t v) {
      atomicMin(reinterpret_cast<long long*>(slot), static_cast<long long>(v));
    });
  }
}

__device__ __forceinline__ int64_t fetch_add(int64_t* slot, int64_t n) {
  return static_cast<int64_t>(
      atomicAdd(reinterpret_cast<unsigned long long*>(slot), static_cast<unsigned long long>(n)));
}

// n added to a counter that every thread of the launch may add to: on the device, the threads of a warp that come
// here together add their sum with one atomic (a million columns' atomics on one address queue at one L2 slice);
// on the host, each adds its own. The counters are sums, so the result does not depend on the grouping.
__device__ __forceinline__ void count_add(int64_t* slot, int64_t n) {
#if defined(__CUDA_ARCH__)
  namespace cg = cooperative_groups;
  const cg::coalesced_group g = cg::coalesced_threads();
  const long long sum = cg::reduce(g, static_cast<long long>(n), cg::plus<long long>());
  if (g.thread_rank() == 0) fetch_add(slot, static_cast<int64_t>(sum));
#else
  fetch_add(slot, n);
#endif
}

// Every column reads its own buffers and those of the owners of the rows it goes through, which no thread writes
// in this round.
template <typename K>
__global__ void residual_step_kernel(const MiddlePlan m, const K* __restrict__ ekey, const K* __restrict__ row_oldest,
                                     const int64_t* __restrict__ res, const int64_t* owner, int64_t round,
                                     int64_t nres, mid::ResidualColumns<K> c, const int64_t* prev, int64_t* added) {
  if (prev && *prev == 0) return;
  GPUPH_GRID_LOOP(j, nres) {
    const int n = mid::residual_step_cell(m, ekey, row_oldest, res, owner, round, c, j,
                                         [](int64_t* slot, int64_t k) { return fetch_add(slot, k); });
    if (n) count_add(added, n);
  }
}

template <typename K>
__global__ void residual_final_kernel(const MiddlePlan m, const K* __restrict__ ekey, const K* __restrict__ col_key_res,
                                      const K* __restrict__ row_oldest, const int64_t* __restrict__ res,
                                      const int64_t* owner, int64_t round, mid::ResidualColumns<K> c,
                                      const int32_t* __restrict__ order, const int64_t* __restrict__ vkey,
                                      int64_t nres, int32_t* __restrict__ birth, int32_t* __restrict__ death,
                                      int64_t* counts) {
  GPUPH_GRID_LOOP(j, nres) {
    if (!mid::residual_final_cell(m, ekey, col_key_res, row_oldest, res, owner, round, c, order, vkey, birth, death,
                                  j))
      count_add(counts, 1);
    else if (birth[j] >= 0)
      count_add(counts + 1, 1);
  }
}

template <typename K>
const char* residual_init_typed(const MiddlePlan& m, const void* ekey, const int64_t* res, int64_t nres,
                                const ResidualBuffers& c, cudaStream_t s) {
  GPUPH_LAUNCH(blocks_for(nres), kThreads, s, residual_init_kernel<K>)(m, static_cast<const K*>(ekey), res, nres,
      mid::typed<K>(c));
  return last_error();
}

const char* residual_init(const MiddlePlan& m, bool wide, const void* ekey, const int64_t* res, int64_t nres,
                          const ResidualBuffers& c, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return wide ? residual_init_typed<int64_t>(m, ekey, res, nres, c, s)
              : residual_init_typed<int32_t>(m, ekey, res, nres, c, s);
}

template <typename K>
const char* residual_rounds_typed(const MiddlePlan& m, const void* ekey, const void* row_oldest, const int64_t* res,
                                  int64_t nres, int64_t* owner, const ResidualBuffers& c, int64_t first_round,
                                  int rounds, int64_t* added, cudaStream_t s) {
  const K* ek = static_cast<const K*>(ekey);
  const K* ro = static_cast<const K*>(row_oldest);
  for (int i = 0; i < rounds; ++i) {
    const int64_t r = first_round + i;
    const int64_t* prev = i > 0 ? added + i - 1 : nullptr;
    GPUPH_LAUNCH(blocks_for(nres), kThreads, s, residual_claim_kernel<K>)(m, res, mid::typed<K>(c), ro, nres, owner, r,
        prev);
    GPUPH_LAUNCH(blocks_for(nres), kThreads, s, residual_step_kernel<K>)(m, ek, ro, res, owner, r, nres,
        mid::typed<K>(c), prev, added + i);
  }
  return last_error();
}

const char* residual_rounds(const MiddlePlan& m, bool wide, const void* ekey, const void* row_oldest,
                            const int64_t* res, int64_t nres, int64_t* owner, const ResidualBuffers& c,
                            int64_t first_round, int rounds, int64_t* added, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return wide ? residual_rounds_typed<int64_t>(m, ekey, row_oldest, res, nres, owner, c, first_round, rounds, added,
                                               s)
              : residual_rounds_typed<int32_t>(m, ekey, row_oldest, res, nres, owner, c, first_round, rounds, added,
                                               s);
}

template <typename K>
const char* residual_final_typed(const MiddlePlan& m, const void* ekey, const void* col_key_res,
                                 const void* row_oldest, const int64_t* res, int64_t nres, int64_t* owner,
                                 int64_t round, const ResidualBuffers& c, const int32_t* order, const int64_t* vkey,
                                 int32_t* birth, int32_t* death, int64_t* counts, cudaStream_t s) {
  const K* ro = static_cast<const K*>(row_oldest);
  GPUPH_LAUNCH(blocks_for(nres), kThreads, s, residual_claim_kernel<K>)(m, res, mid::typed<K>(c), ro, nres, owner,
      round, nullptr);
  GPUPH_LAUNCH(blocks_for(nres), kThreads, s, residual_final_kernel<K>)(m, static_cast<const K*>(ekey),
      static_cast<const K*>(col_key_res), ro, res, owner, round, mid::typed<K>(c), order, vkey, nres, birth, death,
      counts);
  return last_error();
}

const char* residual_final(const MiddlePlan& m, bool wide, const void* ekey, const void* col_key_res,
                           const void* row_oldest, const int64_t* res, int64_t nres, int64_t* owner, int64_t round,
                           const ResidualBuffers& c, const int32_t* order, const int64_t* vkey, int32_t* birth,
                           int32_t* death, int64_t* counts, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return wide ? residual_final_typed<int64_t>(m, ekey, col_key_res, row_oldest, res, nres, owner, round, c, order,
                                              vkey, birth, death, counts, s)
              : residual_final_typed<int32_t>(m, ekey, col_key_res, row_oldest, res, nres, owner, round, c, order,
                                              vkey, birth, death, counts, s);
}

}  // namespace

MidLaunchers middle_launchers() {
  return MidLaunchers{edge_keys, columns, apparent, residual_init, residual_rounds, residual_final};
}

}  // namespace GPUPH_KERNELS
}  // namespace gpuph
