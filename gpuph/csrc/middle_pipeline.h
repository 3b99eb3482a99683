// The device pipeline of H1 of 3D grids (V, T, freudenthal), driven through a table of launchers (CUDA kernels or
// their CPU emulation), with allocation, sorting and compaction through torch on the input's device.
#pragma once
#include <ATen/ATen.h>

#include "merge_tree_pipeline.h"
#include "middle_launch.h"

namespace gpuph {

// Counts of one call, for tests and benchmarks: 2-cells that are columns, columns in apparent pairs, columns left
// to the residual reduction, column additions and rounds (that added any) the device made in it, columns given
// larger buffers, whether the host finished the reduction, and the batches of rounds (one device-to-host copy
// each).
struct MiddleStats {
  int64_t columns = 0, apparent = 0, residual = 0, device_additions = 0, rounds = 0, grown = 0;
  bool finished_on_host = false;
  int64_t batches = 0;
  int64_t pool = 0, taken = 0;  // entries of the residual columns' storage; those taken past the first buffers
};

// H1 of a batch of 3D grids xc (contiguous float32/float64 (B, D0, D1, D2), B >= 1; g: its plan; keys: cell_keys of
// it), launched up to where the rest needs sizing: every edge's key with its compression mark, every 2-cell's
// column, and the apparent pairs, on the device. sizes: (2,) int64 on the device, the numbers of residual columns
// and of apparent pairs of nonzero length, which the caller reads in its one device-to-host copy (with the NaN
// report: cubical_pipeline).
struct MiddleLaunch {
  MiddlePlan m;
  bool wide;  // int64 keys (edge keys, column keys, pivot table), else int32
  at::Tensor vkey, order, ekey, col_key, row_oldest, status, birth, death;
  at::Tensor residual, apparent;  // status masks: residual columns, apparent pairs of nonzero length
  at::Tensor sizes;
};
MiddleLaunch middle_launch(const MTLaunchers& mt, const MidLaunchers& mid, const at::Tensor& xc, const GridPlan& g,
                           const at::Tensor& keys, void* stream);

// Its rows (image, 1, birth pixel, death pixel) int64, unordered, given the sizes read: the apparent pairs, and
// the reduction of the residual columns on the device in parallel rounds (a few batches of rounds, one copy each);
// where a column outgrows the largest buffers or the rounds run out, the host finishes the reduction (as
// Ripser++ does) from copies of the edge keys and the pivot table of the images that have residual columns. stats:
// filled if not null.
at::Tensor middle_finish(const MidLaunchers& mid, MiddleLaunch& l, const at::Tensor& xc, const GridPlan& g,
                         int64_t nres, int64_t napp, void* stream, MiddleStats* stats = nullptr);

// Testing aid: the most rounds the device's residual reduction runs before the host finishes it (default 1024);
// returns the previous setting.
int64_t set_max_residual_rounds(int64_t n);

// Testing aid: the entries of the spare region the residual columns grow into on the device (negative: as many as
// their first buffers hold, the default); returns the previous setting. With 0 every growth is the driver's.
int64_t set_residual_spare(int64_t n);

// Testing aid: what the residual reduction learnt from the previous call of a construction (0 V, 1 T, 2
// freudenthal), [rounds of its first batch, spare region in sixteenths of the first buffers]; sets those given
// non-negative and returns the previous ones.
std::vector<int64_t> residual_hints(int64_t construction, int64_t rounds, int64_t sixteenths);

// The CPU emulation of the CUDA launchers: the same per-cell passes in loops.
MidLaunchers cpu_middle_launchers();

}  // namespace gpuph
