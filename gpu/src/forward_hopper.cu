// The Hopper forward kernel (sm_90a: H100, H200): forward_fast.cu's algorithm with the matrix products on
// wgmma, which multiplies a 64-row tile of one warpgroup (4 warps) straight from shared memory, organised
// as FlashAttention-3 is. The mma.sync kernel is bound by every warp loading its own operand fragments with
// ldmatrix and by its warps doing copies, softmax and products in turn (bench/results: ~46% tensor pipe);
// here the tensor cores read Q, K and V from shared memory themselves, P stays in registers, one warpgroup
// only copies and two only compute, and their softmax overlaps products.
//
//   grid: (query tiles, H, B), heaviest query tiles first; block: 3 warpgroups (384 threads), BlockM = 128
//   query rows, BlockN = 128 keys per step. Shared memory (128-byte swizzle, the layout wgmma's descriptors
//   read, tiles.cuh Swizzle128Blocks): Q [128][D], and K, V [128][D] in S stages (as many as fit: 3 at D = 128,
//   4 at D = 64; 3 rather than 2 took 3 % fewer cycles at D = 128, bench/results/gpu-forward-stages-2026-11-23-H100.md),
//   plus mbarriers.
//   Producer (warpgroup 0, 40 registers by setmaxnreg): cp.async of Q, then K_t and V_t into stage t mod S
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
//   Epilogue as forward_fast.cu: O / ℓ and LSE written, or ⊕-merged into the ring's fp32 accumulator (whose rows
//   the producer asks into L2 once its copies are issued).
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
#include "kernel_sends.cuh"
#include "kernels.cuh"
#include "launch.cuh"
#include "pipeline.cuh"
#include "ptx.cuh"
#include "tiles.cuh"
#include "tma.cuh"
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
  // K/V stages: as many as the 227 KiB of shared memory a block may have hold beside Q (3 at D = 128).
  static constexpr int kStages = std::min(4, (227 * 1024 - 1024 - 1024 - kTileBytesQ) / (2 * kTileBytesKV));
  // Q, then K stages 0 .. S − 1, V stages 0 .. S − 1; +1024 to align the start to the swizzle's 1024 bytes.
  static constexpr int kSharedBytes = kTileBytesQ + 2 * kStages * kTileBytesKV + 1024;
  static_assert(kStages >= 2, "the pipeline needs two K/V stages");
  static_assert(HeadDim % 64 == 0, "the 128-byte swizzle holds 64 values per row");
  static_assert(kConsumers == 2, "the consumers take turns in pairs");
};

// The mbarriers of one block: Q landed; K/V stage s landed (full) or released by both consumers (empty).
template <int Stages>
struct Barriers {
  unsigned long long q_full, k_full[Stages], v_full[Stages], k_empty[Stages], v_empty[Stages];
};

