// CPU driver of the sort-free merge trees (kernels/merge_tree.cuh) for 1D and 2D grids: H0 in the forward
// order and, for 2D, H1 by duality in the reverse order (V, T and freudenthal). 3D grids use cubical_engine.h.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "cubical_engine.h"
#include "kept_workspace.h"
#include "merge_tree.cuh"

namespace gpuph {

struct MergeTreeScratch {
  std::vector<int32_t> ptr;  // steepest earlier neighbour; then the union-find parent (roots are the extrema)
};

struct MergeTreeWorkspace {
  // The grid shape whose border entries the buffers hold (keys, pointers and flags of the border never change).
  int D = 0;
  int64_t n[3] = {0, 0, 0};
  std::vector<Key32> key32;       // per padded pixel (float32 / half input)
  std::vector<Key64> key64;       // per padded pixel (float64 input)
  std::vector<uint8_t> merging;   // 1D: whether the pixel may merge components; 2D: its forward ring mask
  std::vector<uint32_t> skey32, tmp32;
  std::vector<uint64_t> skey64, tmp64;
  std::vector<int32_t> order, tmp_items;  // the merging pixels, sorted
  std::vector<uint64_t> cand[2];          // the merging pixels of each part of the grid, in index order
  std::vector<uint64_t> spare[2];         // the radix sorts' spare lists
  std::vector<uint64_t> pitem[2];         // each phase's candidates, in its processing order
  std::vector<uint8_t> pmask[2];          // and their ring masks
  MergeTreeScratch phase[2];
};

inline bool merge_tree_applies(const GridPlan& g) { return g.D <= 2; }

// A worker's workspace for grids of g's shape (kept_workspace.h), its border entries filled for that shape.
class MergeTreeWorkspaceHandle : public KeptWorkspace<MergeTreeWorkspace> {
 public:
  explicit MergeTreeWorkspaceHandle(const GridPlan& g);
};

// Called with k once the pairs of phase k are all in out[k] (the essential class of H0 included), on the thread
// that merged them: with parallel phases, the other phase may still be running.
using PhaseDone = std::function<void(int)>;

// Pairs of one image into out[0] (H0) and out[1] (H1); phase_done(k), if given, for each phase that ran. Returns false
// on NaN. With parallel_phases the passes and the two merge trees run on the threads of torch's pool.
template <typename F>
bool merge_tree_image(const GridPlan& g, const F* x, bool superlevel, const Phases& ph, MergeTreeWorkspace& ws,
                      std::vector<RawPair>* out, bool parallel_phases, const PhaseDone* phase_done = nullptr);

}  // namespace gpuph
