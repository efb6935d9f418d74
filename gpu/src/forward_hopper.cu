// The Hopper forward kernel (sm_90a: H100, H200): forward_fast.cu's algorithm with the matrix products on
// wgmma, which multiplies a 64-row tile of one warpgroup (4 warps) straight from shared memory, organised
// as FlashAttention-3 is. The mma.sync kernel is bound by every warp loading its own operand fragments with
// ldmatrix and by its warps doing copies, softmax and products in turn (bench/results: ~46% tensor pipe);
// here the tensor cores read Q, K and V from shared memory themselves, P stays in registers, one warpgroup
// only copies and two only compute, and their softmax overlaps products.
//
//   grid: (query tiles, H, B), heaviest query tiles first; block: 3 warpgroups (384 threads), BlockM = 128
//   query rows, BlockN = 128 keys per step. Shared memory (128-byte swizzle, the layout wgmma's descriptors
//   read, tiles.cuh Swizzle128Blocks): Q [128][D], and K, V [128][D] twice (two stages), plus mbarriers.
//   Producer (warpgroup 0, 40 registers by setmaxnreg): cp.async of Q, then K_t and V_t into stage t mod 2
//     once both consumers released that stage, by TMA (one thread, one instruction per 64 columns: tma.cuh)
//     where the tile lies in one run of rows, else by cp.async; either way the stage's `full` mbarrier
//     completes when the tile has landed (the same row maps as every kernel: strided dilation, zigzag/striped
//     chunks, GQA). With TMA the forward gained 24–30 % at D = 128: cp.async copies were its bottleneck.
//   Consumers (warpgroups 1, 2: 64 query rows each, 232 registers): for key tile t in the range the mask
//     can reach (make_plan, attention_params.cuh), pipelined within the warpgroup:
//       wait K_t, V_{t−1}; [turn] issue S = Q·K_tᵀ (wgmma m64n128k16, A = Q and B = K_t from shared memory,
//       K-major) and O += P_{t−1}·V_{t−1} (wgmma m64nDk16, A = P from registers, B = V from shared memory,
//       MN-major) [end turn]; wait for S, release K_t; mask S only if the tile is partial; softmax
//       (forward_common.cuh, the mma.sync kernel's code) while O's product still runs; wait for O,
//       release V_{t−1}; rescale O; P_t → registers.
//     The two consumers take turns at issuing (named barriers): one's softmax runs during the other's
//     products (FlashAttention-3's ping-pong).
//   Epilogue as forward_fast.cu: O / ℓ and LSE written, or ⊕-merged into the ring's fp32 accumulator.
//
// Compiled for sm_90a only (gpu/CMakeLists.txt); hopper_kernels_loadable() says whether this process's GPU
// can run it, and launch_fast_forward (forward_fast.cu) falls back to the mma.sync kernel otherwise.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <type_traits>

#include "cuda_check.cuh"
#include "forward_common.cuh"
#include "kernels.cuh"
#include "launch.cuh"
#include "pipeline.cuh"
#include "ptx.cuh"
#include "tiles.cuh"
#include "tma.cuh"
#include "workspace.cuh"
#include "wgmma.cuh"

