// The data-parallel steps of the merge-tree pipeline for batches of V, T and freudenthal grids (1D, 2D; 3D for H0
// and H2 by duality), one call per padded cell t of the whole batch (or per image and phase for the union-find). The
// CUDA kernels (kernels/merge_tree_cuda.cu) run them one thread per element; the CPU emulation of the pipeline
// (gpuph/csrc/merge_tree_pipeline.cpp) loops over them, so CI tests the GPU pipeline's logic on the CPU.
#pragma once
#include <climits>

#include "merge_tree_plan.cuh"

namespace gpuph {
namespace steps {

// Key of padded cell t of the batch; NaN reports its image through on_nan(b).
template <typename F, typename U, typename K, typename OnNaN>
GPUPH_HD void key_cell(const MTPlan& g, const F* x, bool superlevel, K* key, int64_t t, OnNaN&& on_nan) {
  const int64_t b = t / g.P, c = t % g.P;
  const int64_t i = pixel_of_cell(g, c);
  if (i < 0) {
    key[t] = K::border();
    return;
  }
  const F v = x[b * g.N + i];
  if (v != v) on_nan(b);
  key[t] = K::make(orderable_key<U>(v, superlevel), uint32_t(c));
}

// 2D: the fused ring step of both phases (ptr1 may be null: phase 1 not needed).
template <typename K>
GPUPH_HD void ring_cell(const MTPlan& g, const RingTables& tables, const K* key, int32_t* ptr0, int32_t* ptr1,
                        uint8_t* flag, int64_t t) {
  const int64_t b = t / g.P, c = t % g.P;
  if (pixel_of_cell(g, c) < 0) {
    ptr0[t] = 0;  // the outside: the oldest component of the reverse phase
    if (ptr1) ptr1[t] = 0;
    flag[t] = 0;
    return;
  }
  int64_t p0, p1;
  const unsigned fwd = ring_step(key + b * g.P, c, g.ring, g.ring_cells[0], g.ring_cells[1], &p0, &p1);
  ptr0[t] = int32_t(p0);
  if (ptr1) ptr1[t] = int32_t(p1);
  flag[t] = ring_flags(fwd, ring_comp(tables, g.ring_cells[0]), ring_comp(tables, g.ring_cells[1]), true,
                       ptr1 != nullptr);
}

// 1D / 3D: steepest earlier neighbour of cell t in one phase (phase 1: reverse order; border cells point at cell 0,
// the outside).
template <typename K>
GPUPH_HD void steepest_cell(const MTPlan& g, const K* key, int32_t* ptr, int phase, int64_t t) {
  const int64_t b = t / g.P, c = t % g.P;
  ptr[t] = pixel_of_cell(g, c) < 0 ? 0
                                   : int32_t(steepest_earlier(key + b * g.P, c, g.nb[phase], g.nnb[phase], phase == 1));
}

// One round of pointer jumping at cell t; returns whether its pointer moved. Rounds may overlap in time: every
// pointer only moves to an ancestor, so jump_rounds(P) rounds reach the roots whatever the interleaving. A round in
// which no pointer moves finds every pointer at its root (ptr[ptr[t]] == ptr[t] everywhere): later rounds may be
// skipped (the kernels' `moved` flags), which on noise and smooth fields leaves most of them.
GPUPH_HD bool jump_cell(int64_t P, int32_t* ptr, int64_t t) {
  const int32_t* img = ptr + (t / P) * P;
  const int32_t p = ptr[t];  // only this thread writes it
  const int32_t q = racy_load(img + p);
  if (q == p) return false;
  racy_store(ptr + t, q);
  return true;
}

GPUPH_HD int jump_rounds(int64_t P) {
  int r = 1;
  while ((int64_t(1) << (r - 1)) < P) ++r;
  return r;
}

// 1D / 3D: merging flags of cell t after the pointers are resolved (bit k: phase k; ptr1 null when not needed).
template <typename K>
GPUPH_HD void flag_cell(const MTPlan& g, const K* key, const int32_t* ptr0, const int32_t* ptr1, uint8_t* flag,
                        int64_t t) {
  const int64_t b = t / g.P, c = t % g.P;
  uint8_t f = 0;
  if (pixel_of_cell(g, c) >= 0) {
    f = borders_other_basin(key + b * g.P, ptr0 + b * g.P, c, g.nb[0], g.nnb[0], false);
    if (ptr1) f |= uint8_t(borders_other_basin(key + b * g.P, ptr1 + b * g.P, c, g.nb[1], g.nnb[1], true)) << 1;
  }
  flag[t] = f;
}

// An int64 whose signed order is the key's value order (Key32's value key has 32 bits; Key64's 64, sign flipped).
template <typename K>
GPUPH_HD int64_t signed_value_key(const K& k) {
  if constexpr (sizeof(K) == sizeof(Key32))
    return int64_t(k.value_bits());
  else
    return int64_t(k.value_bits() ^ (uint64_t(1) << 63));
}

// Sort keys of cell t: every pixel's value key in first_key, the flagged pixels' in cand_key; INT64_MAX otherwise.
template <typename K>
GPUPH_HD void sort_keys_cell(const MTPlan& g, const K* key, const uint8_t* flag, int64_t* cand_key,
                             int64_t* first_key, int64_t t) {
  const bool pixel = pixel_of_cell(g, t % g.P) >= 0;
  const int64_t k = pixel ? signed_value_key(key[t]) : INT64_MAX;
  first_key[t] = k;
  cand_key[t] = flag[t] ? k : INT64_MAX;
}

// Elder-rule union-find of image t / 2 in phase t % 2 (ptr[phase] null: not needed); reps not null: 2D grids take
// one find per ring component (elder_merge_ring). Writes at most cap (birth, death) unpadded pairs to
// pairs + t * cap * 2 and their number to counts[t]; returns false if cap was too small.
template <typename K>
GPUPH_HD bool elder_run(const MTPlan& g, const PhaseReps* reps, const K* keys, int32_t* ptr0, int32_t* ptr1,
                        const uint8_t* flags, const int64_t* orders, const int64_t* ncand, const int64_t* first,
                        int64_t cap, int32_t* pairs, int32_t* counts, int64_t t) {
  const int64_t b = t / 2;
  const int phase = int(t % 2);
  int32_t* uf = phase == 0 ? ptr0 : ptr1;
  if (!uf) {
    counts[t] = 0;
    return true;
  }
  uf += b * g.P;
  int32_t* out = pairs + t * cap * 2;
  int64_t n = 0;
  auto emit = [&](int64_t birth, int64_t death) {
    if (n < cap) {
      out[2 * n] = int32_t(unpad_index(g.n, g.pstride, g.pn, g.D, birth));
      out[2 * n + 1] = death < 0 ? -1 : int32_t(unpad_index(g.n, g.pstride, g.pn, g.D, death));
    }
    ++n;
  };
  if (reps && g.D == 2)
    elder_merge_ring(keys + b * g.P, uf, orders + b * g.P, ncand[b], g.ring, reps->phase[phase], phase == 1, phase,
                     flags + b * g.P, emit);
  else
    elder_merge(keys + b * g.P, uf, orders + b * g.P, ncand[b], g.nb[phase], g.nnb[phase], phase == 1, phase,
                flags + b * g.P, emit);
  if (phase == 0) emit(first[b], -1);
  counts[t] = int32_t(n < cap ? n : cap);
  return n <= cap;
}

// ---------------------------------------------------------------------------------------- the relaxed elder rule
// The union-find of every image and phase as a fixed point, all merging pixels at once (one thread each) instead of
// one thread walking them in order. Every basin root r holds a link (rank << 32 | parent): r's component joins the
// older root `parent`'s at the merging pixel of that rank in the phase's order (phase 0: ascending position in
// `order`; phase 1: descending). A link is a fact: r and parent are truly connected by then, parent is older, so the
// link's rank is never before r's true death. One iteration (Jacobi: reads the previous links only): every merging
// pixel v finds the roots of its earlier neighbours' components just before v by following links made before v, and
// claims each root but the oldest for (rank of v, that oldest) with an atomic min; a root takes its smallest claim
// if earlier than its link. Links only move earlier, bounded by the true deaths. At a fixed point the links are the
// sequential union-find's, rank for rank: by induction over the merging pixels in order, the components under the
// links made before v are the true ones, so v's claims are the true deaths at v, and no link can be later than a
// claim nor earlier than a true death. Measured in a prototype: 6-12 iterations on 2D noise, smooth fields and a
// 1D random walk; the driver caps them and, if the last one still changed a link, runs the sequential union-find.
constexpr uint64_t kNoLink = ~uint64_t(0);

GPUPH_HD uint32_t link_rank(uint64_t l) { return uint32_t(l >> 32); }
GPUPH_HD int32_t link_parent(uint64_t l) { return int32_t(uint32_t(l)); }

// Root of basin root r's component just before the merging pixel of rank t: follow the links made before t (their
// parents are older, so the walk ends).
GPUPH_HD int32_t root_before(const uint64_t* link, int32_t r, uint32_t t) {
  for (uint64_t l = link[r]; link_rank(l) < t; l = link[r]) r = link_parent(l);
  return r;
}

// Claims of the merging pixel in slot t of the batch's candidate order (image t / P, position t % P), in each phase
// whose pointers are given and whose flag bit it has: amin(slot, value) is an atomic min on uint64.
template <typename K, typename AMin>
GPUPH_HD void relaxed_claim(const MTPlan& g, const K* keys, const int32_t* ptr0, const int32_t* ptr1,
                            const uint8_t* flags, const int64_t* orders, const int64_t* ncand, const uint64_t* link0,
                            const uint64_t* link1, uint64_t* best0, uint64_t* best1, int64_t t, AMin&& amin) {
  const int64_t b = t / g.P, i = t % g.P, n = ncand[b];
  if (i >= n) return;
  const int64_t base = b * g.P;
  const K* key = keys + base;
  const int64_t v = orders[t];
  const K kv = key[v];
  for (int phase = 0; phase < 2; ++phase) {
    const int32_t* ptr = phase == 0 ? ptr0 : ptr1;
    if (!ptr || !((flags[base + v] >> phase) & 1)) continue;
    const bool reverse = phase == 1;
    const uint32_t rank = uint32_t(reverse ? n - 1 - i : i);
    const uint64_t* link = (phase == 0 ? link0 : link1) + base;
    int32_t roots[26];
    int nr = 0;
    int32_t oldest = -1;
    for (int j = 0; j < g.nnb[phase]; ++j) {
      const int64_t u = v + g.nb[phase][j];
      if (!earlier(key[u], kv, reverse)) continue;
      const int32_t r = root_before(link, ptr[base + u], rank);
      bool seen = false;
      for (int q = 0; q < nr; ++q) seen = seen || roots[q] == r;
      if (seen) continue;
      roots[nr++] = r;
      if (oldest < 0 || earlier(key[r], key[oldest], reverse)) oldest = r;
    }
    uint64_t* best = (phase == 0 ? best0 : best1) + base;
    const uint64_t claim = (uint64_t(rank) << 32) | uint32_t(oldest);
    for (int q = 0; q < nr; ++q)
      if (roots[q] != oldest) amin(best + roots[q], claim);
  }
}

// Cell t (of a batch of grids of P padded cells) takes its smallest claim if earlier than its link, and clears it;
// returns whether its link moved earlier. Then, if its parent's link is no later than its own, it links to that
// link's parent instead at the same rank: still a fact (the grandparent is older and joined by then), and every
// walk (root_before) ends at the same root in fewer steps. The parent's link may be changing meanwhile: either
// value is a fact.
GPUPH_HD bool relaxed_apply(uint64_t* link, uint64_t* best, int64_t P, int64_t t) {
  uint64_t l = link[t];
  bool moved = false;
  const uint64_t c = best[t];
  if (c != kNoLink) {
    best[t] = kNoLink;
    moved = link_rank(c) < link_rank(l);
    if (moved) l = c;
  }
  if (l == kNoLink) return false;
  // One load: its rank and its parent must come from one value.
  const uint64_t up = racy_load(link + (t / P) * P + link_parent(l));
  const bool jump = link_rank(up) <= link_rank(l);
  if (jump) l = (l & ~uint64_t(0xffffffffu)) | uint32_t(link_parent(up));
  if (moved || jump) racy_store(link + t, l);
  return moved;
}

// The pair of cell t in each phase (link given) if it is a root that died and the pair is not of length zero:
// reserve(slot) atomically adds one to a run's int32 count and returns its previous value.
template <typename K, typename Reserve>
GPUPH_HD void relaxed_emit(const MTPlan& g, const K* keys, const uint64_t* link0, const uint64_t* link1,
                           const int64_t* orders, const int64_t* ncand, int64_t cap, int32_t* pairs, int32_t* counts,
                           int64_t t, Reserve&& reserve) {
  const int64_t b = t / g.P, c = t % g.P;
  for (int phase = 0; phase < 2; ++phase) {
    const uint64_t* link = phase == 0 ? link0 : link1;
    if (!link || link[t] == kNoLink) continue;
    const int64_t rank = link_rank(link[t]);
    const int64_t v = orders[b * g.P + (phase == 1 ? ncand[b] - 1 - rank : rank)];
    if (keys[t].value_bits() == keys[b * g.P + v].value_bits()) continue;
    const int64_t s = b * 2 + phase;
    int32_t* out = pairs + (s * cap + reserve(counts + s)) * 2;
    const int32_t root = int32_t(unpad_index(g.n, g.pstride, g.pn, g.D, c));
    const int32_t pixel = int32_t(unpad_index(g.n, g.pstride, g.pn, g.D, v));
    out[0] = phase == 0 ? root : pixel;
    out[1] = phase == 0 ? pixel : root;
  }
}

// H0's essential class of image b (born at its first pixel), after its other pairs.
template <typename Reserve>
GPUPH_HD void essential_emit(const MTPlan& g, const int64_t* first, int64_t cap, int32_t* pairs, int32_t* counts,
                             int64_t b, Reserve&& reserve) {
  int32_t* out = pairs + (b * 2 * cap + reserve(counts + b * 2)) * 2;
  out[0] = int32_t(unpad_index(g.n, g.pstride, g.pn, g.D, first[b]));
  out[1] = -1;
}

// Copies row i of run s (image s / 2, phase s % 2: H0 or the top dimension top_dim) into rows (image, dim, birth,
// death), at position `at` of the run's rows.
GPUPH_HD void row_copy(const int32_t* pairs, const int64_t* offsets, int64_t cap, int top_dim, int64_t* rows,
                       int64_t s, int64_t i, int64_t at) {
  const int32_t* in = pairs + s * cap * 2;
  int64_t* out = rows + (offsets[s] + at) * 4;
  out[0] = s / 2;
  out[1] = s % 2 ? top_dim : 0;
  out[2] = in[2 * i];
  out[3] = in[2 * i + 1];
}

// The pinned order within a run, which is one group (image, dimension) of the output: lifetime descending (the
// essential class first), then birth pixel, then death pixel, exactly as the sorts of cubical_pipeline's
// pinned_order. order_key writes row i of run s's two keys at its row position: `life`, the bits of |birth value -
// death value| in double (non-negative doubles order like their bits), or one more than +inf's for the essential
// class; `tail`, birth << 32 | (death + 1). x: the images (B, N) (float32 or float64).
constexpr uint64_t kInfBits = 0x7ff0000000000000ull;

template <typename F>
GPUPH_HD void order_key(const int32_t* pairs, const int64_t* offsets, int64_t cap, const F* x, int64_t N,
                        uint64_t* life, uint64_t* tail, int64_t s, int64_t i) {
  const int32_t* in = pairs + (s * cap + i) * 2;
  const F* img = x + (s / 2) * N;
  const int64_t at = offsets[s] + i;
  uint64_t l = kInfBits + 1;
  if (in[1] >= 0) {
    const double bv = double(img[in[0]]), dv = double(img[in[1]]);
    l = float_bits(bv > dv ? bv - dv : dv - bv);
  }
  life[at] = l;
  tail[at] = (uint64_t(uint32_t(in[0])) << 32) | uint64_t(uint32_t(in[1] + 1));
}

// Row i of run s at its place in the run: its rank among the run's rows by their keys (equal keys, which distinct
// pairs do not have, by row), found by comparing with every one of them. Quadratic in the run's length: for runs of
// small grids, where it replaces three sorts of the whole output and their gathers.
GPUPH_HD void ranked_row_copy(const int32_t* pairs, const int32_t* counts, const int64_t* offsets, int64_t cap,
                              int top_dim, const uint64_t* life, const uint64_t* tail, int64_t* rows, int64_t s,
                              int64_t i) {
  const uint64_t* l = life + offsets[s];
  const uint64_t* t = tail + offsets[s];
  const uint64_t li = l[i], ti = t[i];
  const int64_t n = counts[s];
  int64_t rank = 0;
  for (int64_t j = 0; j < n; ++j)
    rank += l[j] > li || (l[j] == li && (t[j] < ti || (t[j] == ti && j < i)));
  row_copy(pairs, offsets, cap, top_dim, rows, s, i, rank);
}

}  // namespace steps
}  // namespace gpuph
