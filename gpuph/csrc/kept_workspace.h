// Workspaces kept per thread across calls: allocating and first touching a large buffer on every call costs page
// faults, a quarter of a large image's time or more.
#pragma once
#include <ATen/Parallel.h>

#include <cstdint>
#include <memory>

namespace gpuph {

// A worker's workspace of type W for a grid of `cells` padded cells: the thread's own, kept for the life of the
// process, up to 2^pool_log2 cells on the pool's threads and up to 2^caller_log2 on the calling thread (which runs
// single large images); past that, a fresh one freed with the handle, so that no thread holds much memory between
// calls. On the pool's threads a larger cap would hold gigabytes on many-core machines; there a task's workspace
// serves all its images anyway.
template <typename W>
class KeptWorkspace {
 public:
  KeptWorkspace(int64_t cells, int pool_log2, int caller_log2) {
    thread_local W cached;
    const int64_t cap = int64_t(1) << (at::in_parallel_region() ? pool_log2 : caller_log2);
    if (cells > cap) {
      owned_ = std::make_unique<W>();
      ws_ = owned_.get();
    } else {
      ws_ = &cached;
    }
  }
  W& get() { return *ws_; }

 private:
  std::unique_ptr<W> owned_;
  W* ws_;
};

}  // namespace gpuph
