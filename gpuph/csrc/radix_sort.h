// Ranking of the pixels of one image: a stable LSD radix sort of orderable float keys, so ties keep flat-index
// order. This is the total order the whole package (CPU and CUDA) breaks ties by.
#pragma once
#include <vector>
#include "gpuph_common.cuh"  // from kernels/

namespace gpuph {

// Sorts items by key (stable). keys/items are overwritten with the sorted sequence; tmp buffers are resized.
template <typename U>
void radix_sort_pairs(std::vector<U>& keys, std::vector<int32_t>& items, std::vector<U>& tmp_keys,
                      std::vector<int32_t>& tmp_items) {
  const size_t n = keys.size();
  constexpr int kPasses = int(sizeof(U));
  tmp_keys.resize(n);
  tmp_items.resize(n);
  std::vector<uint32_t> hist(size_t(kPasses) * 256, 0);
  for (size_t i = 0; i < n; ++i) {
    const U k = keys[i];
    for (int p = 0; p < kPasses; ++p) ++hist[size_t(p) * 256 + ((k >> (8 * p)) & 0xff)];
  }
  for (int p = 0; p < kPasses; ++p) {
    uint32_t* h = &hist[size_t(p) * 256];
    bool trivial = false;
    for (int b = 0; b < 256; ++b)
      if (h[b] == n) trivial = true;
    if (trivial) continue;  // every key has the same digit here
    uint32_t sum = 0;
    for (int b = 0; b < 256; ++b) {
      const uint32_t c = h[b];
      h[b] = sum;
      sum += c;
    }
    for (size_t i = 0; i < n; ++i) {
      const uint32_t dst = h[(keys[i] >> (8 * p)) & 0xff]++;
      tmp_keys[dst] = keys[i];
      tmp_items[dst] = items[i];
    }
    keys.swap(tmp_keys);
    items.swap(tmp_items);
  }
}

}  // namespace gpuph
