// Launch helpers shared by the CUDA kernel files (included by kernels/*.cu only). nvcc builds them for the GPU; the CPU
// build compiles the same files for the host as a testing aid (GPUPH_CUDA_ON_HOST: gpuph/csrc/cuda_on_host.h stands in
// for CUDA's runtime, and the kernels land in namespace gpuph::cuda_on_host), so that CI runs every kernel and
// launcher without a GPU.
#pragma once
#ifndef GPUPH_CUDA_ON_HOST
#include <cuda_runtime.h>
#endif

#include <cstdint>

#ifdef GPUPH_CUDA_ON_HOST
#define GPUPH_KERNELS cuda_on_host
#define GPUPH_LAUNCH(blocks, threads, stream, ...) ::gpuph::host_cuda::launch(blocks, threads, stream, __VA_ARGS__)
#else
#define GPUPH_KERNELS cuda
// GPUPH_LAUNCH(blocks, threads, stream, kernel)(args...) launches kernel<<<blocks, threads, 0, stream>>>(args...).
#define GPUPH_LAUNCH(blocks, threads, stream, ...) __VA_ARGS__<<<blocks, threads, 0, stream>>>
#endif

namespace gpuph {
namespace GPUPH_KERNELS {

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
