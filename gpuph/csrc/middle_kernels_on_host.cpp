// The CUDA kernels of H1 of 3D grids (kernels/middle_cuda.cu) compiled for the host, as
// gpuph::cuda_on_host::middle_launchers() (cuda_on_host.h): the tests run the pipeline through them too.
#include "cuda_on_host.h"

#include "middle_cuda.cu"
