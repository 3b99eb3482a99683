// H1 of 3D grids on the device: the data-parallel passes of the column reduction of the 2-cells (DESIGN.md section
// 3), one call per cell of the whole batch. The CUDA kernels (kernels/middle_cuda.cu) run them one thread per cell;
// the CPU emulation of the pipeline (gpuph/csrc/middle_pipeline.cpp) loops over them, so CI tests them.
//
// The CPU engine knows every negative edge and positive 2-cell from its two union-finds (compression and clearing).
// Here every cell decides alone, from the ranks around it, whether it is in an apparent pair with a face or a
// coface: an edge paired with its youngest vertex is negative, a 2-cell paired with its oldest 3-cell positive.
// That marks all negative edges but the merges of H0 and all positive 2-cells but the births of H2 with a
// non-apparent death: a few per image. Removing any subset of negative rows and of positive columns leaves the
// reduction's pivots as they are, so the pairs stay exact; the unmarked ones only cost the residual reduction a
// little work.
//
// Cells: (anchor, type) in the padded grid of one image; cell id = padded anchor * (types of its dimension) + type,
// as in the CPU engine. Keys are packed (key rank << 6 | star code); -1 means "not a cell of the complex". The arrays
// hold them as K: int32 where every key and cell code of the image fits (below about 2^25 pixels), else int64.
#pragma once
#include <climits>
#include <stdexcept>

#include "grid_plan.cuh"
#include "merge_tree.cuh"

