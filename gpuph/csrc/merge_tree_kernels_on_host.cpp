// The CUDA kernels of the merge-tree pipeline (kernels/merge_tree_cuda.cu) compiled for the host, as
// gpuph::cuda_on_host::merge_tree_launchers() (cuda_on_host.h): the tests run the pipeline through them too.
#include "cuda_on_host.h"

#include "merge_tree_cuda.cu"
