// The merge-tree plan of a grid shape (MTPlan, kernels/merge_tree.cuh) from its GridPlan.
#pragma once
#include "grid_plan.cuh"
#include "merge_tree.cuh"

namespace gpuph {

inline MTPlan make_mt_plan(const GridPlan& g) {
  MTPlan m{};
  m.D = g.D;
  m.T = g.min_key;
  m.N = g.N;
  m.P = g.P;
  for (int a = 0; a < g.D; ++a) {
    m.n[a] = g.n[a];
    m.pn[a] = g.pn[a];
    m.pstride[a] = g.pstride[a];
  }
  // Forward (H0): V uses the axis neighbours, T all 8; reverse (2D top dimension by duality): the other one.
  for (int k = 0; k < 2; ++k) {
    const bool axis = g.D == 1 || ((k == 0) != m.T);
    m.nnb[k] = axis ? g.naxis_nb : g.npix_nb;
    for (int j = 0; j < m.nnb[k]; ++j) m.nb[k][j] = axis ? g.axis_nb[j] : g.pix_nb[j];
  }
  if (g.D == 2) {
    const int64_t s0 = g.pstride[0];
    const int64_t ring[8] = {-s0, -s0 + 1, 1, s0 + 1, s0, s0 - 1, -1, -s0 - 1};
    for (int j = 0; j < 8; ++j) m.ring[j] = ring[j];
  }
  return m;
}

}  // namespace gpuph
