// Portable helpers shared by the CPU engine and the CUDA kernels. No torch headers here, so nvcc can compile-check
// the kernels on machines whose torch has no CUDA headers.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define GPUPH_HD __host__ __device__ __forceinline__
#else
#define GPUPH_HD inline
#endif

namespace gpuph {

// Ranks of vertices (V, freudenthal) or pixels (T) are int32; the one-layer border of the padded grid gets this
// sentinel, which is "never earlier" for max-keyed cells and "never the key" for min-keyed cells.
constexpr int32_t kBorderRank = INT32_MAX;

GPUPH_HD uint32_t float_bits(float v) {
  uint32_t u;
  memcpy(&u, &v, sizeof(u));
  return u;
}
GPUPH_HD uint64_t float_bits(double v) {
  uint64_t u;
  memcpy(&u, &v, sizeof(u));
  return u;
}

// Map a float to an unsigned integer whose unsigned order is the float order (-inf < ... < -0 == +0 < ... < +inf).
// -0.0 is folded onto +0.0 because they are the same filtration value. Superlevel filtrations use the complement,
// so that one ascending, stable sort gives (value descending, flat index ascending).
template <typename U, typename F>
GPUPH_HD U orderable_key(F v, bool superlevel) {
  if (v == F(0)) v = F(0);
  U u = float_bits(v);
  constexpr U sign = U(1) << (sizeof(U) * 8 - 1);
  u = (u & sign) ? ~u : (u | sign);
  return superlevel ? ~u : u;
}

}  // namespace gpuph
