// torch ops for point-cloud filtrations (H0, H1 and H2 of flag complexes filtered by edge length; flag_engine.h):
//
// rips_pairs(dist, sizes, threshold, dims_mask) -> int64 (K, 4)
//   dist: contiguous float32/float64 (B, N, N) distance matrices; image b uses its leading sizes[b] x sizes[b] block.
//   The Vietoris-Rips complex of the edges of length <= threshold.
// flag_pairs(edges, lengths, offsets, sizes, N, dims_mask) -> int64 (K, 6)
//   edges: int64 (E, 2) vertex pairs of all images (local vertex indices), image b's at offsets[b]..offsets[b+1];
//   lengths: (E,) float32/float64. The flag complex of each image's graph.
// complex_flag_pairs(edges, lengths, offsets, sizes, N, dims_mask, triangles, triangle_offsets, tetrahedra,
//                    tetrahedron_offsets) -> int64 (K, 6)
//   The flag filtration of an explicit complex (e.g. the Delaunay complex): the edges as for flag_pairs, and only
//   the given triangles (rows of three rows of `edges`) and tetrahedra (rows of four rows of `triangles`), image b's
//   at their offsets[b]..offsets[b+1]; the reduction of boundary_reduction.h.
//
// Rows: (image, dim, birth code, death code[, birth position, death position]) in the pinned order: image, dim,
// lifetime descending (essential first, among themselves by birth in filtration order), birth code, death code. An
// edge's code is i * N + j (i < j) with N the matrix size / the given N; an H0 birth is its vertex v, coded v * N + v;
// -1: none (essential death). Positions are rows of `edges` (-1: a vertex or none). Values are gathered in Python by
// these indices (autograd through a gather).
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>
#include <vector>

#include "boundary_reduction.h"
#include "flag_engine.h"
#include "gpuph_common.cuh"
#include "radix_sort.h"

