// CUDA implementation of gpuph::cubical_pairs, built when the extension is compiled with CUDA (GPUPH_WITH_CUDA).
//
// Every grid (1D, 2D, 3D; V, T, freudenthal) and dimension runs through the device pipeline (cubical_pipeline.h):
// the merge trees of kernels/merge_tree_cuda.cu for H0 and the top dimension, the per-cell passes of
// kernels/middle_cuda.cu for H1 of 3D, whose few non-apparent columns are reduced on the host. Everything is
// allocated through torch's caching allocator on the input's device and current stream; a batch that does not fit
// in the device's memory runs in slices of images.
//
// Only generic ATen / c10 headers are used (no CUDA headers), so CI compile-checks this file without a CUDA torch.
#ifdef GPUPH_WITH_CUDA
#include <ATen/ATen.h>
#include <ATen/DeviceAccelerator.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "cubical_ops.h"
#include "cubical_pipeline.h"

namespace gpuph {
namespace {

// The current stream of x's device, where every kernel and torch op of a call is queued.
void* current_stream(const at::Tensor& x) {
  return at::accelerator::getCurrentStream(x.device().index()).native_handle();
}

const PipelineLaunchers& cuda_launchers() {
  static const PipelineLaunchers launchers{cuda::merge_tree_launchers(), cuda::middle_launchers()};
  return launchers;
}

at::Tensor cubical_pairs_cuda(const at::Tensor& x, int64_t spatial_dims, int64_t construction, bool superlevel,
                              int64_t dims_mask) {
  const GridPlan g = check_cubical_args(x, spatial_dims, construction);
  const c10::DeviceGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  if (xc.size(0) == 0) return at::empty({0, 4}, xc.options().dtype(at::kLong));
  return cubical_pipeline_in_slices(cuda_launchers(), xc, g, superlevel, dims_mask, current_stream(xc));
}

// Testing aid: the pipeline's intermediate buffers on the GPU (pipeline_stages; the CPU op is the emulation's).
std::vector<at::Tensor> pipeline_stages_cuda(const at::Tensor& x, int64_t spatial_dims, int64_t construction,
                                             bool superlevel, int64_t dims_mask) {
  const GridPlan g = check_cubical_args(x, spatial_dims, construction);
  const c10::DeviceGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  return pipeline_stages(cuda_launchers(), xc, g, superlevel, dims_mask, current_stream(xc));
}

}  // namespace
}  // namespace gpuph

TORCH_LIBRARY_IMPL(gpuph, CUDA, m) {
  m.impl("cubical_pairs", &gpuph::cubical_pairs_cuda);
  m.impl("_pipeline_stages", &gpuph::pipeline_stages_cuda);
}
#endif  // GPUPH_WITH_CUDA
