// gpuph::wasserstein_matching: exact optimal matchings of many pairs of finite persistence diagrams (CPU).
//
// wasserstein_matching(xa, start_a, xb, start_b, ia, ib, p, internal_p, with_matching)
//     -> (cost, scale, match_a, match_b)
//   xa: (Na, 2) float64 (birth, death) with birth <= death, grouped by image; image i holds rows
//       start_a[i] .. start_a[i + 1] (start_a: (Ba + 1,) int64). Likewise xb, start_b.
//   ia, ib: (P,) int64: problem k matches image ia[k] of a with image ib[k] of b.
//   cost: (P,) float64 sum over the optimal matching of ||x - y||_q^p, points left out going to the diagonal at
//         (|death - birth| 2^(1/q - 1))^p, of the values divided by scale: (P,) float64 > 0, 1 unless the optimum
//         was too small against the largest costs to be resolved in the values' units (solve_problem).
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
  std::vector<double> dx, dy, lx, ly, y0_sorted, dense, xs, ys;
  std::vector<double> near_x, near_y;
  std::vector<int64_t> best_x, best_y;  // the best matching of the refinement rounds
  std::vector<int> y_order, parent, rows, cols, local, row_to_col, comp_start, comp_nodes;
  std::vector<std::tuple<int, int, double>> edges;  // (x, y, c - d(x) - d(y) < 0)
  Assignment hungarian;

  int find(int a) {
    while (parent[a] != a) a = parent[a] = parent[parent[a]];
    return a;
  }
};

