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
  if (g.construction == kConstructionFreudenthal) {
    // Both phases: the edges of the triangulation, v +- m for every nonzero 0/1 axis mask m (2 / 6 / 14
    // neighbours). H0 is the merge tree of this graph; the top dimension, by Alexander duality, that of the same
    // graph in the reverse order (kernels/merge_tree.cuh).
    int nnb = 0;
    for (int mask = 1; mask < (1 << g.D); ++mask) {
      int64_t d = 0;
      for (int a = 0; a < g.D; ++a)
        if ((mask >> a) & 1) d += g.pstride[a];
      m.nb[0][nnb++] = -d;
      m.nb[0][nnb++] = d;
    }
    for (int k = 0; k < 2; ++k) {
      m.nnb[k] = nnb;
      for (int j = 0; j < nnb; ++j) m.nb[k][j] = m.nb[0][j];
    }
  } else {
    // Forward (H0): V uses the axis neighbours, T all 8 / 26; reverse (top dimension by duality): the other one.
    for (int k = 0; k < 2; ++k) {
      const bool axis = g.D == 1 || ((k == 0) != m.T);
      m.nnb[k] = axis ? g.naxis_nb : g.npix_nb;
      for (int j = 0; j < m.nnb[k]; ++j) m.nb[k][j] = axis ? g.axis_nb[j] : g.pix_nb[j];
    }
  }
  if (g.D == 2) {
    const int64_t s0 = g.pstride[0];
    const int64_t ring[8] = {-s0, -s0 + 1, 1, s0 + 1, s0, s0 - 1, -1, -s0 - 1};
    for (int j = 0; j < 8; ++j) m.ring[j] = ring[j];
  }
  // The same neighbourhoods as ring cells (2D): freudenthal's 6 are the 4-neighbours and the (1, 1) diagonal's
  // corners SE (s0 + 1) and NW (-s0 - 1).
  const bool F = g.construction == kConstructionFreudenthal;
  for (int k = 0; k < 2; ++k)
    m.ring_cells[k] = F ? Ring::freudenthal6 : ((k == 0) != m.T) ? Ring::axis4 : Ring::all8;
  return m;
}

}  // namespace gpuph
