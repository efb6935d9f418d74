// The Hopper backward kernel (sm_90a: H100, H200): backward_fast.cu's algorithm with the products on wgmma.
// The mma.sync backward is bound by every warp loading its own fragments (P, dS, Q, dO, K through ldmatrix);
// here the tensor cores read the shared tiles themselves, and the transposed products keep Pᵀ and dSᵀ in
// registers as the A operands of the dV and dK products (FlashAttention-3's choice).
//
//   grid: (key tiles, H, B); block: 2 warpgroups (256 threads) owning BlockN = 128 keys of one query head,
//   64 keys each; BlockM = 64 queries per step. Shared memory (128-byte swizzle, tiles.cuh Swizzle128Halves):
//   K, V [128][D]; Q, dO [2][64][D] (double-buffered: tile i+1 is copied while tile i is computed);
//   dSᵀ [128][64]; dQ staging fp32 [64][D]; LSE, δ [2][64].
//   Per query tile i, each warpgroup on its 64 keys:
//     Sᵀ = K·Q_iᵀ and dPᵀ = V·dO_iᵀ           (wgmma m64n64k16, both operands K-major from shared memory)
//     mask partial tiles (the mask with queries and keys swapped); Pᵀ = 2^{Sᵀ·τ·log2 e − LSE·log2 e};
//     dSᵀ = τ·Pᵀ ∘ (dPᵀ − δ)                    (LSE, δ per column)
//     dV += Pᵀ·dO_i, dK += dSᵀ·Q_i             (wgmma m64nDk16, A = Pᵀ, dSᵀ from registers, B MN-major)
//   Per query tile i, the block:
//     dQ_i = dS·K over all 128 keys            (dSᵀ → shared memory; wgmma with A and B MN-major, each
//                                              warpgroup 64 columns of D), staged in shared memory and
//                                              added into the fp32 dQ by the copy engine, one bulk
//                                              reduction per query row (cp.reduce.async.bulk .add.f32)
//   Epilogue: dK, dV added into the fp32 accumulators (atomics only when query heads share a KV head).
//
// Compiled for sm_90a only (gpu/CMakeLists.txt); launch_fast_backward calls it when hopper_available().
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda_check.cuh"
#include "forward_common.cuh"
#include "kernels.cuh"
#include "pipeline.cuh"
#include "ptx.cuh"
#include "tiles.cuh"
#include "wgmma.cuh"

