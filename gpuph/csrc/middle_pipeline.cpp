// The device pipeline of H1 of 3D grids (kernels/middle_steps.cuh), written once against a table of launchers: the
// CUDA binding passes the kernels of kernels/middle_cuda.cu, the test-only op gpuph::_cubical_pairs_pipeline
// (cubical_pipeline.cpp) the CPU emulation below, so that CI checks the pipeline's logic against the CPU engine.
//
// On the device: pixel keys and ranks (one stable segmented sort), every edge's key with the compression marks,
// every 2-cell's column and pivot with a scatter-min of the oldest column of each row, the apparent pairs, and the
// reduction of the other (residual) columns in parallel rounds. On the host: only what the rounds leave, if any
// (the CPU engine's pass 3, for the images that have such columns).
#include "middle_pipeline.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <vector>

#include "cubical_engine.h"
#include "cubical_ops.h"
#include "merge_tree.cuh"
#include "pipeline_helpers.h"

namespace gpuph {
namespace {

// The residual reduction's rounds on the device: launched in batches, with one device-to-host copy after each; at
// most max_residual_rounds in all before the host finishes (set_max_residual_rounds). Rounds past the last that added
// anything return at once, so a batch longer than needed costs only its launches (two per round), and a batch too
// short one more copy. The first batch is sized from the rounds the previous call needed (first_rounds: a quarter
// more, plus 2), since a training loop calls on similar grids again and again; later batches double, up to
// kMostRounds. Measured (CPU emulation): 7-25 rounds with additions on 32^3 to 64^3 noise and smooth fields.
//
// The spare region the columns grow into is sized likewise, from what the previous call's columns took past their
// first buffers (spare_sixteenths, in sixteenths of the first buffers: a quarter more than it took), 4x the first
// buffers on the first call. Measured: the columns take 0.7-18x their first buffers (freudenthal smooth fields the
// least, T noise the most). A region too small costs a batch of rounds more (the driver adds room for the stuck
// columns).
//
// The stats op starts from the first-call settings, so that its counts do not depend on earlier calls.
// residual_spare: the spare region's entries (testing aid; negative: sized as above).
constexpr int64_t kFirstRounds = 32, kFewestRounds = 4, kMostRounds = 128;
// One per construction (V, T, freudenthal), whose columns differ most (see above).
std::atomic<int64_t> first_rounds[3] = {kFirstRounds, kFirstRounds, kFirstRounds};
std::atomic<int64_t> max_residual_rounds{1024};
std::atomic<int64_t> residual_spare{-1};
constexpr int64_t kSpareSixteenths = 64, kFewestSpareSixteenths = 1, kMostSpareSixteenths = 512;
std::atomic<int64_t> spare_sixteenths[3] = {kSpareSixteenths, kSpareSixteenths, kSpareSixteenths};

// A profiler range around the enclosing scope (torch.profiler; gpuph.bench.breakdown groups time by these names).
#define GPUPH_STAGE(name) RECORD_FUNCTION(name, std::vector<c10::IValue>())

// ---------------------------------------------------------------------------------------------- CPU emulation
template <typename K>
void cpu_edge_keys_typed(const MiddlePlan& m, const int32_t* rank, int64_t B, K* ekey) {
  each_element(B * m.P * m.ntypes[1], [&](int64_t t) { mid::edge_key_cell(m, rank, ekey, t); });
}

const char* cpu_edge_keys(const MiddlePlan& m, bool wide, const int32_t* rank, int64_t B, void* ekey, void*) {
  if (wide)
    cpu_edge_keys_typed(m, rank, B, static_cast<int64_t*>(ekey));
  else
    cpu_edge_keys_typed(m, rank, B, static_cast<int32_t*>(ekey));
  return nullptr;
}

template <typename K>
void cpu_columns_typed(const MiddlePlan& m, const int32_t* rank, const K* ekey, int64_t B, K* col_key,
                       uint8_t* col_pivot, K* row_oldest) {
  each_element(B * m.P * m.ntypes[2],
       [&](int64_t t) { mid::column_cell(m, rank, ekey, col_key, col_pivot, row_oldest, t, atomic_min<K>); });
}

const char* cpu_columns(const MiddlePlan& m, bool wide, const int32_t* rank, const void* ekey, int64_t B,
                        void* col_key, uint8_t* col_pivot, void* row_oldest, void*) {
  if (wide)
    cpu_columns_typed(m, rank, static_cast<const int64_t*>(ekey), B, static_cast<int64_t*>(col_key), col_pivot,
                      static_cast<int64_t*>(row_oldest));
  else
    cpu_columns_typed(m, rank, static_cast<const int32_t*>(ekey), B, static_cast<int32_t*>(col_key), col_pivot,
                      static_cast<int32_t*>(row_oldest));
  return nullptr;
}

template <typename K>
void cpu_apparent_typed(const MiddlePlan& m, const K* col_key, const uint8_t* col_pivot, const K* ekey,
                        const int32_t* order, const int64_t* vkey, int64_t B, K* row_oldest, uint8_t* status,
                        int32_t* birth, int32_t* death) {
  // Serial: the writes into row_oldest race (harmlessly, see apparent_cell) with other cells' reads.
  each_element_serial(B * m.P * m.ntypes[2], [&](int64_t t) {
    mid::apparent_cell(m, col_key, col_pivot, ekey, order, vkey, row_oldest, status, birth, death, t);
  });
}

const char* cpu_apparent(const MiddlePlan& m, bool wide, const void* col_key, const uint8_t* col_pivot,
                         const void* ekey, const int32_t* order, const int64_t* vkey, int64_t B, void* row_oldest,
                         uint8_t* status, int32_t* birth, int32_t* death, void*) {
  if (wide)
    cpu_apparent_typed(m, static_cast<const int64_t*>(col_key), col_pivot, static_cast<const int64_t*>(ekey), order,
                       vkey, B, static_cast<int64_t*>(row_oldest), status, birth, death);
  else
    cpu_apparent_typed(m, static_cast<const int32_t*>(col_key), col_pivot, static_cast<const int32_t*>(ekey), order,
                       vkey, B, static_cast<int32_t*>(row_oldest), status, birth, death);
  return nullptr;
}

template <typename K>
void cpu_claims(const MiddlePlan& m, const K* ro, const int64_t* res, int64_t nres, int64_t* owner, int64_t round,
                const mid::ResidualColumns<K>& c) {
  each_element(nres, [&](int64_t j) { mid::residual_claim_cell(m, res, c, ro, owner, round, j, atomic_min<int64_t>); });
}

const char* cpu_residual_init(const MiddlePlan& m, bool wide, const void* ekey, const int64_t* res, int64_t nres,
                              const ResidualBuffers& c, void*) {
  each_element(nres, [&](int64_t j) {
    if (wide)
      mid::residual_init_cell(m, static_cast<const int64_t*>(ekey), res, mid::typed<int64_t>(c), j);
    else
      mid::residual_init_cell(m, static_cast<const int32_t*>(ekey), res, mid::typed<int32_t>(c), j);
  });
  return nullptr;
}

template <typename K>
void cpu_residual_rounds_typed(const MiddlePlan& m, const K* ek, const K* ro, const int64_t* res, int64_t nres,
                               int64_t* owner, const mid::ResidualColumns<K>& c, int64_t first_round, int rounds,
                               int64_t* added) {
  for (int i = 0; i < rounds; ++i) {
    if (i > 0 && added[i - 1] == 0) return;  // as the kernels: nothing to add in this round either
    const int64_t r = first_round + i;
    cpu_claims(m, ro, res, nres, owner, r, c);
    // Side by side, as on the device: a column reads its own buffer and its owners', which nobody writes now.
    each_element(nres, [&](int64_t j) {
      const int n = mid::residual_step_cell(m, ek, ro, res, owner, r, c, j, fetch_add<int64_t>);
      if (n) fetch_add<int64_t>(added + i, n);
    });
  }
}

const char* cpu_residual_rounds(const MiddlePlan& m, bool wide, const void* ekey, const void* row_oldest,
                                const int64_t* res, int64_t nres, int64_t* owner, const ResidualBuffers& c,
                                int64_t first_round, int rounds, int64_t* added, void*) {
  if (wide)
    cpu_residual_rounds_typed(m, static_cast<const int64_t*>(ekey), static_cast<const int64_t*>(row_oldest), res,
                              nres, owner, mid::typed<int64_t>(c), first_round, rounds, added);
  else
    cpu_residual_rounds_typed(m, static_cast<const int32_t*>(ekey), static_cast<const int32_t*>(row_oldest), res,
                              nres, owner, mid::typed<int32_t>(c), first_round, rounds, added);
  return nullptr;
}

template <typename K>
void cpu_residual_final_typed(const MiddlePlan& m, const K* ek, const K* ck, const K* ro, const int64_t* res,
                              int64_t nres, int64_t* owner, int64_t round, const mid::ResidualColumns<K>& c,
                              const int32_t* order, const int64_t* vkey, int32_t* birth, int32_t* death,
                              int64_t* counts) {
  cpu_claims(m, ro, res, nres, owner, round, c);
  each_element(nres, [&](int64_t j) {
    if (!mid::residual_final_cell(m, ek, ck, ro, res, owner, round, c, order, vkey, birth, death, j))
      fetch_add(counts, int64_t(1));
    else if (birth[j] >= 0)
      fetch_add(counts + 1, int64_t(1));
  });
}

const char* cpu_residual_final(const MiddlePlan& m, bool wide, const void* ekey, const void* col_key_res,
                               const void* row_oldest, const int64_t* res, int64_t nres, int64_t* owner,
                               int64_t round, const ResidualBuffers& c, const int32_t* order, const int64_t* vkey,
                               int32_t* birth, int32_t* death, int64_t* counts, void*) {
  if (wide)
    cpu_residual_final_typed(m, static_cast<const int64_t*>(ekey), static_cast<const int64_t*>(col_key_res),
                             static_cast<const int64_t*>(row_oldest), res, nres, owner, round, mid::typed<int64_t>(c),
                             order, vkey, birth, death, counts);
  else
    cpu_residual_final_typed(m, static_cast<const int32_t*>(ekey), static_cast<const int32_t*>(col_key_res),
                             static_cast<const int32_t*>(row_oldest), res, nres, owner, round, mid::typed<int32_t>(c),
                             order, vkey, birth, death, counts);
  return nullptr;
}

// Storage of the residual columns (mid::ResidualColumns) as tensors on the device: segment 0 holds a buffer of
// kResidualCap entries for each column, then the spare region the columns grow into; when that is used up, the driver
// adds a segment with a new spare region (nothing is copied).
struct ResidualStorage {
  std::vector<at::Tensor> segs;
  at::Tensor off, cap, len, stuck, top;
  int64_t spare = 0;       // entries of every spare region, past what the stuck columns need
  int64_t spare_at = 0;    // the current spare region: the last segment's [spare_at, spare_at + spare_size)
  int64_t spare_size = 0;
  int64_t taken = 0;  // entries given to columns past their first buffer, in the regions before the current one
  ResidualBuffers buffers() {
    ResidualBuffers b{{},
                      off.data_ptr<int64_t>(),
                      cap.data_ptr<int32_t>(),
                      len.data_ptr<int32_t>(),
                      stuck.data_ptr<uint8_t>(),
                      top.data_ptr<int64_t>(),
                      int64_t(segs.size()) - 1,
                      spare_at,
                      spare_size};
    for (size_t i = 0; i < segs.size(); ++i) b.seg[i] = segs[i].data_ptr();
    return b;
  }
  // n columns of kResidualCap entries; spare entries to grow into.
  static ResidualStorage make(int64_t n, const at::TensorOptions& key_opts, int64_t spare) {
    ResidualStorage s;
    const auto o = key_opts.dtype(at::kLong);
    s.spare = s.spare_size = spare;
    s.spare_at = n * mid::kResidualCap;
    s.segs.push_back(at::empty({s.spare_at + spare}, key_opts));
    s.off = at::arange(n, o) * mid::kResidualCap;  // segment 0
    s.cap = at::full({n}, mid::kResidualCap, key_opts.dtype(at::kInt));
    s.len = at::empty({n}, key_opts.dtype(at::kInt));
    s.stuck = at::zeros({n}, key_opts.dtype(at::kByte));
    s.top = at::zeros({1}, o);
    return s;
  }
  int64_t entries_held() const {
    int64_t n = 0;
    for (const at::Tensor& t : segs) n += t.size(0);
    return n;
  }
  // The current entries of columns j, one column after another (in the order of j), gathered from their segments.
  at::Tensor entries(const at::Tensor& j) const {
    const at::Tensor lens = len.index_select(0, j).to(at::kLong);
    const at::Tensor which = at::repeat_interleave(at::arange(j.size(0), lens.options()), lens);
    const at::Tensor first = lens.cumsum(0) - lens;
    const at::Tensor within = at::arange(which.size(0), lens.options()) - first.index_select(0, which);
    const at::Tensor code = off.index_select(0, j).index_select(0, which) + within;  // (segment, offset)
    if (segs.size() == 1) return segs[0].index_select(0, code);  // one segment: the codes are its offsets
    const at::Tensor seg = code.bitwise_right_shift(mid::kSegmentShift), pos = code.bitwise_and(mid::kOffsetMask);
    at::Tensor out = at::zeros({code.size(0)}, segs[0].options());
    for (size_t i = 0; i < segs.size(); ++i)
      out = at::where(seg.eq(int64_t(i)), segs[i].index_select(0, pos.clamp_max(segs[i].size(0) - 1)), out);
    return out;
  }
  // The columns stuck for want of spare room go on: a new segment holds a spare region with the buffers they asked
  // for (stuck: kGrowth steps) and room for as many more. Returns how many, 0 if none can or the segments are used up
  // (then the host finishes). top_h: *top as last read.
  int64_t grow(int64_t top_h) {
    taken += spare_taken(top_h);
    if (segs.size() == size_t(mid::kSegments)) return 0;
    const at::Tensor steps = stuck.to(at::kLong);
    const at::Tensor grows = steps.gt(0).logical_and(steps.lt(mid::kStuckForGood));
    static_assert(mid::kGrowth == 4, "the capacities below are cap << 2 steps");
    const at::Tensor ncap = cap.to(at::kLong).bitwise_left_shift(2 * steps.clamp_max(8)).clamp_max(mid::kMaxCap);
    const at::Tensor need = at::where(grows, ncap, 0);
    const at::Tensor counts = at::stack({grows.sum().to(at::kLong), need.sum()}).cpu();
    const int64_t k = counts[0].item<int64_t>(), needed = counts[1].item<int64_t>();
    if (k == 0) return 0;
    // As much again for the columns that outgrow their buffers next (at least `spare`): fewer batches.
    spare_size = needed + std::max(spare, needed);
    spare_at = 0;
    segs.push_back(at::empty({spare_size}, segs[0].options()));
    stuck.masked_fill_(grows, 0);
    top.zero_();
    return k;
  }
  // Entries the columns took from the current spare region, given top_h, *top as last read (it passes the region's
  // end by the failed takes once used up).
  int64_t spare_taken(int64_t top_h) const { return std::clamp<int64_t>(top_h, 0, spare_size); }
};

// The residual reduction of the images `imgs` (ascending) on the host. res_img / res_key / first / len: image, key,
// and where in eids the current entries (the device's rounds) start and how many, of every residual column, in
// (image, key) order. Returns rows (image, 1, birth, death) int64 on the host.
template <typename K>
at::Tensor reduce_on_host(const GridPlan& g, const at::Tensor& imgs, const at::Tensor& res_img,
                          const at::Tensor& res_key, const at::Tensor& eids, const at::Tensor& first,
                          const at::Tensor& len, const at::Tensor& order, const at::Tensor& vcls,
                          const at::Tensor& ekey, at::Tensor& row_oldest) {
  const int64_t nimg = imgs.size(0);
  const int64_t* img = imgs.data_ptr<int64_t>();
  const int64_t* ri = res_img.data_ptr<int64_t>();
  const K* rk = res_key.data_ptr<K>();
  const int64_t nres = res_img.size(0);
  std::vector<int64_t> start(size_t(nimg) + 1, nres);
  for (int64_t j = 0, i = 0; j < nimg; ++j) {
    while (ri[i] != img[j]) ++i;
    start[size_t(j)] = i;
  }
  std::vector<std::vector<RawPair>> found(static_cast<size_t>(nimg));
  auto one = [&](int64_t j) {
    const int64_t s0 = start[size_t(j)], s1 = start[size_t(j) + 1];
    const std::vector<K> rest(rk + s0, rk + s1);  // already in key order
    const StartColumns<K> start_cols{eids.data_ptr<K>(), first.data_ptr<int64_t>() + s0, len.data_ptr<int32_t>() + s0};
    MiddleBuffers<K> mb;
    const int64_t e = ekey.size(1);
    reduce_middle_rest(g, order[j].data_ptr<int32_t>(), vcls[j].data_ptr<int32_t>(), ekey.data_ptr<K>() + j * e,
                       row_oldest.data_ptr<K>() + j * e, rest, start_cols, mb, found[size_t(j)]);
  };
  at::parallel_for(0, nimg, 1, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) one(j);
  });
  int64_t total = 0;
  for (const auto& f : found) total += int64_t(f.size());
  at::Tensor rows = at::empty({total, 4}, at::TensorOptions().dtype(at::kLong));
  int64_t* w = rows.data_ptr<int64_t>();
  for (int64_t j = 0; j < nimg; ++j)
    for (const RawPair& p : found[size_t(j)]) {
      w[0] = img[j];
      w[1] = 1;
      w[2] = unpad_index(g.n, g.pstride, g.pn, 3, p.birth);
      w[3] = unpad_index(g.n, g.pstride, g.pn, 3, p.death);
      w += 4;
    }
  return rows;
}

}  // namespace