// One assignment of x (n, 2) against y (m, 2), values divided by `scale`, every term (a pair's cost, a point's
// cost to the diagonal) capped at `cap`: fills mx (n) / my (m) with the partner or -1. Returns the largest magnitude
// of the entries the assignment saw (0: none, everything went to the diagonal without one). *nearest: the largest
// over all points of the ground distance to its nearest option (a partner or the diagonal), a lower bound of the
// distance (when uncapped).
double assign(const double* x0, int n, const double* y0, int m, double scale, double cap, const Metric& met,
              Workspace& ws, int64_t* mx, int64_t* my, double* nearest) {
  const double* x = x0;
  const double* y = y0;
  if (scale != 1.0) {
    ws.xs.resize(size_t(2) * n);
    ws.ys.resize(size_t(2) * m);
    for (int i = 0; i < 2 * n; ++i) ws.xs[i] = x0[i] / scale;
    for (int j = 0; j < 2 * m; ++j) ws.ys[j] = y0[j] / scale;
    x = ws.xs.data();
    y = ws.ys.data();
  }
  for (int i = 0; i < n; ++i) mx[i] = -1;
  for (int j = 0; j < m; ++j) my[j] = -1;
  ws.dx.resize(n);
  ws.lx.resize(n);
  ws.dy.resize(m);
  ws.ly.resize(m);
  double max_ly = 0.0;
  for (int i = 0; i < n; ++i) {
    ws.lx[i] = met.to_diagonal(x + 2 * i);
    ws.dx[i] = std::min(met.power(ws.lx[i]), cap);
  }
  for (int j = 0; j < m; ++j) {
    ws.ly[j] = met.to_diagonal(y + 2 * j);
    ws.dy[j] = std::min(met.power(ws.ly[j]), cap);
    max_ly = std::max(max_ly, ws.ly[j]);
  }
  // A partner nearer than the diagonal is within the window below (its birth difference is below lx + max ly).
  ws.near_x.assign(ws.lx.begin(), ws.lx.end());
  ws.near_y.assign(ws.ly.begin(), ws.ly.end());
  // A pair costing cap or more is in no optimal matching (the caller's cap exceeds the optimum), nor is one whose
  // ground distance exceeds cap^(1/p).
  const double cap_ground = std::isinf(cap) ? kInf : std::pow(cap, 1.0 / met.p);
  double largest = 0.0;
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
      const double reach = std::min(ws.lx[i] + max_ly, cap_ground) * slack;
      auto lo = std::lower_bound(ws.y0_sorted.begin(), ws.y0_sorted.end(), x[2 * i] - reach);
      auto hi = std::upper_bound(ws.y0_sorted.begin(), ws.y0_sorted.end(), x[2 * i] + reach);
      for (auto it = lo; it != hi; ++it) {
        const int j = ws.y_order[it - ws.y0_sorted.begin()];
        const double g = met.ground(x[2 * i] - y[2 * j], x[2 * i + 1] - y[2 * j + 1]);
        ws.near_x[i] = std::min(ws.near_x[i], g);
        ws.near_y[j] = std::min(ws.near_y[j], g);
        if (g > (ws.lx[i] + ws.ly[j]) * slack) continue;
        const double c = met.power(g);
        if (c < ws.dx[i] + ws.dy[j] && c < cap) {
          ws.edges.emplace_back(i, j, c - ws.dx[i] - ws.dy[j]);
          largest = std::max(largest, ws.dx[i] + ws.dy[j] - c);
        }
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
  *nearest = 0.0;
  for (const double v : ws.near_x) *nearest = std::max(*nearest, v);
  for (const double v : ws.near_y) *nearest = std::max(*nearest, v);
  return largest;
}

// The cost of the matching mx / my, values divided by `scale` (no cancellation: identical diagrams give exactly 0);
// *top: its largest ground distance (unpowered, divided by `scale` too).
double matching_cost(const double* x, int n, const double* y, int m, double scale, const Metric& met,
                     const int64_t* mx, const int64_t* my, double* top) {
  double cost = 0.0;
  *top = 0.0;
  auto add = [&](double ground) {
    cost += met.power(ground / scale);
    *top = std::max(*top, ground / scale);
  };
  for (int i = 0; i < n; ++i) {
    const int64_t j = mx[i];
    add(j < 0 ? met.to_diagonal(x + 2 * i) : met.ground(x[2 * i] - y[2 * j], x[2 * i + 1] - y[2 * j + 1]));
  }
  for (int j = 0; j < m; ++j)
    if (my[j] < 0) add(met.to_diagonal(y + 2 * j));
  return cost;
}

// The distance the matching mx / my gives, in the values' units: summed in units of its largest term, so that it
// neither underflows nor overflows.
double matching_distance(const double* x, int n, const double* y, int m, const Metric& met, const int64_t* mx,
                         const int64_t* my) {
  double top = 0.0, unused = 0.0;
  matching_cost(x, n, y, m, 1.0, met, mx, my, &top);
  if (!(top > 0.0) || std::isinf(top)) return top;
  return top * std::pow(matching_cost(x, n, y, m, top, met, mx, my, &unused), 1.0 / met.p);
}

// The assignment resolves costs only to about float64's precision times its largest entry, and none below the
// smallest double. When the optimum is far below either (close diagrams at a high order: (1e-4)^10 of a bar of 1),
// the problem is solved again in units of a scale s between a lower bound `lo` and an upper bound `hi` of the
// distance W, every term capped at 2 (s^p). If W <= s, no term of an optimal matching reaches the cap, and any
// matching that uses one costs more: the capped optimum is the optimum. So a matching found with no capped term is
// optimal (up to the precision, now that of entries of at most 4: resolved once its cost is above kResolved times
// the largest), and one with a capped term shows W > s. Bisecting log s between the bounds, with hi the best
// matching found and lo the nearest-option bound, finds a scale where the optimum is resolved in about
// log2(p log2(hi / lo)) rounds.
constexpr double kResolved = 0x1p-20;
constexpr double kNormal = 0x1p-900;  // far above the smallest double: what underflowed below it is negligible
constexpr int kMaxRounds = 64;

bool resolved(double cost, double largest) {
  return cost >= kResolved * largest && cost >= kNormal && !std::isinf(cost);
}

// One problem: x (n, 2), y (m, 2). Fills mx (n) / my (m) with the partner or -1; returns the cost in units of
// *scale (> 0), where the values are divided by it: the sum of the p-th powers.
double solve_problem(const double* x, int n, const double* y, int m, const Metric& met, Workspace& ws, int64_t* mx,
                     int64_t* my, double* scale) {
  double lo = 0.0, top = 0.0;
  const double largest = assign(x, n, y, m, 1.0, kInf, met, ws, mx, my, &lo);
  const double cost = matching_cost(x, n, y, m, 1.0, met, mx, my, &top);
  *scale = 1.0;
  if (top == 0.0 || resolved(cost, largest)) return cost;  // (top 0: identical diagrams, exactly 0)
  double hi = matching_distance(x, n, y, m, met, mx, my);
  ws.best_x.assign(mx, mx + n);
  ws.best_y.assign(my, my + m);
  // Every point at distance 0 from an option gives no bound: then start 2^(1000/p) below (about the range of the
  // powers; 2^100 at most), where a wrong bracket only costs rounds (lo is only raised by a round that proves W > s).
  if (!(lo > 0.0)) lo = hi * std::pow(2.0, -std::min(1000.0 / met.p, 100.0));
  // Close enough that at s = hi the optimum is at least 2^-16 (hi^p), so resolved against entries of at most 4.
  const double close = std::pow(2.0, 16.0 / met.p);
  const double cap_ground = std::pow(2.0, 1.0 / met.p);
  for (int round = 0; round < kMaxRounds && hi > 0.0 && !std::isinf(hi); ++round) {
    const bool last = !(hi > lo * close);
    const double s = last ? hi : lo * std::sqrt(hi / lo);  // (lo * hi may underflow)
    double nearest = 0.0;
    const double big = assign(x, n, y, m, s, 2.0, met, ws, mx, my, &nearest);
    const double found = matching_cost(x, n, y, m, s, met, mx, my, &top);
    const double w = matching_distance(x, n, y, m, met, mx, my);
    if (w < hi) {
      hi = w;
      ws.best_x.assign(mx, mx + n);
      ws.best_y.assign(my, my + m);
    }
    const bool capped = top >= cap_ground;
    if (last || (!capped && resolved(found, big))) break;  // optimal and resolved
    if (capped) lo = std::max(lo, s);                        // W > s
  }
  std::copy(ws.best_x.begin(), ws.best_x.end(), mx);
  std::copy(ws.best_y.begin(), ws.best_y.end(), my);
  if (!(hi > 0.0) || std::isinf(hi)) return matching_cost(x, n, y, m, 1.0, met, mx, my, &top);
  *scale = hi;
  return matching_cost(x, n, y, m, hi, met, mx, my, &top);
}

using MatchingResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

MatchingResult wasserstein_matching(const at::Tensor& xa, const at::Tensor& start_a, const at::Tensor& xb,
                                    const at::Tensor& start_b, const at::Tensor& ia, const at::Tensor& ib, double p,
                                    double internal_p, bool with_matching) {
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
  at::Tensor scale = at::empty({P}, xa.options());
  at::Tensor match_a = at::empty({off_a[P]}, ia.options());
  at::Tensor match_b = at::empty({off_b[P]}, ia.options());
  const Metric met{p, internal_p, std::pow(2.0, 1.0 / internal_p - 1.0)};
  const double* xa_ptr = xa.data_ptr<double>();
  const double* xb_ptr = xb.data_ptr<double>();
  double* cost_ptr = cost.data_ptr<double>();
  double* scale_ptr = scale.data_ptr<double>();
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
      cost_ptr[k] = solve_problem(xa_ptr + 2 * sa[pa[k]], n, xb_ptr + 2 * sb[pb[k]], m, met, ws, mx, my,
                                  scale_ptr + k);
    }
  });
  return {cost, scale, match_a, match_b};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(gpuph, m) {
  m.def(
      "wasserstein_matching(Tensor xa, Tensor start_a, Tensor xb, Tensor start_b, Tensor ia, Tensor ib, float p, "
      "float internal_p, bool with_matching) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(gpuph, CPU, m) { m.impl("wasserstein_matching", &wasserstein_matching); }

}  // namespace gpuph
