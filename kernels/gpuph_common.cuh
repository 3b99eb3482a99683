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

// One load or store of a slot that other threads of the same kernel write (or read) meanwhile, where either value is
// valid: the compiler must not split, repeat or merge the access, which it may do to a plain (racy) one, e.g. load a
// 64-bit link twice and mix the fields of two values. Device: a volatile access (one ld/st.volatile, not cached in
// L1); host (the CPU emulation of the kernels): a relaxed atomic, a plain move on x86.
template <typename T>
GPUPH_HD T racy_load(const T* p) {
#if defined(__CUDA_ARCH__)
  return *static_cast<const volatile T*>(p);
#else
  return __atomic_load_n(p, __ATOMIC_RELAXED);
#endif
}
template <typename T>
GPUPH_HD void racy_store(T* p, T v) {
#if defined(__CUDA_ARCH__)
  *static_cast<volatile T*>(p) = v;
#else
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
#endif
}

}  // namespace gpuph
