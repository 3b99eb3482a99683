// Just enough of CUDA's runtime and built-ins for the host compiler to build kernels/*.cu and run their kernels on
// the CPU (testing aid; GPUPH_CUDA_ON_HOST). The kernel files are plain grid-stride kernels without shared memory or
// barriers, so one host thread can run a launch as its (block, thread) pairs one after another, each to the end of its
// loop: a schedule a GPU may also choose. The pairs go in the emulation order (pipeline_helpers.h), so the tests also
// run them last first and scrambled. A launch with a configuration CUDA would refuse (no blocks, over 1024 threads a
// block, over 2^31 - 1 blocks) runs nothing and leaves its error for cudaGetLastError, as on a GPU.
//
// What the CPU emulation of the pipelines (merge_tree_pipeline.cpp, middle_pipeline.cpp) does not cover and this
// does: the kernel files themselves (grid-stride bounds, launch configurations, arguments, memsets, which kernels run
// after convergence or fall back), whose logic otherwise only a GPU would run.
#pragma once
#define GPUPH_CUDA_ON_HOST 1

#include <cstdint>
#include <cstring>

#include "pipeline_helpers.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __grid_constant__

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};
// The built-ins of the thread being run; thread-local so that torch's threads may run launches side by side.
inline thread_local dim3 blockIdx, threadIdx, blockDim, gridDim;

using cudaStream_t = struct CUstream_st*;
enum cudaError_t : int { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorInvalidConfiguration = 9 };
enum cudaDeviceAttr : int { cudaDevAttrMultiProcessorCount = 16 };

namespace gpuph {
namespace host_cuda {

// Multiprocessors the host "device" reports: few, so that launches capped at a few blocks a multiprocessor (the
// relaxed union-find) stride over several cells a thread even on the tests' small grids.
constexpr int kMultiprocessors = 2;

inline thread_local cudaError_t last_error = cudaSuccess;

// kernel(args...) for every (block, thread) of a launch of `blocks` x `threads`.
template <typename... P>
struct Launch {
  int64_t blocks;
  int64_t threads;
  void (*kernel)(P...);

  template <typename... A>
  void operator()(A&&... args) const {
    if (blocks < 1 || blocks > INT32_MAX || threads < 1 || threads > 1024) {
      last_error = cudaErrorInvalidConfiguration;
      return;
    }
    gridDim = dim3{unsigned(blocks), 1, 1};
    blockDim = dim3{unsigned(threads), 1, 1};
    each_element_serial(blocks * threads, [&](int64_t t) {
      blockIdx = dim3{unsigned(t / threads), 0, 0};
      threadIdx = dim3{unsigned(t % threads), 0, 0};
      kernel(args...);
    });
  }
};

// The stream is only type-checked: the host runs every launch at once, in order.
template <typename... P>
Launch<P...> launch(int64_t blocks, int64_t threads, cudaStream_t, void (*kernel)(P...)) {
  return Launch<P...>{blocks, threads, kernel};
}

}  // namespace host_cuda
}  // namespace gpuph

inline cudaError_t cudaGetLastError() {
  const cudaError_t err = gpuph::host_cuda::last_error;
  gpuph::host_cuda::last_error = cudaSuccess;
  return err;
}
inline const char* cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    default:
      return "invalid argument";
  }
}
inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int) {
  if (attr != cudaDevAttrMultiProcessorCount) return cudaErrorInvalidValue;
  *value = gpuph::host_cuda::kMultiprocessors;
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t = nullptr) {
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

// One thread at a time: plain read-modify-writes are atomic. Any type here; CUDA's overloads take int, long long and
// unsigned long long, and nvcc, which CI also runs on these files, rejects the others. Each returns the old value.
template <typename T>
T atomicMin(T* slot, T v) {
  const T old = *slot;
  if (v < old) *slot = v;
  return old;
}
template <typename T>
T atomicAdd(T* slot, T v) {
  const T old = *slot;
  *slot = old + v;
  return old;
}