int64_t set_max_residual_rounds(int64_t n) {
  // A round's number goes into the owner entries' top bits (mid::claim_value): past kMaxRounds they would wrap.
  TORCH_CHECK_VALUE(n >= 0 && n < mid::kMaxRounds, "gpuph: the residual rounds' limit is 0 to ", mid::kMaxRounds - 1);
  return max_residual_rounds.exchange(n);
}

int64_t set_residual_spare(int64_t n) { return residual_spare.exchange(n); }

std::vector<int64_t> residual_hints(int64_t construction, int64_t rounds, int64_t sixteenths) {
  TORCH_CHECK_VALUE(construction >= 0 && construction < 3, "gpuph: construction code is 0, 1 or 2");
  const size_t c = size_t(construction);
  std::vector<int64_t> old{first_rounds[c].load(), spare_sixteenths[c].load()};
  if (rounds >= 0) first_rounds[c] = std::clamp(rounds, kFewestRounds, kMostRounds);
  if (sixteenths >= 0) spare_sixteenths[c] = std::clamp(sixteenths, kFewestSpareSixteenths, kMostSpareSixteenths);
  return old;
}

MidLaunchers cpu_middle_launchers() {
  return MidLaunchers{cpu_edge_keys,         cpu_columns,         cpu_apparent,
                      cpu_residual_init,     cpu_residual_rounds, cpu_residual_final};
}

