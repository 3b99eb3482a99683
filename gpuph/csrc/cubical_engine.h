// CPU engine for exact cubical / freudenthal persistence of one image. It loops over the per-cell bodies of
// kernels/grid_plan.cuh; the algorithms are those of DESIGN.md section 3:
//   H0            union-find over the lower stars in rank order (elder rule),
//   H_{D-1}       union-find over top cells plus one outside node in reverse order (Alexander duality),
//   H1 of 3D      column reduction of the 2-cells, with clearing (positive 2-cells known from H2) and compression
//                 (negative edges known from H0), in the same total order as the two union-finds.
#pragma once
#include <cstdint>
#include <type_traits>
#include <vector>

#include "grid_plan.cuh"
#include "kept_workspace.h"

namespace gpuph {

// One persistence pair in padded-grid pixel indices; death == -1 for the essential class.
struct RawPair {
  int32_t dim;
  int64_t birth;
  int64_t death;
};

// The meaning of a pixel's word of star bits (Workspace::star_bits, cubical_engine.cpp). Bit i of a vertex's word is
// set iff (m ^ flip_i) & need[i] == need[i], m being the mask of its 3^D - 1 neighbours that come earlier in the
// direction of the star tests: lower rank for V / freudenthal (max keys; the border never does), higher rank for T
// (min keys; the border always does). A cell is in a vertex's star, the vertex its key vertex, iff all its other key
// vertices are such neighbours.
struct StarBits {
  int nlow;      // bits [0, nlow): V / freudenthal: lower-star edges (H0); T: the neighbours of lower rank (H0)
  int ntop;      // bits [nlow, ntop): the (D-1)-cells whose key vertex it is (H_{D-1} by duality)
  int n;         // bits [ntop, n): T in 3D, the edges whose key pixel it is (compression marks for H1)
  bool flip_low;  // T: the low bits test the clear bits of m
  uint32_t need[64];
  uint64_t low_bits() const { return (uint64_t(1) << nlow) - 1; }
  uint64_t top_bits(uint64_t w) const { return (w >> nlow) & ((uint64_t(1) << (ntop - nlow)) - 1); }
  uint64_t edge_bits(uint64_t w) const { return flip_low ? w >> ntop : w & ((uint64_t(1) << nlow) - 1); }
};

// Partial columns of a block of the H1 reduction, left by its helper thread: column j of the block is
// entries[start[j], start[j + 1]).
template <typename E>
struct PartialColumns {
  std::vector<E> entries;
  std::vector<int64_t> start;
};

// Buffers of the H1 reduction of 3D, holding packed cell keys (key rank << 6 | star code) of type K. Column entries
// pack a row's key (high half) with its edge id (low half), so that entries compare by key.
template <typename K>
struct MiddleBuffers {
  using Entry = typename std::conditional<sizeof(K) == 4, uint64_t, unsigned __int128>::type;
  static constexpr int kEntryShift = 8 * int(sizeof(K));
  std::vector<K> edge_key;                   // edge id -> key, -1 if compressed
  std::vector<K> row_oldest;                 // edge id -> key of the oldest column containing it; the pivot table
  std::vector<K> col_key;                    // 2-cell id -> key if it is a column, else the largest K
  std::vector<uint8_t> col_pivot;            // 2-cell id -> which of its boundary edges is its pivot
  std::vector<std::vector<K>> rest_parts;    // keys of the columns that need reduction, per slab
  std::vector<Entry> pool, regen, work, merged;  // stored reduced columns, a regenerated column, scratch
  std::vector<int64_t> col_start;            // stored column j: pool[col_start[j], col_start[j + 1])
  std::vector<PartialColumns<Entry>> partial;  // per block of columns, from the reduction's helper thread
};

// Scratch buffers reused across the images a worker processes.
struct Workspace {
  std::vector<int32_t> rank;   // padded grid (and one more entry), kBorderRank on the border
  std::vector<int32_t> order;  // rank -> padded pixel index
  std::vector<int32_t> vclass; // rank -> index of its distinct value (equal values <=> equal class)
  std::vector<uint32_t> keys32, tmp32;
  std::vector<uint64_t> keys64, tmp64;
  std::vector<int32_t> tmp_items;
  std::vector<uint64_t> star_bits;  // padded grid: the star cells the union-finds visit (cubical_engine.cpp)
  StarBits star_plan;               // what their bits mean for this grid
  std::vector<int32_t> parent0;  // H0 union-find (padded pixels)
  std::vector<int32_t> parent_vertex;  // T's compression marks: union-find of the vertices
  std::vector<int32_t> parent_top32;  // H_{D-1} union-find (top cells and the outside), by index width
  std::vector<int64_t> parent_top64;
  std::vector<int32_t> top_key;
  bool compressed = false;              // whether negative_edge holds this image's compression flags
  std::vector<uint8_t> negative_edge;   // compression flags, per edge id
  std::vector<uint8_t> positive_face;   // clearing flags, per 2-cell id (3D)
  MiddleBuffers<int32_t> mid32;        // H1 of 3D, by key width
  bool mid_narrow = false;             // the width run_middle_edges chose (run_middle follows it, whatever the
                                       // test-only wide-index switch does meanwhile from another thread)
  MiddleBuffers<int64_t> mid64;
};

// A worker's workspace (kept_workspace.h): about 90 bytes per padded cell for V (more for freudenthal), so up to
// 6 MB (a 38^3 grid) on each of the pool's threads and 47 MB (78^3) on the calling thread.
class WorkspaceHandle : public KeptWorkspace<Workspace> {
 public:
  explicit WorkspaceHandle(const GridPlan& g) : KeptWorkspace(g.P, 16, 19) {}
};

struct Phases {
  bool h0;          // compute H0 (union-find)
  bool top;         // compute H_{D-1} by duality (D >= 2)
  bool middle;      // compute H1 of 3D (reduction)
  bool emit[kMaxDim];
};

// Fills ws.rank / ws.order / ws.vclass / ws.star_bits for one image, on torch's threads if parallel.
// Returns false if the image contains NaN.
template <typename F>
bool rank_image(const GridPlan& g, const F* x, bool superlevel, Workspace& ws, bool parallel = false);

// The phases. run_h0 and run_top only read the ranking and write disjoint workspace members, so they may run
// concurrently on one workspace, and so may run_middle_edges (which needs H0's compression flags) and run_top;
// run_middle needs all three (the edge keys and the clearing flags).
bool needs_h0(const GridPlan& g, const Phases& ph);
bool needs_top(const GridPlan& g, const Phases& ph);
void run_h0(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out);
void run_top(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out);
void run_middle_edges(const GridPlan& g, const Phases& ph, Workspace& ws, bool parallel = false);
void run_middle(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out, bool parallel = false);

// Columns of the H1 reduction already partly reduced elsewhere (the device pipeline's rounds,
// kernels/middle_steps.cuh): column i starts from the edges eid[first[i], first[i] + len[i]) (ascending key)
// instead of its boundary.
template <typename K>
struct StartColumns {
  const K* eid;
  const int64_t* first;
  const int32_t* len;
};

// The host half of the device pipeline's H1 of 3D (middle_pipeline.cpp): the residual reduction of one image (pass 3,
// as run_middle's) from the device's edge keys and pivot table. order: rank -> padded pixel;
// vcls: rank -> value class; ekey / row_oldest: per edge id, row_oldest with the apparent columns' cell codes
// (kernels/middle_steps.cuh); rest: the keys of the columns left to reduce, ascending; start_cols: where they start
// (aligned with rest). Runs on the calling thread. Appends pairs of nonzero length, in padded pixel indices.
void reduce_middle_rest(const GridPlan& g, const int32_t* order, const int32_t* vcls, const int64_t* ekey,
                        int64_t* row_oldest, const std::vector<int64_t>& rest, const StartColumns<int64_t>& start_cols,
                        MiddleBuffers<int64_t>& mb, std::vector<RawPair>& out);
// The same with int32 keys, for grids with narrow_middle_keys.
void reduce_middle_rest(const GridPlan& g, const int32_t* order, const int32_t* vcls, const int32_t* ekey,
                        int32_t* row_oldest, const std::vector<int32_t>& rest, const StartColumns<int32_t>& start_cols,
                        MiddleBuffers<int32_t>& mb, std::vector<RawPair>& out);

// Whether every packed key and cell code of H1 of a grid fits int32 (below about 2^25 pixels), so that its reduction
// may use int32 keys; false for every grid while set_force_wide_indices(true).
bool narrow_middle_keys(const GridPlan& g);

// Testing aid: with on, the union-find of H_{D-1} and the H1 reduction use their 64-bit indices and keys even where
// the 32-bit ones fit (those are otherwise reached only by grids of 2^25 pixels and more). Returns the previous
// setting.
bool set_force_wide_indices(bool on);

// All requested phases of one ranked image, in order.
void persistence_of_ranked_image(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out);

}  // namespace gpuph
