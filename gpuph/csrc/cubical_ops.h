// Shared by the CPU op (ops.cpp) and the CUDA binding (cubical_cuda.cpp).
#pragma once
#include <ATen/ATen.h>

#include "grid_plan.cuh"
#include "middle_steps.cuh"

namespace gpuph {

// The plan of a grid shape n[0..D) for a construction (0: V, 1: T, 2: freudenthal).
GridPlan grid_plan_for(int D, int construction, const int64_t* n);

// The plan of a 3D grid shape n[0..3) for the device pipeline of H1 (kernels/middle_steps.cuh).
MiddlePlan middle_plan_for(int construction, const int64_t* n);

// Raises the ValueError of an input holding NaN, first in batch element `image`.
[[noreturn]] void fail_on_nan(int64_t image);

// Checks the arguments of cubical_pairs and returns the grid plan.
GridPlan check_cubical_args(const at::Tensor& x, int64_t spatial_dims, int64_t construction);

// The CPU implementation of gpuph::cubical_pairs (the CUDA binding runs it for the cases without kernels yet).
at::Tensor cubical_pairs_cpu(const at::Tensor& x, int64_t spatial_dims, int64_t construction, bool superlevel,
                             int64_t dims_mask);

}  // namespace gpuph
