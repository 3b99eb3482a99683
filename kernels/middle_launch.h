// The launchers of the device pipeline of H1 of 3D grids (gpuph/csrc/middle_pipeline.cpp), as a table of functions:
// the CUDA kernels (kernels/middle_cuda.cu) or their CPU emulation, which run the same per-cell passes of
// kernels/middle_steps.cuh. Plain C++ types only. `stream` is a cudaStream_t (ignored on the CPU). Every launcher
// returns nullptr or an error string. All arrays cover the batch of B images: B * P * (types of the dimension)
// cells.
#pragma once
#include <cstdint>

#include "middle_steps.cuh"

namespace gpuph {

// The residual columns' storage, untyped (pool holds int32 or int64 edge ids); mid::typed<K>(c) types it.
using ResidualBuffers = mid::ResidualColumns<void>;

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
  // The residual reduction (middle_steps.cuh) of the nres columns res (global 2-cell indices, in (image, key) order;
  // owner: one entry per row of the batch, initially INT64_MAX, no owner: signed atomicMin claims it): their boundaries into their first buffers; rounds
  // first_round .. first_round + rounds - 1, adding the column additions of round first_round + i to added[i] (a
  // round after one that added nothing does nothing: none would); then the final check with the claims of round
  // `round`, adding the number of columns not final to counts[0] and of pairs found to counts[1], and writing the
  // final pairs' pixels (col_key_res: the columns' keys; birth / death: -1 for none).
  const char* (*residual_init)(const MiddlePlan& m, bool wide, const void* ekey, const int64_t* res, int64_t nres,
                               const ResidualBuffers& c, void* stream);
  const char* (*residual_rounds)(const MiddlePlan& m, bool wide, const void* ekey, const void* row_oldest,
                                 const int64_t* res, int64_t nres, int64_t* owner, const ResidualBuffers& c,
                                 int64_t first_round, int rounds, int64_t* added, void* stream);
  const char* (*residual_final)(const MiddlePlan& m, bool wide, const void* ekey, const void* col_key_res,
                                const void* row_oldest, const int64_t* res, int64_t nres, int64_t* owner,
                                int64_t round, const ResidualBuffers& c, const int32_t* order, const int64_t* vkey,
                                int32_t* birth, int32_t* death, int64_t* counts, void* stream);
};

#ifdef GPUPH_WITH_CUDA
namespace cuda {
MidLaunchers middle_launchers();  // kernels/middle_cuda.cu
}
#endif
// The same kernels compiled for the host (testing aid: gpuph/csrc/middle_kernels_on_host.cpp).
namespace cuda_on_host {
MidLaunchers middle_launchers();
}

}  // namespace gpuph
