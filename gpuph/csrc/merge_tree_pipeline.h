// The device-side pipeline of the merge trees of V, T and freudenthal grids (1D, 2D; 3D H0 and H2), driven through a
// table of launchers (CUDA kernels or their CPU emulation), with allocation and sorting through torch on the input's
// device.
#pragma once
#include <ATen/ATen.h>

#include "merge_tree_launch.h"

namespace gpuph {

// Rows (image, dim, birth pixel, death pixel) int64 (N, 4), unordered, of H0 (dims_mask bit 0) and the top
// dimension (bit D - 1; 2D and 3D); H1 of 3D is not a merge tree (middle_pipeline.h). xc: contiguous
// float32/float64 (B, *grid), B >= 1; g: its plan. One device-to-host copy (output size, NaN: ValueError).
at::Tensor merge_tree_rows(const MTLaunchers& launch, const at::Tensor& xc, const GridPlan& g, bool superlevel,
                           int64_t dims_mask, void* stream);

// The CPU emulation of the CUDA launchers: the same per-element steps in loops.
MTLaunchers cpu_merge_tree_launchers();

}  // namespace gpuph