namespace ringlab::gpu::detail {
namespace {

template <class Element_, int HeadDim>
struct HopperTraits {
  using Element = Element_;
  static constexpr int kHeadDim = HeadDim;
  static constexpr int kBlockM = 128;  // 64 rows per consumer warpgroup: wgmma's M
  static constexpr int kBlockN = 128;
  static constexpr int kConsumers = kBlockM / 64;                // consumer warpgroups
  static constexpr int kThreads = (kConsumers + 1) * 128;         // + the producer warpgroup
  // setmaxnreg moves registers within what the block got at launch (384 threads × 168 under
  // __launch_bounds__(384, 1)); asking for more than that makes the consumers' increase wait forever.
  static constexpr int kProducerRegisters = 40, kConsumerRegisters = 232;
  static_assert(128 * kProducerRegisters + kConsumers * 128 * kConsumerRegisters <= kThreads * 168,
                "setmaxnreg budgets exceed the block's registers");
  static constexpr int kTileBytesQ = kBlockM * HeadDim * 2;
  static constexpr int kTileBytesKV = kBlockN * HeadDim * 2;
  // Q slots 0 and 1 (this item's and the next one's), then K stage 0, K stage 1, V stage 0, V stage 1; +1024 to
  // align the start to the swizzle's 1024 bytes. D = 128: 193 KiB of the 227 an SM gives a block.
  static constexpr int kSharedBytes = 2 * kTileBytesQ + 4 * kTileBytesKV + 1024;
  static_assert(HeadDim % 64 == 0, "the 128-byte swizzle holds 64 values per row");
  static_assert(kConsumers == 2, "the consumers take turns in pairs");
};

// The mbarriers of one block. Item slot k mod 2 (round k's item, its plan and its Q buffer): plan published
// (plan_full, by the 32 lanes of producer warp 0), Q landed (q_full), plan and Q released by both consumers
// after the epilogue (item_free). K/V stage s landed (full) or released by both consumers (empty).
struct Barriers {
  unsigned long long plan_full[2], q_full[2], item_free[2];
  unsigned long long k_full[2], v_full[2], k_empty[2], v_empty[2];
};

// The work: items (query tile, head, batch), numbered batch by batch, head by head, and within a head heaviest
// (last) tile first; only tiles the head has rows in (per-head dilation gives a rate-r head 1/r of the rows).
// Block β takes item β first, then claims the next unclaimed item (an atomic counter) each time its producer
// has issued the last copies of the previous one: heaviest first and greedy, as the hardware hands blocks
// of a grid with one block per item to free SMs. Head by head keeps the items running at one time on one or
// two heads, whose K/V then stay in L2 (every head's heaviest tile first instead cost ~20 % at N = 16K: 16
// heads' K/V do not fit).
//
// Each item's plan (make_plan: 2–3 µs of a warp's binary searches, more in the producer's 40 registers) is
// computed beforehand by plan_items, one warp per item, into the launch's workspace; the producer copies it
// into shared memory (~0.3 KiB).
struct WorkItems {
  i64 query_tiles = 0;      // tiles of a head with every query row: ceil(rows_q / BlockM)
  i64 tiles_per_batch = 0;  // Σ over heads of the tiles each has rows in
  i64 items = 0;            // tiles_per_batch · B
  const BlockPlan* plans = nullptr;  // [items], by plan_items
  unsigned int* claimed = nullptr;   // items claimed past the first G (zeroed by plan_items)
};
struct WorkItem {
  i64 tile, h, b;
};
template <int BlockM>
__device__ __forceinline__ WorkItem work_item(const AttentionParams& p, const WorkItems& work, i64 item) {
  WorkItem w;
  w.b = item / work.tiles_per_batch;
  i64 rank = item - w.b * work.tiles_per_batch;
  if (p.dilation_count <= 1) {  // every head has every row
    w.h = rank / work.query_tiles;
    w.tile = work.query_tiles - 1 - (rank - w.h * work.query_tiles);
    return w;
  }
  for (w.h = 0; w.h + 1 < p.heads; ++w.h) {
    const i64 tiles = (p.head_rows_q[w.h] + BlockM - 1) / BlockM;
    if (rank < tiles) break;
    rank -= tiles;
  }
  w.tile = (p.head_rows_q[w.h] + BlockM - 1) / BlockM - 1 - rank;
  return w;
}

// One warp per item: its plan into work.plans[item]. Thread 0 zeroes the claim counter (the forward that
// follows on the stream starts after this kernel ends).
template <int BlockM, int BlockN>
__global__ void __launch_bounds__(128) plan_items(const __grid_constant__ AttentionParams p, const WorkItems work) {
  const i64 item = (static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (item == 0 && threadIdx.x == 0) *work.claimed = 0;
  if (item >= work.items) return;
  const WorkItem w = work_item<BlockM>(p, work, item);
  const BlockPlan plan = make_plan(p, w.b, w.h, w.tile, BlockM, BlockN, true, item);
  if (threadIdx.x % 32 == 0) const_cast<BlockPlan*>(work.plans)[item] = plan;
}

// Whether an item with this plan computes anything (a tile past its head's rows does not; nor, merging into a
// ring's accumulator, does one that visits no key tile: ⊕'s identity).
__device__ __forceinline__ bool item_works(const AttentionParams& p, const BlockPlan& plan) {
  if (plan.fixed_begin >= plan.view.q.rows) return false;
  return p.accumulate == nullptr || plan.visit_begin < plan.visit_end;
}

// `keys` / `values`: TMA descriptors of K and V for the key row steps of this launch's heads (tma.cuh); a tile
// whose step has none, or that crosses runs, is copied by cp.async. Both empty: every copy by cp.async.
template <class Traits>
__global__ void __launch_bounds__(Traits::kThreads, 1)
    hopper_forward(const __grid_constant__ AttentionParams p, const __grid_constant__ RowTileMaps keys,
                   const __grid_constant__ RowTileMaps values, const WorkItems work) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Element = typename Traits::Element;
  constexpr int D = Traits::kHeadDim, BM = Traits::kBlockM, BN = Traits::kBlockN;
  constexpr int NT = BN / 8, DT = D / 8;
  constexpr int kConsumerThreads = Traits::kConsumers * 128;
  using QLayout = Swizzle128Blocks<BM>;
  using KVLayout = Swizzle128Blocks<BN>;
  using ScoreMma = wgmma::Mma<Element, BN>;
  using OutputMma = wgmma::Mma<Element, D>;
  extern __shared__ unsigned char shared_raw[];
  unsigned char* shared = shared_raw + ((1024 - ptx::shared_address(shared_raw) % 1024) % 1024);
  const std::uint32_t sQ = ptx::shared_address(shared);  // Q slot u at sQ + u·kTileBytesQ
  const std::uint32_t sK = sQ + 2 * Traits::kTileBytesQ, sV = sK + 2 * Traits::kTileBytesKV;

  __shared__ SharedBlockPlan plans[2];
  __shared__ i64 slot_items[2];  // round k's item (≥ work.items: none, the block is done)
  __shared__ Barriers barriers;
  if (threadIdx.x == 0) {
    for (int slot = 0; slot < 2; ++slot) {
      ptx::mbarrier_init(ptx::shared_address(&barriers.plan_full[slot]), 32);  // producer warp 0
      ptx::mbarrier_init(ptx::shared_address(&barriers.q_full[slot]), 128);  // the producer's 128 threads
      ptx::mbarrier_init(ptx::shared_address(&barriers.item_free[slot]), kConsumerThreads);
      ptx::mbarrier_init(ptx::shared_address(&barriers.k_full[slot]), 128);
      ptx::mbarrier_init(ptx::shared_address(&barriers.v_full[slot]), 128);
      ptx::mbarrier_init(ptx::shared_address(&barriers.k_empty[slot]), kConsumerThreads);
      ptx::mbarrier_init(ptx::shared_address(&barriers.v_empty[slot]), kConsumerThreads);
    }
    ptx::mbarrier_init_fence();  // TMA copies complete the full barriers
  }
  __syncthreads();  // the last block-wide barrier: from here the producer and the consumers meet on mbarriers
  auto slot_barrier = [&](unsigned long long (&barrier)[2], int n) { return ptx::shared_address(&barrier[n & 1]); };
  // Both sides walk the items the producer claims, published in slot_items: they agree on each round k's slot
  // (k mod 2) and each key tile's stage (g, the block's key tiles so far, mod 2); phase parities are (k >> 1) & 1
  // and (g >> 1) & 1.
  const int q_stride = static_cast<int>(p.heads * D), kv_stride = static_cast<int>(p.kv_heads * D);

  if (threadIdx.x < 128) {
    // Producer warpgroup. Per item (round k): warp 0 claims it and copies its plan into slot k mod 2 (once
    // both consumers released the slot's previous item, k − 2), then all 128 threads copy Q into the slot and
    // K_t, V_t into stage g mod 2 once both consumers released the stage's previous tile (g − 2), g counting
    // the block's key tiles over all its items. Each thread arrives once on a stage's
    // full barrier per tile. A tile inside one run whose row step has a descriptor is one TMA copy by thread 0,
    // which also announces the bytes that must land before the phase ends; any other tile is copied by
    // cp.async, each thread's arrival waiting for its own copies (tiles.cuh). With fewer blocks than items the
    // next item's plan, Q and first K/V tiles are made while the consumers finish this one.
    ptx::set_max_registers_decrease<Traits::kProducerRegisters>();
    constexpr int kProducerBarrier = 3;  // named barrier of the producer's 4 warps (1, 2: the consumers' turns)
    constexpr int kPlanWords = sizeof(BlockPlan) / 8;  // 41: warp 0 copies a plan in 8-byte words
    static_assert(sizeof(BlockPlan) % 8 == 0, "a BlockPlan is i64s");
    int g = 0;
    for (int k = 0;; ++k) {
      const int slot = k & 1;
      if (k >= 2) ptx::mbarrier_wait(slot_barrier(barriers.item_free, k), ((k >> 1) & 1) ^ 1);
      if (threadIdx.x < 32) {
        i64 claim = 0;
        if (threadIdx.x == 0) claim = k == 0 ? blockIdx.x : gridDim.x + static_cast<i64>(atomicAdd(work.claimed, 1u));
        claim = __shfl_sync(0xffffffffu, claim, 0);
        if (claim < work.items) {
          if (threadIdx.x == 0) {
            record(p, claim, kStarted, global_time_ns());
            record(p, claim, kSm, sm_id());
          }
          for (int word = threadIdx.x; word < kPlanWords; word += 32)
            reinterpret_cast<long long*>(plans[slot].bytes)[word] =
                __ldg(reinterpret_cast<const long long*>(work.plans + claim) + word);
          if (threadIdx.x == 0) record(p, claim, kPlanned, global_time_ns());
        }
        if (threadIdx.x == 0) slot_items[slot] = claim;
        __syncwarp();
        ptx::mbarrier_arrive(slot_barrier(barriers.plan_full, k));  // releases item and plan to the consumers
      }
      ptx::named_barrier_sync(kProducerBarrier, 128);  // the item and its plan, for the producer's other warps
      const i64 item = slot_items[slot];
      if (item >= work.items) break;
      const WorkItem w = work_item<BM>(p, work, item);
      const BlockPlan& plan = plans[slot].get();
      const std::uint32_t q_full = slot_barrier(barriers.q_full, k);
      if (!item_works(p, plan)) {
        ptx::mbarrier_arrive(q_full);  // nothing to copy; the phase still completes, keeping parities in step
        continue;
      }
      const HeadView& view = plan.view;
      load_tile_async<Element, BM, D, 128, QLayout>(sQ + slot * Traits::kTileBytesQ,
                                                    static_cast<const Element*>(p.q) + plan.q_offset, q_stride,
                                                    view.q, plan.fixed_begin);
      ptx::cp_async_arrive(q_full);
      const Element* key_rows = static_cast<const Element*>(p.k) + plan.kv_offset;
      const Element* value_rows = static_cast<const Element*>(p.v) + plan.kv_offset;
      const int kv_head = static_cast<int>(w.h * p.kv_heads / p.heads);
      auto copy = [&](const RowTileMaps& maps, const Element* rows, std::uint32_t tile, std::uint32_t full, i64 first) {
        const TileRun run = tile_in_run<BN>(view.k, first);
        const CUtensorMap* map = run.single ? maps.find(run.row_step) : nullptr;
        if (map == nullptr) {
          load_tile_async<Element, BN, D, 128, KVLayout>(tile, rows, kv_stride, view.k, first);
          ptx::cp_async_arrive(full);
        } else if (threadIdx.x == 0) {
          ptx::mbarrier_arrive_expect_bytes(full, Traits::kTileBytesKV);
          copy_tile_tma<BN, D>(tile, map, kv_head, w.b * p.rows_k + run.first_row, run.row_step, full);
        } else {
          ptx::mbarrier_arrive(full);
        }
      };
      const int j_begin = static_cast<int>(plan.visit_begin), tiles = static_cast<int>(plan.visit_end) - j_begin;
      for (int t = 0; t < tiles; ++t, ++g) {
        const int stage = g & 1;
        const i64 first = static_cast<i64>(j_begin + t) * BN;
        if (g >= 2) ptx::mbarrier_wait(slot_barrier(barriers.k_empty, g), ((g >> 1) & 1) ^ 1);
        copy(keys, key_rows, sK + stage * Traits::kTileBytesKV, slot_barrier(barriers.k_full, g), first);
        if (g >= 2) ptx::mbarrier_wait(slot_barrier(barriers.v_empty, g), ((g >> 1) & 1) ^ 1);
        copy(values, value_rows, sV + stage * Traits::kTileBytesKV, slot_barrier(barriers.v_full, g), first);
      }
    }
    ptx::cp_async_wait<0>();
    return;
  }

  // Consumer warpgroups 0 and 1: 64 query rows each.
  ptx::set_max_registers_increase<Traits::kConsumerRegisters>();
  const int consumer_thread = static_cast<int>(threadIdx.x) - 128;
  const int warp = consumer_thread / 32, lane = consumer_thread % 32;
  const int consumer = warp / 4;
  const int warp_row = warp * 16;  // consumer·64 + (warp mod 4)·16: this warp's rows of the accumulators
  const bool recorder = consumer_thread == 0;  // the thread that records the item's phases when profiling

  // The two consumers take turns at issuing their products (FlashAttention-3's ping-pong): consumer c waits
  // on named barrier 1 + c until the other one has issued, so that one's softmax runs while the other's
  // products keep the tensor cores busy. Turns run on across items. Consumer 1 lets consumer 0 go first and
  // every turn ends by letting the other go; consumer 0 takes the one arrival left over before it exits.
  constexpr int kTurnBarrier = 1;  // + c: consumer c's turn (named barriers 1, 2; 0 is __syncthreads)
  if (consumer == 1) ptx::named_barrier_arrive(kTurnBarrier + 0, kConsumerThreads);
  auto begin_turn = [&] { ptx::named_barrier_sync(kTurnBarrier + consumer, kConsumerThreads); };
  auto end_turn = [&] { ptx::named_barrier_arrive(kTurnBarrier + 1 - consumer, kConsumerThreads); };
  auto wait_landed = [&](std::uint32_t barrier, int parity) {
    ptx::mbarrier_wait(barrier, parity);
    wgmma::fence_proxy_async();  // the copies (generic proxy) before wgmma's reads (async proxy)
  };

  int g = 0;
  for (int k = 0;; ++k) {
    const int slot = k & 1;
    ptx::mbarrier_wait(slot_barrier(barriers.plan_full, k), (k >> 1) & 1);
    if (slot_items[slot] >= work.items) break;
    const BlockPlan& plan = plans[slot].get();
    if (!item_works(p, plan)) {
      ptx::mbarrier_arrive(slot_barrier(barriers.item_free, k));
      continue;
    }
    const HeadView& view = plan.view;
    const std::uint32_t sQ_item = sQ + slot * Traits::kTileBytesQ;
    const int j_begin = static_cast<int>(plan.visit_begin);
    const int tiles = static_cast<int>(plan.visit_end) - j_begin;  // key tiles t = 0 .. tiles − 1: j = j_begin + t
    if (recorder) record(p, slot_items[slot], kTiles, tiles | (p.accumulate != nullptr ? 1ull << 32 : 0));  // bit 32: merging

    // Descriptors (wgmma.cuh). Q and K are K-major (D contiguous, the sum of S = Q·Kᵀ runs along it); V is
    // MN-major for O += P·V (D contiguous, the sum runs over keys, down its rows).
    auto q_descriptor = [&](int kk) { return wgmma::k_major(sQ_item, BM, consumer * 64, kk); };
    auto k_descriptor = [&](int stage, int kk) {
      return wgmma::k_major(sK + stage * Traits::kTileBytesKV, BN, 0, kk);
    };
    auto v_descriptor = [&](int stage, int kk) {
      return wgmma::mn_major(sV + stage * Traits::kTileBytesKV, BN, 0, kk);
    };

    float acc_o[1][DT][4];
    zero(acc_o);
    SoftmaxRows<1> rows;
    rows.reset();
    float s[1][NT][4];            // S_t, then P_t in fp32
    std::uint32_t a[BN / 16][4];  // P_{t−1} as wgmma's A operand (k16 step kk = keys 16kk .. 16kk + 15)

    auto issue_scores = [&](int stage) {
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) ScoreMma::ss(s[0], q_descriptor(kk), k_descriptor(stage, kk), kk > 0);
      wgmma::commit_group();
    };
    auto issue_output = [&](int stage) {
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) OutputMma::rs(acc_o[0], a[kk], v_descriptor(stage, kk), 1);
      wgmma::commit_group();
    };
    // Mask S_t (key tile j) if its tile is partial, then its half of the online softmax (P_t in s; O untouched).
    auto softmax = [&](int j, float (&correction)[1][2]) {
      if (j < plan.full_begin || j >= plan.full_end || static_cast<i64>(j + 1) * BN > view.k.rows) {
        i64 k_min, k_max;
        tile_positions(view.k, j, BN, k_min, k_max);
        const TileClass tile =
            classify(view, plan.span, /*span_of_query=*/true, plan.fixed_min, plan.fixed_max, k_min, k_max);
        mask_scores<1, NT>(s, view, plan.fixed_begin + warp_row, static_cast<i64>(j) * BN, lane, tile.band_only);
      }
      return softmax_scores(s, rows, p.scale_log2, correction);
    };
    auto p_to_registers = [&] {
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) p_fragment<Element>(s, 0, kk, a[kk]);
    };
    // The products read `a` and write acc_o/s until the wait: keep the compiler's hands off them till then.
    auto fence_registers = [&] {
      ScoreMma::fence_operands(s[0]);
      OutputMma::fence_operands(acc_o[0]);
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk)
#pragma unroll
        for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(a[kk][e])::"memory");
    };

    // Software pipeline (FlashAttention-3's intra-warpgroup overlap): step t issues S_t = Q·K_tᵀ and
    // O += P_{t−1}·V_{t−1} together, waits for S_t only, and runs S_t's softmax while the tensor cores still
    // compute O; then waits for O, rescales it and turns P_t into A fragments. Each buffer is released to the
    // producer as soon as the product reading it is done. The loop counts the block's key tiles n = g + t
    // (stage n mod 2, phase parity (n >> 1) & 1); key tile j = j_begin + t = n + j_shift.
    wait_landed(slot_barrier(barriers.q_full, k), (k >> 1) & 1);  // (without tiles: its rows stage O below)
    if (tiles > 0) {
      const int n_end = g + tiles, j_shift = j_begin - g;
      wait_landed(slot_barrier(barriers.k_full, g), (g >> 1) & 1);
      if (recorder) record(p, slot_items[slot], kLanded, global_time_ns());
      begin_turn();
      issue_scores(g & 1);
      end_turn();
      wgmma::wait_group<0>();
      fence_registers();
      ptx::mbarrier_arrive(slot_barrier(barriers.k_empty, g));
      float correction[1][2];
      softmax(j_begin, correction);  // O is still 0: nothing to rescale
      p_to_registers();
      for (int n = g + 1; n < n_end; ++n) {
        wait_landed(slot_barrier(barriers.k_full, n), (n >> 1) & 1);
        wait_landed(slot_barrier(barriers.v_full, n - 1), ((n - 1) >> 1) & 1);
        begin_turn();
        issue_scores(n & 1);
        issue_output((n - 1) & 1);
        end_turn();
        wgmma::wait_group<1>();  // S_t (the older group) is done; O += P_{t−1}·V_{t−1} may still run
        ScoreMma::fence_operands(s[0]);
        ptx::mbarrier_arrive(slot_barrier(barriers.k_empty, n));
        const bool rescale = softmax(n + j_shift, correction);
        wgmma::wait_group<0>();
        fence_registers();
        ptx::mbarrier_arrive(slot_barrier(barriers.v_empty, n - 1));
        if (rescale) rescale_output(acc_o, correction);
        p_to_registers();
      }
      const int last = n_end - 1;
      wait_landed(slot_barrier(barriers.v_full, last), (last >> 1) & 1);
      begin_turn();
      issue_output(last & 1);
      end_turn();
      wgmma::wait_group<0>();
      fence_registers();
      ptx::mbarrier_arrive(slot_barrier(barriers.v_empty, last));
      g = n_end;
      if (recorder) record(p, slot_items[slot], kLooped, global_time_ns());
    }

    // Epilogue: each warp stages O in its own rows of the item's Q tile (its warpgroup's products are complete).
    float row_lse[1][2], row_inverse[1][2];
    finish_rows(rows, p.scale, row_lse, row_inverse);
    const WorkItem done = work_item<BM>(p, work, slot_items[slot]);
    float* lse_head = p.lse + (done.b * p.heads + done.h) * p.rows_q;
    const i64 first_query = plan.fixed_begin + warp_row;
    if (p.accumulate != nullptr) {
      accumulate_rows(acc_o, row_lse, row_inverse, view.q, first_query, plan.fixed_end, lse_head,
                      p.accumulate + plan.q_offset, q_stride, lane);
    } else {
      store_rows<Element, QLayout>(acc_o, row_inverse, shared + slot * Traits::kTileBytesQ, warp_row, view.q,
                                   first_query, plan.fixed_end, static_cast<Element*>(p.out) + plan.q_offset,
                                   q_stride, lane);
      write_lse_rows(row_lse, view.q, first_query, plan.fixed_end, lse_head, lane);
    }
    if (recorder) record(p, slot_items[slot], kEnded, global_time_ns());
    ptx::mbarrier_arrive(slot_barrier(barriers.item_free, k));  // the plan and Q slot may take the item after next
  }
  if (consumer == 0) begin_turn();  // consumer 1's last arrival
