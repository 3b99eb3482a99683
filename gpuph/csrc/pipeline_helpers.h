// Helpers of the device pipelines' drivers (merge_tree_pipeline.cpp, middle_pipeline.cpp): launcher errors, the
// loop their CPU emulations run the per-element steps in, and copies to the host.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <vector>

namespace gpuph {

// Raises with the launcher's error string, if it returned one.
inline void check(const char* err, const char* what) {
  TORCH_CHECK(err == nullptr, "gpuph: error in ", what, ": ", err);
}

// fn(t) for every t in [0, n), on torch's threads: the CPU emulation of one thread per element.
template <typename Fn>
void each_element(int64_t n, Fn&& fn) {
  at::parallel_for(0, n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) fn(t);
  });
}

// Contiguous host copies of ts with one synchronisation: all but the last are queued without waiting (torch gives
// a non-blocking copy to the host pinned memory), and the last, a blocking copy on the same stream, waits for them.
// Host tensors are returned as they are (contiguous), undefined ones (nothing to copy) as undefined.
inline std::vector<at::Tensor> to_host(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> out;
  out.reserve(ts.size());
  for (size_t i = 0; i < ts.size(); ++i)
    out.push_back(ts[i].defined() ? ts[i].contiguous().to(at::kCPU, /*non_blocking=*/i + 1 < ts.size())
                                  : at::Tensor());
  return out;
}

}  // namespace gpuph
