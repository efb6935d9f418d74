// The Hopper backward kernel (sm_90a: H100, H200): backward_fast.cu's algorithm with the products on wgmma,
// warp-specialised as forward_hopper.cu is. The mma.sync backward is bound by every warp loading its own
// fragments (P, dS, Q, dO, K through ldmatrix); here the tensor cores read the shared tiles themselves, and
// the transposed products keep Pᵀ and dSᵀ in registers as the A operands of the dV and dK products
// (FlashAttention-3's choice).
//
//   grid: (key tiles, H, B); block: 3 warpgroups (384 threads) for BlockN = 128 keys of one query head;
//   BlockM = 64 queries per step. Shared memory (128-byte swizzle, tiles.cuh Swizzle128Blocks): K, V [128][D];
//   Q, dO, LSE, δ in two stages; dSᵀ [128][64] in two stages; dQ staging fp32 [64][D + 8] (two at D = 64).
//   Producer (warpgroup 0, 40 registers): K and V once, then Q_i, dO_i, LSE_i, δ_i into stage t mod 2 once
//     both consumers released it (cp.async, mbarriers); then the staged dQ rows of tile t − 2 (t − 1 at D = 64),
//     added into the fp32 dQ by bulk reductions (cp.reduce.async.bulk .add.f32, one per staged row) — off the
//     consumers' path.
//   Consumers (warpgroups 1, 2: 64 keys each, 232 registers), per query tile i:
//     Sᵀ = K·Q_iᵀ (wgmma m64n64k16, both operands K-major from shared memory); mask partial tiles (the mask
//       with queries and keys swapped); Pᵀ = 2^{Sᵀ·τ·log2 e − LSE·log2 e} (LSE per column), packed to the
//       element type as A fragments
//     dPᵀ = V·dO_iᵀ into the same registers; dSᵀ = τ·Pᵀ ∘ (dPᵀ − δ) with the packed Pᵀ (one 64 × 64
//       accumulator at a time, so that D = 128 fits: its dK, dV accumulators take 128 registers)
//     dV += Pᵀ·dO_i, dK += dSᵀ·Q_i             (wgmma m64nDk16, A from registers, B MN-major)
//     dQ_i = dS·K (dSᵀ through shared memory; wgmma with A and B MN-major): at D = 128 each consumer 64
//       columns over all 128 keys (named barrier: both consumers' dSᵀ), at D = 64 each all columns over its
//       own 64 keys (two partial tiles, both added), staged in shared memory (mbarriers dq_full / dq_empty)
//       for the producer's bulk reductions
//   Epilogue: dK, dV staged in shared memory and added into the fp32 accumulators by bulk reductions, a row
//     each (as dQ is).
//
// Compiled for sm_90a only (gpu/CMakeLists.txt); launch_fast_backward calls it when
// hopper_backward_available() (variants.cu).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backward_common.cuh"
#include "cuda_check.cuh"
#include "forward_common.cuh"
#include "kernel_sends.cuh"
#include "kernels.cuh"
#include "launch.cuh"
#include "pipeline.cuh"
#include "ptx.cuh"
#include "tiles.cuh"
#include "wgmma.cuh"

