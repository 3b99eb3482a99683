// CPU driver of the sort-free merge trees (kernels/merge_tree.cuh) for 1D and 2D V / T grids: H0 in the forward
// order and, for 2D, H1 by duality in the reverse order. Freudenthal and 3D grids use cubical_engine.h.
#pragma once
#include <vector>

#include "cubical_engine.h"
#include "merge_tree.cuh"

namespace gpuph {

struct MergeTreeScratch {
  std::vector<int32_t> ptr;  // steepest earlier neighbour, then basin root; then union-find parent of roots
};

struct MergeTreeWorkspace {
  std::vector<Key32> key32;       // per padded pixel (float32 / half input)
  std::vector<Key64> key64;       // per padded pixel (float64 input)
  std::vector<uint8_t> merging;   // bit k: the pixel may merge components in phase k
  std::vector<uint32_t> skey32, tmp32;
  std::vector<uint64_t> skey64, tmp64;
  std::vector<int32_t> order, tmp_items;  // the merging pixels, sorted
  MergeTreeScratch phase[2];
};

inline bool merge_tree_applies(const GridPlan& g) { return g.D <= 2 && g.construction != kConstructionFreudenthal; }

// Pairs of one image into out[0] (H0) and out[1] (H1). Returns false on NaN. With parallel_phases the two merge
// trees run on two threads of torch's pool.
template <typename F>
bool merge_tree_image(const GridPlan& g, const F* x, bool superlevel, const Phases& ph, MergeTreeWorkspace& ws,
                      std::vector<RawPair>* out, bool parallel_phases);

}  // namespace gpuph