MiddleLaunch middle_launch(const MTLaunchers& mt, const MidLaunchers& mid, const at::Tensor& xc, const GridPlan& g,
                           const at::Tensor& keys, void* stream) {
  TORCH_CHECK(g.D == 3, "gpuph: middle_launch is for 3D grids");
  const int64_t B = xc.size(0);
  TORCH_CHECK_VALUE(B < (int64_t(1) << 26), "gpuph: H1 of 3D grids takes batches of fewer than 2^26 images, got ", B,
                    "; split the batch");
  const bool f64 = xc.scalar_type() == at::kDouble;
  const auto opts = xc.options();
  const auto i32 = opts.dtype(at::kInt), i64 = opts.dtype(at::kLong), u8 = opts.dtype(at::kByte);
  MiddleLaunch l{middle_plan_for(g.construction, g.n), !narrow_middle_keys(g)};  // int64 keys only where needed
  const MiddlePlan& m = l.m;
  const int64_t P = g.P, N = g.N, per1 = P * m.ntypes[1], per2 = P * m.ntypes[2];
  const auto kk = opts.dtype(l.wide ? at::kLong : at::kInt);
  const int64_t none = l.wide ? int64_t(mid::no_column<int64_t>()) : int64_t(mid::no_column<int32_t>());

  // Ranks: pixels in (value, flat index) order, by one stable sort of every image's value keys (border cells last).
  at::Tensor rank;
  {
    GPUPH_STAGE("gpuph::h1::ranks");
    at::Tensor vkey_all = at::empty({B, P}, i64);
    {
      const at::Tensor all = at::ones({B * P}, u8);  // every pixel's key is a sort key: cand_key is first_key
      check(mt.sort_keys(g, keys.data_ptr(), f64, all.data_ptr<uint8_t>(), B, vkey_all.data_ptr<int64_t>(),
                         vkey_all.data_ptr<int64_t>(), stream),
            "sort keys");
    }
    auto sorted = at::sort(vkey_all, /*stable=*/true, /*dim=*/1, /*descending=*/false);
    l.vkey = std::get<0>(sorted).narrow(1, 0, N).contiguous();
    const at::Tensor order64 = std::get<1>(sorted).narrow(1, 0, N).contiguous();
    l.order = order64.to(at::kInt);
    rank = at::full({B, P}, INT32_MAX, i32);
    rank.scatter_(1, order64, at::arange(N, i32).expand({B, N}).contiguous());
  }

  l.ekey = at::empty({B, per1}, kk);
  l.col_key = at::empty({B * per2}, kk);
  at::Tensor col_pivot = at::empty({B * per2}, u8);
  l.row_oldest = at::full({B, per1}, none, kk);
  l.status = at::empty({B * per2}, u8);
  l.birth = at::empty({B * per2}, i32);
  l.death = at::empty({B * per2}, i32);
  {
    GPUPH_STAGE("gpuph::h1::cells");
    check(mid.edge_keys(m, l.wide, rank.data_ptr<int32_t>(), B, l.ekey.data_ptr(), stream), "edge keys");
    check(mid.columns(m, l.wide, rank.data_ptr<int32_t>(), l.ekey.data_ptr(), B, l.col_key.data_ptr(),
                      col_pivot.data_ptr<uint8_t>(), l.row_oldest.data_ptr(), stream),
          "columns");
    rank.reset();
    check(mid.apparent(m, l.wide, l.col_key.data_ptr(), col_pivot.data_ptr<uint8_t>(), l.ekey.data_ptr(),
                       l.order.data_ptr<int32_t>(), l.vkey.data_ptr<int64_t>(), B, l.row_oldest.data_ptr(),
                       l.status.data_ptr<uint8_t>(), l.birth.data_ptr<int32_t>(), l.death.data_ptr<int32_t>(),
                       stream),
          "apparent pairs");
  }
  l.residual = l.status.eq(mid::kResidual);
  l.apparent = l.status.eq(mid::kApparentPair);
  l.sizes = at::stack({l.residual.sum(), l.apparent.sum()});
  return l;
}

