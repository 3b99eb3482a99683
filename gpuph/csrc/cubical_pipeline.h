// The device pipeline of cubical_pairs for every grid and dimension: the merge trees (H0, and the top dimension by
// duality; merge_tree_pipeline.h) and H1 of 3D (middle_pipeline.h), their rows put in the pinned order.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "merge_tree_launch.h"
#include "middle_launch.h"

namespace gpuph {

struct MiddleStats;  // middle_pipeline.h

struct PipelineLaunchers {
  MTLaunchers merge_tree;
  MidLaunchers middle;
};

// Rows (image, dim, birth pixel, death pixel) int64 (N, 4) in the pinned order, like cubical_pairs. xc: contiguous
// float32/float64 (B, *grid), B >= 1; g: its plan. Raises ValueError on NaN (naming the image as first_image + its
// index in xc). stats: the counts of H1 of 3D, filled if not null (the test-only stats op).
at::Tensor cubical_pipeline(const PipelineLaunchers& launch, const at::Tensor& xc, const GridPlan& g, bool superlevel,
                            int64_t dims_mask, void* stream, MiddleStats* stats = nullptr, int64_t first_image = 0);

// cubical_pipeline over the whole batch or, where the device's memory does not hold that, over slices of
// consecutive images: at each out-of-memory error the slice is halved, and the images done are kept, down to one
// image, whose error is raised. The rows are the same either way; each slice adds one synchronisation, and a
// failed attempt costs the work it did before running out.
at::Tensor cubical_pipeline_in_slices(const PipelineLaunchers& launch, const at::Tensor& xc, const GridPlan& g,
                                      bool superlevel, int64_t dims_mask, void* stream);

// Testing aid (the op gpuph::_pipeline_stages, on the CPU and on CUDA): the pipeline's intermediate buffers for a
// contiguous batch xc (B >= 1, no NaN), launched as cubical_pipeline launches them, so that a test can tell at which
// stage the GPU first departs from the CPU emulation. In this order (empty where the stage did not run):
//   keys (B * P, 1 or 2) int64: every padded cell's value key (steps::key_cell);
//   the merge trees (H0 and the top dimension in dims_mask; TreeStages): ptr0, ptr1, flag, order, ncand, first, then
//     pairs (B * 2 runs, cap, 2) int32, of which each run's first counts[run] are written (in any order), and counts;
//   H1 of 3D (dims_mask bit 1; MiddleLaunch): vkey and order (every image's pixels in rank order), ekey, col_key,
//     row_oldest (after the apparent pairs), status, birth and death (written where status is an apparent pair).
std::vector<at::Tensor> pipeline_stages(const PipelineLaunchers& launch, const at::Tensor& xc, const GridPlan& g,
                                        bool superlevel, int64_t dims_mask, void* stream);

// Testing aid: slices of more than `images` images raise the out-of-memory error as if the device's memory did not
// hold them (-1: off, the default); returns the previous setting.
int64_t set_slice_memory_limit(int64_t images);

}  // namespace gpuph
