// The launchers of the device pipeline of H1 of 3D grids (gpuph/csrc/middle_pipeline.cpp), as a table of functions:
// the CUDA kernels (kernels/middle_cuda.cu) or their CPU emulation, which run the same per-cell passes of
// kernels/middle_steps.cuh. Plain C++ types only. `stream` is a cudaStream_t (ignored on the CPU). Every launcher
// returns nullptr or an error string. All arrays cover the batch of B images: B * P * (types of the dimension)
// cells.
#pragma once
#include <cstdint>

#include "middle_steps.cuh"

namespace gpuph {

// Key arrays (ekey, col_key, row_oldest) are int32 when `wide` is false, int64 when it is true.
struct MidLaunchers {
  // Every edge's key, -1 if compressed or not a cell (rank: (B, P) padded ranks).
  const char* (*edge_keys)(const MiddlePlan& m, bool wide, const int32_t* rank, int64_t B, void* ekey, void* stream);
  // Every 2-cell's column key and pivot; row_oldest (init no_column) gets every edge's oldest column.
  const char* (*columns)(const MiddlePlan& m, bool wide, const int32_t* rank, const void* ekey, int64_t B,
                         void* col_key, uint8_t* col_pivot, void* row_oldest, void* stream);
  // Every 2-cell's MidStatus; apparent pairs marked in row_oldest, their pixels in birth / death. order, vkey:
  // (B, N) pixels in rank order (padded index, value key).
  const char* (*apparent)(const MiddlePlan& m, bool wide, const void* col_key, const uint8_t* col_pivot,
                          const void* ekey, const int32_t* order, const int64_t* vkey, int64_t B, void* row_oldest,
                          uint8_t* status, int32_t* birth, int32_t* death, void* stream);
  // The first steps of the reduction of the nres residual columns res (global 2-cell indices): chase_cell.
  const char* (*chase)(const MiddlePlan& m, bool wide, const void* ekey, const void* row_oldest, const int64_t* res,
                       int64_t nres, void* eids, int32_t* len, int32_t* adds, void* stream);
};

#ifdef GPUPH_WITH_CUDA
namespace cuda {
MidLaunchers middle_launchers();  // kernels/middle_cuda.cu
}
#endif

}  // namespace gpuph
