// gpuph::wasserstein_matching: exact optimal matchings of many pairs of finite persistence diagrams (CPU).
//
// wasserstein_matching(xa, start_a, xb, start_b, ia, ib, p, internal_p, with_matching) -> (cost, match_a, match_b)
//   xa: (Na, 2) float64 (birth, death) with birth <= death, grouped by image; image i holds rows
//       start_a[i] .. start_a[i + 1] (start_a: (Ba + 1,) int64). Likewise xb, start_b.
//   ia, ib: (P,) int64: problem k matches image ia[k] of a with image ib[k] of b.
//   cost: (P,) float64 sum over the optimal matching of ||x - y||_q^p, points left out going to the diagonal at
//         (|death - birth| 2^(1/q - 1))^p.
//   match_a: (sum_k n_a(ia[k]),) int64 when with_matching: for each problem in turn, for each row of its image of a,
//         the matched row of its image of b (0-based within that image) or -1 (diagonal); match_b likewise.
//
// Per problem: a pair (x, y) can be in an optimal matching only if ||x - y||^p < d(x)^p + d(y)^p (else sending both
// to the diagonal is cheaper), which for p >= 1 needs ||x - y|| < d(x) + d(y). Bars near the diagonal (noise) thus
// have few candidate partners, found through a window on y sorted by birth. The candidate edges split the points
// into connected components that are independent matching problems; each is one small rectangular assignment
// (shortest augmenting paths with potentials), rows the smaller side, cost min(c - d(x) - d(y), 0) (0: both to the
// diagonal). Problems run in parallel over at::parallel_for.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <tuple>
#include <vector>

namespace gpuph {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Metric {
  double p, q, diag_scale;
  double ground(double dx0, double dx1) const {  // ||(dx0, dx1)||_q, unpowered
    const double a = std::fabs(dx0), b = std::fabs(dx1);
    if (std::isinf(q)) return std::max(a, b);
    if (q == 1.0) return a + b;
    if (q == 2.0) return std::sqrt(a * a + b * b);
    // Powers of the ratios to the larger: a^q + b^q itself underflows or overflows for large q (0.02^400).
    const double m = std::max(a, b);
    return m == 0.0 ? 0.0 : m * std::pow(1.0 + std::pow(std::min(a, b) / m, q), 1.0 / q);
  }
  double power(double v) const { return p == 1.0 ? v : (p == 2.0 ? v * v : std::pow(v, p)); }
  double to_diagonal(const double* x) const { return std::fabs(x[1] - x[0]) * diag_scale; }
};

// Minimum-cost assignment of every row of an n x m matrix (n <= m, row-major) to distinct columns: the
// shortest-augmenting-path Hungarian method with row/column potentials, O(n^2 m).
struct Assignment {
  std::vector<double> u, v, minv;
  std::vector<int> owner, way;
  std::vector<char> used;

  void solve(const double* a, int n, int m, std::vector<int>& row_to_col) {
    u.assign(n + 1, 0.0);
    v.assign(m + 1, 0.0);
    owner.assign(m + 1, 0);  // owner[j]: 1-based row assigned to column j (0: none); column 0 is the virtual root
    way.assign(m + 1, 0);
    for (int i = 1; i <= n; ++i) {
      owner[0] = i;
      int j0 = 0;
      minv.assign(m + 1, kInf);
      used.assign(m + 1, 0);
      do {
        used[j0] = 1;
        const int i0 = owner[j0];
        int j1 = 0;
        double delta = kInf;
        const double* row = a + size_t(i0 - 1) * m;
        for (int j = 1; j <= m; ++j) {
          if (used[j]) continue;
          const double cur = row[j - 1] - u[i0] - v[j];
          if (cur < minv[j]) {
            minv[j] = cur;
            way[j] = j0;
          }
          if (minv[j] < delta) {
            delta = minv[j];
            j1 = j;
          }
        }
        for (int j = 0; j <= m; ++j) {
          if (used[j]) {
            u[owner[j]] += delta;
            v[j] -= delta;
          } else {
            minv[j] -= delta;
          }
        }
        j0 = j1;
      } while (owner[j0] != 0);
      do {
        const int j1 = way[j0];
        owner[j0] = owner[j1];
        j0 = j1;
      } while (j0 != 0);
    }
    row_to_col.assign(n, -1);
    for (int j = 1; j <= m; ++j)
      if (owner[j] != 0) row_to_col[owner[j] - 1] = j - 1;
  }
};

struct Workspace {
  std::vector<double> dx, dy, lx, ly, y0_sorted, dense;
  std::vector<int> y_order, parent, rows, cols, local, row_to_col, comp_start, comp_nodes;
  std::vector<std::tuple<int, int, double>> edges;  // (x, y, c - d(x) - d(y) < 0)
  Assignment hungarian;

