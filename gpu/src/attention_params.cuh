// What every attention kernel (teaching and tensor-core, forward and backward) is given, and the
// position/mask logic they share: row maps (tensor row and global position of the i-th row a kernel
// visits), strided dilation, tile classification and the range of tiles a tile can see.
//
// The predicates are reference/include/ringlab/mask.hpp's BandMask::allows and DilationSelect::selects /
// same_segment, called on the device (nvcc --expt-relaxed-constexpr): the mask is written once.
#pragma once

#include <cstdint>

#include "ringlab/mask.hpp"

namespace ringlab::gpu::detail {

using i64 = long long;

constexpr int kMaxDilationHeads = 128;  // per-head DilationSelect entries travel in the kernel parameters

// Rows first_row + i·row_step of a tensor, at positions first_position + i·position_step, i < count.
struct RowRun {
  i64 count = 0;
  i64 first_row = 0;
  i64 row_step = 1;
  i64 first_position = 0;
  i64 position_step = 1;
};

// Up to two runs, in increasing position order: the rows a kernel visits, in visiting order.
struct RowMap {
  RowRun run[2];
  i64 rows = 0;  // run[0].count + run[1].count

  __host__ __device__ i64 row(i64 i) const {
    return i < run[0].count ? run[0].first_row + i * run[0].row_step
                            : run[1].first_row + (i - run[0].count) * run[1].row_step;
  }
  __host__ __device__ i64 position(i64 i) const {
    return i < run[0].count ? run[0].first_position + i * run[0].position_step
                            : run[1].first_position + (i - run[0].count) * run[1].position_step;
  }
};

// a / b and a mod b for a ≥ 0 and b > 0, in 32-bit arithmetic when both fit: a 64-bit division is a long
// software routine on the GPU, and a dilated block's plan did about twenty of them (head_view, segment_span)
// before the block could start (4.4 µs of a 43 µs block on an H100: bench/gpu/profile_blocks.py).
__host__ __device__ inline i64 divide_nonnegative(i64 a, i64 b) {
  if (((a | b) >> 31) == 0) return static_cast<unsigned>(a) / static_cast<unsigned>(b);
  return a / b;
}
__host__ __device__ inline i64 mod_nonnegative(i64 a, i64 b) { return a - divide_nonnegative(a, b) * b; }

// a mod m in [0, m), for any a and m > 0.
__host__ __device__ inline i64 positive_mod(i64 a, i64 m) {
  return a >= 0 ? mod_nonnegative(a, m) : m - 1 - mod_nonnegative(-(a + 1), m);
}

// x with a·x ≡ gcd(a, m) (mod m), by the extended Euclidean algorithm; also returns the gcd.
__host__ __device__ inline i64 inverse_mod(i64 a, i64 m, i64& gcd) {
  i64 old_r = positive_mod(a, m), r = m, old_x = 1, x = 0;
  while (r != 0) {
    const i64 q = divide_nonnegative(old_r, r);  // both ≥ 0
    const i64 next_r = old_r - q * r;
    old_r = r;
    r = next_r;
    const i64 next_x = old_x - q * x;
    old_x = x;
    x = next_x;
  }
  gcd = old_r;
  return positive_mod(old_x, m);
}

// The rows of `run` whose position is ≡ residue (mod modulus), again a run (stride multiplied by the
// period modulus / gcd(position_step, modulus)). Positions must be ≥ 0.
__host__ __device__ inline RowRun restrict_to_residue(const RowRun& run, i64 residue, i64 modulus) {
  RowRun none;
  none.count = 0;
  if (run.count == 0) return none;
  if (modulus == 1) return run;
  const i64 step = run.count == 1 ? 1 : run.position_step;
  const i64 need = positive_mod(residue - run.first_position, modulus);
  // The first selected row i solves i·step ≡ need (mod modulus); after it, every period-th row.
  i64 first = need, period = modulus;
  if (step != 1) {  // striped runs; contiguous ones (step 1) skip the divisions, each ~0.1 µs on a GPU thread
    i64 g = 1;
    const i64 inverse = inverse_mod(step, modulus, g);
    if (mod_nonnegative(need, g) != 0) return none;
    period = divide_nonnegative(modulus, g);
    first = period == 1 ? 0
                        : mod_nonnegative(mod_nonnegative(divide_nonnegative(need, g), period) *
                                              mod_nonnegative(inverse, period),
                                          period);
  }
  if (first >= run.count) return none;
  RowRun selected;
  selected.count = divide_nonnegative(run.count - 1 - first, period) + 1;
  selected.first_row = run.first_row + first * run.row_step;
  selected.row_step = run.row_step * period;
  selected.first_position = run.first_position + first * run.position_step;
  selected.position_step = run.position_step * period;
  return selected;
}

// One (pattern, offset) in 32-bit fields, so that a table for 128 heads fits the kernel parameters.
struct CompactSelect {
  int segment_length = 1, rate = 1, offset = 0;
  __host__ __device__ DilationSelect expand() const { return DilationSelect{segment_length, rate, offset}; }
};

// AttentionParams::accumulate_step (the host API's gpu::AccumulateStep, same values).
enum AccumulateStepCode : int { kAccumulateMiddle = 0, kAccumulateFirst = 1, kAccumulateLast = 2 };

// Everything the attention kernels read. Tensors are [B, rows, heads, D] (dtype), LSE/δ [B, H, rows_q].
struct AttentionParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  float* lse = nullptr;
  // Forward with accumulate: instead of writing O and LSE, ⊕-merge this block's (O, LSE) into the running fp32
  // O at `accumulate` [B, n, H, D] and the running LSE at `lse` (the ring's accumulator; no partial buffer).
  // accumulate_step (AccumulateStep): middle merges; first writes (O, LSE) over whatever the accumulator held;
  // last merges and writes the result to `out` in the dtype (the accumulator is read, not written). first and
  // last launch every query tile, also those that see no key (they write (0, −∞), or convert).
  float* accumulate = nullptr;
  int accumulate_step = 0;
  const void* dout = nullptr;
  const float* lse_in = nullptr;
  const float* delta = nullptr;
  float* dq = nullptr;
  float* dk = nullptr;
  float* dv = nullptr;
  // Backward, Hopper kernel only: instead of adding into the fp32 dk/dv, write this block's dK, dV at dk_out/dv_out,
  // rounded to the element type or in fp32 (GradientWrite::overwrite with one writer per key row: Hkv = H). A block whose
  // key rows see no query writes zeros; rows outside every head's view are the caller's to clear.
  void* dk_out = nullptr;
  void* dv_out = nullptr;
  bool dkv_out_fp32 = false;  // dk_out, dv_out hold fp32 (a ring step's partial) instead of the element type
  // A virtual ring's hop done by the Hopper kernels' producer warps (gpu::KernelSends): K and V [B, rows_k, Hkv, D]
  // copied to k_send / v_send; backward, dk = dk_from + this block's dK (dv likewise), each block copying its own
  // key rows before it adds to them. Null: no sends.
  void* k_send = nullptr;
  void* v_send = nullptr;
  const float* dk_from = nullptr;
  const float* dv_from = nullptr;

