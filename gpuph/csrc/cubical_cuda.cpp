// CUDA implementation of gpuph::cubical_pairs, built when the extension is compiled with CUDA (GPUPH_WITH_CUDA).
//
// V, T and freudenthal grids (1D and 2D in every dimension, 3D for H0 and H2) run on the device: the merge-tree
// pipeline (merge_tree_pipeline.cpp) with the kernels of kernels/merge_tree_cuda.cu, everything allocated through
// torch's caching allocator on the input's device and current stream, one device-to-host copy to size the output. H1
// of 3D grids still runs on the CPU engine (the image batch is copied to the host) until its kernels land.
//
// Only generic ATen / c10 headers are used (no CUDA headers), so CI compile-checks this file without a CUDA torch.
#ifdef GPUPH_WITH_CUDA
#include <ATen/ATen.h>
#include <ATen/DeviceAccelerator.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "cubical_ops.h"
#include "merge_tree_pipeline.h"

namespace gpuph {
namespace {

at::Tensor cubical_pairs_cuda(const at::Tensor& x, int64_t spatial_dims, int64_t construction, bool superlevel,
                              int64_t dims_mask) {
  const GridPlan g = check_cubical_args(x, spatial_dims, construction);
  const c10::DeviceGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  if (xc.size(0) == 0) return at::empty({0, 4}, xc.options().dtype(at::kLong));
  if (merge_tree_pipeline_applies(g, dims_mask)) {
    void* stream = at::accelerator::getCurrentStream(xc.device().index()).native_handle();
    static const MTLaunchers launchers = cuda::merge_tree_launchers();
    return merge_tree_pipeline(launchers, xc, g, superlevel, dims_mask, stream);
  }
  // H1 of 3D (any construction): the CPU engine for now.
  return cubical_pairs_cpu(xc.cpu(), spatial_dims, construction, superlevel, dims_mask).to(x.device());
}

}  // namespace
}  // namespace gpuph

TORCH_LIBRARY_IMPL(gpuph, CUDA, m) { m.impl("cubical_pairs", &gpuph::cubical_pairs_cuda); }
#endif  // GPUPH_WITH_CUDA
