// CPU engine for exact cubical / freudenthal persistence of one image. It loops over the per-cell bodies of
// kernels/grid_plan.cuh; the algorithms are those of DESIGN.md section 3:
//   H0            union-find over the lower stars in rank order (elder rule),
//   H_{D-1}       union-find over top cells plus one outside node in reverse order (Alexander duality),
//   H1 of 3D      column reduction of the 2-cells, with clearing (positive 2-cells known from H2) and compression
//                 (negative edges known from H0), in the same total order as the two union-finds.
#pragma once
#include <cstdint>
#include <vector>

#include "grid_plan.cuh"

namespace gpuph {

// One persistence pair in padded-grid pixel indices; death == -1 for the essential class.
struct RawPair {
  int32_t dim;
  int64_t birth;
  int64_t death;
};

// Scratch buffers reused across the images a worker processes.
struct Workspace {
  std::vector<int32_t> rank;   // padded grid, kBorderRank on the border
  std::vector<int32_t> order;  // rank -> padded pixel index
  std::vector<int32_t> vclass; // rank -> index of its distinct value (equal values <=> equal class)
  std::vector<uint32_t> keys32, tmp32;
  std::vector<uint64_t> keys64, tmp64;
  std::vector<int32_t> tmp_items;
  std::vector<int32_t> parent0;  // H0 union-find (padded pixels)
  std::vector<int64_t> parent_top;
  std::vector<int32_t> top_key;
  std::vector<uint8_t> negative_edge;   // compression flags, per edge id
  std::vector<uint8_t> positive_face;   // clearing flags, per 2-cell id (3D)
  std::vector<int64_t> edge_key;        // edge id -> packed key, -1 if compressed
  std::vector<int64_t> col_key;         // 2-cell id -> column key (INT64_MAX: not a column)
  std::vector<int64_t> col_pivot;       // 2-cell id -> id of its pivot edge
  std::vector<int64_t> col_pivot_key;   // 2-cell id -> key of its pivot edge
  std::vector<int64_t> row_oldest;      // edge id -> key of the oldest column containing it
  std::vector<int64_t> pivot64;         // edge id -> stored column (>= 0) or -(apparent column key) - 1
  std::vector<int64_t> rest;            // keys of the columns that need reduction
  std::vector<int64_t> regen;           // a regenerated apparent column
  std::vector<int64_t> pool;            // stored reduced columns
  std::vector<int64_t> col_start;
  std::vector<int64_t> work, merged;
};

struct Phases {
  bool h0;          // compute H0 (union-find)
  bool top;         // compute H_{D-1} by duality (D >= 2)
  bool middle;      // compute H1 of 3D (reduction)
  bool emit[kMaxDim];
};

// Fills ws.rank / ws.order for one image. Returns false if the image contains NaN.
template <typename F>
bool rank_image(const GridPlan& g, const F* x, bool superlevel, Workspace& ws);

// The three phases. run_h0 and run_top only read the ranking and write disjoint workspace members, so they may run
// concurrently on one workspace; run_middle needs both (compression and clearing flags).
bool needs_h0(const GridPlan& g, const Phases& ph);
bool needs_top(const GridPlan& g, const Phases& ph);
void run_h0(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out);
void run_top(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out);
void run_middle(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out, bool parallel = false);

// All requested phases of one ranked image, in order.
void persistence_of_ranked_image(const GridPlan& g, const Phases& ph, Workspace& ws, std::vector<RawPair>& out);

}  // namespace gpuph
