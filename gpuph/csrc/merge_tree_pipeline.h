// The device-side pipeline of the 1D / 2D merge trees, driven through a table of launchers (CUDA kernels or their
// CPU emulation), with allocation and sorting through torch on the input's device.
#pragma once
#include <ATen/ATen.h>

#include "merge_tree_launch.h"

namespace gpuph {

// Rows (image, dim, birth pixel, death pixel) int64 (N, 4) in the pinned order, like cubical_pairs. xc: contiguous
// float32/float64 (B, *grid), B >= 1; g: its plan (1D or 2D, V or T). One device-to-host copy (output size, NaN).
at::Tensor merge_tree_pipeline(const MTLaunchers& launch, const at::Tensor& xc, const GridPlan& g, bool superlevel,
                               int64_t dims_mask, void* stream);

// The CPU emulation of the CUDA launchers: the same per-element steps in loops.
MTLaunchers cpu_merge_tree_launchers();

}  // namespace gpuph