namespace gpuph {
namespace {

using flag::FlagPair;
using flag::RankedEdges;

// The dense path codes edges as int32 and keeps an n x n int32 rank matrix.
constexpr int64_t kMaxDensePoints = 46340;  // N * N < 2^31 (and N < 2^16)

struct FlagRow {
  int32_t dim;
  double life;          // lifetime (inf: essential)
  int64_t birth_rank;   // the birth edge's rank in the filtration (-1 for a vertex: all are born at 0)
  int64_t birth_code, death_code, birth_pos, death_pos;
};

bool row_before(const FlagRow& x, const FlagRow& y) {
  if (x.dim != y.dim) return x.dim < y.dim;
  if (x.life != y.life) return x.life > y.life;
  // Essential first among infinite lifetimes (an edge of infinite length also kills a class after an infinite life).
  if ((x.death_code < 0) != (y.death_code < 0)) return x.death_code < 0;
  // Essential classes by birth in filtration order: closed at the filtration's end (as the losses close them), the
  // earliest born lives longest, so the order of the lifetimes does not depend on how the points are numbered.
  if (x.death_code < 0 && x.birth_rank != y.birth_rank) return x.birth_rank < y.birth_rank;  // both essential
  if (x.birth_code != y.birth_code) return x.birth_code < y.birth_code;
  return x.death_code < y.death_code;
}

// Rows of one image from the raw pairs; code[r] / pos[r] of the edge of rank r.
void make_rows(const RankedEdges& e, const std::vector<int64_t>& code, const std::vector<int64_t>& pos, int64_t N,
               const std::vector<FlagPair>& pairs, std::vector<FlagRow>& rows) {
  rows.clear();
  rows.reserve(pairs.size());
  const double inf = std::numeric_limits<double>::infinity();
  for (const FlagPair& p : pairs) {
    FlagRow row;
    row.dim = p.dim;
    row.birth_rank = p.dim == 0 ? -1 : int64_t(p.birth);
    if (p.dim == 0) {
      row.birth_code = int64_t(p.birth) * (N + 1);
      row.birth_pos = -1;
    } else {
      row.birth_code = code[size_t(p.birth)];
      row.birth_pos = pos[size_t(p.birth)];
    }
    const double birth = p.dim == 0 ? 0.0 : e.len[size_t(p.birth)];
    if (p.death < 0) {
      row.death_code = row.death_pos = -1;
      row.life = inf;
    } else {
      row.death_code = code[size_t(p.death)];
      row.death_pos = pos[size_t(p.death)];
      row.life = e.len[size_t(p.death)] - birth;
    }
    rows.push_back(row);
  }
  std::sort(rows.begin(), rows.end(), row_before);
}

template <typename F>
using KeyOf = std::conditional_t<std::is_same<F, float>::value, uint32_t, uint64_t>;

// Vietoris-Rips of the leading n x n block of one N x N distance matrix.
template <typename F>
void rips_image(const F* D, int64_t N, int32_t n, double threshold, bool h0, bool h1, bool h2,
                std::vector<FlagRow>& rows) {
  // Past the enclosing radius (min_i max_j d(i, j)) the complex is a cone, so nothing is born or dies later:
  // truncating there changes no diagram and drops most edges (as Ripser does).
  double cut = threshold;
  if (n > 0) {
    double enclosing = std::numeric_limits<double>::infinity();
    for (int32_t i = 0; i < n; ++i) {
      const F* row = D + i * N;
      double far = 0;
      for (int32_t j = 0; j < n; ++j) far = std::max(far, double(row[j]));
      enclosing = std::min(enclosing, far);
    }
    cut = std::min(cut, enclosing);
  }
  // Sort keys: the length's order-preserving bits; items: (i << 16) | j, whose order is the code order (N < 2^16),
  // so the stable sort gives (length, code). Lengths are read back from the keys (no gather from the matrix).
  using U = KeyOf<F>;
  std::vector<U> keys, tmp_keys;
  std::vector<int32_t> items, tmp_items;
  const size_t all_edges = size_t(n) * size_t(std::max(n - 1, 0)) / 2;
  keys.reserve(all_edges);
  items.reserve(all_edges);
  for (int32_t i = 0; i < n; ++i) {
    const F* row = D + i * N;
    for (int32_t j = i + 1; j < n; ++j)
      if (double(row[j]) <= cut) {
        keys.push_back(orderable_key<U>(row[j], false));
        items.push_back((i << 16) | j);
      }
  }
  radix_sort_pairs(keys, items, tmp_keys, tmp_items);  // stable: ties stay in code order
  tmp_keys = std::vector<U>();
  tmp_items = std::vector<int32_t>();
  const size_t M = items.size();
  RankedEdges e(n, M);
  std::vector<int64_t> code(M);
  constexpr U sign = U(1) << (sizeof(U) * 8 - 1);
  for (size_t r = 0; r < M; ++r) {
    const int32_t i = items[r] >> 16, j = items[r] & 0xffff;
    e.a[r] = i;
    e.b[r] = j;
    code[r] = int64_t(i) * N + j;
    const U bits = keys[r] & ~sign;  // lengths are >= 0: the key is their bits with the sign bit set
    F len;
    std::memcpy(&len, &bits, sizeof(F));
    e.len[r] = double(len);
  }
  std::vector<FlagPair> pairs;
  std::vector<int32_t> R;
  if (h1 || h2) {
    R.assign(size_t(n) * size_t(n), flag::kNoEdge);
    for (size_t r = 0; r < M; ++r) {
      R[size_t(e.a[r]) * n + e.b[r]] = int32_t(r);
      R[size_t(e.b[r]) * n + e.a[r]] = int32_t(r);
    }
  }
  flag::flag_persistence(e, flag::DenseNeighbours{n, R.data()}, h0, h1, h2, pairs);
  make_rows(e, code, code, N, pairs, rows);
}

// One image's edges[s..t) (local vertices), lengths likewise, ranked by (length, code): fills e and, for each rank,
// the edge's code and its row in `edges`.
template <typename F>
RankedEdges rank_edges(const int64_t* edges, const F* lengths, int64_t s, int64_t t, int64_t N, int32_t n,
                       std::vector<int64_t>& code, std::vector<int64_t>& pos) {
  using U = KeyOf<F>;
  struct Item {
    U key;
    int64_t code, pos;
    bool operator<(const Item& o) const { return key != o.key ? key < o.key : code < o.code; }
  };
  std::vector<Item> items;
  items.reserve(size_t(t - s));
  for (int64_t p = s; p < t; ++p) {
    int64_t i = edges[2 * p], j = edges[2 * p + 1];
    TORCH_CHECK_VALUE(i != j && i >= 0 && j >= 0 && i < n && j < n, "gpuph: edge ", p, " = (", i, ", ", j,
                      ") is a loop or names a vertex outside 0..", n - 1, " of its graph");
    if (i > j) std::swap(i, j);
    const F len = lengths[p];
    TORCH_CHECK_VALUE(!std::isnan(double(len)) && len >= 0, "gpuph: edge ", p, " has length ", double(len),
                      "; lengths must be >= 0 (inf allowed), not NaN");
    items.push_back({orderable_key<U>(len, false), i * N + j, p});
  }
  const size_t M = items.size();
  // Ranks are int32 (kNoEdge is no rank).
  TORCH_CHECK_VALUE(M < size_t(flag::kNoEdge), "gpuph: a graph has ", M, " edges; at most ", flag::kNoEdge - 1,
                    " per graph are supported");
  std::sort(items.begin(), items.end());
  RankedEdges e(n, M);
  code.resize(M);
  pos.resize(M);
  for (size_t r = 0; r < M; ++r) {
    code[r] = items[r].code;
    pos[r] = items[r].pos;
    e.a[r] = int32_t(items[r].code / N);
    e.b[r] = int32_t(items[r].code % N);
    e.len[r] = double(lengths[items[r].pos]);
  }
  return e;
}

// Flag complex of one image's graph: edges[s..t) (local vertices), lengths likewise.
template <typename F>
void graph_image(const int64_t* edges, const F* lengths, int64_t s, int64_t t, int64_t N, int32_t n, bool h0, bool h1,
                 bool h2, std::vector<FlagRow>& rows) {
  std::vector<int64_t> code, pos;
  const RankedEdges e = rank_edges(edges, lengths, s, t, N, n, code, pos);
  const size_t M = size_t(e.size());
  // H2 keys a tetrahedron as (R * n + p) * n + q in 64 bits.
  TORCH_CHECK_VALUE(!h2 || n == 0 || uint64_t(M) <= std::numeric_limits<uint64_t>::max() / uint64_t(n) / uint64_t(n),
                    "gpuph: H2 of a graph with ", n, " vertices and ", M, " edges is past the 64-bit tetrahedron "
                    "keys (edges x vertices^2 must stay below 2^64): split the graph or leave H2 out");
  flag::SparseNeighbours g;
  g.build(e);
  TORCH_CHECK_VALUE(!g.has_repeated_edge(), "gpuph: a graph lists the same edge twice");
  std::vector<FlagPair> pairs;
  flag::flag_persistence(e, g, h0, h1, h2, pairs);
  make_rows(e, code, pos, N, pairs, rows);
}

// The triangles and tetrahedra of one image's explicit complex (complex_flag_pairs).
struct Cells {
  const int64_t* tri;  // rows of 3 edge rows (of `edges`), all images
  int64_t ts, tt;      // this image's rows tri[ts..tt)
  const int64_t* tet;  // rows of 4 triangle rows (of `tri`)
  int64_t qs, qt;
};

// Flag filtration of one image's explicit complex: its edges[s..t) with their lengths, and the triangles and
// tetrahedra of `cells` (a simplex's value is its longest edge). The filtration order: edges by (length, code), a
// triangle or tetrahedron by the ranks of its edges sorted descending, compared lexicographically
// (boundary_reduction.h); the first names its critical edge.
template <typename F>
void complex_image(const int64_t* edges, const F* lengths, int64_t s, int64_t t, const Cells& cells, int64_t N,
                   int32_t n, bool h0, bool h1, bool h2, std::vector<FlagRow>& rows) {
  std::vector<int64_t> code, pos;
  const RankedEdges e = rank_edges(edges, lengths, s, t, N, n, code, pos);
  const int64_t M = e.size();
  std::vector<int64_t> sorted_codes(code);
  std::sort(sorted_codes.begin(), sorted_codes.end());
  TORCH_CHECK_VALUE(std::adjacent_find(sorted_codes.begin(), sorted_codes.end()) == sorted_codes.end(),
                    "gpuph: a complex lists the same edge twice");
  std::vector<int64_t> rank_of_row(size_t(t - s));
  for (int64_t r = 0; r < M; ++r) rank_of_row[size_t(pos[size_t(r)] - s)] = r;
  // Edges as ranks: the vertices of rank r, the triangles' edges as ranks, the tetrahedra's triangles as local rows.
  std::vector<int64_t> ev(size_t(2 * M));
  for (int64_t r = 0; r < M; ++r) {
    ev[size_t(2 * r)] = e.a[size_t(r)];
    ev[size_t(2 * r + 1)] = e.b[size_t(r)];
  }
  const int64_t m2 = cells.tt - cells.ts, m3 = cells.qt - cells.qs;
  // Positions in the filtration order are int32 (boundary_reduction.h).
  TORCH_CHECK_VALUE(m2 < flag::kNoEdge && m3 < flag::kNoEdge, "gpuph: an image has ", m2, " triangles and ", m3,
                    " tetrahedra; at most ", flag::kNoEdge - 1, " of each are supported");
  std::vector<int64_t> f2(size_t(3 * m2)), f3(size_t(4 * m3)), tet_edges(size_t(6 * m3));
  for (int64_t i = 0; i < m2; ++i) {
    int64_t v[6];
    for (int a = 0; a < 3; ++a) {
      const int64_t row = cells.tri[3 * (cells.ts + i) + a];
      TORCH_CHECK_VALUE(row >= s && row < t, "gpuph: triangle ", cells.ts + i, " names edge row ", row,
                        ", not an edge of its image");
      const int64_t r = rank_of_row[size_t(row - s)];
      f2[size_t(3 * i + a)] = r;
      v[2 * a] = ev[size_t(2 * r)];
      v[2 * a + 1] = ev[size_t(2 * r + 1)];
    }
    std::sort(v, v + 6);  // three edges of one triangle: three vertices, each twice
    TORCH_CHECK_VALUE(v[0] == v[1] && v[2] == v[3] && v[4] == v[5] && v[1] != v[2] && v[3] != v[4],
                      "gpuph: triangle ", cells.ts + i, " has edges that do not bound a triangle");
  }
  for (int64_t i = 0; i < m3; ++i) {
    int64_t r[12];
    for (int a = 0; a < 4; ++a) {
      const int64_t row = cells.tet[4 * (cells.qs + i) + a];
      TORCH_CHECK_VALUE(row >= cells.ts && row < cells.tt, "gpuph: tetrahedron ", cells.qs + i,
                        " names triangle row ", row, ", not a triangle of its image");
      f3[size_t(4 * i + a)] = row - cells.ts;
      for (int c = 0; c < 3; ++c) r[3 * a + c] = f2[size_t(3 * (row - cells.ts) + c)];
    }
    std::sort(r, r + 12);  // four distinct triangles of one tetrahedron: six edges, each in two of them
    const int64_t* t = f3.data() + 4 * i;
    bool ok = t[0] != t[1] && t[0] != t[2] && t[0] != t[3] && t[1] != t[2] && t[1] != t[3] && t[2] != t[3];
    for (int c = 0; c < 6; ++c) {
      ok = ok && r[2 * c] == r[2 * c + 1] && (c == 0 || r[2 * c] != r[2 * c - 1]);
      tet_edges[size_t(6 * i + c)] = r[2 * c];
    }
    TORCH_CHECK_VALUE(ok, "gpuph: tetrahedron ", cells.qs + i, " has triangles that do not bound a tetrahedron");
  }
  simplicial::Complex cx;
  cx.n = n;
  cx.D = m3 ? 3 : m2 ? 2 : M ? 1 : 0;
  cx.verts = {nullptr, ev.data(), nullptr, nullptr};
  cx.facets = {nullptr, nullptr, f2.data(), f3.data()};
  cx.m = {n, M, m2, m3};
  // All vertices are born at 0: the elder rule keeps the smaller index. An edge is its own critical edge.
  simplicial::Workspace ws;
  ws.vrank.resize(size_t(n));
  std::iota(ws.vrank.begin(), ws.vrank.end(), 0);
  std::vector<int32_t> identity(static_cast<size_t>(M));
  std::iota(identity.begin(), identity.end(), 0);
  ws.order.resize(4);
  ws.pos.resize(4);
  ws.crit.resize(4);
  ws.order[1] = ws.pos[1] = ws.crit[1] = identity;
  TORCH_CHECK_VALUE(simplicial::sort_by_rank_tuples(m2, 3, f2.data(), identity.data(), identity.data(), M, 2, ws),
                    "gpuph: a complex lists the same triangle twice");
  TORCH_CHECK_VALUE(simplicial::sort_by_rank_tuples(m3, 6, tet_edges.data(), identity.data(), identity.data(), M, 3, ws),
                    "gpuph: a complex lists the same tetrahedron twice");
  std::vector<FlagPair> pairs;
  const bool wanted[3] = {h0, h1, h2};
  simplicial::reduce_boundaries(cx, 2, ws, [&](int dim, int64_t birth, int64_t death) {
    if (dim > 2 || !wanted[dim]) return;
    const double born = dim == 0 ? 0.0 : e.len[size_t(birth)];
    if (death >= 0 && e.len[size_t(death)] == born) return;  // zero length: depends on tie-breaking, never returned
    pairs.push_back({int32_t(dim), int32_t(birth), int32_t(death)});
  });
  make_rows(e, code, pos, N, pairs, rows);
}

torch::Tensor pack(const std::vector<std::vector<FlagRow>>& rows, bool positions) {
  int64_t total = 0;
  for (const auto& r : rows) total += int64_t(r.size());
  const int64_t width = positions ? 6 : 4;
  torch::Tensor out = torch::empty({total, width}, torch::dtype(torch::kInt64));
  int64_t* o = out.data_ptr<int64_t>();
  for (size_t b = 0; b < rows.size(); ++b)
    for (const FlagRow& r : rows[b]) {
      o[0] = int64_t(b);
      o[1] = r.dim;
      o[2] = r.birth_code;
      o[3] = r.death_code;
      if (positions) {
        o[4] = r.birth_pos;
        o[5] = r.death_pos;
      }
      o += width;
    }
  return out;
}

void check_dims_mask(int64_t dims_mask) {
  TORCH_CHECK_VALUE(dims_mask >= 0 && dims_mask <= 7, "gpuph: point-cloud persistence computes H0, H1 and H2 "
                    "only (dims_mask must be within 0b111), got ", dims_mask);
}

std::vector<int64_t> read_sizes(const torch::Tensor& sizes, int64_t B, int64_t N) {
  TORCH_CHECK_VALUE(sizes.dim() == 1 && sizes.size(0) == B && sizes.scalar_type() == at::kLong,
                    "gpuph: sizes must be an int64 (B,) tensor");
  const torch::Tensor sc = sizes.contiguous();
  std::vector<int64_t> out(sc.data_ptr<int64_t>(), sc.data_ptr<int64_t>() + B);
  for (int64_t v : out) TORCH_CHECK_VALUE(v >= 0 && v <= N, "gpuph: a cloud size ", v, " is outside 0..", N);
  return out;
}

torch::Tensor rips_pairs_cpu(const torch::Tensor& dist, const torch::Tensor& sizes, double threshold,
                             int64_t dims_mask) {
  check_dims_mask(dims_mask);
  TORCH_CHECK_VALUE(dist.dim() == 3 && dist.size(1) == dist.size(2), "gpuph: rips_pairs expects (B, N, N)");
  TORCH_CHECK_TYPE(dist.scalar_type() == at::kFloat || dist.scalar_type() == at::kDouble,
                   "gpuph: rips_pairs expects float32 or float64 distances, got ", dist.scalar_type());
  TORCH_CHECK(dist.device().is_cpu(), "gpuph: rips_pairs_cpu got a tensor on ", dist.device());
  TORCH_CHECK_VALUE(!std::isnan(threshold), "gpuph: the threshold is NaN");
  const int64_t B = dist.size(0), N = dist.size(1);
  TORCH_CHECK_VALUE(N <= kMaxDensePoints, "gpuph: Rips on the dense distance matrix supports at most ",
                    kMaxDensePoints, " points per cloud, got ", N);
  const std::vector<int64_t> n = read_sizes(sizes, B, N);
  const torch::Tensor dc = dist.contiguous();
  const bool h0 = dims_mask & 1, h1 = dims_mask & 2, h2 = dims_mask & 4;
  std::vector<std::vector<FlagRow>> rows(static_cast<size_t>(B));
  // Over the clouds of the batch; a single cloud instead splits its emergent-pair pass over the threads.
  AT_DISPATCH_FLOATING_TYPES(dc.scalar_type(), "rips_pairs", [&] {
    const scalar_t* d = dc.data_ptr<scalar_t>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b)
        rips_image(d + b * N * N, N, int32_t(n[size_t(b)]), threshold, h0, h1, h2, rows[size_t(b)]);
    });
  });
  return pack(rows, false);
}

