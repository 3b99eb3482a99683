// CUDA kernels of the device pipeline of H1 of 3D grids: the per-cell passes of kernels/middle_steps.cuh (the bodies
// the CPU emulation also runs), one thread per cell of the whole batch. Plain CUDA, no torch headers: the driver
// (gpuph/csrc/middle_pipeline.cpp) allocates through torch and passes its stream. The plan (about 6 KB) goes by
// value, as a kernel parameter (over 4 KB: CUDA 12.1 or newer on Volta or newer): no constant-memory symbol that
// concurrent streams could race on.
#include "cuda_launch.cuh"

#include "middle_launch.h"

namespace gpuph {
namespace cuda {
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
  edge_keys_kernel<K><<<blocks_for(B * m.P * m.ntypes[1]), kThreads, 0, s>>>(m, rank, B, static_cast<K*>(ekey));
  return last_error();
}

const char* edge_keys(const MiddlePlan& m, bool wide, const int32_t* rank, int64_t B, void* ekey, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return wide ? edge_keys_typed<int64_t>(m, rank, B, ekey, s) : edge_keys_typed<int32_t>(m, rank, B, ekey, s);
}

template <typename K>
const char* columns_typed(const MiddlePlan& m, const int32_t* rank, const void* ekey, int64_t B, void* col_key,
                          uint8_t* col_pivot, void* row_oldest, cudaStream_t s) {
  columns_kernel<K><<<blocks_for(B * m.P * m.ntypes[2]), kThreads, 0, s>>>(
      m, rank, static_cast<const K*>(ekey), B, static_cast<K*>(col_key), col_pivot, static_cast<K*>(row_oldest));
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
  apparent_kernel<K><<<blocks_for(B * m.P * m.ntypes[2]), kThreads, 0, s>>>(
      m, static_cast<const K*>(col_key), col_pivot, static_cast<const K*>(ekey), order, vkey, B,
      static_cast<K*>(row_oldest), status, birth, death);
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
__global__ void chase_kernel(const MiddlePlan m, const K* __restrict__ ekey, const K* __restrict__ row_oldest,
                             const int64_t* __restrict__ res, int64_t nres, K* __restrict__ eids,
                             int32_t* __restrict__ len, int32_t* __restrict__ adds) {
  GPUPH_GRID_LOOP(i, nres) { mid::chase_cell(m, ekey, row_oldest, res, eids, len, adds, i); }
}

const char* chase(const MiddlePlan& m, bool wide, const void* ekey, const void* row_oldest, const int64_t* res,
                  int64_t nres, void* eids, int32_t* len, int32_t* adds, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (wide)
    chase_kernel<int64_t><<<blocks_for(nres), kThreads, 0, s>>>(m, static_cast<const int64_t*>(ekey),
                                                                static_cast<const int64_t*>(row_oldest), res, nres,
                                                                static_cast<int64_t*>(eids), len, adds);
  else
    chase_kernel<int32_t><<<blocks_for(nres), kThreads, 0, s>>>(m, static_cast<const int32_t*>(ekey),
                                                                static_cast<const int32_t*>(row_oldest), res, nres,
                                                                static_cast<int32_t*>(eids), len, adds);
  return last_error();
}

}  // namespace

MidLaunchers middle_launchers() { return MidLaunchers{edge_keys, columns, apparent, chase}; }

}  // namespace cuda
}  // namespace gpuph
