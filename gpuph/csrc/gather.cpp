// CPU helpers of the differentiable gather of diagram values (gpuph/_common.py, gather_pairs): index arithmetic
// that would otherwise take several torch ops over the rows, each a pass with its own overhead.
//
// _filtration_end_index(values, superlevel) -> int64 (B,)
//   values: contiguous float32/float64 (B, n), n >= 1, without NaN.
//   Per row, the index of the first minimum (superlevel) or maximum (sublevel): torch.argmin / argmax, which track an
//   index through one serial pass; here a vectorised pass finds the extreme value and a second one its first index.
//
// _gather_index(rows, n) -> (int64 (N, 2), bool (N, 2))
//   rows: int64 (N, 4) (image, dim, birth index, death index or -1), indices into images of n values.
//   The linear indices image * n + index of both columns into the (B * n,) values, an essential death reading its
//   image's entry 0, and the mask of the entries to be replaced by the essential death value (column 1 of the rows
//   with death index -1), both in one pass. Fixed output shapes: no data-dependent size for torch.compile.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace gpuph {
namespace {

#if defined(__SSE2__)
// SSE2 registers of float / double lanes.
template <typename F>
struct Sse;
template <>
struct Sse<float> {
  using V = __m128;
  static constexpr int kLanes = 4;
  static V load(const float* p) { return _mm_loadu_ps(p); }
  static V min(V a, V b) { return _mm_min_ps(a, b); }
  static V max(V a, V b) { return _mm_max_ps(a, b); }
  static void store(float* p, V a) { _mm_storeu_ps(p, a); }
};
template <>
struct Sse<double> {
  using V = __m128d;
  static constexpr int kLanes = 2;
  static V load(const double* p) { return _mm_loadu_pd(p); }
  static V min(V a, V b) { return _mm_min_pd(a, b); }
  static V max(V a, V b) { return _mm_max_pd(a, b); }
  static void store(double* p, V a) { _mm_storeu_pd(p, a); }
};
#endif

// The least (want_min) or greatest value of x[0..n), n >= 1. Equal values compare equal (-0.0 == +0.0), so which of
// two zeros comes back does not matter to the scan below.
template <typename F>
F extreme(const F* x, int64_t n, bool want_min) {
  int64_t i = 0;
  F best = x[0];
#if defined(__SSE2__)
  using S = Sse<F>;
  constexpr int L = S::kLanes;
  if (n >= 4 * L) {  // four registers side by side
    typename S::V a = S::load(x), b = a, c = a, d = a;
    for (; i + 4 * L <= n; i += 4 * L) {
      const typename S::V p = S::load(x + i), q = S::load(x + i + L), r = S::load(x + i + 2 * L),
                          t = S::load(x + i + 3 * L);
      if (want_min) {
        a = S::min(a, p), b = S::min(b, q), c = S::min(c, r), d = S::min(d, t);
      } else {
        a = S::max(a, p), b = S::max(b, q), c = S::max(c, r), d = S::max(d, t);
      }
    }
    a = want_min ? S::min(S::min(a, b), S::min(c, d)) : S::max(S::max(a, b), S::max(c, d));
    F lanes[L];
    S::store(lanes, a);
    for (const F v : lanes) best = want_min ? std::min(best, v) : std::max(best, v);
  }
#endif
  for (; i < n; ++i) best = want_min ? std::min(best, x[i]) : std::max(best, x[i]);
  return best;
}

template <typename F>
int64_t first_equal(const F* x, int64_t n, F v) {
  for (int64_t i = 0; i < n; ++i)
    if (x[i] == v) return i;
  return -1;
}

template <typename F>
void end_indices(const F* x, int64_t B, int64_t n, bool want_min, int64_t* out) {
  if (B >= at::get_num_threads() || n < (int64_t(1) << 16)) {
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const F* row = x + b * n;
        out[b] = first_equal(row, n, extreme(row, n, want_min));
      }
    });
    return;
  }
  // Few large rows: each row's chunks side by side, then the first chunk holding the extreme value.
  const int64_t chunk = int64_t(1) << 15, nchunks = (n + chunk - 1) / chunk;
  std::vector<F> part(static_cast<size_t>(nchunks));
  for (int64_t b = 0; b < B; ++b) {
    const F* row = x + b * n;
    at::parallel_for(0, nchunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c)
        part[size_t(c)] = extreme(row + c * chunk, std::min(chunk, n - c * chunk), want_min);
    });
    const F best = extreme(part.data(), nchunks, want_min);
    const int64_t c = first_equal(part.data(), nchunks, best);
    out[b] = c * chunk + first_equal(row + c * chunk, std::min(chunk, n - c * chunk), best);
  }
}

torch::Tensor filtration_end_index_cpu(const torch::Tensor& values, bool superlevel) {
  TORCH_CHECK_VALUE(values.dim() == 2 && values.size(1) >= 1, "gpuph: _filtration_end_index expects (B, n), n >= 1");
  TORCH_CHECK_TYPE(values.scalar_type() == at::kFloat || values.scalar_type() == at::kDouble,
                   "gpuph: _filtration_end_index expects float32 or float64");
  const torch::Tensor v = values.contiguous();
  const int64_t B = v.size(0), n = v.size(1);
  torch::Tensor out = torch::empty({B}, torch::dtype(torch::kInt64));
  if (v.scalar_type() == at::kFloat)
    end_indices(v.data_ptr<float>(), B, n, superlevel, out.data_ptr<int64_t>());
  else
    end_indices(v.data_ptr<double>(), B, n, superlevel, out.data_ptr<int64_t>());
  return out;
}

std::tuple<torch::Tensor, torch::Tensor> gather_index_cpu(const torch::Tensor& rows, int64_t n) {
  TORCH_CHECK_VALUE(rows.dim() == 2 && rows.size(1) == 4 && rows.scalar_type() == at::kLong,
                    "gpuph: _gather_index expects int64 rows (N, 4)");
  const torch::Tensor r = rows.contiguous();
  const int64_t N = r.size(0);
  torch::Tensor flat = torch::empty({N, 2}, torch::dtype(torch::kInt64));
  torch::Tensor essential = torch::empty({N, 2}, torch::dtype(torch::kBool));
  const int64_t* in = r.data_ptr<int64_t>();
  int64_t* out = flat.data_ptr<int64_t>();
  bool* ess = essential.data_ptr<bool>();
  for (int64_t i = 0; i < N; ++i) {
    const int64_t base = in[4 * i] * n, death = in[4 * i + 3];
    out[2 * i] = base + in[4 * i + 2];
    out[2 * i + 1] = base + (death < 0 ? 0 : death);
    ess[2 * i] = false;
    ess[2 * i + 1] = death < 0;
  }
  return {flat, essential};
}

}  // namespace
}  // namespace gpuph

TORCH_LIBRARY_FRAGMENT(gpuph, m) {
  m.def("_filtration_end_index(Tensor values, bool superlevel) -> Tensor");
  m.def("_gather_index(Tensor rows, int n) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(gpuph, CPU, m) {
  m.impl("_filtration_end_index", &gpuph::filtration_end_index_cpu);
  m.impl("_gather_index", &gpuph::gather_index_cpu);
}