// Offsets (B + 1,) of one table of `rows` rows: from 0 to rows, never decreasing.
const int64_t* check_offsets(const torch::Tensor& offsets, int64_t B, int64_t rows, const char* what) {
  TORCH_CHECK_VALUE(offsets.dim() == 1 && offsets.size(0) == B + 1 && offsets.scalar_type() == at::kLong &&
                        offsets.device().is_cpu() && offsets.is_contiguous(),
                    "gpuph: ", what, " offsets must be a contiguous int64 CPU (B + 1,) tensor");
  const int64_t* off = offsets.data_ptr<int64_t>();
  TORCH_CHECK_VALUE(off[0] == 0 && off[B] == rows, "gpuph: ", what, " offsets must run from 0 to ", rows);
  for (int64_t b = 0; b < B; ++b) TORCH_CHECK_VALUE(off[b] <= off[b + 1], "gpuph: offsets must not decrease");
  return off;
}

// The edge tables of flag_pairs and complex_flag_pairs (op names the caller): returns the number of images B.
int64_t check_edge_tables(const char* op, const torch::Tensor& edges, const torch::Tensor& lengths,
                          const torch::Tensor& offsets, int64_t N) {
  TORCH_CHECK_VALUE(edges.dim() == 2 && edges.size(1) == 2 && edges.scalar_type() == at::kLong,
                    "gpuph: ", op, " expects int64 edges of shape (E, 2)");
  TORCH_CHECK_VALUE(lengths.dim() == 1 && lengths.size(0) == edges.size(0), "gpuph: lengths must be (E,)");
  TORCH_CHECK_TYPE(lengths.scalar_type() == at::kFloat || lengths.scalar_type() == at::kDouble,
                   "gpuph: ", op, " expects float32 or float64 lengths, got ", lengths.scalar_type());
  TORCH_CHECK(edges.device().is_cpu() && lengths.device().is_cpu(), "gpuph: ", op, "_cpu got a non-CPU tensor");
  TORCH_CHECK_VALUE(N >= 0 && N < (int64_t(1) << 31), "gpuph: N out of range");
  TORCH_CHECK_VALUE(offsets.dim() == 1 && offsets.size(0) >= 1, "gpuph: offsets must be an int64 (B + 1,) tensor");
  return offsets.size(0) - 1;
}

