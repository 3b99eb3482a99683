// The device-side pipeline of the merge trees of V, T and freudenthal grids (1D, 2D; 3D H0 and H2), driven through a
// table of launchers (CUDA kernels or their CPU emulation), with allocation and sorting through torch on the input's
// device.
#pragma once
#include <ATen/ATen.h>

#include "merge_tree_launch.h"

namespace gpuph {

// Every padded cell's value key (B * P, 1 or 2) int64 (steps::key_cell: Key32 / Key64) of xc (contiguous
// float32/float64 (B, *grid), B >= 1; g: its plan), for the merge trees and H1 of 3D alike; the first image holding
// NaN is atomically min-ed into nan_image ((1,) int32, initially INT32_MAX).
at::Tensor cell_keys(const MTLaunchers& launch, const at::Tensor& xc, const GridPlan& g, bool superlevel,
                     const at::Tensor& nan_image, void* stream);

// The merge trees of H0 (dims_mask bit 0) and the top dimension (bit D - 1; 2D and 3D) of xc, launched up to where
// their rows need sizing: `total` (1,) int64 on the device holds the number of rows. H1 of 3D is not a merge tree
// (middle_pipeline.h).
struct TreeLaunch {
  at::Tensor pairs, counts, offsets, total;
  at::Tensor longest;  // (1,) int64 on the device: the rows of the longest run (image, phase)
  int64_t cap = 0;
  // The relaxed elder rule's: (1,) int64 on the device, the iterations that moved a link, and the learned cap it ran
  // under; undefined and 0 where it did not run or its cap was pinned (nothing to learn).
  at::Tensor relaxed_moved;
  int relaxed_cap = 0;
  int relaxed_learned = 0;  // the learned cap it started from (relaxed_cap also has the grid size's floor)
};
// Learns the relaxed elder rule's next cap (merge_tree_pipeline.cpp) from t.relaxed_moved as read by the caller's
// one device-to-host copy; nothing if t.relaxed_cap is 0.
void note_relaxed_iterations(const TreeLaunch& t, int64_t moved);
// How the elder-rule union-find runs (merge_tree_launch; a testing and benchmarking aid, set_union_find_mode):
//   kAutoUnionFind: by grid size (merge_tree_pipeline.cpp);
//   kSerialUnionFind: one device thread per image and phase walks the merging pixels in order (steps::elder_run);
//   kHostUnionFind: the same on the host, on copies;
//   kRelaxedUnionFind: the relaxed elder rule, every merging pixel at once (steps::relaxed_claim);
//   kSerialRingUnionFind: as kSerialUnionFind, 2D grids with one find per component of a candidate's earlier ring
//     cells (elder_merge_ring, as the CPU engine) instead of two per earlier neighbour: fewer finds, but a table
//     lookup per candidate; the auto mode does not take it before a GPU session has compared the two.
enum UnionFindMode : int {
  kAutoUnionFind = 0,
  kSerialUnionFind = 1,
  kHostUnionFind = 2,
  kRelaxedUnionFind = 3,
  kSerialRingUnionFind = 4
};
// Sets the mode (every later call, process-wide) and returns the previous one.
int64_t set_union_find_mode(int64_t mode);
// Pins the relaxed elder rule's iteration cap (testing aid: 1 forces its sequential fallback; 0 returns to the cap
// learned from the calls before) and returns the previous setting.
int64_t set_relaxed_iterations(int64_t iterations);
// Sets the learned cap (testing aid; -1 only reads it) and returns the previous one.
int64_t set_relaxed_cap(int64_t cap);
// Sets the padded cells a call needs for each relaxed iteration its cap is raised to, whatever was learned (testing
// aid; -1 only reads it), and returns the previous value.
int64_t set_relaxed_cells_per_iteration(int64_t cells);

// What merge_tree_launch did, when asked (it then reads the device: tests and the CPU emulation only).
struct UnionFindStats {
  int mode = 0;                // the UnionFindMode it ran
  int64_t candidates = 0;      // merging pixels of the batch, both phases' candidates counted once
  int iterations = 0;          // relaxed: iterations run
  bool converged = false;      // relaxed: the last iteration moved no link (else the sequential fallback ran)
  int jump_rounds = 0;         // rounds of pointer jumping launched (steps::jump_rounds(P))
  int jump_rounds_run = 0;     // of which ran (the first, and each after one that moved a pointer)
};

// Copies of the buffers merge_tree_launch fills on the way (testing aid: the test-only op _pipeline_stages compares
// them between the GPU and its CPU emulation, stage by stage): every padded cell's pointer to its basin root in each
// phase (ptr1 undefined without the top dimension) and merging flags, after the basins; each image's padded cells in
// candidate order, its number of candidates and its first cell, after the candidates' sort.
struct TreeStages {
  at::Tensor ptr0, ptr1, flag, order, ncand, first;
};

TreeLaunch merge_tree_launch(const MTLaunchers& launch, const at::Tensor& xc, const GridPlan& g,
                             const at::Tensor& keys, int64_t dims_mask, void* stream,
                             UnionFindStats* stats = nullptr, TreeStages* stages = nullptr);

// Their rows (image, dim, birth pixel, death pixel) int64 (total, 4), grouped by image and dimension; with
// `ordered`, in the pinned order (as cubical_pipeline's pinned_order), else unordered within each group. total and
// the longest run, read from t.total and t.longest by the caller's one device-to-host copy, which also reports NaN
// (cubical_pipeline); `ordered` only where ranked_order_fits(total, longest). xc: the images.
at::Tensor merge_tree_finish(const MTLaunchers& launch, const TreeLaunch& t, int64_t total, const GridPlan& g,
                             const at::Tensor& xc, bool ordered, void* stream);
// Whether merge_tree_finish may order the rows itself (short runs: merge_tree_pipeline.cpp).
bool ranked_order_fits(int64_t total, int64_t longest);
// Sets the longest run merge_tree_finish orders itself (testing aid: 0 always leaves it to the sorts) and returns the
// previous limit.
int64_t set_ranked_order_limit(int64_t longest);

// Sets the batch size (padded cells) from which the candidates are sorted by the double-buffer radix sort (testing
// aid: 0 always; merge_tree_pipeline.cpp) instead of torch's, and returns the previous one.
int64_t set_buffer_sort_cells(int64_t cells);

// The CPU emulation of the CUDA launchers: the same per-element steps in loops.
MTLaunchers cpu_merge_tree_launchers();

}  // namespace gpuph