  i64 batch = 1, heads = 1, kv_heads = 1, head_dim = 0;
  i64 rows_q = 0, rows_k = 0;  // tensor rows of each side
  RowMap q_rows, k_rows;       // every row of the block, before dilation
  BandMask band;
  float scale = 1.0f;       // τ
  float scale_log2 = 1.0f;  // τ·log2(e): the kernels use exp2
  int dilation_count = 0;   // 0, 1 (every head) or H
  CompactSelect dilation[kMaxDilationHeads];
  // Per-head dilation (dilation_count = H): the rows each head selects on each side (block_attention.cu), so
  // that a block whose tile lies past its head's rows leaves before computing a plan. The grid is sized for
  // the head with the most; with LongNet's mixed rates most of a rate-4 head's blocks have nothing to do.
  int head_rows_q[kMaxDilationHeads], head_rows_k[kMaxDilationHeads];
  // Profiling only (launch.cuh, RINGLAB_KERNEL_TIMELINE): where the Hopper kernels record each block's phases.
  unsigned long long* timeline = nullptr;
};

// Per-block phase stamps for profiling (launch.cuh: RINGLAB_KERNEL_TIMELINE); compiled out otherwise.
// One block's record in the timeline buffer (u64 each).
// kViewed, kSearched: inside make_plan, the head's view and the visible tile range done (warp 0, lane 0).
enum TimelineField {
  kSm, kTiles, kStarted, kViewed, kSearched, kPlanned, kLanded, kLooped, kEnded, kTimelineFields
};