torch::Tensor flag_pairs_cpu(const torch::Tensor& edges, const torch::Tensor& lengths, const torch::Tensor& offsets,
                             const torch::Tensor& sizes, int64_t N, int64_t dims_mask) {
  check_dims_mask(dims_mask);
  const int64_t B = check_edge_tables("flag_pairs", edges, lengths, offsets, N);
  const std::vector<int64_t> n = read_sizes(sizes, B, N);
  const torch::Tensor oc = offsets.contiguous(), ec = edges.contiguous(), lc = lengths.contiguous();
  const int64_t* off = check_offsets(oc, B, edges.size(0), "edge");
  const bool h0 = dims_mask & 1, h1 = dims_mask & 2, h2 = dims_mask & 4;
  std::vector<std::vector<FlagRow>> rows(static_cast<size_t>(B));
  AT_DISPATCH_FLOATING_TYPES(lc.scalar_type(), "flag_pairs", [&] {
    const scalar_t* len = lc.data_ptr<scalar_t>();
    const int64_t* e = ec.data_ptr<int64_t>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b)
        graph_image(e, len, off[b], off[b + 1], N, int32_t(n[size_t(b)]), h0, h1, h2, rows[size_t(b)]);
    });
  });
  return pack(rows, true);
}

torch::Tensor complex_flag_pairs_cpu(const torch::Tensor& edges, const torch::Tensor& lengths,
                                     const torch::Tensor& offsets, const torch::Tensor& sizes, int64_t N,
                                     int64_t dims_mask, const torch::Tensor& triangles,
                                     const torch::Tensor& triangle_offsets, const torch::Tensor& tetrahedra,
                                     const torch::Tensor& tetrahedron_offsets) {
  check_dims_mask(dims_mask);
  const int64_t B = check_edge_tables("complex_flag_pairs", edges, lengths, offsets, N);
  TORCH_CHECK_VALUE(triangles.dim() == 2 && triangles.size(1) == 3 && triangles.scalar_type() == at::kLong &&
                        tetrahedra.dim() == 2 && tetrahedra.size(1) == 4 && tetrahedra.scalar_type() == at::kLong,
                    "gpuph: complex_flag_pairs expects int64 triangles (T, 3) of edge rows and tetrahedra (Q, 4) "
                    "of triangle rows");
  TORCH_CHECK(triangles.device().is_cpu() && tetrahedra.device().is_cpu(),
              "gpuph: complex_flag_pairs_cpu got a non-CPU tensor");
  const std::vector<int64_t> n = read_sizes(sizes, B, N);
  const torch::Tensor oc = offsets.contiguous(), toc = triangle_offsets.contiguous(),
                      qoc = tetrahedron_offsets.contiguous();
  const int64_t* off = check_offsets(oc, B, edges.size(0), "edge");
  const int64_t* toff = check_offsets(toc, B, triangles.size(0), "triangle");
  const int64_t* qoff = check_offsets(qoc, B, tetrahedra.size(0), "tetrahedron");
  const torch::Tensor ec = edges.contiguous(), lc = lengths.contiguous(), tc = triangles.contiguous(),
                      qc = tetrahedra.contiguous();
  const bool h0 = dims_mask & 1, h1 = dims_mask & 2, h2 = dims_mask & 4;
  std::vector<std::vector<FlagRow>> rows(static_cast<size_t>(B));
  AT_DISPATCH_FLOATING_TYPES(lc.scalar_type(), "complex_flag_pairs", [&] {
    const scalar_t* len = lc.data_ptr<scalar_t>();
    const int64_t* e = ec.data_ptr<int64_t>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const Cells cells{tc.data_ptr<int64_t>(), toff[b], toff[b + 1], qc.data_ptr<int64_t>(), qoff[b], qoff[b + 1]};
        complex_image(e, len, off[b], off[b + 1], cells, N, int32_t(n[size_t(b)]), h0, h1, h2, rows[size_t(b)]);
      }
    });
  });
  return pack(rows, true);
}