#endif
}

std::atomic<std::int64_t> launches_with_several_items_per_block{0};

template <class Traits>
void launch(const AttentionParams& params, i64 rows_q, const HopperForwardOptions& options, cudaStream_t stream) {
  RowTileMaps keys, values;
  if (options.tma_copies) {
    i64 steps[RowTileMaps::kMaxSteps];
    const int count = collect_row_steps(params, /*keys=*/true, Traits::kBlockN, steps);
    constexpr bool bfloat16 = std::is_same_v<typename Traits::Element, __nv_bfloat16>;
    encode_row_maps(keys, params.k, bfloat16, params.batch, params.rows_k, params.kv_heads, Traits::kHeadDim, steps,
                    count, Traits::kBlockN);
    encode_row_maps(values, params.v, bfloat16, params.batch, params.rows_k, params.kv_heads, Traits::kHeadDim, steps,
                    count, Traits::kBlockN);
  }
  constexpr int BM = Traits::kBlockM;
  WorkItems work;
  work.query_tiles = (rows_q + BM - 1) / BM;
  if (params.dilation_count <= 1) {
    work.tiles_per_batch = work.query_tiles * params.heads;
  } else {
    for (i64 h = 0; h < params.heads; ++h) work.tiles_per_batch += (params.head_rows_q[h] + BM - 1) / BM;
  }
  work.items = work.tiles_per_batch * params.batch;
  if (work.items == 0) return;
  // The plans (8-byte aligned: the producer copies them in 8-byte words), then the claim counter.
  const std::size_t plan_bytes = static_cast<std::size_t>(work.items) * sizeof(BlockPlan);
  LaunchWorkspace workspace(plan_bytes + sizeof(unsigned int), stream);
  work.plans = static_cast<const BlockPlan*>(workspace.data());
  work.claimed = reinterpret_cast<unsigned int*>(static_cast<unsigned char*>(workspace.data()) + plan_bytes);
  constexpr int kPlanWarps = 4;
  plan_items<BM, Traits::kBlockN>
      <<<static_cast<unsigned>((work.items + kPlanWarps - 1) / kPlanWarps), 32 * kPlanWarps, 0, stream>>>(params, work);
  RINGLAB_CUDA_CHECK(cudaGetLastError());
  // One block per SM (193 KiB of shared memory and 384 threads at 168 registers each fill one).
  const i64 blocks = options.persistent ? std::min<i64>(work.items, multiprocessor_count()) : work.items;
  if (blocks < work.items) ++launches_with_several_items_per_block;
  launch_per_item(hopper_forward<Traits>, work.items, blocks, Traits::kThreads, Traits::kSharedBytes, params, stream,
                  "hopper_forward", keys, values, work);
}

}  // namespace