// Both read nothing (0) unless the timeline is compiled in, so that the kernels' stamps vanish.
__device__ __forceinline__ unsigned long long global_time_ns() {
  unsigned long long t = 0;
#if defined(RINGLAB_KERNEL_TIMELINE)
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
#endif
  return t;
}
__device__ __forceinline__ unsigned sm_id() {
  unsigned id = 0;
#if defined(RINGLAB_KERNEL_TIMELINE)
  asm volatile("mov.u32 %0, %%smid;" : "=r"(id));
#endif
  return id;
}
// Records `field` of this block (a no-op unless profiling).
__device__ __forceinline__ void record([[maybe_unused]] const AttentionParams& p, [[maybe_unused]] int field,
                                       [[maybe_unused]] unsigned long long value) {
#if defined(RINGLAB_KERNEL_TIMELINE)
  if (p.timeline == nullptr) return;
  const unsigned long long block = blockIdx.x + gridDim.x * (blockIdx.y + static_cast<unsigned long long>(gridDim.y) * blockIdx.z);
  p.timeline[block * kTimelineFields + field] = value;
#endif
}

// What one (batch, head) block sees: its rows on each side after dilation, and how to test a pair.
struct HeadView {
  RowMap q, k;
  i64 band_lo = 0, band_hi = 0;  // the BandMask
  bool dilated = false;
  bool strided = false;  // rows already selected by addressing; only band and segment remain to test
  DilationSelect select;

  // The per-element predicate on global positions (docs/semantics.md §2, §8).
  __host__ __device__ bool allows(i64 q_position, i64 k_position) const {
    if (!ringlab::BandMask{band_lo, band_hi}.allows(q_position, k_position)) return false;
    if (!dilated) return true;
    if (!select.same_segment(q_position, k_position)) return false;
    return strided || (select.selects(q_position) && select.selects(k_position));
  }
};

__host__ __device__ inline RowMap select_rows(const RowMap& all, const DilationSelect& select) {
  RowMap selected;
  int n = 0;
  for (int r = 0; r < 2; ++r) {
    const RowRun run = restrict_to_residue(all.run[r], select.offset, select.rate);
    if (run.count > 0) selected.run[n++] = run;
  }
  selected.rows = selected.run[0].count + (n > 1 ? selected.run[1].count : 0);
  if (n < 2) selected.run[1] = RowRun{};
  if (n < 1) selected.run[0] = RowRun{};
  return selected;
}

__host__ __device__ inline HeadView head_view(const AttentionParams& p, i64 head) {
  HeadView view;
  view.q = p.q_rows;
  view.k = p.k_rows;
  view.band_lo = p.band.lo;
  view.band_hi = p.band.hi;
  if (p.dilation_count > 0) {
    view.dilated = true;
    view.select = p.dilation[p.dilation_count == 1 ? 0 : head].expand();
    // r | w: (t mod w) mod r = t mod r, so the selected rows of each run form a run.
    view.strided = view.select.segment_length % view.select.rate == 0;
    if (view.strided) {
      view.q = select_rows(p.q_rows, view.select);
      view.k = select_rows(p.k_rows, view.select);
    }
  }
  return view;
}

enum class Coverage { empty, partial, full };