// Test-only: the most vertices for which H2 uses bitsets (-1: only read); returns the old value.
int64_t set_flag_bitset_vertices(int64_t n) {
  TORCH_CHECK_VALUE(n >= -1 && n <= kMaxDensePoints, "gpuph: the bitset limit is 0 to ", kMaxDensePoints,
                    " vertices (-1: only read it)");
  return n == -1 ? flag::lower_sets_max_vertices.load() : flag::lower_sets_max_vertices.exchange(int32_t(n));
}

}  // namespace
}  // namespace gpuph

TORCH_LIBRARY_FRAGMENT(gpuph, m) {
  m.def("rips_pairs(Tensor dist, Tensor sizes, float threshold, int dims_mask) -> Tensor");
  m.def("flag_pairs(Tensor edges, Tensor lengths, Tensor offsets, Tensor sizes, int n, int dims_mask) -> Tensor");
  m.def(
      "complex_flag_pairs(Tensor edges, Tensor lengths, Tensor offsets, Tensor sizes, int n, int dims_mask, "
      "Tensor triangles, Tensor triangle_offsets, Tensor tetrahedra, Tensor tetrahedron_offsets) -> Tensor");
  m.def("_flag_bitset_vertices(int n=-1) -> int", &gpuph::set_flag_bitset_vertices);
}

TORCH_LIBRARY_IMPL(gpuph, CPU, m) {
  m.impl("rips_pairs", &gpuph::rips_pairs_cpu);
  m.impl("flag_pairs", &gpuph::flag_pairs_cpu);
  m.impl("complex_flag_pairs", &gpuph::complex_flag_pairs_cpu);
}