std::int64_t hopper_forward_launches_with_several_items_per_block() {
  return launches_with_several_items_per_block.load();
}

bool hopper_kernels_loadable() {
  int device = 0;
  RINGLAB_CUDA_CHECK(cudaGetDevice(&device));
  // Per device: 0 unknown, 1 no, 2 yes (ring threads ask concurrently, one device each).
  static std::atomic<int> known[64];
  if (device < 64 && known[device].load() != 0) return known[device].load() == 2;
  int major = 0, minor = 0;
  RINGLAB_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  RINGLAB_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  bool available = major == 9 && minor == 0;  // sm_90a code runs on compute capability 9.0 only
  if (available) {
    cudaFuncAttributes attributes{};
    const cudaError_t status =
        cudaFuncGetAttributes(&attributes, hopper_forward<HopperTraits<__nv_bfloat16, 128>>);
    if (status == cudaErrorInvalidDeviceFunction || status == cudaErrorNoKernelImageForDevice) {
      (void)cudaGetLastError();  // a binary without sm_90a code: not an error, the mma.sync kernels run
      available = false;
    } else {
      RINGLAB_CUDA_CHECK(status);
    }
  }
  if (device < 64) known[device].store(available ? 2 : 1);
  return available;
}

template <class Element, int HeadDim>
void launch_hopper_forward(const AttentionParams& params, i64 rows_q, const HopperForwardOptions& options,
                           cudaStream_t stream) {
  launch<HopperTraits<Element, HeadDim>>(params, rows_q, options, stream);
}

template void launch_hopper_forward<__nv_bfloat16, 64>(const AttentionParams&, i64, const HopperForwardOptions&,
                                                             cudaStream_t);
template void launch_hopper_forward<__nv_bfloat16, 128>(const AttentionParams&, i64, const HopperForwardOptions&,
                                                             cudaStream_t);
template void launch_hopper_forward<__half, 64>(const AttentionParams&, i64, const HopperForwardOptions&,
                                                             cudaStream_t);
template void launch_hopper_forward<__half, 128>(const AttentionParams&, i64, const HopperForwardOptions&,
                                                             cudaStream_t);

}  // namespace ringlab::gpu::detail
