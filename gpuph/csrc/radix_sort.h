// Ranking of the pixels of one image: a stable LSD radix sort of orderable float keys, so ties keep flat-index
// order. This is the total order the whole package (CPU and CUDA) breaks ties by.
#pragma once
#include <ATen/Parallel.h>

#include <algorithm>
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

// radix_sort_pairs on torch's threads, for one large array: the array in `parts` contiguous parts, and per pass each
// part's histogram, then each part's scatter after the entries of the earlier parts with the same digit (so the sort
// stays stable and gives the same result as radix_sort_pairs).
template <typename U>
void radix_sort_pairs_parallel(std::vector<U>& keys, std::vector<int32_t>& items, std::vector<U>& tmp_keys,
                               std::vector<int32_t>& tmp_items, int parts) {
  const size_t n = keys.size();
  if (parts <= 1 || n < (size_t(1) << 16)) return radix_sort_pairs(keys, items, tmp_keys, tmp_items);
  tmp_keys.resize(n);
  tmp_items.resize(n);
  const size_t chunk = (n + size_t(parts) - 1) / size_t(parts);
  std::vector<uint32_t> hist(size_t(parts) * 256);
  for (int p = 0; p < int(sizeof(U)); ++p) {
    const int shift = 8 * p;
    at::parallel_for(0, parts, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        uint32_t* h = &hist[size_t(t) * 256];
        std::fill(h, h + 256, 0u);
        for (size_t i = size_t(t) * chunk, end = std::min(n, size_t(t + 1) * chunk); i < end; ++i)
          ++h[(keys[i] >> shift) & 0xff];
      }
    });
    // Exclusive offsets in (digit, part) order; a digit shared by every key leaves the order as it is.
    uint32_t sum = 0;
    bool trivial = false;
    for (int d = 0; d < 256; ++d) {
      uint32_t total = 0;
      for (int t = 0; t < parts; ++t) total += hist[size_t(t) * 256 + d];
      trivial = trivial || total == n;
      for (int t = 0; t < parts; ++t) {
        const uint32_t c = hist[size_t(t) * 256 + d];
        hist[size_t(t) * 256 + d] = sum;
        sum += c;
      }
    }
    if (trivial) continue;
    at::parallel_for(0, parts, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        uint32_t* h = &hist[size_t(t) * 256];
        for (size_t i = size_t(t) * chunk, end = std::min(n, size_t(t + 1) * chunk); i < end; ++i) {
          const uint32_t dst = h[(keys[i] >> shift) & 0xff]++;
          tmp_keys[dst] = keys[i];
          tmp_items[dst] = items[i];
        }
      }
    });
    keys.swap(tmp_keys);
    items.swap(tmp_items);
  }
}

// Sorts a[0, n) by the high 32 bits of each entry, stably (equal high halves keep their order): an LSD radix sort
// that skips the digits on which all entries agree. Returns the sorted array, a or tmp (room for n entries each).
inline uint64_t* radix_sort_hi32(uint64_t* a, size_t n, uint64_t* tmp) {
  uint32_t hist[4][256] = {};
  for (size_t i = 0; i < n; ++i)
    for (int p = 0; p < 4; ++p) ++hist[p][(a[i] >> (32 + 8 * p)) & 0xff];
  for (int p = 0; p < 4 && n > 0; ++p) {
    uint32_t* h = hist[p];
    if (h[(a[0] >> (32 + 8 * p)) & 0xff] == n) continue;  // every entry has the same digit here
    uint32_t sum = 0;
    for (int b = 0; b < 256; ++b) {
      const uint32_t c = h[b];
      h[b] = sum;
      sum += c;
    }
    for (size_t i = 0; i < n; ++i) tmp[h[(a[i] >> (32 + 8 * p)) & 0xff]++] = a[i];
    std::swap(a, tmp);
  }
  return a;
}

}  // namespace gpuph
