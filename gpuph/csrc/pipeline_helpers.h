// Helpers of the device pipelines' drivers (merge_tree_pipeline.cpp, middle_pipeline.cpp): launcher errors, and the
// loop their CPU emulations run the per-element steps in.
#pragma once
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <cstdint>

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

}  // namespace gpuph