namespace ringlab::gpu::detail {
namespace {

template <class Element_, int HeadDim>
struct HopperBackwardTraits {
  using Element = Element_;
  static constexpr int kHeadDim = HeadDim;
  static constexpr int kBlockN = 128;  // keys per block: 64 per consumer warpgroup (wgmma's M)
  static constexpr int kBlockM = 64;   // queries per step (the N of Sᵀ, the K of the dV/dK products)
  static constexpr int kConsumers = 2;
  static constexpr int kThreads = (kConsumers + 1) * 128;  // a producer warpgroup and two consumers
  // setmaxnreg moves registers within what the block got at launch (384 threads × 168 under
  // __launch_bounds__(384, 1)); asking for more than that makes the consumers' increase wait forever.
  static constexpr int kProducerRegisters = 40, kConsumerRegisters = 232;
  static_assert(128 * kProducerRegisters + kConsumers * 128 * kConsumerRegisters <= kThreads * 168,
                "setmaxnreg budgets exceed the block's registers");
  static constexpr int kTileBytesKV = kBlockN * HeadDim * 2;
  static constexpr int kTileBytesQ = kBlockM * HeadDim * 2;
  static constexpr int kTileBytesDs = kBlockN * kBlockM * 2;
  // dQ of a step, [64 queries × D], as two [64 × 64] products, one per consumer: at D = 128 split by
  // columns (each consumer sums over all 128 keys, so it needs the other's dSᵀ rows); at D = 64 split by keys
  // (each sums over its own 64 keys into its own staging tile; both tiles are added into dQ).
  // (Split by keys at D = 128 too — no barrier between the consumers per tile, but twice the dQ reductions — the
  // backward ran 18 % slower: bench/results/gpu-backward-producer-dq-2026-11-23-H100.md.)
  static constexpr bool kDqSplitsKeys = HeadDim == 64;
  static constexpr int kDqRowFloats = HeadDim + 8;  // fp32 staging rows padded by 32 bytes: 2-way conflicts at most
  static constexpr int kTileBytesDq = kBlockM * kDqRowFloats * 4;
  static constexpr int kDqStaging = kDqSplitsKeys ? 2 : 1;
  // K, V, Q[2], dO[2], dSᵀ[2], dQ staging, LSE[2], δ[2]; +1024 to align the start to the swizzle's 1024 bytes.
  static constexpr int kSharedBytes = 2 * kTileBytesKV + 4 * kTileBytesQ + 2 * kTileBytesDs +
                                      kDqStaging * kTileBytesDq + 4 * kBlockM * 4 + 1024;
};

// The head's view with queries and keys swapped: allows(k, q) of this view is allows(q, k) of `view`
// (the band lo ≤ k − q ≤ hi becomes −hi ≤ q − k ≤ −lo; segments and selection are symmetric).
__device__ __forceinline__ HeadView transposed(const HeadView& view) {
  HeadView swapped = view;
  swapped.q = view.k;
  swapped.k = view.q;
  swapped.band_lo = -view.band_hi;
  swapped.band_hi = -view.band_lo;
  return swapped;
}

// The mbarriers of one block: K and V landed; query stage s landed (full) or released by both consumers; the dQ
// staging written by both consumers (dq_full) or read by the producer's bulk reductions (dq_empty); the producer's
// sends done (sent: the received dK/dV rows copied, before the epilogue adds to them; kernel_sends.cuh).
struct BackwardBarriers {
  unsigned long long kv_full, q_full[2], q_empty[2], dq_full, dq_empty, sent;
};

// Sends: a virtual ring's hop rides along (kernel_sends.cuh); a separate instantiation, so that the kernel
// without it keeps its registers.
template <class Traits, bool Sends>
__global__ void __launch_bounds__(Traits::kThreads, 1) hopper_backward(const AttentionParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Element = typename Traits::Element;
  constexpr int D = Traits::kHeadDim, BN = Traits::kBlockN, BM = Traits::kBlockM;
  constexpr int NT = BM / 8, DT = D / 8;
  constexpr int kConsumerThreads = Traits::kConsumers * 128;
  // Named barriers (0 is __syncthreads): every dSᵀ row of the step is in shared memory (both consumers);
  // consumer c's own 128 threads (its dSᵀ at D = 64, its dK/dV staging).
  constexpr int kDsReadyBarrier = 1, kConsumerBarrier = 2;
  using KVLayout = Swizzle128Blocks<BN>;
  using QLayout = Swizzle128Blocks<BM>;
  using ScoreMma = wgmma::Mma<Element, BM>;  // Sᵀ, dPᵀ: [64 keys × 64 queries]; dQ: [64 queries × 64 columns]
  using GradMma = wgmma::Mma<Element, D>;    // dV, dK: [64 keys × D]
  extern __shared__ unsigned char shared_raw[];
  unsigned char* shared = shared_raw + ((1024 - ptx::shared_address(shared_raw) % 1024) % 1024);
  const std::uint32_t sK = ptx::shared_address(shared);
  const std::uint32_t sV = sK + Traits::kTileBytesKV;
  const std::uint32_t sQ = sV + Traits::kTileBytesKV;       // [2] stages
  const std::uint32_t sdO = sQ + 2 * Traits::kTileBytesQ;   // [2] stages
  const std::uint32_t sdS = sdO + 2 * Traits::kTileBytesQ;  // [2] dSᵀ [BN keys][BM queries]
  const std::uint32_t sdQ = sdS + 2 * Traits::kTileBytesDs; // fp32 [BM][D + 8]
  const std::uint32_t sLse = sdQ + Traits::kDqStaging * Traits::kTileBytesDq;  // [2][BM] floats
  const std::uint32_t sDelta = sLse + 2 * BM * 4;           // [2][BM] floats
  const float* lse_tile = reinterpret_cast<const float*>(shared + (sLse - sK));
  const float* delta_tile = reinterpret_cast<const float*>(shared + (sDelta - sK));

  const i64 h = blockIdx.y, b = blockIdx.z;
  __shared__ SharedBlockPlan plan_storage;
  __shared__ BackwardBarriers barriers;
  if (head_lacks_tile(p, h, blockIdx.x, BN, /*fixed_is_query=*/false)) return;  // (not in the timeline either)
  if (threadIdx.x == 0) {
    record(p, kStarted, global_time_ns());
    record(p, kSm, sm_id());
  }
  publish_plan(plan_storage, p, b, h, blockIdx.x, BN, BM, /*fixed_is_query=*/false);
  if (threadIdx.x == 0) {
    ptx::mbarrier_init(ptx::shared_address(&barriers.kv_full), 128);
    for (int stage = 0; stage < 2; ++stage) {
      ptx::mbarrier_init(ptx::shared_address(&barriers.q_full[stage]), 128);  // the producer's 128 threads
      ptx::mbarrier_init(ptx::shared_address(&barriers.q_empty[stage]), kConsumerThreads);
    }
    ptx::mbarrier_init(ptx::shared_address(&barriers.dq_full), kConsumerThreads);
    ptx::mbarrier_init(ptx::shared_address(&barriers.dq_empty), 128);
    ptx::mbarrier_init(ptx::shared_address(&barriers.sent), 128);
  }
  __syncthreads();
  if (threadIdx.x == 0) record(p, kPlanned, global_time_ns());
  const BlockPlan& plan = plan_storage.get();
  const HeadView& view = plan.view;
  if (plan.fixed_begin >= view.k.rows) return;  // no key rows here
  // A virtual ring's hop (kernel_sends.cuh): this block's key rows of K, V and of the received dK/dV.
  constexpr int kElementBytes = sizeof(Element);
  auto send_unit = [&](i64 u) { return key_row_unit<kElementBytes>(p, plan, u); };
  if (plan.visit_begin >= plan.visit_end) {  // no query sees these keys: nothing to add, or zeros to write
    if constexpr (Sends)  // (dK = the received rows + 0)
      send_rest(send_unit, 0, key_row_units<kElementBytes>(p, plan), static_cast<int>(threadIdx.x), Traits::kThreads);
    if (p.dk_out != nullptr) {  // 16 bytes at a time (all-zero bytes are +0 in every dtype)
      const int element_bytes = p.dkv_out_fp32 ? 4 : 2;
      const int pieces = D * element_bytes / 16;
      for (i64 key = plan.fixed_begin + threadIdx.x / pieces; key < plan.fixed_end; key += Traits::kThreads / pieces) {
        const i64 offset = (plan.kv_offset + view.k.row(key) * p.kv_heads * p.head_dim) * element_bytes +
                           (threadIdx.x % pieces) * 16;
        *reinterpret_cast<uint4*>(static_cast<unsigned char*>(p.dk_out) + offset) = make_uint4(0, 0, 0, 0);
        *reinterpret_cast<uint4*>(static_cast<unsigned char*>(p.dv_out) + offset) = make_uint4(0, 0, 0, 0);
      }
    }
    return;
  }
  const i64 k_begin = plan.fixed_begin;
  const int q_stride = static_cast<int>(p.heads * D), kv_stride = static_cast<int>(p.kv_heads * D);
  const int i_begin = static_cast<int>(plan.visit_begin);
  const int tiles = static_cast<int>(plan.visit_end) - i_begin;  // query tiles t: i = i_begin + t
  auto stage_barrier = [&](unsigned long long (&barrier)[2], int t) { return ptx::shared_address(&barrier[t & 1]); };

  if (threadIdx.x < 128) {
    // Producer: K and V once, then Q_i, dO_i, LSE_i, δ_i into stage t mod 2 once both consumers released it.
    ptx::set_max_registers_decrease<Traits::kProducerRegisters>();
    const int tid = static_cast<int>(threadIdx.x);
    load_tile_async<Element, BN, D, 128, KVLayout>(sK, static_cast<const Element*>(p.k) + plan.kv_offset, kv_stride,
                                                   view.k, k_begin);
    load_tile_async<Element, BN, D, 128, KVLayout>(sV, static_cast<const Element*>(p.v) + plan.kv_offset, kv_stride,
                                                   view.k, k_begin);
    ptx::cp_async_arrive(ptx::shared_address(&barriers.kv_full));
    const float* lse = p.lse_in + (b * p.heads + h) * p.rows_q;
    const float* delta = p.delta + (b * p.heads + h) * p.rows_q;
    // dQ of query tile u, staged by the consumers: one bulk reduction per staged row (a row of each staging tile),
    // spread over the four warps, then the staging is released. Issued here rather than by the consumers: every
    // bulk operation takes its addresses in uniform registers, so a warp issuing 32 rows runs a 32-pass loop, which
    // held up its consumer warpgroup's next products (ncu: 8 % of all warp samples, and the first product of each
    // tile waiting for its warpgroup).
    constexpr int kDqOps = Traits::kDqStaging * BM;           // rows to add: 64 (D = 128) or 2 × 64 (D = 64)
    constexpr int kDqOpStride = 128 / kDqOps;                  // issuing threads: every 2nd (D = 128) or every one
    constexpr int kDqRowBytes = D * 4;  // a whole staged row: both consumers' columns, or one consumer's sum
    float* dq_base = p.dq + plan.q_offset;
    // Which tile's dQ the producer adds after issuing tile t's copies: at D = 128 tile t − 2's, staged about when
    // its stage was released, so that the copies of tile t have all of tile t − 1's time to land (after dQ of
    // t − 1 they were late: ncu, consumers waiting on q_full; the consumers need the staging back only at the end
    // of tile t − 1). At D = 64, where a tile takes half as long, t − 1's: 3 % faster there, 3–8 % slower at D = 128
    // (bench/results/gpu-backward-producer-dq-2026-11-23-H100.md).
    constexpr int kDqLag = D == 128 ? 2 : 1;
    i64 sent = 0;  // the hop's units sent so far (kernel_sends.cuh)
    const i64 send_end = Sends ? key_row_units<kElementBytes>(p, plan) : 0;
    // (The consumers release tile t's stage before they wait for tile t − 1's staging back: with a lag of 4 or more
    // the producer would wait for a stage the consumers release only after the staging it holds back.)
    static_assert(kDqLag >= 1 && kDqLag <= 3, "the dQ lag the barriers allow");
    auto add_dq = [&](int u) {
      ptx::mbarrier_wait(ptx::shared_address(&barriers.dq_full), u & 1);
      if (tid % kDqOpStride == 0) {
        const int op = tid / kDqOpStride, staging = op / BM, row = op % BM;
        const i64 query = static_cast<i64>(i_begin + u) * BM + row;
        if (query < view.q.rows) {
          ptx::bulk_reduce_add_f32(dq_base + view.q.row(query) * q_stride,
                                   sdQ + staging * Traits::kTileBytesDq + row * Traits::kDqRowFloats * 4, kDqRowBytes);
          ptx::bulk_commit();
          ptx::bulk_wait_read();
        }
      }
      ptx::mbarrier_arrive(ptx::shared_address(&barriers.dq_empty));
    };
    for (int t = 0; t < tiles; ++t) {
      const int stage = t & 1;
      const i64 first = static_cast<i64>(i_begin + t) * BM;
      if (t >= 2) ptx::mbarrier_wait(stage_barrier(barriers.q_empty, t), ((t >> 1) & 1) ^ 1);
      load_tile_async<Element, BM, D, 128, QLayout>(sQ + stage * Traits::kTileBytesQ,
                                                    static_cast<const Element*>(p.q) + plan.q_offset, q_stride, view.q,
                                                    first);
      load_tile_async<Element, BM, D, 128, QLayout>(sdO + stage * Traits::kTileBytesQ,
                                                    static_cast<const Element*>(p.dout) + plan.q_offset, q_stride,
                                                    view.q, first);
      if (tid < BM) {
        const i64 query = first + tid;
        const bool valid = query < view.q.rows;
        const i64 row = valid ? view.q.row(query) : 0;
        ptx::cp_async_4(sLse + (stage * BM + tid) * 4, lse + row, valid);
        ptx::cp_async_4(sDelta + (stage * BM + tid) * 4, delta + row, valid);
      }
      ptx::cp_async_arrive(stage_barrier(barriers.q_full, t));
      if (t >= kDqLag) add_dq(t - kDqLag);
      // Two units of the hop per thread per tile, while the producer would wait for the next stage anyway (at
      // D = 128 a block's 12 288 units take 48 tiles; a block with fewer sends the rest after its loop).
      if constexpr (Sends)
        if (sent < send_end) sent = send_pair(send_unit, sent, send_end, tid, 128);
    }
    for (int u = tiles >= kDqLag ? tiles - kDqLag : 0; u < tiles; ++u) add_dq(u);
    if constexpr (Sends) {
      send_rest(send_unit, sent, send_end, tid, 128);
      // The received dK/dV rows are in place before the consumers' bulk reductions (the async proxy) add to them.
      ptx::fence_proxy_async_global();
      ptx::mbarrier_arrive(ptx::shared_address(&barriers.sent));
    }
    ptx::cp_async_wait<0>();
    return;
  }

  // Consumers 0 and 1: 64 keys each.
  ptx::set_max_registers_increase<Traits::kConsumerRegisters>();
  const int tid = static_cast<int>(threadIdx.x) - 128;  // 0 .. 255
  const int warp = tid / 32, lane = tid % 32;
  const int consumer = warp / 4;
  const int consumer_thread = tid % 128;
  const int warp_row = warp * 16;  // consumer·64 + (warp mod 4)·16: this warp's keys in the block
  const int g = lane / 4, c = lane % 4;
  const bool recorder = tid == 0;  // the thread that records the block's phases when profiling
  if (recorder) record(p, kTiles, tiles);

  // Descriptors (wgmma.cuh). K-major: K/V rows of this consumer as A, Q/dO tiles as B of Sᵀ and dPᵀ.
  // MN-major: dO/Q as B of the dV/dK products (the sum runs over queries, D contiguous); dSᵀ as A and K as B
  // of dQ (the sum runs over keys): all 128 keys and this consumer's 64 columns of D (D = 128), or this
  // consumer's 64 keys (D = 64).
  constexpr bool kSplitKeys = Traits::kDqSplitsKeys;
  constexpr int kDqSteps = kSplitKeys ? 64 / 16 : BN / 16;
  const int dq_first_key = kSplitKeys ? consumer * 64 : 0;
  // (Step kk's descriptor as step 0's plus a constant, wgmma.cuh: step 0's is the same for every kk of a loop.)
  auto kv_rows = [&](std::uint32_t tile, int kk) {
    return wgmma::k_major_step<BN>(wgmma::k_major(tile, BN, consumer * 64, 0), kk);
  };
  auto q_cols = [&](std::uint32_t tile, int kk) { return wgmma::k_major_step<BM>(wgmma::k_major(tile, BM, 0, 0), kk); };
  auto q_sum = [&](std::uint32_t tile, int kk) { return wgmma::mn_major_step(wgmma::mn_major(tile, BM, 0, 0), kk); };
  auto ds_sum = [&](std::uint32_t tile, int kk) {
    return wgmma::mn_major_step(wgmma::mn_major(tile, BN, dq_first_key, 0), kk);
  };
  auto k_sum = [&](int kk) {
    return wgmma::mn_major_step(wgmma::mn_major(sK, BN, dq_first_key, 0, kSplitKeys ? 0 : consumer), kk);
  };
  const int dq_column = kSplitKeys ? 0 : consumer * 64;  // of this consumer's part
  const std::uint32_t dq_staging = sdQ + (kSplitKeys ? consumer * Traits::kTileBytesDq : 0);

  float acc_dv[DT][4], acc_dk[DT][4];
#pragma unroll
  for (int dt = 0; dt < DT; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc_dv[dt][e] = acc_dk[dt][e] = 0.0f;
  ptx::mbarrier_wait(ptx::shared_address(&barriers.kv_full), 0);
  if (recorder) record(p, kLanded, global_time_ns());
  for (int t = 0; t < tiles; ++t) {
    const int i = i_begin + t, stage = t & 1;
    const std::uint32_t q_tile = sQ + stage * Traits::kTileBytesQ, do_tile = sdO + stage * Traits::kTileBytesQ;
    const std::uint32_t ds_tile = sdS + stage * Traits::kTileBytesDs;
    ptx::mbarrier_wait(stage_barrier(barriers.q_full, t), (t >> 1) & 1);
    wgmma::fence_proxy_async();  // the copies (generic proxy) before wgmma's reads (async proxy)

    // Sᵀ = K·Q_iᵀ, then Pᵀ; then dPᵀ = V·dO_iᵀ, then dSᵀ: one [64 keys × 64 queries] accumulator at a time,
    // so that D = 128's dK, dV accumulators (128 registers) fit beside them.
    std::uint32_t a_p[BM / 16][4], a_ds[BM / 16][4];
    {
      float st[1][NT][4];
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) ScoreMma::ss(st[0], kv_rows(sK, kk), q_cols(q_tile, kk), kk > 0);
      wgmma::commit_group();
      wgmma::wait_group<0>();
      ScoreMma::fence_operands(st[0]);
      if (i < plan.full_begin || i >= plan.full_end || plan.fixed_end - k_begin < BN) {  // a partial tile
        i64 q_min, q_max;
        tile_positions(view.q, i, BM, q_min, q_max);
        const TileClass tile =
            classify(view, plan.span, /*span_of_query=*/false, q_min, q_max, plan.fixed_min, plan.fixed_max);
        const HeadView swapped = transposed(view);  // built here: kept live, it would cost registers
        mask_scores<1, NT>(st, swapped, k_begin + warp_row, static_cast<i64>(i) * BM, lane, tile.band_only);
      }
      // Pᵀ = exp(Sᵀ·τ − LSE): 0 where masked, on queries past the block and where LSE = −∞. This lane's
      // columns (queries) are 8nt + 2c + e.
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int column = nt * 8 + 2 * c + e;
          const float column_lse = lse_tile[stage * BM + column];
          const bool valid = static_cast<i64>(i) * BM + column < view.q.rows && column_lse != -INFINITY;
          const float lse_log2 = valid ? column_lse * kLog2e : INFINITY;
#pragma unroll
          for (int half = 0; half < 2; ++half)
            st[0][nt][2 * half + e] = ptx::ex2(fmaf(st[0][nt][2 * half + e], p.scale_log2, -lse_log2));
        }
#pragma unroll
      for (int kk = 0; kk < BM / 16; ++kk) p_fragment<Element>(st, 0, kk, a_p[kk]);
      // dPᵀ = V·dO_iᵀ into the same registers, then dSᵀ = τ·Pᵀ ∘ (dPᵀ − δ) with Pᵀ unpacked from a_p (the
      // element type's rounding of P is what dV uses too).
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) ScoreMma::ss(st[0], kv_rows(sV, kk), q_cols(do_tile, kk), kk > 0);
      wgmma::commit_group();
      wgmma::wait_group<0>();
      ScoreMma::fence_operands(st[0]);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float column_delta = delta_tile[stage * BM + nt * 8 + 2 * c + e];
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            // a_p[kk] holds columns 16kk + 2c (+8 in registers 2, 3) for rows g (registers 0, 2) and g + 8 (1, 3).
            const std::uint32_t packed = a_p[nt / 2][(nt % 2) * 2 + half];
            const float pt = ptx::unpack<Element>(packed, e);
            st[0][nt][2 * half + e] = pt * (st[0][nt][2 * half + e] - column_delta) * p.scale;
          }
        }
      // dSᵀ → shared memory for dQ (stage t mod 2: the other consumer may still read the previous one), and
      // as A fragments in registers.
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int key = warp_row + g + 8 * half;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
          *reinterpret_cast<std::uint32_t*>(shared + (ds_tile - sK) + KVLayout::offset(key, nt) + 4 * c) =
              ptx::pack2<Element>(st[0][nt][2 * half], st[0][nt][2 * half + 1]);
      }