// The positions [begin, end) of the LongNet segments that the positions [lo, hi] of one tile touch, and
// whether that is a single segment: [⌊lo/w⌋·w, (⌊hi/w⌋ + 1)·w). Computed once per tile that a block keeps
// fixed, so that testing the tiles it iterates over against segments needs compares, not divisions
// (same_segment(q, k) ⇔ ⌊q/w⌋ = ⌊k/w⌋; positions are ≥ 0 under dilation). Without dilation: everything.
struct SegmentSpan {
  i64 begin = -BandMask::kUnbounded, end = BandMask::kUnbounded;
  bool single = true;
};
__host__ __device__ inline SegmentSpan segment_span(const HeadView& view, i64 lo, i64 hi) {
  SegmentSpan span;
  if (!view.dilated) return span;
  const i64 w = view.select.segment_length;
  const i64 first = divide_nonnegative(lo, w), last = divide_nonnegative(hi, w);  // positions ≥ 0 under dilation
  span.begin = first * w;
  span.end = (last + 1) * w;
  span.single = first == last;
  return span;
}

struct TileClass {
  Coverage coverage = Coverage::partial;
  bool band_only = true;  // a partial tile needs only the band test (no segment or selection test)
};

// MaskPredicate::classify for a tile pair (query positions [q_min, q_max], key positions [k_min, k_max]),
// where `span` is the segment span of the tile the block keeps fixed (`span_of_query`: the query tile) and
// the other tile's positions are tested against it. Refined for strided dilation: a pair of tiles inside
// one segment needs only the band, and is full when the band is.
__host__ __device__ inline TileClass classify(const HeadView& view, const SegmentSpan& span, bool span_of_query,
                                             i64 q_min, i64 q_max, i64 k_min, i64 k_max) {
  TileClass result;
  if (k_min - q_max > view.band_hi || k_max - q_min < view.band_lo) {
    result.coverage = Coverage::empty;
    return result;
  }
  const bool band_full = k_min - q_max >= view.band_lo && k_max - q_min <= view.band_hi;
  if (!view.dilated) {
    result.coverage = band_full ? Coverage::full : Coverage::partial;
    return result;
  }
  const i64 other_first = span_of_query ? k_min : q_min, other_last = span_of_query ? k_max : q_max;
  if (other_last < span.begin || other_first >= span.end) {  // no segment in common
    result.coverage = Coverage::empty;
    result.band_only = false;
    return result;
  }
  const bool one_segment = span.single && other_first >= span.begin && other_last < span.end;
  result.band_only = view.strided && one_segment;
  result.coverage = result.band_only && band_full ? Coverage::full : Coverage::partial;
  return result;
}

// Position range of tile t (rows [t·size, min((t+1)·size, map.rows))) of an increasing row map.
__host__ __device__ inline void tile_positions(const RowMap& map, i64 tile, int size, i64& first, i64& last) {
  const i64 begin = tile * size;
  const i64 end = begin + size < map.rows ? begin + size : map.rows;
  first = map.position(begin);
  last = map.position(end - 1);
}

// The first t in [lo, hi) where `holds(t)`, or hi if none, for a predicate that is false on a prefix of the
// range and true on the rest. Two ways to find it, with the same answer:
//   SerialSearch: binary search by one thread (the teaching kernels, the host);
//   WarpSearch:   the 32 lanes of a warp test 32 evenly spaced tiles at once and keep the interval where the
//                 predicate turns true: one round for up to 32 tiles, two for 1024. A block's plan waited
//                 2.4–4.5 µs for one thread's binary searches (bench/gpu/profile_blocks.py, H100), a tenth of
//                 a dilated block's work. Every lane must call it with the same arguments; all get the answer.
struct SerialSearch {
  template <class Holds>
  __host__ __device__ i64 operator()(i64 lo, i64 hi, Holds holds) const {
    while (lo < hi) {
      const i64 mid = (lo + hi) / 2;
      if (holds(mid)) hi = mid; else lo = mid + 1;
    }
    return lo;
  }
};
struct WarpSearch {
  template <class Holds>
  __device__ i64 operator()(i64 lo, i64 hi, Holds holds) const {
#if defined(__CUDA_ARCH__)
    const int lane = static_cast<int>(threadIdx.x % 32);
    while (lo < hi) {  // the answer is in [lo, hi]
      const i64 step = (hi - lo + 31) / 32;
      const i64 probe = lo + lane * step;
      const unsigned found = __ballot_sync(0xffffffffu, probe >= hi || holds(probe));
      if (found == 0) {  // every probe is below hi and false
        lo += 31 * step + 1;
        continue;
      }
      const int first = __ffs(found) - 1;  // the first probe that holds (or reached hi)
      if (first == 0) return lo;
      const i64 first_holding = lo + first * step;
      lo += (first - 1) * step + 1;  // the probe before it did not hold
      hi = first_holding < hi ? first_holding : hi;
    }
#endif
    return lo;
  }
};

