// A ComplexTable resolved for one grid shape: offsets become flat-index deltas in the padded grid (one border layer on
// each side, so neighbour look-ups need no bounds checks), plus the per-cell bodies that the CPU engine loops over
// and the CUDA kernels run one thread per cell.
#pragma once
#include "cell_tables.cuh"

namespace gpuph {

struct DimPlan {
  int ntypes;
  int nkey[kMaxTypes];
  int64_t key[kMaxTypes][kMaxKeyVerts];  // delta from the anchor to each key vertex
  int nbnd[kMaxTypes];
  int bnd_type[kMaxTypes][kMaxBoundary];
  int64_t bnd_shift[kMaxTypes][kMaxBoundary];
  int cof_type[kMaxTypes][2];
  int64_t cof_shift[kMaxTypes][2];
  int star_code[kMaxTypes][kMaxKeyVerts];
  int nstar;
  int star_type[kMaxStar];
  int star_key_index[kMaxStar];
  int64_t star_anchor[kMaxStar];  // anchor - key vertex
};

struct GridPlan {
  int D;
  int construction;
  bool min_key;               // T: a cell's key is the min rank of its incident pixels
  int64_t n[kMaxDim];         // grid sizes
  int64_t pn[kMaxDim];        // padded sizes (n + 2)
  int64_t pstride[kMaxDim];   // padded C-order strides
  int64_t N;                  // pixels
  int64_t P;                  // padded pixels
  int npix_nb;                // T's H0 neighbourhood (8 / 26 connectivity)
  int64_t pix_nb[26];
  int naxis_nb;               // V's H0 neighbourhood (2 / 4 / 6 connectivity)
  int64_t axis_nb[6];
  DimPlan dim[kMaxDim + 1];
};

GPUPH_HD int64_t offset_delta(const Offset& o, const int64_t* pstride, int D) {
  int64_t d = 0;
  for (int a = 0; a < D; ++a) d += int64_t(o.c[a]) * pstride[a];
  return d;
}

inline GridPlan make_grid_plan(const ComplexTable& tab, const int64_t* n) {
  GridPlan g{};
  g.D = tab.D;
  g.construction = tab.construction;
  g.min_key = tab.construction == kConstructionT;
  g.N = 1;
  g.P = 1;
  for (int a = 0; a < g.D; ++a) {
    g.n[a] = n[a];
    g.pn[a] = n[a] + 2;
    g.N *= n[a];
    g.P *= g.pn[a];
  }
  int64_t s = 1;
  for (int a = g.D - 1; a >= 0; --a) {
    g.pstride[a] = s;
    s *= g.pn[a];
  }
  for (int k = 0; k <= g.D; ++k) {
    const DimTable& t = tab.dim[k];
    DimPlan& p = g.dim[k];
    p.ntypes = t.ntypes;
    for (int ty = 0; ty < t.ntypes; ++ty) {
      const CellType& c = t.type[ty];
      p.nkey[ty] = c.nkey;
      for (int j = 0; j < c.nkey; ++j) {
        p.key[ty][j] = offset_delta(c.key[j], g.pstride, g.D);
        p.star_code[ty][j] = c.star_code[j];
      }
      p.nbnd[ty] = c.nbnd;
      for (int b = 0; b < c.nbnd; ++b) {
        p.bnd_type[ty][b] = c.bnd_type[b];
        p.bnd_shift[ty][b] = offset_delta(c.bnd_shift[b], g.pstride, g.D);
      }
      for (int b = 0; b < c.ncof; ++b) {
        p.cof_type[ty][b] = c.cof_type[b];
        p.cof_shift[ty][b] = offset_delta(c.cof_shift[b], g.pstride, g.D);
      }
    }
    p.nstar = t.nstar;
    for (int e = 0; e < t.nstar; ++e) {
      p.star_type[e] = t.star[e].type;
      p.star_key_index[e] = t.star[e].key_index;
      p.star_anchor[e] = offset_delta(t.star[e].anchor_shift, g.pstride, g.D);
    }
  }
  g.npix_nb = 0;
  int total = 1;
  for (int a = 0; a < g.D; ++a) total *= 3;
  for (int code = 0; code < total; ++code) {
    int c = code;
    int64_t d = 0;
    bool zero = true;
    for (int a = 0; a < g.D; ++a) {
      const int o = c % 3 - 1;
      c /= 3;
      d += o * g.pstride[a];
      zero = zero && o == 0;
    }
    if (!zero) g.pix_nb[g.npix_nb++] = d;
  }
  g.naxis_nb = 0;
  for (int a = 0; a < g.D; ++a) {
    g.axis_nb[g.naxis_nb++] = -g.pstride[a];
    g.axis_nb[g.naxis_nb++] = g.pstride[a];
  }
  return g;
}

// ---------------------------------------------------------------------------------------------------------------
// Per-cell bodies.

// The star of a key vertex flattened for one dimension: every delta is relative to the key vertex v, so the hot
// loops do no table indirection (and the compiler can keep these in registers / L1 without aliasing worries).
struct FlatStar {
  int n;                                   // star entries
  int64_t anchor[kMaxStar];                // cell anchor - v
  int type[kMaxStar];
  int nother[kMaxStar];                    // key vertices other than v
  int64_t other[kMaxStar][kMaxKeyVerts];   // their deltas from v
  int64_t cof_id[kMaxStar][2];             // top coface id - v * ntop ((D-1)-cells)
};

inline FlatStar flatten_star(const GridPlan& g, int k) {
  FlatStar f{};
  const DimPlan& p = g.dim[k];
  const DimPlan* top = k < g.D ? &g.dim[g.D] : nullptr;
  const int ntop = g.min_key ? 1 : (top ? top->ntypes : 1);  // T's top cells are the pixels
  f.n = p.nstar;
  for (int e = 0; e < p.nstar; ++e) {
    const int ty = p.star_type[e];
    const int64_t a = p.star_anchor[e];
    f.anchor[e] = a;
    f.type[e] = ty;
    f.nother[e] = 0;
    for (int j = 0; j < p.nkey[ty]; ++j)
      if (j != p.star_key_index[e]) f.other[e][f.nother[e]++] = a + p.key[ty][j];
    if (k == g.D - 1)
      for (int s = 0; s < 2; ++s) f.cof_id[e][s] = (a + p.cof_shift[ty][s]) * ntop + (g.min_key ? 0 : p.cof_type[ty][s]);
  }
  return f;
}

// Packed total-order key of a cell: (key rank, star code). Star codes are < kMaxStar < 64.
GPUPH_HD int64_t pack_cell_key(int32_t key_rank, int star_code) { return (int64_t(key_rank) << 6) | star_code; }

}  // namespace gpuph
