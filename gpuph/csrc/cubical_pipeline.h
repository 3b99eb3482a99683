// The device pipeline of cubical_pairs for every grid and dimension: the merge trees (H0, and the top dimension by
// duality; merge_tree_pipeline.h) and H1 of 3D (middle_pipeline.h), their rows put in the pinned order.
#pragma once
#include <ATen/ATen.h>

#include "merge_tree_launch.h"
#include "middle_launch.h"

namespace gpuph {

struct MiddleStats;  // middle_pipeline.h

struct PipelineLaunchers {
  MTLaunchers merge_tree;
  MidLaunchers middle;
};

// Rows (image, dim, birth pixel, death pixel) int64 (N, 4) in the pinned order, like cubical_pairs. xc: contiguous
// float32/float64 (B, *grid), B >= 1; g: its plan. Raises ValueError on NaN. stats: the counts of H1 of 3D, filled
// if not null (the test-only stats op).
at::Tensor cubical_pipeline(const PipelineLaunchers& launch, const at::Tensor& xc, const GridPlan& g, bool superlevel,
                            int64_t dims_mask, void* stream, MiddleStats* stats = nullptr);

}  // namespace gpuph