// The tiles of `other` (size `size`) that may hold an allowed pair with the fixed tile at positions
// [lo_position, hi_position] (segment span `span`): [begin, end). Positions increase with the row index on
// both sides, so the tiles excluded for being too early and those excluded for being too late are a prefix
// and a suffix: two searches. `fixed_is_query` says which side the fixed tile is on.
template <class Search = SerialSearch>
__host__ __device__ inline void visible_tiles(const HeadView& view, const SegmentSpan& span, const RowMap& other,
                                              int size, bool fixed_is_query, i64 lo_position, i64 hi_position,
                                              i64& begin, i64& end, Search search = {}) {
  const i64 tiles = (other.rows + size - 1) / size;
  auto too_early = [&](i64 t) {  // every pair is excluded because tile t's positions are too small
    i64 first, last;
    tile_positions(other, t, size, first, last);
    if (last < span.begin) return true;  // its segments end before the fixed tile's
    return fixed_is_query ? last - lo_position < view.band_lo    // keys: k_max − q_min < lo
                          : lo_position - last > view.band_hi;   // queries: k_min − q_max > hi
  };
  auto too_late = [&](i64 t) {  // excluded because tile t's positions are too large
    i64 first, last;
    tile_positions(other, t, size, first, last);
    if (first >= span.end) return true;  // its segments start after the fixed tile's
    return fixed_is_query ? first - hi_position > view.band_hi   // keys: k_min − q_max > hi
                          : hi_position - first < view.band_lo;  // queries: k_max − q_min < lo
  };
  begin = search(0, tiles, [&](i64 t) { return !too_early(t); });
  end = search(begin, tiles, too_late);
}

// Among tiles [begin, end) of `other`, the range [full_begin, full_end) that classify() calls full: inside
// the fixed tile's one segment (strided dilation) or any (no dilation), with the band allowing every pair.
// Both conditions fail at a prefix and a suffix of the tiles (positions increase), so the kernels find the
// range once per block by two searches instead of classifying every tile. A tile with rows past the block
// is never full; the kernels check that themselves.
template <class Search = SerialSearch>
__host__ __device__ inline void full_tiles(const HeadView& view, const SegmentSpan& span, const RowMap& other, int size,
                                           bool fixed_is_query, i64 lo_position, i64 hi_position, i64 begin, i64 end,
                                           i64& full_begin, i64& full_end, Search search = {}) {
  full_begin = full_end = begin;
  if (view.dilated && !(view.strided && span.single)) return;  // the per-element predicate is always needed
  auto too_early = [&](i64 t) {
    i64 first, last;
    tile_positions(other, t, size, first, last);
    if (first < span.begin) return true;
    return fixed_is_query ? first - hi_position < view.band_lo   // keys: k_min − q_max < lo
                          : hi_position - first > view.band_hi;  // queries: k_max − q_min > hi
  };
  auto too_late = [&](i64 t) {
    i64 first, last;
    tile_positions(other, t, size, first, last);
    if (last >= span.end) return true;
    return fixed_is_query ? last - lo_position > view.band_hi    // keys: k_max − q_min > hi
                          : lo_position - last < view.band_lo;   // queries: k_min − q_max < lo
  };
  full_begin = search(begin, end, [&](i64 t) { return !too_early(t); });
  full_end = search(full_begin, end, too_late);
}