namespace ringlab::gpu::detail {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

template <class Element_, int HeadDim>
struct HopperBackwardTraits {
  using Element = Element_;
  static constexpr int kHeadDim = HeadDim;
  static constexpr int kBlockN = 128;  // keys per block: 64 per warpgroup (wgmma's M)
  static constexpr int kBlockM = 64;   // queries per step (the N of Sᵀ, the K of the dV/dK products)
  static constexpr int kThreads = 256;
  static constexpr int kTileBytesKV = kBlockN * HeadDim * 2;
  static constexpr int kTileBytesQ = kBlockM * HeadDim * 2;
  static constexpr int kTileBytesDs = kBlockN * kBlockM * 2;
  // dQ of a step: [64 queries × D] split by columns into 64-wide parts, one per warpgroup that computes one
  // (2 at D = 128; 1 at D = 64, where the second warpgroup skips it).
  static constexpr int kDqParts = HeadDim / 64;
  static constexpr int kDqRowFloats = HeadDim + 8;  // fp32 staging rows padded by 32 bytes: 2-way conflicts at most
  static constexpr int kTileBytesDq = kBlockM * kDqRowFloats * 4;
  // K, V, Q[2], dO[2], dSᵀ, dQ, LSE[2], δ[2]; +1024 to align the start to the swizzle's 1024 bytes.
  static constexpr int kSharedBytes =
      2 * kTileBytesKV + 4 * kTileBytesQ + kTileBytesDs + kTileBytesDq + 4 * kBlockM * 4 + 1024;
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

template <class Traits>
__global__ void __launch_bounds__(Traits::kThreads, 1) hopper_backward(const AttentionParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Element = typename Traits::Element;
  constexpr int D = Traits::kHeadDim, BN = Traits::kBlockN, BM = Traits::kBlockM, T = Traits::kThreads;
  constexpr int NT = BM / 8, DT = D / 8;
  using KVLayout = Swizzle128Halves<BN>;
  using QLayout = Swizzle128Halves<BM>;
  using ScoreMma = wgmma::Mma<Element, BM>;  // Sᵀ, dPᵀ: [64 keys × 64 queries]
  using GradMma = wgmma::Mma<Element, D>;    // dV, dK: [64 keys × D]; dQ: [64 queries × D]
  extern __shared__ unsigned char shared_raw[];
  unsigned char* shared = shared_raw + ((1024 - ptx::shared_address(shared_raw) % 1024) % 1024);
  const std::uint32_t sK = ptx::shared_address(shared);
  const std::uint32_t sV = sK + Traits::kTileBytesKV;
  const std::uint32_t sQ = sV + Traits::kTileBytesKV;       // [2] buffers
  const std::uint32_t sdO = sQ + 2 * Traits::kTileBytesQ;   // [2] buffers
  const std::uint32_t sdS = sdO + 2 * Traits::kTileBytesQ;  // dSᵀ [BN keys][BM queries]
  const std::uint32_t sdQ = sdS + Traits::kTileBytesDs;     // fp32 [BM][D + 8]
  const std::uint32_t sLse = sdQ + Traits::kTileBytesDq;    // [2][BM] floats
  const std::uint32_t sDelta = sLse + 2 * BM * 4;           // [2][BM] floats
  const float* lse_tile = reinterpret_cast<const float*>(shared + (sLse - sK));
  const float* delta_tile = reinterpret_cast<const float*>(shared + (sDelta - sK));

  const i64 h = blockIdx.y, b = blockIdx.z;
  __shared__ SharedBlockPlan plan_storage;
  if (threadIdx.x == 0) make_plan(plan_storage.get(), p, b, h, blockIdx.x, BN, BM, /*fixed_is_query=*/false);
  __syncthreads();
  const BlockPlan& plan = plan_storage.get();
  const HeadView& view = plan.view;
  if (plan.fixed_begin >= view.k.rows || plan.visit_begin >= plan.visit_end) return;  // nothing to add
  const i64 k_begin = plan.fixed_begin;
  const int q_stride = static_cast<int>(p.heads * D), kv_stride = static_cast<int>(p.kv_heads * D);
  const float* lse = p.lse_in + (b * p.heads + h) * p.rows_q;
  const float* delta = p.delta + (b * p.heads + h) * p.rows_q;
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int warpgroup = warp / 4;
  const int warp_row = warp * 16;  // warpgroup·64 + (warp mod 4)·16: this warp's keys in the block
  const int g = lane / 4, c = lane % 4;

  auto load_query_tile = [&](int buffer, i64 tile) {
    load_tile_async<Element, BM, D, T, QLayout>(sQ + buffer * Traits::kTileBytesQ,
                                                static_cast<const Element*>(p.q) + plan.q_offset, q_stride, view.q,
                                                tile * BM);
    load_tile_async<Element, BM, D, T, QLayout>(sdO + buffer * Traits::kTileBytesQ,
                                                static_cast<const Element*>(p.dout) + plan.q_offset, q_stride, view.q,
                                                tile * BM);
    if (tid < BM) {
      const i64 query = tile * BM + tid;
      const bool valid = query < view.q.rows;
      const i64 row = valid ? view.q.row(query) : 0;
      ptx::cp_async_4(sLse + (buffer * BM + tid) * 4, lse + row, valid);
      ptx::cp_async_4(sDelta + (buffer * BM + tid) * 4, delta + row, valid);
    }
  };
  load_tile_async<Element, BN, D, T, KVLayout>(sK, static_cast<const Element*>(p.k) + plan.kv_offset, kv_stride,
                                               view.k, k_begin);
  load_tile_async<Element, BN, D, T, KVLayout>(sV, static_cast<const Element*>(p.v) + plan.kv_offset, kv_stride,
                                               view.k, k_begin);
  load_query_tile(0, plan.visit_begin);
  ptx::cp_async_commit();

  // Descriptors (see forward_hopper.cu). K-major: K/V rows of this warpgroup as A; Q/dO tiles as B.
  // MN-major: dO/Q as B of the dV/dK products (the sum runs over queries, D contiguous); dSᵀ as A and this
  // warpgroup's K rows as B of dQ (the sum runs over keys).
  auto kv_rows = [&](std::uint32_t tile, int kk) {
    return wgmma::descriptor(tile + (kk / 4) * BN * 128 + warpgroup * 64 * 128 + (kk % 4) * 32, 16, 1024);
  };
  auto q_cols = [&](std::uint32_t tile, int kk) {
    return wgmma::descriptor(tile + (kk / 4) * BM * 128 + (kk % 4) * 32, 16, 1024);
  };
  auto q_sum = [&](std::uint32_t tile, int kk) {  // k16 step kk = queries 16kk .. 16kk + 15
    return wgmma::descriptor(tile + kk * 16 * 128, BM * 128, 1024);
  };
  auto ds_sum = [&](int kk) {  // dSᵀ rows (keys) 16kk .. 16kk + 15
    return wgmma::descriptor(sdS + kk * 16 * 128, 16, 1024);
  };
  auto k_sum = [&](int kk) {  // K rows 16kk .. 16kk + 15, this warpgroup's 64 columns of D
    return wgmma::descriptor(sK + warpgroup * BN * 128 + kk * 16 * 128, 16, 1024);
  };
  const bool computes_dq = warpgroup < Traits::kDqParts;
  float* dq_head = p.dq + (b * p.rows_q * p.heads + h) * D;  // query row r at dq_head + r·H·D

  float acc_dv[DT][4], acc_dk[DT][4];
#pragma unroll
  for (int dt = 0; dt < DT; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc_dv[dt][e] = acc_dk[dt][e] = 0.0f;
  const HeadView swapped = transposed(view);

  const int i_begin = static_cast<int>(plan.visit_begin);
  for (int i = i_begin; i < plan.visit_end; ++i) {
    const int buffer = (i - i_begin) & 1;
    const std::uint32_t q_tile = sQ + buffer * Traits::kTileBytesQ, do_tile = sdO + buffer * Traits::kTileBytesQ;
    ptx::cp_async_wait<0>();
    wgmma::fence_proxy_async();
    if (tid < BM) ptx::bulk_wait_read();  // the dQ staging rows of step i−1 have been read
    __syncthreads();  // tile i is in; everyone is done with tile i−1 (its buffer, dSᵀ and dQ staging)
    if (i + 1 < plan.visit_end) {
      load_query_tile(buffer ^ 1, i + 1);
      ptx::cp_async_commit();
    }

    // Sᵀ = K·Q_iᵀ and dPᵀ = V·dO_iᵀ: this warpgroup's [64 keys × 64 queries].
    float st[NT][4], dpt[NT][4];
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) ScoreMma::ss(st, kv_rows(sK, kk), q_cols(q_tile, kk), kk > 0);
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) ScoreMma::ss(dpt, kv_rows(sV, kk), q_cols(do_tile, kk), kk > 0);
    wgmma::commit_group();
    wgmma::wait_group<0>();
    ScoreMma::fence_operands(st);
    ScoreMma::fence_operands(dpt);

    if (i < plan.full_begin || i >= plan.full_end || plan.fixed_end - k_begin < BN) {  // a partial tile
      i64 q_min, q_max;
      tile_positions(view.q, i, BM, q_min, q_max);
      const TileClass tile =
          classify(view, plan.span, /*span_of_query=*/false, q_min, q_max, plan.fixed_min, plan.fixed_max);
      float(&scores)[1][NT][4] = reinterpret_cast<float(&)[1][NT][4]>(st);
      mask_scores<1, NT>(scores, swapped, k_begin + warp_row, static_cast<i64>(i) * BM, lane, tile.band_only);
    }

    // Pᵀ = exp(Sᵀ·τ − LSE) (0 where masked, on queries past the block and where LSE = −∞), dSᵀ = τ·Pᵀ ∘ (dPᵀ − δ):
    // this lane's columns (queries) 8nt + 2c + e.
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int column = nt * 8 + 2 * c + e;
        const float column_lse = lse_tile[buffer * BM + column];
        const float column_delta = delta_tile[buffer * BM + column];
        const bool valid = static_cast<i64>(i) * BM + column < view.q.rows && column_lse != -INFINITY;
        const float lse_log2 = valid ? column_lse * kLog2e : INFINITY;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const float pt = ptx::ex2(fmaf(st[nt][2 * half + e], p.scale_log2, -lse_log2));
          st[nt][2 * half + e] = pt;
          dpt[nt][2 * half + e] = pt * (dpt[nt][2 * half + e] - column_delta) * p.scale;
        }
      }

