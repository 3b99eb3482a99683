// The device pipeline of H1 of 3D grids (V, T, freudenthal), driven through a table of launchers (CUDA kernels or
// their CPU emulation), with allocation, sorting and compaction through torch on the input's device.
#pragma once
#include <ATen/ATen.h>

#include "merge_tree_launch.h"
#include "middle_launch.h"

namespace gpuph {

// Counts of one call, for tests and benchmarks: 2-cells that are columns, columns in apparent pairs, columns left
// to the residual reduction, and the columns the device added to those before the host took them (chase_cell).
struct MiddleStats {
  int64_t columns = 0, apparent = 0, residual = 0, chased = 0;
};

// Rows (image, 1, birth pixel, death pixel) int64 of H1 of a batch of 3D grids, unordered. xc: contiguous
// float32/float64 (B, D0, D1, D2), B >= 1; g: its plan. The per-cell passes run on the device, and so do the first
// steps of the reduction of the columns that are not apparent pairs (the apparent columns they add); the rest of
// their reduction runs on the host (as Ripser++ does), from copies of the edge keys and the pivot table of the
// images that have any. Raises ValueError on NaN. stats: filled if not null.
at::Tensor middle_rows(const MTLaunchers& mt, const MidLaunchers& mid, const at::Tensor& xc, const GridPlan& g,
                       bool superlevel, void* stream, MiddleStats* stats = nullptr);

// The CPU emulation of the CUDA launchers: the same per-cell passes in loops.
MidLaunchers cpu_middle_launchers();

}  // namespace gpuph