// Per-block constants of the tensor-core kernels: the head's view, the tile the block keeps fixed (its rows,
// position range and segment span), the range of tiles of the other side it visits and the element offset
// of its K/V head. Thread 0 computes them into shared memory and a barrier publishes them: the row maps
// alone are ~40 registers that the accumulators need, and after each barrier of the main loop the compiler
// reloads what it uses instead of keeping it live.
struct BlockPlan {
  HeadView view;
  SegmentSpan span;
  i64 fixed_begin = 0, fixed_end = 0;  // rows [begin, end) of the fixed tile in its side's row map
  i64 fixed_min = 0, fixed_max = 0;    // their positions
  i64 visit_begin = 0, visit_end = 0;  // tiles of the other side to visit
  i64 full_begin = 0, full_end = 0;    // among them, those whose every pair is allowed (full)
  i64 q_offset = 0, kv_offset = 0;     // elements to (batch, head, row 0) of Q/dO and of K/V
};

// Uninitialised shared storage for a BlockPlan (a __shared__ variable cannot have a constructor).
struct alignas(16) SharedBlockPlan {
  unsigned char bytes[sizeof(BlockPlan)];
  __device__ BlockPlan& get() { return *reinterpret_cast<BlockPlan*>(bytes); }
};

// The plan for the block with fixed tile `tile` (size `size`) on the query side (forward) or the key side
// (backward), head h, batch b. fixed_begin ≥ the side's rows means the block has nothing to do.
// Called by the 32 lanes of one warp (WarpSearch); the kernels let lane 0 publish it in shared memory.
__device__ inline BlockPlan make_plan(const AttentionParams& p, i64 b, i64 h, i64 tile, int size, int other_size,
                                      bool fixed_is_query) {
  BlockPlan plan;
  plan.view = head_view(p, h);
  if (threadIdx.x == 0) record(p, kViewed, global_time_ns());
  const RowMap& fixed = fixed_is_query ? plan.view.q : plan.view.k;
  const RowMap& other = fixed_is_query ? plan.view.k : plan.view.q;
  plan.q_offset = (b * p.rows_q * p.heads + h) * p.head_dim;
  plan.kv_offset = (b * p.rows_k * p.kv_heads + h * p.kv_heads / p.heads) * p.head_dim;
  plan.fixed_begin = tile * size;
  if (plan.fixed_begin >= fixed.rows) return plan;
  plan.fixed_end = plan.fixed_begin + size < fixed.rows ? plan.fixed_begin + size : fixed.rows;
  plan.fixed_min = fixed.position(plan.fixed_begin);
  plan.fixed_max = fixed.position(plan.fixed_end - 1);
  plan.span = segment_span(plan.view, plan.fixed_min, plan.fixed_max);
  visible_tiles(plan.view, plan.span, other, other_size, fixed_is_query, plan.fixed_min, plan.fixed_max,
                plan.visit_begin, plan.visit_end, WarpSearch{});
  if (threadIdx.x == 0) record(p, kSearched, global_time_ns());
  full_tiles(plan.view, plan.span, other, other_size, fixed_is_query, plan.fixed_min, plan.fixed_max,
             plan.visit_begin, plan.visit_end, plan.full_begin, plan.full_end, WarpSearch{});
  return plan;
}

// Whether head h has no rows in tile `tile` (size `size`) of the side the block keeps fixed: such a block
// returns at once (every thread, before any barrier). Only per-head dilation gives heads different rows.
__device__ inline bool head_lacks_tile(const AttentionParams& p, i64 h, i64 tile, int size, bool fixed_is_query) {
  if (p.dilation_count <= 1) return false;
  return tile * size >= (fixed_is_query ? p.head_rows_q[h] : p.head_rows_k[h]);
}

// Warp 0 of the block computes the plan; lane 0 stores it in shared memory (published by the caller's barrier).
__device__ inline void publish_plan(SharedBlockPlan& storage, const AttentionParams& p, i64 b, i64 h, i64 tile,
                                    int size, int other_size, bool fixed_is_query) {
  if (threadIdx.x >= 32) return;
  const BlockPlan plan = make_plan(p, b, h, tile, size, other_size, fixed_is_query);
  if (threadIdx.x == 0) storage.get() = plan;
}

}  // namespace ringlab::gpu::detail