    // dSᵀ → shared memory for dQ, then Pᵀ, dSᵀ as A fragments in registers.
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int key = warp_row + g + 8 * half;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
        *reinterpret_cast<std::uint32_t*>(shared + (sdS - sK) + KVLayout::offset(key, nt) + 4 * c) =
            ptx::pack2<Element>(dpt[nt][2 * half], dpt[nt][2 * half + 1]);
    }
    std::uint32_t a_p[BM / 16][4], a_ds[BM / 16][4];
    {
      const float(&pt)[1][NT][4] = reinterpret_cast<const float(&)[1][NT][4]>(st);
      const float(&dst)[1][NT][4] = reinterpret_cast<const float(&)[1][NT][4]>(dpt);
#pragma unroll
      for (int kk = 0; kk < BM / 16; ++kk) {
        p_fragment<Element>(pt, 0, kk, a_p[kk]);
        p_fragment<Element>(dst, 0, kk, a_ds[kk]);
      }
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

    // dQ_i = dS·K over all BN keys: every dSᵀ row must be in shared memory first (both warpgroups). The
    // dV/dK products are waited for first, so that Pᵀ, dSᵀ and the dQ accumulators are never live together.
    wgmma::fence_proxy_async();
    __syncthreads();
    wgmma::wait_group<0>();
    GradMma::fence_operands(acc_dv);
    GradMma::fence_operands(acc_dk);
#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk)  // the products read these registers until the wait
#pragma unroll
      for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(a_p[kk][e]), "+r"(a_ds[kk][e])::"memory");
    if (computes_dq) {
      float acc_dq[8][4];  // this warpgroup's [64 queries × 64 columns]
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) ScoreMma::template ss<1, 1>(acc_dq, ds_sum(kk), k_sum(kk), kk > 0);
      wgmma::commit_group();
      wgmma::wait_group<0>();
      ScoreMma::fence_operands(acc_dq);
      float* staging = reinterpret_cast<float*>(shared + (sdQ - sK));
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = (warp % 4) * 16 + g + 8 * half;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
          *reinterpret_cast<float2*>(staging + row * Traits::kDqRowFloats + warpgroup * 64 + nt * 8 + 2 * c) =
              make_float2(acc_dq[nt][2 * half], acc_dq[nt][2 * half + 1]);
      }
      wgmma::fence_proxy_async();  // the staged rows (generic proxy) before the copy engine reads them
    }
    __syncthreads();
    // dQ rows of this step added into the fp32 dQ by the copy engine, one bulk reduction per query row.
    if (tid < BM) {
      const i64 query = static_cast<i64>(i) * BM + tid;
      if (query < view.q.rows) {
        ptx::bulk_reduce_add_f32(dq_head + view.q.row(query) * q_stride, sdQ + tid * Traits::kDqRowFloats * 4, D * 4);
        ptx::bulk_commit();
      }
    }
  }
  if (tid < BM) ptx::bulk_wait();

  // dK, dV of these keys: added into the fp32 accumulators; atomically when several query heads share them.
  const bool shared_kv = p.heads != p.kv_heads;
  const i64 k_end = plan.fixed_end, h_kv = h * p.kv_heads / p.heads;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const i64 key = k_begin + warp_row + g + 8 * half;
    if (key >= k_end) continue;
    const i64 offset = ((b * p.rows_k + view.k.row(key)) * p.kv_heads + h_kv) * D + 2 * c;