at::Tensor middle_finish(const MidLaunchers& mid, MiddleLaunch& l, const at::Tensor& xc, const GridPlan& g,
                         int64_t nres, int64_t napp, void* stream, MiddleStats* stats) {
  const auto opts = xc.options();
  const auto i32 = opts.dtype(at::kInt), i64 = opts.dtype(at::kLong);
  const MiddlePlan& m = l.m;
  const bool wide = l.wide;
  const int64_t B = xc.size(0), N = g.N, per1 = g.P * m.ntypes[1], per2 = g.P * m.ntypes[2];
  const auto kk = opts.dtype(wide ? at::kLong : at::kInt);
  const int64_t none = wide ? int64_t(mid::no_column<int64_t>()) : int64_t(mid::no_column<int32_t>());
  const at::Tensor &vkey = l.vkey, &order = l.order, &ekey = l.ekey;
  at::Tensor& row_oldest = l.row_oldest;
  if (stats) {
    stats->columns = l.col_key.ne(none).sum().item<int64_t>();
    stats->apparent = napp + l.status.eq(mid::kApparentZero).sum().item<int64_t>();
    stats->residual = nres;
  }

  // The per-cell buffers are let go as soon as they are spent (here and below), so that the residual reduction's
  // storage may take their memory: on large batches they are most of the device memory a call holds.
  at::Tensor rows;
  {
    GPUPH_STAGE("gpuph::h1::apparent_rows");
    const at::Tensor app = at::nonzero_static(l.apparent, napp).view(-1);  // sized: no second synchronisation
    rows = at::stack({app.div(per2, "floor"), at::ones_like(app), l.birth.index_select(0, app).to(at::kLong),
                      l.death.index_select(0, app).to(at::kLong)},
                     1);
  }
  l.apparent.reset();
  l.birth.reset();
  l.death.reset();
  l.status.reset();
  if (nres == 0) return rows;

  // The residual columns, numbered in (image, key) order, reduced on the device in rounds (middle_steps.cuh).
  at::Tensor res = at::nonzero_static(l.residual, nres).view(-1);
  at::Tensor res_key = l.col_key.index_select(0, res);
  l.residual.reset();
  l.col_key.reset();
  {
    // Keys are below 2^37 and images below 2^26 (checked above): one int64 sort key.
    const at::Tensor perm = std::get<1>(at::sort(res.div(per2, "floor") * (int64_t(1) << 37) + res_key.to(at::kLong),
                                                 /*stable=*/true, 0, false));
    res = res.index_select(0, perm).contiguous();
    res_key = res_key.index_select(0, perm).contiguous();
  }
  const int64_t first_entries = nres * mid::kResidualCap;
  const size_t hint = size_t(g.construction);
  const int64_t spare16 = stats ? kSpareSixteenths : spare_sixteenths[hint].load();
  const int64_t spare = residual_spare.load() >= 0 ? residual_spare.load() : first_entries * spare16 / 16;
  ResidualStorage cols = ResidualStorage::make(nres, kk, spare);
  at::Tensor owner = at::full({B * per1}, INT64_MAX, i64);
  at::Tensor rbirth = at::empty({nres}, i32), rdeath = at::empty({nres}, i32);
  int64_t not_final = 0, found = 0;
  {
    GPUPH_STAGE("gpuph::h1::residual_rounds");
    const int64_t* rp = res.data_ptr<int64_t>();
    check(mid.residual_init(m, wide, ekey.data_ptr(), rp, nres, cols.buffers(), stream), "residual columns");
    int64_t round = 0, launched = 0, last_busy = 0, busy_rounds = 0, additions = 0, batches = 0, top_h = 0;
    const int64_t first_batch = stats ? kFirstRounds : first_rounds[hint].load();
    int64_t batch = first_batch;
    for (;;) {
      // A batch of rounds, then the final check with the claims of one more (round ids are never reused), and one
      // copy: the additions of every round, the columns not final, the pairs found, the stuck columns.
      const int64_t n = std::max<int64_t>(0, std::min(batch, max_residual_rounds.load() - round));
      at::Tensor tally = at::zeros({n + 2}, i64);
      if (n > 0)
        check(mid.residual_rounds(m, wide, ekey.data_ptr(), row_oldest.data_ptr(), rp, nres,
                                  owner.data_ptr<int64_t>(), cols.buffers(), round, int(n), tally.data_ptr<int64_t>(),
                                  stream),
              "residual rounds");
      round += n;
      check(mid.residual_final(m, wide, ekey.data_ptr(), res_key.data_ptr(), row_oldest.data_ptr(), rp, nres,
                               owner.data_ptr<int64_t>(), round, cols.buffers(), order.data_ptr<int32_t>(),
                               vkey.data_ptr<int64_t>(), rbirth.data_ptr<int32_t>(), rdeath.data_ptr<int32_t>(),
                               tally.data_ptr<int64_t>() + n, stream),
            "residual pairs");
      ++round;
      ++batches;
      const at::Tensor host = at::cat({tally, cols.stuck.sum().to(at::kLong).view({1}), cols.top}).cpu();
      const int64_t* h = host.data_ptr<int64_t>();
      for (int64_t i = 0; i < n; ++i) {
        additions += h[i];
        busy_rounds += h[i] > 0;
        if (h[i] > 0) last_busy = launched + i + 1;
      }
      launched += n;
      not_final = h[n];
      found = h[n + 1];
      top_h = h[n + 3];
      if (not_final == 0 || round >= max_residual_rounds.load()) break;
      // Stuck columns (the spare region used up) get room to grow here; if the last round added nothing and none
      // could grow, what is left goes to the host. A batch that ran out of rounds is followed by a longer one, one
      // that stopped for want of room by one as long as the first.
      const int64_t regrown = h[n + 2] > 0 ? cols.grow(top_h) : 0;
      const bool idle = n > 0 && h[n - 1] == 0;
      if (idle && regrown == 0) break;
      batch = idle ? first_batch : std::min<int64_t>(2 * batch, kMostRounds);
    }
    const int64_t taken = cols.taken + cols.spare_taken(top_h);
    if (!stats && not_final == 0) {
      first_rounds[hint] = std::min(kMostRounds, std::max(kFewestRounds, last_busy + last_busy / 4 + 2));
      spare_sixteenths[hint] = std::clamp<int64_t>((taken * 20 + first_entries - 1) / first_entries,
                                                   kFewestSpareSixteenths, kMostSpareSixteenths);
    }
    if (stats) {
      stats->pool = cols.entries_held();
      stats->taken = taken;
      stats->device_additions = additions;
      stats->rounds = busy_rounds;
      stats->grown = cols.cap.gt(mid::kResidualCap).sum().item<int64_t>();
      stats->finished_on_host = not_final > 0;
      stats->batches = batches;
    }
  }
  if (not_final == 0) {  // reduced on the device: its pairs
    GPUPH_STAGE("gpuph::h1::residual_rows");
    const at::Tensor pairs = at::nonzero_static(rbirth.ge(0), found).view(-1);  // sized by the last check
    return at::cat({rows, at::stack({res.index_select(0, pairs).div(per2, "floor"), at::ones_like(pairs),
                                     rbirth.index_select(0, pairs).to(at::kLong),
                                     rdeath.index_select(0, pairs).to(at::kLong)},
                                    1)});
  }

  // Some columns could not grow further, or the rounds ran out: the host finishes the reduction from the columns as
  // they are (their current entries, one after another), with what it reads of the images that have any.
  const at::Tensor len = cols.len;
  const at::Tensor lens64 = len.to(at::kLong);
  const at::Tensor first = lens64.cumsum(0) - lens64;
  const at::Tensor eids = cols.entries(at::arange(nres, lens64.options()));
  at::Tensor imgs_h, res_img_h, res_key_h, eids_h, first_h, len_h, order_h, vcls_h, ekey_h, row_h;
  {
    GPUPH_STAGE("gpuph::h1::to_host");
    const at::Tensor res_img = res.div(per2, "floor");
    const at::Tensor imgs = std::get<0>(at::unique_consecutive(res_img));
    const at::Tensor vk = vkey.index_select(0, imgs);
    const at::Tensor vcls =
        at::cat({at::zeros({imgs.size(0), 1}, i32),
                 vk.narrow(1, 1, N - 1).ne(vk.narrow(1, 0, N - 1)).cumsum(1, at::kInt)},
                1);
    const std::vector<at::Tensor> h =
        to_host({imgs, res_img, res_key, eids, first, len, order.index_select(0, imgs), vcls,
                 ekey.index_select(0, imgs), row_oldest.index_select(0, imgs)});
    imgs_h = h[0];
    res_img_h = h[1];
    res_key_h = h[2];
    eids_h = h[3];
    first_h = h[4];
    len_h = h[5];
    order_h = h[6];
    vcls_h = h[7];
    ekey_h = h[8];
    row_h = h[9];
  }
  at::Tensor rows_h;
  {
    GPUPH_STAGE("gpuph::h1::residual_reduction");
    rows_h = wide ? reduce_on_host<int64_t>(g, imgs_h, res_img_h, res_key_h, eids_h, first_h, len_h, order_h,
                                            vcls_h, ekey_h, row_h)
                  : reduce_on_host<int32_t>(g, imgs_h, res_img_h, res_key_h, eids_h, first_h, len_h, order_h,
                                            vcls_h, ekey_h, row_h);
  }
  GPUPH_STAGE("gpuph::h1::to_device");
  return at::cat({rows, rows_h.to(xc.device())});
}

}  // namespace gpuph