#pragma unroll
      for (int kk = 0; kk < BM / 16; ++kk) p_fragment<Element>(st, 0, kk, a_ds[kk]);
    }

    // dV += Pᵀ·dO_i and dK += dSᵀ·Q_i.
    GradMma::fence_operands(acc_dv);
    GradMma::fence_operands(acc_dk);
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk) GradMma::rs(acc_dv, a_p[kk], q_sum(do_tile, kk), 1);
#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk) GradMma::rs(acc_dk, a_ds[kk], q_sum(q_tile, kk), 1);
    wgmma::commit_group();

    // dQ_i = dS·K over all BN keys needs both consumers' dSᵀ rows (D = 128), over its own keys only this
    // consumer's (D = 64). The dV/dK products are waited for first, so that Pᵀ, dSᵀ and the dQ accumulators
    // are never live together (D = 128 would spill).
    wgmma::fence_proxy_async();
    if (kSplitKeys)
      ptx::named_barrier_sync(kConsumerBarrier + consumer, 128);
    else
      ptx::named_barrier_sync(kDsReadyBarrier, kConsumerThreads);
    wgmma::wait_group<0>();
    GradMma::fence_operands(acc_dv);
    GradMma::fence_operands(acc_dk);
#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk)  // the products read these registers until the wait
#pragma unroll
      for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(a_p[kk][e]), "+r"(a_ds[kk][e])::"memory");
    {
      float acc_dq[8][4];  // this consumer's [64 queries × 64 columns]
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < kDqSteps; ++kk) ScoreMma::template ss<1, 1>(acc_dq, ds_sum(ds_tile, kk), k_sum(kk), kk > 0);
      wgmma::commit_group();
      wgmma::wait_group<0>();
      ScoreMma::fence_operands(acc_dq);
      ptx::mbarrier_arrive(stage_barrier(barriers.q_empty, t));  // Q_i, dO_i, LSE_i, δ_i are no longer read
      // Stage this consumer's 64 columns of dQ_i once the producer's reductions of tile t − 1 have read the
      // staging; the producer adds them into the fp32 dQ, a bulk reduction per row.
      if (t >= 1) ptx::mbarrier_wait(ptx::shared_address(&barriers.dq_empty), (t - 1) & 1);
      float* staging = reinterpret_cast<float*>(shared + (dq_staging - sK));
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = (warp % 4) * 16 + g + 8 * half;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
          *reinterpret_cast<float2*>(staging + row * Traits::kDqRowFloats + dq_column + nt * 8 + 2 * c) =
              make_float2(acc_dq[nt][2 * half], acc_dq[nt][2 * half + 1]);
      }
      wgmma::fence_proxy_async();  // the staged rows (generic proxy) before the copy engine reads them
      ptx::mbarrier_arrive(ptx::shared_address(&barriers.dq_full));
    }
  }
  if (recorder) record(p, kLooped, global_time_ns());

  if (p.dk_out != nullptr) {
    // GradientWrite::overwrite: this block is the only writer of its key rows; store them directly, rounded to the
    // element type (no zeroed fp32 accumulators, no conversion pass after the kernel) or in fp32 (a ring step's
    // partial: no zeroing before the kernel).
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const i64 key = k_begin + consumer * 64 + (warp % 4) * 16 + g + 8 * half;
      if (key >= plan.fixed_end) continue;
      const i64 offset = plan.kv_offset + view.k.row(key) * p.kv_heads * p.head_dim + 2 * c;
      if (p.dkv_out_fp32) {
#pragma unroll
        for (int nt = 0; nt < DT; ++nt) {
          *reinterpret_cast<float2*>(static_cast<float*>(p.dk_out) + offset + nt * 8) =
              make_float2(acc_dk[nt][2 * half], acc_dk[nt][2 * half + 1]);
          *reinterpret_cast<float2*>(static_cast<float*>(p.dv_out) + offset + nt * 8) =
              make_float2(acc_dv[nt][2 * half], acc_dv[nt][2 * half + 1]);
        }
      } else {
#pragma unroll
        for (int nt = 0; nt < DT; ++nt) {
          *reinterpret_cast<std::uint32_t*>(static_cast<Element*>(p.dk_out) + offset + nt * 8) =
              ptx::pack2<Element>(acc_dk[nt][2 * half], acc_dk[nt][2 * half + 1]);
          *reinterpret_cast<std::uint32_t*>(static_cast<Element*>(p.dv_out) + offset + nt * 8) =
              ptx::pack2<Element>(acc_dv[nt][2 * half], acc_dv[nt][2 * half + 1]);
        }
      }
    }
    if (recorder) record(p, kEnded, global_time_ns());
    return;  // (the producer leaves only after its reductions have read the dQ staging)
  }
  // dK, dV of these keys, added into the fp32 accumulators by the copy engine, as dQ's rows are: each consumer
  // stages its 64 rows of each in shared memory the main loop is done with (from K's tile on), then one thread
  // per row adds the row with one bulk reduction (cp.reduce.async.bulk .add.f32, element-wise atomic as
  // red.global is, so GQA's heads may share rows). The block leaves once the copy engine has read its rows;
  // with red.global per pair of values its epilogue took 3.8–6.3 µs (bench/results/gpu-block-costs-2026-11-22-H100.md).
  constexpr int kRowFloats = D + 4;  // a row padded by 16 bytes: a warp's 8 rows start in different banks
  constexpr int kStageBytes = 64 * kRowFloats * 4;
  // (Below the dQ staging, which the producer's last reductions may still be reading: no need to wait for them.)
  static_assert(4 * kStageBytes <= 2 * Traits::kTileBytesKV + 4 * Traits::kTileBytesQ + 2 * Traits::kTileBytesDs,
                "dK and dV staging fit in K, V, Q, dO and dSᵀ's shared memory");
  ptx::named_barrier_sync(kDsReadyBarrier, 256);  // both consumers are done with every tile
  const int dk_stage = consumer * kStageBytes, dv_stage = (2 + consumer) * kStageBytes;  // bytes past K's tile
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = (warp % 4) * 16 + g + 8 * half;  // of this consumer's 64 keys
#pragma unroll
    for (int nt = 0; nt < DT; ++nt) {
      const int at = (row * kRowFloats + nt * 8 + 2 * c) * 4;
      *reinterpret_cast<float2*>(shared + dk_stage + at) = make_float2(acc_dk[nt][2 * half], acc_dk[nt][2 * half + 1]);
      *reinterpret_cast<float2*>(shared + dv_stage + at) = make_float2(acc_dv[nt][2 * half], acc_dv[nt][2 * half + 1]);
    }
  }
  wgmma::fence_proxy_async();  // the staged rows (generic proxy) before the copy engine reads them
  ptx::named_barrier_sync(kConsumerBarrier + consumer, 128);
  if (consumer_thread < 64) {
    const i64 key = k_begin + consumer * 64 + consumer_thread;
    if (key < plan.fixed_end) {
      if (Sends && p.dk_from != nullptr) {  // the producer has copied the received rows these reductions add to
        ptx::mbarrier_wait(ptx::shared_address(&barriers.sent), 0);
        ptx::fence_proxy_async_global();
      }
      const i64 offset = plan.kv_offset + view.k.row(key) * p.kv_heads * p.head_dim;
      const std::uint32_t at = sK + static_cast<std::uint32_t>(consumer_thread * kRowFloats * 4);
      ptx::bulk_reduce_add_f32(p.dk + offset, at + dk_stage, D * 4);
      ptx::bulk_reduce_add_f32(p.dv + offset, at + dv_stage, D * 4);
      ptx::bulk_commit();
      ptx::bulk_wait_read();  // the rows are read: the block's shared memory may go to the next block
    }
  }
  if (recorder) record(p, kEnded, global_time_ns());
#endif
}

}  // namespace

template <class Element, int HeadDim>
void launch_hopper_backward(const AttentionParams& params, i64 rows_k, cudaStream_t stream) {
  using Traits = HopperBackwardTraits<Element, HeadDim>;
  const bool sends = params.k_send != nullptr || params.dk_from != nullptr;
  launch_per_tile(sends ? hopper_backward<Traits, true> : hopper_backward<Traits, false>, rows_k, Traits::kBlockN,
                  Traits::kThreads, Traits::kSharedBytes, params,
                  stream, "hopper_backward");
}

template void launch_hopper_backward<__nv_bfloat16, 64>(const AttentionParams&, i64, cudaStream_t);
template void launch_hopper_backward<__nv_bfloat16, 128>(const AttentionParams&, i64, cudaStream_t);
template void launch_hopper_backward<__half, 64>(const AttentionParams&, i64, cudaStream_t);
template void launch_hopper_backward<__half, 128>(const AttentionParams&, i64, cudaStream_t);

}  // namespace ringlab::gpu::detail