  int find(int a) {
    while (parent[a] != a) a = parent[a] = parent[parent[a]];
    return a;
  }
};

// One problem: x (n, 2), y (m, 2). Fills mx (n) / my (m) with the partner or -1; returns the cost.
double solve_problem(const double* x, int n, const double* y, int m, const Metric& met, Workspace& ws, int64_t* mx,
                     int64_t* my) {
  for (int i = 0; i < n; ++i) mx[i] = -1;
  for (int j = 0; j < m; ++j) my[j] = -1;
  ws.dx.resize(n);
  ws.lx.resize(n);
  ws.dy.resize(m);
  ws.ly.resize(m);
  double max_ly = 0.0;
  for (int i = 0; i < n; ++i) {
    ws.lx[i] = met.to_diagonal(x + 2 * i);
    ws.dx[i] = met.power(ws.lx[i]);
  }
  for (int j = 0; j < m; ++j) {
    ws.ly[j] = met.to_diagonal(y + 2 * j);
    ws.dy[j] = met.power(ws.ly[j]);
    max_ly = std::max(max_ly, ws.ly[j]);
  }
  ws.edges.clear();
  if (n > 0 && m > 0) {
    ws.y_order.resize(m);
    std::iota(ws.y_order.begin(), ws.y_order.end(), 0);
    std::sort(ws.y_order.begin(), ws.y_order.end(), [&](int a, int b) { return y[2 * a] < y[2 * b]; });
    ws.y0_sorted.resize(m);
    for (int j = 0; j < m; ++j) ws.y0_sorted[j] = y[2 * ws.y_order[j]];
    constexpr double slack = 1.0 + 1e-9;  // the test below is rounded; never prune a pair the exact test keeps
    for (int i = 0; i < n; ++i) {
      // Every norm is >= |birth difference|, so partners have births within lx + max ly.
      const double reach = (ws.lx[i] + max_ly) * slack;
      auto lo = std::lower_bound(ws.y0_sorted.begin(), ws.y0_sorted.end(), x[2 * i] - reach);
      auto hi = std::upper_bound(ws.y0_sorted.begin(), ws.y0_sorted.end(), x[2 * i] + reach);
      for (auto it = lo; it != hi; ++it) {
        const int j = ws.y_order[it - ws.y0_sorted.begin()];
        const double g = met.ground(x[2 * i] - y[2 * j], x[2 * i + 1] - y[2 * j + 1]);
        if (g > (ws.lx[i] + ws.ly[j]) * slack) continue;
        const double c = met.power(g);
        if (c < ws.dx[i] + ws.dy[j]) ws.edges.emplace_back(i, j, c - ws.dx[i] - ws.dy[j]);
      }
    }
  }
  if (!ws.edges.empty()) {
    // Connected components of the candidate graph (nodes: x 0..n-1, y n..n+m-1).
    ws.parent.resize(n + m);
    std::iota(ws.parent.begin(), ws.parent.end(), 0);
    for (const auto& e : ws.edges) {
      const int a = ws.find(std::get<0>(e)), b = ws.find(n + std::get<1>(e));
      if (a != b) ws.parent[std::max(a, b)] = std::min(a, b);
    }
    // Group the edges by component (counting sort on the root).
    std::vector<int>& start = ws.comp_start;
    start.assign(n + m + 1, 0);
    for (const auto& e : ws.edges) ++start[ws.find(std::get<0>(e)) + 1];
    for (int r = 0; r < n + m; ++r) start[r + 1] += start[r];
    std::vector<int>& order = ws.comp_nodes;
    order.resize(ws.edges.size());
    {
      std::vector<int> fill(start.begin(), start.end() - 1);
      for (int e = 0; e < int(ws.edges.size()); ++e) order[fill[ws.find(std::get<0>(ws.edges[e]))]++] = e;
    }
    ws.local.assign(n + m, -1);
    for (int r = 0; r < n + m; ++r) {
      if (start[r] == start[r + 1]) continue;
      ws.rows.clear();
      ws.cols.clear();
      for (int k = start[r]; k < start[r + 1]; ++k) {
        const auto& e = ws.edges[order[k]];
        const int i = std::get<0>(e), j = std::get<1>(e);
        if (ws.local[i] < 0) {
          ws.local[i] = int(ws.rows.size());
          ws.rows.push_back(i);
        }
        if (ws.local[n + j] < 0) {
          ws.local[n + j] = int(ws.cols.size());
          ws.cols.push_back(j);
        }
      }
      const bool transposed = ws.rows.size() > ws.cols.size();  // rows must be the smaller side
      const int nr = int(transposed ? ws.cols.size() : ws.rows.size());
      const int nc = int(transposed ? ws.rows.size() : ws.cols.size());
      ws.dense.assign(size_t(nr) * nc, 0.0);
      for (int k = start[r]; k < start[r + 1]; ++k) {
        const auto& e = ws.edges[order[k]];
        const int li = ws.local[std::get<0>(e)], lj = ws.local[n + std::get<1>(e)];
        ws.dense[transposed ? size_t(lj) * nc + li : size_t(li) * nc + lj] = std::get<2>(e);
      }
      ws.hungarian.solve(ws.dense.data(), nr, nc, ws.row_to_col);
      for (int a = 0; a < nr; ++a) {
        const int b = ws.row_to_col[a];
        if (!(ws.dense[size_t(a) * nc + b] < 0.0)) continue;  // a zero entry: both go to the diagonal
        const int i = ws.rows[transposed ? b : a], j = ws.cols[transposed ? a : b];
        mx[i] = j;
        my[j] = i;
      }
      for (int i : ws.rows) ws.local[i] = -1;
      for (int j : ws.cols) ws.local[n + j] = -1;
    }
  }
  // The cost from the matching itself (no cancellation: identical diagrams give exactly 0).
  double cost = 0.0;
  for (int i = 0; i < n; ++i) {
    const int64_t j = mx[i];
    cost += j < 0 ? ws.dx[i]
                  : met.power(met.ground(x[2 * i] - y[2 * j], x[2 * i + 1] - y[2 * j + 1]));
  }
  for (int j = 0; j < m; ++j)
    if (my[j] < 0) cost += ws.dy[j];
  return cost;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> wasserstein_matching(const at::Tensor& xa, const at::Tensor& start_a,
                                                                    const at::Tensor& xb, const at::Tensor& start_b,
                                                                    const at::Tensor& ia, const at::Tensor& ib,
                                                                    double p, double internal_p, bool with_matching) {
  for (const at::Tensor* t : {&xa, &xb}) {
    TORCH_CHECK(t->scalar_type() == at::kDouble && t->dim() == 2 && t->size(1) == 2 && t->is_contiguous(),
                "gpuph.wasserstein_matching: points must be contiguous float64 (N, 2)");
  }
  for (const at::Tensor* t : {&start_a, &start_b, &ia, &ib}) {
    TORCH_CHECK(t->scalar_type() == at::kLong && t->dim() == 1 && t->is_contiguous(),
                "gpuph.wasserstein_matching: offsets and image indices must be contiguous int64 vectors");
  }
  TORCH_CHECK(ia.size(0) == ib.size(0), "gpuph.wasserstein_matching: ia and ib differ in length");
  TORCH_CHECK(p >= 1.0 && std::isfinite(p) && internal_p >= 1.0, "gpuph.wasserstein_matching: bad p/internal_p");
  const int64_t P = ia.size(0), Ba = start_a.size(0) - 1, Bb = start_b.size(0) - 1;
  const int64_t* sa = start_a.data_ptr<int64_t>();
  const int64_t* sb = start_b.data_ptr<int64_t>();
  const int64_t* pa = ia.data_ptr<int64_t>();
  const int64_t* pb = ib.data_ptr<int64_t>();
  std::vector<int64_t> off_a(P + 1, 0), off_b(P + 1, 0);
  for (int64_t k = 0; k < P; ++k) {
    TORCH_CHECK(pa[k] >= 0 && pa[k] < Ba && pb[k] >= 0 && pb[k] < Bb,
                "gpuph.wasserstein_matching: image index out of range");
    off_a[k + 1] = off_a[k] + (with_matching ? sa[pa[k] + 1] - sa[pa[k]] : 0);
    off_b[k + 1] = off_b[k] + (with_matching ? sb[pb[k] + 1] - sb[pb[k]] : 0);
  }
  at::Tensor cost = at::empty({P}, xa.options());
  at::Tensor match_a = at::empty({off_a[P]}, ia.options());
  at::Tensor match_b = at::empty({off_b[P]}, ia.options());
  const Metric met{p, internal_p, std::pow(2.0, 1.0 / internal_p - 1.0)};
  const double* xa_ptr = xa.data_ptr<double>();
  const double* xb_ptr = xb.data_ptr<double>();
  double* cost_ptr = cost.data_ptr<double>();
  int64_t* ma = match_a.data_ptr<int64_t>();
  int64_t* mb = match_b.data_ptr<int64_t>();
  at::parallel_for(0, P, 16, [&](int64_t begin, int64_t end) {
    Workspace ws;
    std::vector<int64_t> scratch_x, scratch_y;
    for (int64_t k = begin; k < end; ++k) {
      const int n = int(sa[pa[k] + 1] - sa[pa[k]]), m = int(sb[pb[k] + 1] - sb[pb[k]]);
      int64_t* mx = ma + off_a[k];
      int64_t* my = mb + off_b[k];
      if (!with_matching) {
        scratch_x.resize(n);
        scratch_y.resize(m);
        mx = scratch_x.data();
        my = scratch_y.data();
      }
      cost_ptr[k] = solve_problem(xa_ptr + 2 * sa[pa[k]], n, xb_ptr + 2 * sb[pb[k]], m, met, ws, mx, my);
    }
  });
  return {cost, match_a, match_b};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(gpuph, m) {
  m.def(
      "wasserstein_matching(Tensor xa, Tensor start_a, Tensor xb, Tensor start_b, Tensor ia, Tensor ib, float p, "
      "float internal_p, bool with_matching) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(gpuph, CPU, m) { m.impl("wasserstein_matching", &wasserstein_matching); }

}  // namespace gpuph
