// Launch helpers shared by the CUDA kernel files (CUDA only: included by kernels/*.cu, never by the CPU build).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace gpuph {
namespace cuda {

constexpr int kThreads = 256;

// Blocks for n elements, capped: the kernels loop over their elements with a grid stride.
inline int blocks_for(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return int(b < 65535 * 32 ? (b > 0 ? b : 1) : 65535 * 32);
}

// nullptr, or the message of the last launch's error.
inline const char* last_error() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace cuda
}  // namespace gpuph

#define GPUPH_GRID_LOOP(t, total) \
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < (total); t += int64_t(gridDim.x) * blockDim.x)
