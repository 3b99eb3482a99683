// Helpers of the device pipelines' drivers (merge_tree_pipeline.cpp, middle_pipeline.cpp): launcher errors, the
// loop their CPU emulations run the per-element steps in, and copies to the host.
#pragma once
#include <ATen/ATen.h>
#include <ATen/DeviceAccelerator.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <numeric>
#include <optional>
#include <vector>

namespace gpuph {

// Raises with the launcher's error string, if it returned one.
inline void check(const char* err, const char* what) {
  TORCH_CHECK(err == nullptr, "gpuph: error in ", what, ": ", err);
}

// The order in which the CPU emulation runs the elements of a step (testing aid, set_emulation_order). A kernel's
// threads run in no fixed order, so no step's result may depend on it; the tests run the emulation in each:
//   kNaturalOrder: torch's threads, each on a contiguous range (serial steps: ascending);
//   kReverseOrder: one thread, the last element first;
//   kScrambledOrder: one thread, t -> t * s mod n for an s coprime to n near 0.618 n (neighbours far apart).
enum EmulationOrder : int { kNaturalOrder = 0, kReverseOrder = 1, kScrambledOrder = 2 };
inline std::atomic<int> emulation_order{kNaturalOrder};

// fn(t) for every t in [0, n), one at a time, in the emulation order (steps whose elements race in place, harmlessly
// on the device, and so cannot run on several threads here).
template <typename Fn>
void each_element_serial(int64_t n, Fn&& fn) {
  const int order = emulation_order.load(std::memory_order_relaxed);
  if (order == kReverseOrder) {
    for (int64_t t = n - 1; t >= 0; --t) fn(t);
  } else if (order == kScrambledOrder && n > 2) {
    int64_t s = (n * 5 / 8) | 1;
    while (std::gcd(s, n) != 1) s += 2;
    for (int64_t i = 0, t = 0; i < n; ++i, t = (t + s) % n) fn(t);
  } else {
    for (int64_t t = 0; t < n; ++t) fn(t);
  }
}

// fn(t) for every t in [0, n): the CPU emulation of one thread per element, on torch's threads (or one at a time in
// another emulation order).
template <typename Fn>
void each_element(int64_t n, Fn&& fn) {
  if (emulation_order.load(std::memory_order_relaxed) != kNaturalOrder) return each_element_serial(n, fn);
  at::parallel_for(0, n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) fn(t);
  });
}

inline int64_t set_emulation_order(int64_t order) {
  TORCH_CHECK_VALUE(order >= kNaturalOrder && order <= kScrambledOrder, "gpuph: emulation order is 0, 1 or 2");
  return emulation_order.exchange(int(order));
}

// The emulations of CUDA's atomicMin and atomicAdd (the kernels' callbacks): *slot = min(*slot, v), and *slot += n
// returning the previous value, atomically.
template <typename T>
void atomic_min(T* slot, T v) {
  T cur = __atomic_load_n(slot, __ATOMIC_RELAXED);
  while (v < cur && !__atomic_compare_exchange_n(slot, &cur, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}
template <typename T>
T fetch_add(T* slot, T n) {
  return __atomic_fetch_add(slot, n, __ATOMIC_RELAXED);
}

// The host's stand-in for cub::DeviceRadixSort::SortPairs over double buffers (MTLaunchers::sort_pairs): stable,
// ascending by the key bits [0, end_bit) (64: signed keys). With `flip` the sorted pairs land in the other two
// buffers and the input ones are scribbled over (cub may leave them either way), else in the input ones; *cur names
// them. Needs no scratch: with temp null it only asks for a few bytes, so that the caller's allocation runs.
inline const char* sort_pairs_on_host(int64_t* const* keys, int64_t* const* values, int* cur, int64_t n, int end_bit,
                                      void* temp, size_t* temp_bytes, bool flip) {
  if (temp == nullptr) {
    *temp_bytes = 16;
    return nullptr;
  }
  if (end_bit < 1 || end_bit > 64) return "sort bits out of range";
  const int64_t* k = keys[*cur];
  const int64_t* v = values[*cur];
  const uint64_t mask = end_bit == 64 ? ~uint64_t(0) : (uint64_t(1) << end_bit) - 1;
  auto before = [&](int64_t a, int64_t b) {
    return end_bit == 64 ? k[a] < k[b] : (uint64_t(k[a]) & mask) < (uint64_t(k[b]) & mask);
  };
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t(0));
  std::stable_sort(idx.begin(), idx.end(), before);
  std::vector<int64_t> ks(static_cast<size_t>(n)), vs(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    ks[size_t(i)] = k[idx[size_t(i)]];
    vs[size_t(i)] = v[idx[size_t(i)]];
  }
  const int out = flip ? 1 - *cur : *cur;
  if (flip) {
    std::fill(keys[*cur], keys[*cur] + n, int64_t(-7));
    std::fill(values[*cur], values[*cur] + n, int64_t(-7));
  }
  std::copy(ks.begin(), ks.end(), keys[out]);
  std::copy(vs.begin(), vs.end(), values[out]);
  *cur = out;
  return nullptr;
}

// Contiguous host copies of ts with one synchronisation: every device copy is queued without waiting (torch gives
// a non-blocking copy to the host pinned memory), then the current stream of their device is synchronised once. (A
// blocking last copy would not do: torch skips the copy, and so the wait, of an empty tensor.) Host tensors are
// returned as they are (contiguous), undefined ones (nothing to copy) as undefined.
inline std::vector<at::Tensor> to_host(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> out;
  out.reserve(ts.size());
  std::optional<c10::Device> device;
  for (const at::Tensor& t : ts) {
    if (!t.defined()) {
      out.emplace_back();
      continue;
    }
    if (!t.is_cpu()) {
      TORCH_CHECK(!device || *device == t.device(), "gpuph: internal error: to_host of tensors on two devices");
      device = t.device();
    }
    out.push_back(t.contiguous().to(at::kCPU, /*non_blocking=*/true));
  }
  if (device) at::accelerator::getCurrentStream(device->index()).synchronize();
  return out;
}

}  // namespace gpuph