namespace gpuph {

constexpr int kMaxCofaces = 14;  // freudenthal: the edges at a vertex in 3D

// One cell type of one dimension, with offsets as padded coordinates (so that bounds are checked per axis).
struct MidCellType {
  int8_t nkey;
  int8_t key[kMaxKeyVerts][3];  // key vertices (V, freudenthal) / incident pixels (T), from the anchor
  int8_t code[kMaxKeyVerts];    // star code of the cell when key vertex j is its key vertex
  int8_t nbnd;
  int8_t bnd_type[kMaxBoundary];
  int8_t bnd[kMaxBoundary][3];  // face anchor - anchor
  int8_t ncof;
  int8_t cof_type[kMaxCofaces];
  int8_t cof[kMaxCofaces][3];   // coface anchor - anchor
};

// The plan of one 3D grid shape: small enough (about 6 KB) to pass to a kernel by value.
struct MiddlePlan {
  bool min_key;  // T: a cell's key is the min rank of its incident pixels, else the max of its vertices'
  int64_t n[3], pn[3], pstride[3];
  int64_t N, P;  // pixels, padded pixels of one image
  int ntypes[4];
  MidCellType type[4][kMaxTypes];
};

inline MiddlePlan make_middle_plan(const ComplexTable& tab, const int64_t* n) {
  MiddlePlan m{};
  m.min_key = tab.construction == kConstructionT;
  m.N = 1;
  m.P = 1;
  for (int a = 0; a < 3; ++a) {
    m.n[a] = n[a];
    m.pn[a] = n[a] + 2;
    m.N *= n[a];
    m.P *= n[a] + 2;
  }
  m.pstride[2] = 1;
  m.pstride[1] = m.pn[2];
  m.pstride[0] = m.pn[1] * m.pn[2];
  for (int k = 0; k <= 3; ++k) {
    const DimTable& t = tab.dim[k];
    m.ntypes[k] = t.ntypes;
    for (int ty = 0; ty < t.ntypes; ++ty) {
      const CellType& c = t.type[ty];
      MidCellType& q = m.type[k][ty];
      q.nkey = c.nkey;
      for (int j = 0; j < c.nkey; ++j) {
        for (int a = 0; a < 3; ++a) q.key[j][a] = c.key[j].c[a];
        q.code[j] = c.star_code[j];
      }
      q.nbnd = k > 0 ? c.nbnd : 0;
      for (int b = 0; b < q.nbnd; ++b) {
        q.bnd_type[b] = c.bnd_type[b];
        for (int a = 0; a < 3; ++a) q.bnd[b][a] = c.bnd_shift[b].c[a];
      }
    }
  }
  // Cofaces: the inverse of the boundary tables.
  for (int k = 0; k < 3; ++k)
    for (int up = 0; up < tab.dim[k + 1].ntypes; ++up) {
      const CellType& c = tab.dim[k + 1].type[up];
      for (int b = 0; b < c.nbnd; ++b) {
        MidCellType& q = m.type[k][c.bnd_type[b]];
        if (q.ncof == kMaxCofaces) throw std::logic_error("gpuph: more cofaces than kMaxCofaces");
        q.cof_type[q.ncof] = int8_t(up);
        for (int a = 0; a < 3; ++a) q.cof[q.ncof][a] = int8_t(-c.bnd_shift[b].c[a]);
        ++q.ncof;
      }
    }
  return m;
}

namespace mid {

struct Cell {
  int32_t c[3];  // padded coordinates of the anchor
  int ty;
};

// Unpadded flat index of padded pixel p.
GPUPH_HD int32_t unpad(const MiddlePlan& m, int64_t p) { return int32_t(unpad_index(m.n, m.pstride, m.pn, 3, p)); }

GPUPH_HD int64_t flat_of(const MiddlePlan& m, const int32_t* c) {
  return c[0] * m.pstride[0] + c[1] * m.pstride[1] + c[2];
}

// Cell `id` (anchor * ntypes + type) of dimension k.
GPUPH_HD Cell cell_of(const MiddlePlan& m, int k, int64_t id) {
  Cell x;
  const int64_t a = id / m.ntypes[k];
  x.ty = int(id % m.ntypes[k]);
  x.c[0] = int32_t(a / m.pstride[0]);
  const int64_t r = a % m.pstride[0];
  x.c[1] = int32_t(r / m.pstride[1]);
  x.c[2] = int32_t(r % m.pstride[1]);
  return x;
}

GPUPH_HD int64_t id_of(const MiddlePlan& m, int k, const Cell& x) { return flat_of(m, x.c) * m.ntypes[k] + x.ty; }

GPUPH_HD Cell shifted(const Cell& x, const int8_t* d, int ty) {
  Cell y;
  for (int a = 0; a < 3; ++a) y.c[a] = x.c[a] + d[a];
  y.ty = ty;
  return y;
}

// Packed key of cell x of dimension k in one image (rank: its padded ranks), -1 if x is not a cell of the complex:
// V / freudenthal, a vertex on the border (or beyond the padded grid); T, no incident pixel inside.
GPUPH_HD int64_t cell_key(const MiddlePlan& m, const int32_t* rank, int k, const Cell& x) {
  const MidCellType& q = m.type[k][x.ty];
  int32_t best = m.min_key ? kBorderRank : -1;
  int bj = 0;
  for (int j = 0; j < q.nkey; ++j) {
    int32_t p[3];
    bool inside = true;
    for (int a = 0; a < 3; ++a) {
      p[a] = x.c[a] + q.key[j][a];
      inside = inside && p[a] >= 0 && p[a] < m.pn[a];
    }
    const int32_t r = inside ? rank[flat_of(m, p)] : kBorderRank;
    if (m.min_key) {
      if (r < best) {
        best = r;
        bj = j;
      }
    } else {
      if (r == kBorderRank) return -1;
      if (r > best) {
        best = r;
        bj = j;
      }
    }
  }
  if (best == kBorderRank) return -1;
  return pack_cell_key(best, q.code[bj]);
}

// The youngest face of cell x of dimension k >= 1 (a cell of the complex, so all its faces are) and its key.
GPUPH_HD int64_t youngest_face(const MiddlePlan& m, const int32_t* rank, int k, const Cell& x, Cell* face) {
  const MidCellType& q = m.type[k][x.ty];
  int64_t best = -1;
  for (int b = 0; b < q.nbnd; ++b) {
    const Cell f = shifted(x, q.bnd[b], q.bnd_type[b]);
    const int64_t key = cell_key(m, rank, k - 1, f);
    if (key > best) {
      best = key;
      *face = f;
    }
  }
  return best;
}

// The oldest coface of cell x of dimension k < 3 that is a cell of the complex, and its key; -1 if there is none.
GPUPH_HD int64_t oldest_coface(const MiddlePlan& m, const int32_t* rank, int k, const Cell& x, Cell* coface) {
  const MidCellType& q = m.type[k][x.ty];
  int64_t best = LLONG_MAX;
  for (int b = 0; b < q.ncof; ++b) {
    const Cell f = shifted(x, q.cof[b], q.cof_type[b]);
    const int64_t key = cell_key(m, rank, k + 1, f);
    if (key >= 0 && key < best) {
      best = key;
      *coface = f;
    }
  }
  return best == LLONG_MAX ? -1 : best;
}

// Whether cell x (dimension k, key `key`) is the death of an apparent pair: its youngest face has x as its oldest
// coface. Such an x is negative.
GPUPH_HD bool kills_its_youngest_face(const MiddlePlan& m, const int32_t* rank, int k, const Cell& x, int64_t key) {
  Cell f{}, c{};
  youngest_face(m, rank, k, x, &f);
  return oldest_coface(m, rank, k - 1, f, &c) == key;
}

// Whether cell x (dimension k, key `key`) is the birth of an apparent pair: its oldest coface has x as its youngest
// face. Such an x is positive.
GPUPH_HD bool killed_by_its_oldest_coface(const MiddlePlan& m, const int32_t* rank, int k, const Cell& x,
                                          int64_t key) {
  Cell c{}, f{};
  if (oldest_coface(m, rank, k, x, &c) < 0) return false;
  return youngest_face(m, rank, k + 1, c, &f) == key;
}

// ------------------------------------------------------------------------------------------- per-cell passes

// Edge t of the batch: its packed key, or -1 if it is not a cell of the complex or is negative (compression).
template <typename K>
GPUPH_HD void edge_key_cell(const MiddlePlan& m, const int32_t* rank, K* ekey, int64_t t) {
  const int64_t per = m.P * m.ntypes[1];
  const int32_t* r = rank + (t / per) * m.P;
  const Cell e = cell_of(m, 1, t % per);
  const int64_t key = cell_key(m, r, 1, e);
  ekey[t] = K(key < 0 || kills_its_youngest_face(m, r, 1, e, key) ? -1 : key);
}

// The key a 2-cell that is not a column gets in col_key, and an edge no column contains in row_oldest.
template <typename K>
GPUPH_HD constexpr K no_column() {
  return sizeof(K) == 4 ? K(INT_MAX) : K(LLONG_MAX);
}

// 2-cell t of the batch: if it is a column (a cell of the complex, not positive by an apparent pair, with a nonempty
// compressed boundary), its key and the index of its pivot (youngest uncompressed boundary edge) into col_key /
// col_pivot, and its key scattered by min into row_oldest of each of those edges: amin(K* slot, K key).
template <typename K, typename AtomicMin>
GPUPH_HD void column_cell(const MiddlePlan& m, const int32_t* rank, const K* ekey, K* col_key, uint8_t* col_pivot,
                          K* row_oldest, int64_t t, AtomicMin&& amin) {
  const int64_t per = m.P * m.ntypes[2];
  const int64_t b = t / per;
  const int32_t* r = rank + b * m.P;
  const int64_t base1 = b * m.P * m.ntypes[1];
  const Cell f = cell_of(m, 2, t % per);
  col_key[t] = no_column<K>();
  const int64_t key = cell_key(m, r, 2, f);
  if (key < 0 || killed_by_its_oldest_coface(m, r, 2, f, key)) return;
  const MidCellType& q = m.type[2][f.ty];
  int64_t piv = -1;
  int pb = -1;
  for (int j = 0; j < q.nbnd; ++j) {
    const int64_t eid = base1 + id_of(m, 1, shifted(f, q.bnd[j], q.bnd_type[j]));
    const int64_t ek = ekey[eid];
    if (ek < 0) continue;
    amin(row_oldest + eid, K(key));
    if (ek > piv) {
      piv = ek;
      pb = j;
    }
  }
  if (pb < 0) return;  // an empty compressed boundary: positive after all
  col_key[t] = K(key);
  col_pivot[t] = uint8_t(pb);
}

// What apparent_cell found for a 2-cell.
enum MidStatus : uint8_t {
  kNotColumn = 0,
  kApparentPair = 1,      // an apparent pair of nonzero length: birth / death pixels written
  kResidual = 2,          // a column the residual reduction must reduce
  kApparentZero = 3,      // an apparent pair of equal values: not reported
};

// 2-cell t of the batch, after column_cell: a column that is the oldest column of its pivot is an apparent pair; it
// writes its cell code -1 - (anchor << kCellTypeBits | type) into its pivot's row_oldest, where the residual
// reduction finds it (reduce_rest in the CPU engine). Any other column with that pivot compares unequal, before or
// after the write: these writes need no ordering. order / vkey: the image's pixels in rank order (padded index,
// sorted value key), to report pairs in unpadded pixel indices and skip those of equal values.
template <typename K>
GPUPH_HD void apparent_cell(const MiddlePlan& m, const K* col_key, const uint8_t* col_pivot, const K* ekey,
                            const int32_t* order, const int64_t* vkey, K* row_oldest, uint8_t* status, int32_t* birth,
                            int32_t* death, int64_t t) {
  const K key = col_key[t];
  if (key == no_column<K>()) {
    status[t] = kNotColumn;
    return;
  }
  const int64_t per = m.P * m.ntypes[2];
  const int64_t b = t / per;
  const Cell f = cell_of(m, 2, t % per);
  const MidCellType& q = m.type[2][f.ty];
  const int j = col_pivot[t];
  const int64_t eid = b * m.P * m.ntypes[1] + id_of(m, 1, shifted(f, q.bnd[j], q.bnd_type[j]));
  if (racy_load(row_oldest + eid) != key) {
    status[t] = kResidual;
    return;
  }
  racy_store(row_oldest + eid, K(-1 - ((flat_of(m, f.c) << kCellTypeBits) | f.ty)));
  const int64_t br = int64_t(ekey[eid]) >> 6, dr = int64_t(key) >> 6;
  const int32_t* ord = order + b * m.N;
  const int64_t* vk = vkey + b * m.N;
  if (vk[br] == vk[dr]) {
    status[t] = kApparentZero;
    return;
  }
  status[t] = kApparentPair;
  birth[t] = unpad(m, ord[br]);
  death[t] = unpad(m, ord[dr]);
}

// ------------------------------------------------------------------------------------ the residual reduction
// The columns left after the apparent pairs are reduced on the device in rounds (a parallel form of the standard
// reduction, after OpenPH's, Mendoza-Smith and Tanner). A round starts with every column claiming its pivot row (its
// lowest entry): the oldest claimant owns the row for the round. Then every column that does not own its row adds
// the row's apparent column, or its owner, and goes on from its new pivot as long as that row has an apparent column
// or an owner older than itself. Owners do not change during the round (a column owning its row adds nothing) and
// apparent columns never change, so the columns need no order between them; a column only ever adds older columns,
// so when every pivot row has one column the matrix is reduced and its pairs are the persistence pairs of the total
// order. Residual columns are numbered in (image, key) order: older means a smaller number within an image. Each
// holds its entries (image-local edge ids, ascending key) in a buffer of its own capacity (ResidualColumns), adds
// in place, and takes a larger buffer from a spare region as it outgrows its own. Owner entries carry their round
// (claim_value), so stale ones need no reset.

// The first capacity of every column. Measured (CPU emulation, 32^3-64^3 noise and smooth fields, V / T /
// freudenthal): the columns end up needing 50-340 entries on average (a few long ones), but most stay short, and
// 16 needs 2-3x less memory in all than 64 (with its spare region sized as the call needs, as the driver does).
constexpr int kResidualCap = 16;
constexpr int kRoundShift = 40;  // owner entry: (kMaxRounds - round) << kRoundShift | column; columns < 2^40
constexpr int64_t kMaxRounds = int64_t(1) << 22;

GPUPH_HD int64_t claim_value(int64_t round, int64_t j) { return ((kMaxRounds - round) << kRoundShift) | j; }

// The owner of row r in this round, or -1 (no claim this round).
GPUPH_HD int64_t owner_of(const int64_t* owner, int64_t r, int64_t round) {
  const int64_t v = owner[r];
  return (v >> kRoundShift) == kMaxRounds - round ? (v & ((int64_t(1) << kRoundShift) - 1)) : -1;
}

// The residual columns' storage: segments of entries (the first holds every column's first buffer, then a spare
// region; each later one, which the driver adds when a spare region is used up, only a spare region). Column j's
// entries are seg[off[j] >> kSegmentShift][(off[j] & kOffsetMask) + i] for i < len[j], in a buffer of cap[j]
// entries. A column that would outgrow it takes a kGrowth times larger one from the current spare region
// (grow_column); where that is used up, or at kMaxCap, it is marked stuck and stops until the driver adds a
// segment. Segments are never moved or copied, so the storage needs no more than it holds. K = void: untyped (for
// the launchers' signatures), typed by typed<K>.
constexpr int kGrowth = 4;  // 4 rather than 8: fewer columns stuck for want of spare room (measured on 32^3 T noise)
constexpr int64_t kMaxCap = 32768;  // entries: longer columns go to the host
constexpr int kSegments = 32;       // past that, the host finishes
constexpr int kSegmentShift = 48;
constexpr int64_t kOffsetMask = (int64_t(1) << kSegmentShift) - 1;

template <typename K>
struct ResidualColumns {
  K* seg[kSegments];
  int64_t* off;
  int32_t* cap;
  int32_t* len;
  uint8_t* stuck;
  int64_t* top;       // entries taken from the spare region (may pass its size: then it is used up)
  int64_t spare_seg;  // the spare region: seg[spare_seg][spare_at, spare_at + spare_size)
  int64_t spare_at;
  int64_t spare_size;
  GPUPH_HD K* col(int64_t j) const { return seg[off[j] >> kSegmentShift] + (off[j] & kOffsetMask); }
};

template <typename K>
GPUPH_HD ResidualColumns<K> typed(const ResidualColumns<void>& c) {
  ResidualColumns<K> t{{}, c.off, c.cap, c.len, c.stuck, c.top, c.spare_seg, c.spare_at, c.spare_size};
  for (int i = 0; i < kSegments; ++i) t.seg[i] = static_cast<K*>(c.seg[i]);
  return t;
}

// The capacity a column of capacity cap grows to for need entries (cap times a power of kGrowth, at most kMaxCap),
// and the kGrowth steps to it.
GPUPH_HD int64_t grown_capacity(int64_t cap, int64_t need, int* steps) {
  *steps = 0;
  while (cap < need && cap < kMaxCap) {
    cap = cap * kGrowth < kMaxCap ? cap * kGrowth : kMaxCap;
    ++*steps;
  }
  return cap;
}

// What stuck[j] says: 0 the column goes on; kStuckForGood it needs more than kMaxCap entries (the host finishes
// it); else the kGrowth steps its next buffer is larger than its own (the driver sizes a new spare region by them).
constexpr uint8_t kStuckForGood = 255;

// Column j, which would outgrow its buffer, takes one kGrowth^k times larger, of at least `need` entries, from the
// spare region (aadd(int64_t* slot, int64_t n): atomic fetch-and-add) and moves its entries there. Where the region
// is used up, or need is past kMaxCap, it is marked stuck instead (and returns false). Only j reads or writes its
// buffer meanwhile: a column that grows adds, so it owns no row this round.
template <typename K, typename AtomicAdd>
GPUPH_HD bool grow_column(const ResidualColumns<K>& c, int64_t j, int64_t need, AtomicAdd&& aadd) {
  int steps = 0;
  const int64_t ncap = grown_capacity(c.cap[j], need, &steps);
  if (ncap < need) {
    c.stuck[j] = kStuckForGood;
    return false;
  }
  const int64_t at = aadd(c.top, ncap);
  if (at + ncap > c.spare_size) {
    c.stuck[j] = uint8_t(steps);
    return false;
  }
  const K* from = c.col(j);
  K* to = c.seg[c.spare_seg] + c.spare_at + at;
  for (int i = 0, n = c.len[j]; i < n; ++i) to[i] = from[i];
  c.off[j] = (c.spare_seg << kSegmentShift) | (c.spare_at + at);
  c.cap[j] = int32_t(ncap);
  return true;
}

// The compressed boundary of 2-cell f (at most kMaxBoundary edges) as image-local edge ids by ascending key.
template <typename K>
GPUPH_HD int boundary_ids(const MiddlePlan& m, const K* ek, const Cell& f, K* out) {
  const MidCellType& q = m.type[2][f.ty];
  int n = 0;
  for (int e = 0; e < q.nbnd; ++e) {
    const int64_t id = id_of(m, 1, shifted(f, q.bnd[e], q.bnd_type[e]));
    const int64_t k = ek[id];
    if (k < 0) continue;
    int i = n++;
    for (; i > 0 && ek[out[i - 1]] > k; --i) out[i] = out[i - 1];  // insertion sort by key: at most 6 entries
    out[i] = K(id);
  }
  return n;
}

// Residual column j: the 2-cell res[j]'s compressed boundary, in its first buffer (capacity >= kMaxBoundary).
template <typename K>
GPUPH_HD void residual_init_cell(const MiddlePlan& m, const K* ekey, const int64_t* res, ResidualColumns<K> c,
                                 int64_t j) {
  const int64_t per1 = m.P * m.ntypes[1], per2 = m.P * m.ntypes[2];
  c.len[j] = boundary_ids(m, ekey + (res[j] / per2) * per1, cell_of(m, 2, res[j] % per2), c.col(j));
}

// Global row (image offset + edge id) of column j's pivot, or -1 for an empty column.
template <typename K>
GPUPH_HD int64_t residual_pivot_row(const MiddlePlan& m, const int64_t* res, const ResidualColumns<K>& c, int64_t j) {
  const int n = c.len[j];
  if (n == 0) return -1;
  return (res[j] / (m.P * m.ntypes[2])) * m.P * m.ntypes[1] + int64_t(c.col(j)[n - 1]);
}

// Round step 1: column j claims its pivot row (amin(int64_t* slot, value): the oldest column wins), unless the row
// has an apparent column.
template <typename K, typename AtomicMin>
GPUPH_HD void residual_claim_cell(const MiddlePlan& m, const int64_t* res, const ResidualColumns<K>& c,
                                  const K* row_oldest, int64_t* owner, int64_t round, int64_t j, AtomicMin&& amin) {
  const int64_t r = residual_pivot_row(m, res, c, j);
  if (r >= 0 && row_oldest[r] >= 0) amin(owner + r, claim_value(round, j));
}

// Round step 2: column j, unless it owns its pivot row, adds the row's apparent column or owner and goes on from its
// new pivot while that has one older than j. Returns the number of columns added. A column that would outgrow its
// buffer grows (grow_column, with aadd) or, failing that, is marked stuck and keeps what it had.
template <typename K, typename AtomicAdd>
GPUPH_HD int residual_step_cell(const MiddlePlan& m, const K* ekey, const K* row_oldest, const int64_t* res,
                                const int64_t* owner, int64_t round, ResidualColumns<K> c, int64_t j,
                                AtomicAdd&& aadd) {
  if (c.stuck[j]) return 0;
  const int64_t per1 = m.P * m.ntypes[1];
  const int64_t base1 = (res[j] / (m.P * m.ntypes[2])) * per1;
  const K* ek = ekey + base1;
  int added = 0;
  while (c.len[j] > 0) {
    const K* a = c.col(j);
    const int na = c.len[j];
    const int64_t r = base1 + int64_t(a[na - 1]);
    // The column to add: an apparent column regenerated from the grid, or the owner's entries.
    K gen[kMaxBoundary];
    const K* add;
    int nadd;
    const int64_t x = row_oldest[r];
    if (x < 0) {
      const int64_t code = -1 - x;
      nadd = boundary_ids(
          m, ek, cell_of(m, 2, (code >> kCellTypeBits) * m.ntypes[2] + (code & ((1 << kCellTypeBits) - 1))), gen);
      add = gen;
    } else {
      const int64_t o = owner_of(owner, r, round);
      if (o < 0 || o >= j) break;  // no older column has this pivot now: the next round tells
      add = c.col(o);
      nadd = c.len[o];
    }
    // The symmetric difference, by key, in place. Both columns end at the pivot row, which cancels; the rest
    // merges from the top down into a[0, most), with most = na + nadd - 2 (its largest possible length). The write
    // position stays above every entry of a still to be read (it is at least p + q + 2 after each step), so a needs
    // no second buffer; then the result moves down to the front.
    const int most = na + nadd - 2;
    if (most > c.cap[j]) {
      if (grow_column(c, j, most, aadd)) continue;  // the same addition again, in the larger buffer
      break;  // stuck
    }
    K* out = c.col(j);
    int p = na - 2, q = nadd - 2, w = most;
    while (p >= 0 || q >= 0) {
      const int64_t kp = p >= 0 ? int64_t(ek[out[p]]) : -1, kq = q >= 0 ? int64_t(ek[add[q]]) : -1;
      if (kp == kq) {
        --p;
        --q;
        continue;
      }
      const K e = kp > kq ? out[p--] : add[q--];
      out[--w] = e;
    }
    const int n = most - w;
    for (int i = 0; i < n; ++i) out[i] = out[w + i];
    c.len[j] = n;
    ++added;
  }
  return added;
}

// After the rounds, with the claims of one more round `round`: whether column j is final (empty, or the owner of
// its pivot row, which has no apparent column); if it is a pair of nonzero length, its pixels into birth / death
// (unpadded), else -1.
template <typename K>
GPUPH_HD bool residual_final_cell(const MiddlePlan& m, const K* ekey, const K* col_key_res, const K* row_oldest,
                                  const int64_t* res, const int64_t* owner, int64_t round,
                                  const ResidualColumns<K>& c, const int32_t* order, const int64_t* vkey,
                                  int32_t* birth, int32_t* death, int64_t j) {
  birth[j] = -1;
  death[j] = -1;
  const int64_t r = residual_pivot_row(m, res, c, j);
  if (r < 0) return true;
  if (row_oldest[r] < 0 || owner_of(owner, r, round) != j) return false;
  const int64_t b = res[j] / (m.P * m.ntypes[2]);
  const int64_t br = int64_t(ekey[r]) >> 6, dr = int64_t(col_key_res[j]) >> 6;
  const int32_t* ord = order + b * m.N;
  const int64_t* vk = vkey + b * m.N;
  if (vk[br] == vk[dr]) return true;
  birth[j] = unpad(m, ord[br]);
  death[j] = unpad(m, ord[dr]);
  return true;
}

}  // namespace mid
}  // namespace gpuph