#pragma unroll
    for (int dt = 0; dt < DT; ++dt) {
      float* dk = p.dk + offset + dt * 8;
      float* dv = p.dv + offset + dt * 8;
      if (shared_kv) {
        ptx::atomic_add2(dk, acc_dk[dt][2 * half], acc_dk[dt][2 * half + 1]);
        ptx::atomic_add2(dv, acc_dv[dt][2 * half], acc_dv[dt][2 * half + 1]);
      } else {
        float2 x = *reinterpret_cast<float2*>(dk), y = *reinterpret_cast<float2*>(dv);
        *reinterpret_cast<float2*>(dk) = make_float2(x.x + acc_dk[dt][2 * half], x.y + acc_dk[dt][2 * half + 1]);
        *reinterpret_cast<float2*>(dv) = make_float2(y.x + acc_dv[dt][2 * half], y.y + acc_dv[dt][2 * half + 1]);
      }
    }
  }
#endif
}

}  // namespace

template <class Element, int HeadDim>
void launch_hopper_backward(const AttentionParams& params, i64 rows_k, cudaStream_t stream) {
  using Traits = HopperBackwardTraits<Element, HeadDim>;
  const auto kernel = hopper_backward<Traits>;
  RINGLAB_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Traits::kSharedBytes));
  const dim3 grid(static_cast<unsigned>((rows_k + Traits::kBlockN - 1) / Traits::kBlockN),
                  static_cast<unsigned>(params.heads), static_cast<unsigned>(params.batch));
  kernel<<<grid, Traits::kThreads, Traits::kSharedBytes, stream>>>(params);
  RINGLAB_CUDA_CHECK(cudaGetLastError());
}

template void launch_hopper_backward<__nv_bfloat16, 64>(const AttentionParams&, i64, cudaStream_t);
template void launch_hopper_backward<__nv_bfloat16, 128>(const AttentionParams&, i64, cudaStream_t);
template void launch_hopper_backward<__half, 64>(const AttentionParams&, i64, cudaStream_t);
template void launch_hopper_backward<__half, 128>(const AttentionParams&, i64, cudaStream_t);

}  // namespace ringlab::gpu::detail
