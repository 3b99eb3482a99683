// The launchers of the merge-tree pipeline for batches of V, T and freudenthal grids (1D, 2D; 3D for H0 and H2), as a
// table of functions so that one driver (gpuph/csrc/merge_tree_pipeline.cpp) runs either the CUDA kernels
// (kernels/merge_tree_cuda.cu) or their CPU emulation (the same per-element steps of kernels/merge_tree_steps.cuh in
// loops). Plain C++ types only: the driver compiles without CUDA headers, and the kernels without torch headers.
// `stream` is a cudaStream_t (ignored on the CPU). Every launcher returns nullptr or an error string.
#pragma once
#include <cstddef>
#include <cstdint>

#include "grid_plan.cuh"

namespace gpuph {

struct MTLaunchers {
  // Pixel keys of a batch of B grids for every padded cell (border cells get the border key): Key32 (8 bytes a cell)
  // for float32 input, Key64 (16 bytes) for float64. nan_image: min of the images holding NaN (init INT32_MAX).
  const char* (*keys)(const GridPlan& g, const void* x, bool f64, int64_t B, bool superlevel, void* keys,
                      int32_t* nan_image, void* stream);
  // Steepest earlier pointers (image-local padded indices; border cells point at cell 0) of phase 0 and, for 2D / 3D,
  // phase 1 (the top dimension; ptr1 null when not needed), resolved to basin roots, and the merging flags (bit k:
  // phase k). moved: (steps::jump_rounds(P),) int32 scratch, left holding whether each round of pointer jumping
  // moved a pointer (the rounds after one that moved none do nothing).
  const char* (*basins)(const GridPlan& g, const void* keys, bool f64, int64_t B, int32_t* ptr0, int32_t* ptr1,
                        uint8_t* flag, int32_t* moved, void* stream);
  // Sort keys of every padded cell: cand_key for flagged pixels, first_key for all pixels (INT64_MAX otherwise).
  const char* (*sort_keys)(const GridPlan& g, const void* keys, bool f64, const uint8_t* flag, int64_t B,
                           int64_t* cand_key, int64_t* first_key, void* stream);
  // Stable ascending sort of n (key, value) int64 pairs by the key bits [0, end_bit) (64: the keys as signed
  // integers; fewer: non-negative keys), over double buffers as cub::DeviceRadixSort's: keys[*cur] and values[*cur]
  // hold the input, the other two are scratch, all four may be overwritten, and on return *cur names the two that
  // hold the sorted pairs. temp: device scratch of *temp_bytes bytes; null: only sets *temp_bytes.
  const char* (*sort_pairs)(int64_t* const* keys, int64_t* const* values, int* cur, int64_t n, int end_bit,
                            void* temp, size_t* temp_bytes, void* stream);
  // Elder-rule union-find per image and phase (ptr0 / ptr1 null: phase skipped). order: (B, P) cells sorted by
  // cand_key; ncand, first: (B,). Writes (birth, death) unpadded pairs into pairs (B, 2, cap, 2), counts (B, 2).
  // ring: 2D grids take one find per component of a candidate's earlier ring cells (steps::elder_run).
  const char* (*elder)(const GridPlan& g, const void* keys, bool f64, int32_t* ptr0, int32_t* ptr1,
                       const uint8_t* flag, const int64_t* order, const int64_t* ncand, const int64_t* first,
                       int64_t B, int64_t cap, int32_t* pairs, int32_t* counts, bool ring, void* stream);
  // The same pairs and counts as `elder`, by the relaxed elder rule (steps::relaxed_claim): up to `iterations` (>= 1)
  // iterations over every merging pixel at once, stopping early once one changes nothing, then, if the last still
  // changed a link, `elder` itself. link0 / best0, link1 / best1 (link1 / best1 null when ptr1 is): (B, P) scratch
  // of each phase; changed: (iterations,) int32 scratch, left holding whether each iteration moved a link.
  const char* (*relaxed)(const GridPlan& g, const void* keys, bool f64, int32_t* ptr0, int32_t* ptr1,
                         const uint8_t* flag, const int64_t* order, const int64_t* ncand, const int64_t* first,
                         int64_t B, int64_t cap, uint64_t* link0, uint64_t* best0, uint64_t* link1, uint64_t* best1,
                         int32_t* changed, int iterations, int32_t* pairs, int32_t* counts, void* stream);
  // Rows (image, dim, birth, death) int64, run by run (phase 1 is dimension top_dim); offsets: (B * 2,) exclusive
  // prefix sums of counts, total their sum (> 0). With x (not null: the images (B, N), float32 or float64 by f64)
  // each run's rows in the pinned order (steps::ranked_row_copy; life, tail: scratch of one entry a row), else as
  // the union-find left them.
  const char* (*rows)(const int32_t* pairs, const int32_t* counts, const int64_t* offsets, int64_t B, int64_t cap,
                      int64_t total, int top_dim, const void* x, bool f64, int64_t N, uint64_t* life, uint64_t* tail,
                      int64_t* rows, void* stream);
};

#ifdef GPUPH_WITH_CUDA
namespace cuda {
MTLaunchers merge_tree_launchers();  // kernels/merge_tree_cuda.cu
}
#endif
// The same kernels compiled for the host (testing aid: gpuph/csrc/merge_tree_kernels_on_host.cpp).
namespace cuda_on_host {
MTLaunchers merge_tree_launchers();
}

}  // namespace gpuph