// `keys` / `values`: TMA descriptors of K and V for the key row steps of this launch's heads (tma.cuh); a tile
// whose step has none, or that crosses runs, is copied by cp.async. Both empty: every copy by cp.async.
// Sends: a virtual ring's hop rides along (kernel_sends.cuh); a separate instantiation, so that the kernel
// without it keeps its registers.
template <class Traits, bool Sends>
__global__ void __launch_bounds__(Traits::kThreads, 1)
    hopper_forward(const __grid_constant__ AttentionParams p, const __grid_constant__ RowTileMaps keys,
                   const __grid_constant__ RowTileMaps values) {
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
  const std::uint32_t sQ = ptx::shared_address(shared);
  constexpr int S = Traits::kStages;
  const std::uint32_t sK = sQ + Traits::kTileBytesQ, sV = sK + S * Traits::kTileBytesKV;

  const i64 h = blockIdx.y, b = blockIdx.z;
  __shared__ SharedBlockPlan plan_storage;
  __shared__ Barriers<S> barriers;
  // Heavy (late) query tiles first: causal blocks finish together.
  const i64 tile = static_cast<i64>(gridDim.x) - 1 - blockIdx.x;
  if (head_lacks_tile(p, h, tile, BM, true)) return;  // (not in the timeline either)
  if (threadIdx.x == 0) {
    record(p, kStarted, global_time_ns());
    record(p, kSm, sm_id());
    record(p, kTiles, p.accumulate != nullptr ? 1ull << 32 : 0);  // bit 32: merging; the tiles come later
  }
  publish_plan(plan_storage, p, b, h, tile, BM, BN, true);
  if (threadIdx.x == 0) {
    ptx::mbarrier_init(ptx::shared_address(&barriers.q_full), 128);
    for (int stage = 0; stage < S; ++stage) {
      ptx::mbarrier_init(ptx::shared_address(&barriers.k_full[stage]), 128);  // the producer's 128 threads
      ptx::mbarrier_init(ptx::shared_address(&barriers.v_full[stage]), 128);
      ptx::mbarrier_init(ptx::shared_address(&barriers.k_empty[stage]), kConsumerThreads);
      ptx::mbarrier_init(ptx::shared_address(&barriers.v_empty[stage]), kConsumerThreads);
    }
    ptx::mbarrier_init_fence();  // TMA copies complete the full barriers
  }
  __syncthreads();
  if (threadIdx.x == 0) record(p, kPlanned, global_time_ns());
  const BlockPlan& plan = plan_storage.get();
  const HeadView& view = plan.view;
  if (plan.fixed_begin >= view.q.rows) return;
  // A virtual ring's hop (kernel_sends.cuh): this block's share of K's and V's bytes.
  constexpr int kElementBytes = sizeof(Element);
  auto send_unit = [&](i64 g) { return slice_unit<kElementBytes>(p, g); };
  // Merging, a query tile that sees no key tile adds nothing (⊕ identity); a ring's first and last steps still
  // write its rows.
  if (p.accumulate != nullptr && p.accumulate_step == kAccumulateMiddle && plan.visit_begin >= plan.visit_end) {
    if constexpr (Sends) {
      i64 first, end;
      block_slice<kElementBytes>(p, first, end);
      send_rest(send_unit, first, end, static_cast<int>(threadIdx.x), Traits::kThreads);
    }
    return;
  }
  const int q_stride = static_cast<int>(p.heads * D), kv_stride = static_cast<int>(p.kv_heads * D);
  const int j_begin = static_cast<int>(plan.visit_begin);
  const int tiles = static_cast<int>(plan.visit_end) - j_begin;  // key tiles t = 0 .. tiles − 1: j = j_begin + t
  // Tile t uses stage t mod S; the phase of its barriers' use is ⌊t / S⌋ mod 2.
  auto stage_barrier = [&](unsigned long long (&barrier)[S], int t) { return ptx::shared_address(&barrier[t % S]); };
  auto phase = [](int t) { return (t / S) & 1; };

  if (threadIdx.x < 128) {
    // Producer warpgroup: copies Q, then K_t and V_t into stage t mod S once both consumers released the
    // stage's previous tile (t − S). Each of its 128 threads arrives once on the stage's full barrier per
    // tile. A tile inside one run whose row step has a descriptor is one TMA copy by thread 0, which also
    // announces the bytes that must land before the phase ends; any other tile is copied by cp.async, each
    // thread's arrival waiting for its own copies (tiles.cuh).
    ptx::set_max_registers_decrease<Traits::kProducerRegisters>();
    load_tile_async<Element, BM, D, 128, QLayout>(sQ, static_cast<const Element*>(p.q) + plan.q_offset, q_stride,
                                                  view.q, plan.fixed_begin);
    ptx::cp_async_arrive(ptx::shared_address(&barriers.q_full));
    const Element* key_rows = static_cast<const Element*>(p.k) + plan.kv_offset;
    const Element* value_rows = static_cast<const Element*>(p.v) + plan.kv_offset;
    const int kv_head = static_cast<int>(h * p.kv_heads / p.heads);
    auto copy = [&](const RowTileMaps& maps, const Element* rows, std::uint32_t tile, std::uint32_t full, i64 first) {
      const TileRun run = tile_in_run<BN>(view.k, first);
      const CUtensorMap* map = run.single ? maps.find(run.row_step) : nullptr;
      if (map == nullptr) {
        load_tile_async<Element, BN, D, 128, KVLayout>(tile, rows, kv_stride, view.k, first);
        ptx::cp_async_arrive(full);
      } else if (threadIdx.x == 0) {
        ptx::mbarrier_arrive_expect_bytes(full, Traits::kTileBytesKV);
        copy_tile_tma<BN, D>(tile, map, kv_head, b * p.rows_k + run.first_row, run.row_step, full);
      } else {
        ptx::mbarrier_arrive(full);
      }
    };
    const int tid = static_cast<int>(threadIdx.x);
    i64 sent = 0, send_end = 0;  // the hop's units: the next to send, and the end of this block's share
    if constexpr (Sends) block_slice<kElementBytes>(p, sent, send_end);
    for (int t = 0; t < tiles; ++t) {
      const int stage = t % S;
      const i64 first = static_cast<i64>(j_begin + t) * BN;
      if (t >= S) ptx::mbarrier_wait(stage_barrier(barriers.k_empty, t), phase(t) ^ 1);
      copy(keys, key_rows, sK + stage * Traits::kTileBytesKV, stage_barrier(barriers.k_full, t), first);
      if (t >= S) ptx::mbarrier_wait(stage_barrier(barriers.v_empty, t), phase(t) ^ 1);
      copy(values, value_rows, sV + stage * Traits::kTileBytesKV, stage_barrier(barriers.v_full, t), first);
      // Two units of the hop per thread per tile, before waiting for the next stage.
      if constexpr (Sends)
        if (sent < send_end) sent = send_pair(send_unit, sent, send_end, tid, 128);
    }
    if constexpr (Sends) send_rest(send_unit, sent, send_end, tid, 128);
    // A merging block reads its rows' old O and LSE in its epilogue, from memory that other blocks and steps
    // have long since pushed out of L2: ask for them now, S tiles before the consumers finish (one row each).
    if (p.accumulate != nullptr && p.accumulate_step != kAccumulateFirst) {
      const i64 query = plan.fixed_begin + threadIdx.x;
      if (query < plan.fixed_end) {
        const i64 row = view.q.row(query);
        ptx::prefetch_l2(p.accumulate + plan.q_offset + row * q_stride, D * 4);
        ptx::prefetch_line_l2(p.lse + (b * p.heads + h) * p.rows_q + row);
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
  const bool recorder = consumer_thread == 0;  // the thread that records the block's phases when profiling
  if (recorder) record(p, kTiles, tiles | (p.accumulate != nullptr ? 1ull << 32 : 0));  // bit 32: merging

  // Descriptors (wgmma.cuh). Q and K are K-major (D contiguous, the sum of S = Q·Kᵀ runs along it); V is
  // MN-major for O += P·V (D contiguous, the sum runs over keys, down its rows). Built once, for step 0 of
  // stage 0; a stage and a k16 step are constant offsets of the address field.
  const std::uint64_t q_step0 = wgmma::k_major(sQ, BM, consumer * 64, 0);
  const std::uint64_t k_step0 = wgmma::k_major(sK, BN, 0, 0), v_step0 = wgmma::mn_major(sV, BN, 0, 0);
  constexpr std::uint64_t kStageOffset = Traits::kTileBytesKV >> 4;  // one stage, in the field's 16-byte units

  float acc_o[1][DT][4];
  zero(acc_o);
  SoftmaxRows<1> rows;
  rows.reset();
  float s[1][NT][4];            // S_t, then P_t in fp32
  std::uint32_t a[BN / 16][4];  // P_{t−1} as wgmma's A operand (k16 step kk = keys 16kk .. 16kk + 15)

  // The two consumers take turns at issuing their products (FlashAttention-3's ping-pong): consumer c waits
  // on named barrier 1 + c until the other one has issued, so that one's softmax runs while the other's
  // products keep the tensor cores busy. Consumer 1 lets consumer 0 go first; every turn ends by letting
  // the other go, except consumer 1's last (nobody waits for it). A block without key tiles has no turns.
  constexpr int kTurnBarrier = 1;  // + c: consumer c's turn (named barriers 1, 2; 0 is __syncthreads)
  const int turns = tiles > 0 ? tiles + 1 : 0;  // S_0; then S_t with O += P_{t−1}·V_{t−1}; then the last O
  int turn = 0;
  if (consumer == 1 && turns > 0) ptx::named_barrier_arrive(kTurnBarrier + 0, kConsumerThreads);
  auto begin_turn = [&] { ptx::named_barrier_sync(kTurnBarrier + consumer, kConsumerThreads); };
  auto end_turn = [&] {
    ++turn;
    if (!(consumer == 1 && turn == turns)) ptx::named_barrier_arrive(kTurnBarrier + 1 - consumer, kConsumerThreads);
  };
  auto wait_landed = [&](std::uint32_t barrier, int parity) {
    ptx::mbarrier_wait(barrier, parity);
    wgmma::fence_proxy_async();  // the copies (generic proxy) before wgmma's reads (async proxy)
  };
  auto issue_scores = [&](int stage) {
    const std::uint64_t k_stage = k_step0 + stage * kStageOffset;
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
      ScoreMma::ss(s[0], wgmma::k_major_step<BM>(q_step0, kk), wgmma::k_major_step<BN>(k_stage, kk), kk > 0);
    wgmma::commit_group();
  };
  auto issue_output = [&](int stage) {
    const std::uint64_t v_stage = v_step0 + stage * kStageOffset;
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) OutputMma::rs(acc_o[0], a[kk], wgmma::mn_major_step(v_stage, kk), 1);
    wgmma::commit_group();
  };
  // Mask S_t if its tile is partial, then its half of the online softmax (P_t in s; O untouched).
  auto softmax = [&](int t, float (&correction)[1][2]) {
    const int j = j_begin + t;
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
  // producer as soon as the product reading it is done.
  if (tiles > 0) {
    wait_landed(ptx::shared_address(&barriers.q_full), 0);
    wait_landed(stage_barrier(barriers.k_full, 0), 0);
    if (recorder) record(p, kLanded, global_time_ns());
    begin_turn();
    issue_scores(0);
    end_turn();
    wgmma::wait_group<0>();
    fence_registers();
    ptx::mbarrier_arrive(stage_barrier(barriers.k_empty, 0));
    float correction[1][2];
    softmax(0, correction);  // O is still 0: nothing to rescale
    p_to_registers();
    for (int t = 1; t < tiles; ++t) {
      wait_landed(stage_barrier(barriers.k_full, t), phase(t));
      wait_landed(stage_barrier(barriers.v_full, t - 1), phase(t - 1));
      begin_turn();
      issue_scores(t % S);
      issue_output((t - 1) % S);
      end_turn();
      wgmma::wait_group<1>();  // S_t (the older group) is done; O += P_{t−1}·V_{t−1} may still run
      ScoreMma::fence_operands(s[0]);
      ptx::mbarrier_arrive(stage_barrier(barriers.k_empty, t));
      const bool rescale = softmax(t, correction);
      wgmma::wait_group<0>();
      fence_registers();
      ptx::mbarrier_arrive(stage_barrier(barriers.v_empty, t - 1));
      if (rescale) rescale_output(acc_o, correction);
      p_to_registers();
    }
    wait_landed(stage_barrier(barriers.v_full, tiles - 1), phase(tiles - 1));
    begin_turn();
    issue_output((tiles - 1) % S);
    end_turn();
    wgmma::wait_group<0>();
    fence_registers();
    if (recorder) record(p, kLooped, global_time_ns());
  } else {
    wait_landed(ptx::shared_address(&barriers.q_full), 0);  // its rows stage O below
  }

  // Epilogue: each warp stages O in its own rows of the Q tile (its warpgroup's products are complete).
  float row_lse[1][2], row_inverse[1][2];
  finish_rows(rows, p.scale, row_lse, row_inverse);
  float* lse_head = p.lse + (b * p.heads + h) * p.rows_q;
  const i64 first_query = plan.fixed_begin + warp_row;
  if (p.accumulate != nullptr) {
    accumulate_rows(acc_o, row_lse, row_inverse, view.q, first_query, plan.fixed_end, lse_head,
                    p.accumulate + plan.q_offset,
                    p.accumulate_step == kAccumulateLast ? static_cast<Element*>(p.out) + plan.q_offset : nullptr,
                    p.accumulate_step, q_stride, lane);
    if (recorder) record(p, kEnded, global_time_ns());
    return;
  }
  store_rows<Element, QLayout>(acc_o, row_inverse, shared, warp_row, view.q, first_query, plan.fixed_end,
                               static_cast<Element*>(p.out) + plan.q_offset, q_stride, lane);
  write_lse_rows(row_lse, view.q, first_query, plan.fixed_end, lse_head, lane);
  if (recorder) record(p, kEnded, global_time_ns());
#endif
}

template <class Traits>
void launch(const AttentionParams& params, i64 rows_q, bool tma_copies, cudaStream_t stream) {
  RowTileMaps keys, values;
  if (tma_copies) {
    i64 steps[RowTileMaps::kMaxSteps];
    const int count = collect_row_steps(params, /*keys=*/true, Traits::kBlockN, steps);
    constexpr bool bfloat16 = std::is_same_v<typename Traits::Element, __nv_bfloat16>;
    encode_row_maps(keys, params.k, bfloat16, params.batch, params.rows_k, params.kv_heads, Traits::kHeadDim, steps,
                    count, Traits::kBlockN);
    encode_row_maps(values, params.v, bfloat16, params.batch, params.rows_k, params.kv_heads, Traits::kHeadDim, steps,
                    count, Traits::kBlockN);
  }
  const bool sends = params.k_send != nullptr;
  launch_per_tile(sends ? hopper_forward<Traits, true> : hopper_forward<Traits, false>, rows_q, Traits::kBlockM, Traits::kThreads,
                  Traits::kSharedBytes, params,
                  stream, "hopper_forward", keys, values);
}

}  // namespace

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
        cudaFuncGetAttributes(&attributes, hopper_forward<HopperTraits<__nv_bfloat16, 128>, false>);
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
void launch_hopper_forward(const AttentionParams& params, i64 rows_q, bool tma_copies, cudaStream_t stream) {
  launch<HopperTraits<Element, HeadDim>>(params, rows_q, tma_copies, stream);
}

template void launch_hopper_forward<__nv_bfloat16, 64>(const AttentionParams&, i64, bool, cudaStream_t);
template void launch_hopper_forward<__nv_bfloat16, 128>(const AttentionParams&, i64, bool, cudaStream_t);
template void launch_hopper_forward<__half, 64>(const AttentionParams&, i64, bool, cudaStream_t);
template void launch_hopper_forward<__half, 128>(const AttentionParams&, i64, bool, cudaStream_t);

}  // namespace ringlab::gpu::detail
