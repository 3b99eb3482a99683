// Combinatorial description of the three grid complexes (V, T, freudenthal), as plain tables that both the CPU engine
// and CUDA kernels (constant memory) can read.
//
// A cell is (anchor, type). For V and freudenthal the anchor is a vertex (= pixel) and the type lists the cell's
// vertices as 0/1 offsets from it; the cell's filtration key is the max rank over its vertices. For T the anchor is
// the upper incident pixel of an elementary cube of the (n+1)-vertex grid and the type lists its incident pixels as
// 0/-1 offsets; the key is the min rank over them. Either way the "key vertex" (arg-max, resp. arg-min) identifies
// the step of the star filtration that adds the cell, and (key rank, star code) is the total order used everywhere:
// star codes put faces before cofaces, so it is a filtration order.
#pragma once
#include <algorithm>

#include "gpuph_common.cuh"

namespace gpuph {

enum Construction : int { kConstructionV = 0, kConstructionT = 1, kConstructionFreudenthal = 2 };

constexpr int kMaxDim = 3;
constexpr int kMaxTypes = 12;    // freudenthal triangles in 3D
constexpr int kMaxKeyVerts = 8;  // V cubes (8 vertices), T vertices (8 incident pixels)
constexpr int kMaxStar = 36;     // freudenthal triangles containing a vertex in 3D
constexpr int kMaxBoundary = 6;  // faces of a cube
constexpr int kCellTypeBits = 4;  // a cell code packs (anchor << kCellTypeBits | type): up to 12 types (freudenthal)

struct Offset {
  int8_t c[kMaxDim];
};

struct CellType {
  int8_t nkey;                      // key vertices (V, freudenthal: vertices; T: incident pixels)
  Offset key[kMaxKeyVerts];         // relative to the anchor
  int8_t nbnd;                      // codimension-1 faces
  int8_t bnd_type[kMaxBoundary];
  Offset bnd_shift[kMaxBoundary];   // face anchor - cell anchor
  int8_t ncof;                      // top-dimensional cofaces, for (D-1)-cells (2 in the infinite grid)
  int8_t cof_type[2];
  Offset cof_shift[2];
  int8_t star_code[kMaxKeyVerts];   // star code of this cell when key vertex j is its key vertex
};

// One cell of the star of a key vertex v: the cell (v + anchor_shift, type), whose key vertex is v.
struct StarEntry {
  int8_t type;
  int8_t key_index;  // which of the type's key vertices v is
  Offset anchor_shift;
};

struct DimTable {
  int ntypes;
  CellType type[kMaxTypes];
  int nstar;
  StarEntry star[kMaxStar];
};

struct ComplexTable {
  int D;
  int construction;
  DimTable dim[kMaxDim + 1];
};

// ---------------------------------------------------------------------------------------------------------------
// Host-side construction of the tables.

namespace detail {

inline int popcount3(int m) { return (m & 1) + ((m >> 1) & 1) + ((m >> 2) & 1); }

inline Offset mask_offset(int mask, int sign) {
  Offset o{};
  for (int a = 0; a < kMaxDim; ++a) o.c[a] = (mask >> a) & 1 ? int8_t(sign) : int8_t(0);
  return o;
}

inline Offset add(Offset x, Offset y) {
  Offset o{};
  for (int a = 0; a < kMaxDim; ++a) o.c[a] = int8_t(x.c[a] + y.c[a]);
  return o;
}

inline Offset neg(Offset x) {
  Offset o{};
  for (int a = 0; a < kMaxDim; ++a) o.c[a] = int8_t(-x.c[a]);
  return o;
}

// A freudenthal simplex type: a chain of disjoint nonempty axis masks m1..mk; vertices a, a+m1, a+m1+m2, ...
struct Chain {
  int k;
  int m[kMaxDim];
};

inline bool same_chain(const Chain& x, const Chain& y) {
  if (x.k != y.k) return false;
  for (int i = 0; i < x.k; ++i)
    if (x.m[i] != y.m[i]) return false;
  return true;
}

inline void enumerate_chains(int D, int k, int used, Chain cur, Chain* out, int* n) {
  if (cur.k == k || cur.k >= kMaxDim) {  // (the second only tells the compiler m[] has room: k <= D <= kMaxDim)
    out[(*n)++] = cur;
    return;
  }
  const int full = (1 << D) - 1;
  for (int m = 1; m <= full; ++m) {
    if (m & used) continue;
    Chain next = cur;
    next.m[next.k++] = m;
    enumerate_chains(D, k, used | m, next, out, n);
  }
}

inline int find_chain(const Chain* list, int n, const Chain& c) {
  for (int i = 0; i < n; ++i)
    if (same_chain(list[i], c)) return i;
  return -1;
}

// Rank of a neighbour offset in the order that sorts star cells (build_star): the axis neighbours first, sign-major
// (+e0, +e1, +e2, -e0, -e1, -e2), then the others by the number of axes they move along, then base 3.
inline int neighbour_order(Offset o) {
  int axes = 0, code = 0;
  for (int a = 0; a < kMaxDim; ++a) {
    axes += o.c[a] != 0;
    code = code * 3 + (o.c[a] < 0 ? 0 : o.c[a] == 0 ? 1 : 2);
  }
  if (axes == 1)
    for (int a = 0; a < kMaxDim; ++a)
      if (o.c[a] != 0) return (o.c[a] > 0 ? 0 : kMaxDim) + a;
  return 100 * axes + code;
}

// Star codes: the cells of one dimension with key vertex v, numbered in the lexicographic order of the sorted
// neighbour_order ranks of their other key vertices. Any numbering is a valid tie-break inside a star (faces stay
// before cofaces, which differ in dimension), and the pairs between different key vertices do not depend on it;
// this one makes far more pairs inside a star apparent than numbering by type: measured on 24^3 noise / smooth
// fields, the H1 reduction of 3D is left 1.7x / 2.5x fewer columns (V), 1.9x / 3x (T), 1.7x / 1.9x (freudenthal).
inline void build_star(DimTable& t) {
  struct Entry {
    int type, key_index, len;
    int rank[kMaxKeyVerts];
  };
  Entry entries[kMaxStar];
  int n = 0;
  for (int ty = 0; ty < t.ntypes; ++ty)
    for (int j = 0; j < t.type[ty].nkey; ++j) {
      const CellType& c = t.type[ty];
      Entry& e = entries[n++];
      e.type = ty;
      e.key_index = j;
      e.len = 0;
      for (int i = 0; i < c.nkey; ++i) {
        if (i == j) continue;
        Offset o{};
        for (int a = 0; a < kMaxDim; ++a) o.c[a] = int8_t(c.key[i].c[a] - c.key[j].c[a]);
        e.rank[e.len++] = neighbour_order(o);
      }
      std::sort(e.rank, e.rank + e.len);
    }
  std::stable_sort(entries, entries + n, [](const Entry& x, const Entry& y) {
    return std::lexicographical_compare(x.rank, x.rank + x.len, y.rank, y.rank + y.len);
  });
  t.nstar = n;
  for (int s = 0; s < n; ++s) {
    StarEntry& e = t.star[s];
    e.type = int8_t(entries[s].type);
    e.key_index = int8_t(entries[s].key_index);
    e.anchor_shift = neg(t.type[e.type].key[e.key_index]);
    t.type[e.type].star_code[e.key_index] = int8_t(s);
  }
}

// V and T share the cell geometry (elementary cubes; the types of one dimension are its axis masks S in increasing
// order); they differ in the key vertices.
inline void build_cubical(ComplexTable& tab, bool T) {
  const int D = tab.D;
  const int full = (1 << D) - 1;
  int type_of_mask[8];
  for (int k = 0; k <= D; ++k) {
    DimTable& t = tab.dim[k];
    t.ntypes = 0;
    for (int S = 0; S <= full; ++S)
      if (popcount3(S) == k) type_of_mask[S] = t.ntypes++;
  }
  for (int k = 0; k <= D; ++k) {
    DimTable& t = tab.dim[k];
    for (int S = 0; S <= full; ++S) {
      if (popcount3(S) != k) continue;
      CellType& c = t.type[type_of_mask[S]];
      c = CellType{};
      // key vertices: V: the vertices a + 1_U, U subset of S; T: incident pixels a - 1_U, U subset of complement(S)
      const int free = T ? (full & ~S) : S;
      c.nkey = 0;
      for (int U = 0; U <= full; ++U)
        if ((U & free) == U) c.key[c.nkey++] = mask_offset(U, T ? -1 : 1);
      c.nbnd = 0;
      for (int b = 0; b < D; ++b) {
        if (!((S >> b) & 1)) continue;
        c.bnd_type[c.nbnd] = int8_t(type_of_mask[S & ~(1 << b)]);
        c.bnd_shift[c.nbnd++] = mask_offset(0, 1);
        c.bnd_type[c.nbnd] = int8_t(type_of_mask[S & ~(1 << b)]);
        c.bnd_shift[c.nbnd++] = mask_offset(1 << b, 1);
      }
      c.ncof = 0;
      if (k == D - 1) {
        const int a = __builtin_ctz(full & ~S);  // normal axis
        c.ncof = 2;
        c.cof_type[0] = c.cof_type[1] = 0;
        c.cof_shift[0] = mask_offset(0, 1);
        c.cof_shift[1] = mask_offset(1 << a, -1);
      }
    }
    build_star(t);
  }
}

inline void build_freudenthal(ComplexTable& tab) {
  const int D = tab.D;
  static thread_local Chain chains[kMaxDim + 1][64];
  int nchains[kMaxDim + 1];
  if (D < 1 || D > kMaxDim) return;  // callers pass 1..kMaxDim; stated so the compiler sees the bounds
  for (int k = 0; k <= D; ++k) {
    nchains[k] = 0;
    enumerate_chains(D, k, 0, Chain{0, {0, 0, 0}}, chains[k], &nchains[k]);
  }
  for (int k = 0; k <= D; ++k) {
    DimTable& t = tab.dim[k];
    t.ntypes = nchains[k];
    for (int ty = 0; ty < t.ntypes; ++ty) {
      const Chain& ch = chains[k][ty];
      CellType& c = t.type[ty];
      c = CellType{};
      int acc = 0;
      c.nkey = 0;
      c.key[c.nkey++] = mask_offset(0, 1);
      for (int i = 0; i < ch.k; ++i) {
        acc |= ch.m[i];
        c.key[c.nkey++] = mask_offset(acc, 1);
      }
      // boundary: drop vertex i of the chain
      c.nbnd = 0;
      for (int i = 0; k > 0 && i <= k; ++i) {
        Chain f{0, {0, 0, 0}};
        Offset shift = mask_offset(0, 1);
        for (int j = 0; j < k; ++j) {
          if (i == 0 && j == 0) {
            shift = mask_offset(ch.m[0], 1);
            continue;
          }
          if (i > 0 && i < k && j == i) {
            f.m[f.k - 1] |= ch.m[j];  // merge m_i and m_{i+1}
            continue;
          }
          if (i == k && j == k - 1) continue;
          f.m[f.k++] = ch.m[j];
        }
        c.bnd_type[c.nbnd] = int8_t(find_chain(chains[k - 1], nchains[k - 1], f));
        c.bnd_shift[c.nbnd++] = shift;
      }
      c.ncof = 0;
      if (k == D - 1) {
        int used = 0;
        for (int i = 0; i < ch.k; ++i) used |= ch.m[i];
        const int rest = ((1 << D) - 1) & ~used;
        Chain c0 = ch, c1{0, {0, 0, 0}};
        if (rest) {  // all masks are single axes: extend the chain at either end
          c0.m[c0.k++] = rest;
          c1.m[c1.k++] = rest;
          for (int i = 0; i < ch.k; ++i) c1.m[c1.k++] = ch.m[i];
          c.cof_shift[0] = mask_offset(0, 1);
          c.cof_shift[1] = mask_offset(rest, -1);
        } else {  // one mask has two axes: split it in either order
          c0.k = c1.k = 0;
          for (int i = 0; i < ch.k; ++i) {
            const int m = ch.m[i];
            if (popcount3(m) == 2) {
              const int lo = m & -m, hi = m & ~lo;
              c0.m[c0.k++] = lo;
              c0.m[c0.k++] = hi;
              c1.m[c1.k++] = hi;
              c1.m[c1.k++] = lo;
            } else {
              c0.m[c0.k++] = m;
              c1.m[c1.k++] = m;
            }
          }
          c.cof_shift[0] = c.cof_shift[1] = mask_offset(0, 1);
        }
        c.ncof = 2;
        c.cof_type[0] = int8_t(find_chain(chains[D], nchains[D], c0));
        c.cof_type[1] = int8_t(find_chain(chains[D], nchains[D], c1));
      }
    }
    build_star(t);
  }
}

}  // namespace detail

inline ComplexTable make_complex_table(int D, int construction) {
  ComplexTable tab{};
  tab.D = D;
  tab.construction = construction;
  if (construction == kConstructionFreudenthal)
    detail::build_freudenthal(tab);
  else
    detail::build_cubical(tab, construction == kConstructionT);
  return tab;
}

}  // namespace gpuph
