// The device-side pipeline of the merge trees of V, T and freudenthal grids (1D, 2D; 3D H0 and H2), driven through a
// table of launchers (CUDA kernels or their CPU emulation), with allocation and sorting through torch on the input's
// device.
#pragma once
#include <ATen/ATen.h>

#include "merge_tree_launch.h"

namespace gpuph {

// Rows (image, dim, birth pixel, death pixel) int64 (N, 4) in the pinned order, like cubical_pairs. xc: contiguous
// float32/float64 (B, *grid), B >= 1; g: its plan, for which merge_tree_pipeline_applies. One device-to-host copy (output size, NaN).
at::Tensor merge_tree_pipeline(const MTLaunchers& launch, const at::Tensor& xc, const GridPlan& g, bool superlevel,
                               int64_t dims_mask, void* stream);

// Whether the pipeline computes these dims of this grid: V, T and freudenthal; 1D, 2D, and 3D without H1 (its
// reduction is not a merge tree).
bool merge_tree_pipeline_applies(const GridPlan& g, int64_t dims_mask);

// The CPU emulation of the CUDA launchers: the same per-element steps in loops.
MTLaunchers cpu_merge_tree_launchers();

}  // namespace gpuph
