// Pixel loops over the padded grid shared by the CPU engines.
#pragma once
#include <ATen/Parallel.h>

#include "grid_plan.cuh"

namespace gpuph {

// Rows of a grid: the pixels sharing all coordinates but the last (1 for 1D).
inline int64_t grid_rows(const GridPlan& g) { return g.N / g.n[g.D - 1]; }

// Calls f(unpadded flat index, padded flat index) for the pixels of rows [r0, r1), in C order.
template <typename Fn>
void for_each_pixel_rows(const GridPlan& g, int64_t r0, int64_t r1, Fn&& f) {
  const int D = g.D;
  const int64_t n_last = g.n[D - 1];
  const int64_t n_mid = D == 3 ? g.n[1] : 1;
  int64_t i = r0 * n_last;
  for (int64_t r = r0; r < r1; ++r) {
    // padded coordinates are the grid's plus one on every axis
    int64_t row = 1;
    if (D == 3) row += (r / n_mid + 1) * g.pstride[0] + (r % n_mid + 1) * g.pstride[1];
    if (D == 2) row += (r + 1) * g.pstride[0];
    for (int64_t c = 0; c < n_last; ++c) f(i++, row + c);
  }
}

// Calls f(padded flat index of the row's first pixel) for every row, rows in parallel.
template <typename Fn>
void for_each_row_par(const GridPlan& g, Fn&& f) {
  const int D = g.D;
  const int64_t n_mid = D == 3 ? g.n[1] : 1;
  at::parallel_for(0, grid_rows(g), 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t row = 1;
      if (D == 3) row += (r / n_mid + 1) * g.pstride[0] + (r % n_mid + 1) * g.pstride[1];
      if (D == 2) row += (r + 1) * g.pstride[0];
      f(row);
    }
  });
}

template <typename Fn>
void for_each_pixel(const GridPlan& g, Fn&& f) {
  for_each_pixel_rows(g, 0, grid_rows(g), f);
}

// Row-parallel version, for passes whose pixels write only their own entries.
template <typename Fn>
void for_each_pixel_par(const GridPlan& g, bool parallel, Fn&& f) {
  if (!parallel) return for_each_pixel(g, f);
  at::parallel_for(0, grid_rows(g), 16, [&](int64_t r0, int64_t r1) { for_each_pixel_rows(g, r0, r1, f); });
}

}  // namespace gpuph
