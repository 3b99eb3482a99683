// CUDA launchers for the per-cell bodies of grid_plan.cuh used by the 3D / freudenthal engine: orderable keys with
// NaN detection, top-cell keys for the dual union-find, column keys / pivots / oldest columns for the apparent pairs
// of H1 in 3D. Plain CUDA, no torch headers. The CPU engine (gpuph/csrc/cubical_engine.cpp) runs the same bodies.
//
// Status: compile-checked in CI, not yet wired into torch.ops.gpuph (3D and freudenthal run on the CPU engine from
// CUDA tensors); the 1D / 2D pipeline is kernels/merge_tree_cuda.cu.
#include <cuda_runtime.h>

#include "grid_plan.cuh"

namespace gpuph {
namespace cuda {

__constant__ GridPlan c_plan;

cudaError_t upload_plan(const GridPlan& plan, cudaStream_t stream) {
  return cudaMemcpyToSymbolAsync(c_plan, &plan, sizeof(GridPlan), 0, cudaMemcpyHostToDevice, stream);
}

// Padded flat index of unpadded flat pixel i.
__device__ __forceinline__ int64_t pad_index(const GridPlan& g, int64_t i) {
  int64_t p = 0;
  for (int a = g.D - 1; a >= 0; --a) {
    const int64_t c = i % g.n[a];
    i /= g.n[a];
    p += (c + 1) * g.pstride[a];
  }
  return p;
}

template <typename F, typename U>
__global__ void orderable_keys_kernel(const F* __restrict__ x, int64_t batch, bool superlevel, U* __restrict__ keys,
                                      int32_t* __restrict__ padded_index, int* __restrict__ nan_flag) {
  const GridPlan& g = c_plan;
  const int64_t total = batch * g.N;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const F v = x[t];
    if (v != v) atomicExch(nan_flag, 1);
    keys[t] = orderable_key<U>(v, superlevel);
    padded_index[t] = int32_t(pad_index(g, t % g.N));
  }
}

// Key rank of every top cell of the dual union-find (V, freudenthal), kBorderRank for cells leaving the grid.
__global__ void top_keys_kernel(const int32_t* __restrict__ rank, int32_t* __restrict__ top_key) {
  const GridPlan& g = c_plan;
  const DimPlan& top = g.dim[g.D];
  const int64_t total = g.P * top.ntypes;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t anchor = t / top.ntypes;
    const int ty = int(t % top.ntypes);
    const int64_t last = anchor + top.key[ty][top.nkey[ty] - 1];
    top_key[t] = last < g.P ? cell_key_rank(g, top, rank, anchor, ty, nullptr) : kBorderRank;
  }
}

// Column key and pivot edge of every 2-cell (3D), and each edge's oldest column (atomicMin), for apparent pairs.
__global__ void column_pivots_kernel(const int32_t* __restrict__ rank, const uint8_t* __restrict__ positive_face,
                                     const uint8_t* __restrict__ negative_edge, unsigned long long* __restrict__ col_key,
                                     long long* __restrict__ col_pivot, unsigned long long* __restrict__ row_oldest) {
  const GridPlan& g = c_plan;
  const DimPlan& d1 = g.dim[1];
  const DimPlan& d2 = g.dim[2];
  const int64_t total = g.P * d2.ntypes;
  const unsigned long long none = ~0ull;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t anchor = t / d2.ntypes;
    const int ty = int(t % d2.ntypes);
    col_key[t] = none;
    col_pivot[t] = -1;
    int64_t lo = anchor, hi = anchor;
    for (int j = 0; j < d2.nkey[ty]; ++j) {
      lo = min(lo, anchor + d2.key[ty][j]);
      hi = max(hi, anchor + d2.key[ty][j]);
    }
    if (lo < 0 || hi >= g.P || positive_face[t]) continue;
    int kj = 0;
    const int32_t kr = cell_key_rank(g, d2, rank, anchor, ty, &kj);
    if (kr == kBorderRank) continue;
    const unsigned long long key = (unsigned long long)pack_cell_key(kr, d2.star_code[ty][kj]);
    long long piv = -1, piv_id = -1;
    for (int b = 0; b < d2.nbnd[ty]; ++b) {
      const int64_t ea = anchor + d2.bnd_shift[ty][b];
      const int et = d2.bnd_type[ty][b];
      const int64_t eid = ea * d1.ntypes + et;
      if (negative_edge && negative_edge[eid]) continue;
      int ej = 0;
      const int32_t er = cell_key_rank(g, d1, rank, ea, et, &ej);
      const long long ek = pack_cell_key(er, d1.star_code[et][ej]);
      if (ek > piv) {
        piv = ek;
        piv_id = eid;
      }
      atomicMin(&row_oldest[eid], key);
    }
    if (piv_id < 0) continue;
    col_key[t] = key;
    col_pivot[t] = piv_id;
  }
}

namespace {
inline int blocks_for(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return int(b < 65535 * 16 ? (b > 0 ? b : 1) : 65535 * 16);
}
}  // namespace

cudaError_t launch_orderable_keys(const float* x, int64_t batch, int64_t N, bool superlevel, uint32_t* keys,
                                  int32_t* padded_index, int* nan_flag, cudaStream_t stream) {
  orderable_keys_kernel<float, uint32_t><<<blocks_for(batch * N, 256), 256, 0, stream>>>(x, batch, superlevel, keys,
                                                                                         padded_index, nan_flag);
  return cudaGetLastError();
}

cudaError_t launch_orderable_keys(const double* x, int64_t batch, int64_t N, bool superlevel, uint64_t* keys,
                                  int32_t* padded_index, int* nan_flag, cudaStream_t stream) {
  orderable_keys_kernel<double, uint64_t><<<blocks_for(batch * N, 256), 256, 0, stream>>>(x, batch, superlevel, keys,
                                                                                          padded_index, nan_flag);
  return cudaGetLastError();
}

cudaError_t launch_top_keys(const int32_t* rank, int64_t ntop_cells, int32_t* top_key, cudaStream_t stream) {
  top_keys_kernel<<<blocks_for(ntop_cells, 256), 256, 0, stream>>>(rank, top_key);
  return cudaGetLastError();
}

cudaError_t launch_column_pivots(const int32_t* rank, const uint8_t* positive_face, const uint8_t* negative_edge,
                                 int64_t ncells2, unsigned long long* col_key, long long* col_pivot,
                                 unsigned long long* row_oldest, cudaStream_t stream) {
  column_pivots_kernel<<<blocks_for(ncells2, 256), 256, 0, stream>>>(rank, positive_face, negative_edge, col_key,
                                                                     col_pivot, row_oldest);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace gpuph
