// The tensor-core backward kernel (fp16/bf16, head_dim 64 or 128): FlashAttention-2's structure on
// mma.sync m16n8k16 with ldmatrix. teaching.cu computes the same thing in the paper's notation.
//
//   grid: (key tiles, H, B); block: 8 warps owning BlockN keys of one query head. dK, dV of those keys
//   stay in fp32 registers over every query tile the mask lets them see; dQ goes out by fp32 atomics.
//   Shared memory: K, V [BlockN][D]; Q, dO [2][BlockM][D] (double-buffered: tile i+1 is copied while
//   tile i is computed); P, dS [BlockM][BlockN]; LSE, δ [2][BlockM]. All XOR-swizzled.
//   Per query tile i:
//     S = Q_i·Kᵀ and dP = dO_i·Vᵀ                      (warps over [BlockM × BlockN])
//     mask partial tiles; P = 2^{S·τ·log2 e − LSE·log2 e}; dS = τ·P ∘ (dP − δ); P, dS → shared (element type)
//     dV += Pᵀ·dO_i, dK += dSᵀ·Q_i                      (warps over [BlockN × D]; Pᵀ, dSᵀ by ldmatrix.trans)
//     dQ_i += dS·K → atomicAdd (float2) into the fp32 dQ (warps over [BlockM × D])
//   Epilogue: dK, dV added into the fp32 accumulators (atomics only when query heads share a KV head).
//
// Each GEMM's warp tile is (16·MT) × (8·NT). With mma.sync every warp loads its own A and B fragments
// from shared memory, so warp tiles of two m16 tiles (MT = 2) halve the B traffic per mma; shared-memory
// bandwidth, not the tensor cores, bounds this kernel (see bench/results).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backward_common.cuh"
#include "cuda_check.cuh"
#include "kernels.cuh"
#include "launch.cuh"
#include "ptx.cuh"
#include "tiles.cuh"

namespace ringlab::gpu::detail {
namespace {

// One GEMM's warp layout: WarpsM warps along its M dimension (M = Rows), the rest along N (N = Cols).
template <int Rows, int Cols, int Warps, int WarpsM>
struct WarpTiles {
  static constexpr int kWarpsM = WarpsM;
  static constexpr int kRows = Rows / WarpsM;              // rows per warp
  static constexpr int kCols = Cols / (Warps / WarpsM);    // columns per warp
  static constexpr int kMT = kRows / 16, kNT = kCols / 8;  // m16 and n8 tiles per warp
  static_assert(Warps % WarpsM == 0 && kRows % 16 == 0 && kCols % 16 == 0, "warp tiles of m16 × n8 pairs");
};

template <class Element_, int HeadDim, int BlockN, int BlockM, int Warps, int WarpsM_S, int WarpsM_KV, int WarpsM_Q,
          int MinBlocks>
struct BackwardTraits {
  using Element = Element_;
  static constexpr int kHeadDim = HeadDim;
  static constexpr int kBlockN = BlockN;  // keys per thread block
  static constexpr int kBlockM = BlockM;  // queries per step
  static constexpr int kThreads = Warps * 32;
  static constexpr int kMinBlocks = MinBlocks;
  using S = WarpTiles<BlockM, BlockN, Warps, WarpsM_S>;     // S, dP: [BlockM × BlockN]
  using KV = WarpTiles<BlockN, HeadDim, Warps, WarpsM_KV>;  // dK, dV: [BlockN × D]
  using Q = WarpTiles<BlockM, HeadDim, Warps, WarpsM_Q>;    // dQ: [BlockM × D]
  static constexpr int kTileBytesKV = BlockN * HeadDim * 2;
  static constexpr int kTileBytesQ = BlockM * HeadDim * 2;
  static constexpr int kTileBytesP = BlockM * BlockN * 2;
  static constexpr int kSharedBytes = 2 * kTileBytesKV + 4 * kTileBytesQ + 2 * kTileBytesP + 4 * BlockM * 4;
};

template <class Traits>
__global__ void __launch_bounds__(Traits::kThreads, Traits::kMinBlocks) fast_backward(const AttentionParams p) {
  using Element = typename Traits::Element;
  using S = typename Traits::S;
  using KV = typename Traits::KV;
  using Q = typename Traits::Q;
  constexpr int D = Traits::kHeadDim, BN = Traits::kBlockN, BM = Traits::kBlockM, T = Traits::kThreads;
  constexpr int CH = D / 8, CHP = BN / 8;
  constexpr int kRowBytes = CH * 16, kRowBytesP = CHP * 16;
  extern __shared__ __align__(128) unsigned char shared[];
  const std::uint32_t sK = ptx::shared_address(shared);
  const std::uint32_t sV = sK + Traits::kTileBytesKV;
  const std::uint32_t sQ = sV + Traits::kTileBytesKV;       // [2] buffers
  const std::uint32_t sdO = sQ + 2 * Traits::kTileBytesQ;   // [2] buffers
  const std::uint32_t sP = sdO + 2 * Traits::kTileBytesQ;
  const std::uint32_t sdS = sP + Traits::kTileBytesP;
  const std::uint32_t sLse = sdS + Traits::kTileBytesP;     // [2][BM] floats
  const std::uint32_t sDelta = sLse + 2 * BM * 4;           // [2][BM] floats
  const float* lse_tile = reinterpret_cast<const float*>(shared + (sLse - sK));
  const float* delta_tile = reinterpret_cast<const float*>(shared + (sDelta - sK));

  const i64 h = blockIdx.y, b = blockIdx.z;
  __shared__ SharedBlockPlan plan_storage;
  if (head_lacks_tile(p, h, blockIdx.x, BN, /*fixed_is_query=*/false)) return;
  publish_plan(plan_storage, p, b, h, blockIdx.x, BN, BM, /*fixed_is_query=*/false);
  __syncthreads();
  const BlockPlan& plan = plan_storage.get();
  const HeadView& view = plan.view;
  if (plan.fixed_begin >= view.k.rows || plan.visit_begin >= plan.visit_end) return;  // nothing to add
  const i64 k_begin = plan.fixed_begin;
  const int q_stride = static_cast<int>(p.heads * D), kv_stride = static_cast<int>(p.kv_heads * D);
  const float* lse = p.lse_in + (b * p.heads + h) * p.rows_q;
  const float* delta = p.delta + (b * p.heads + h) * p.rows_q;
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, c = lane % 4;

  auto load_query_tile = [&](int buffer, i64 tile) {
    load_tile_async<Element, BM, D, T>(sQ + buffer * Traits::kTileBytesQ,
                                       static_cast<const Element*>(p.q) + plan.q_offset, q_stride, view.q, tile * BM);
    load_tile_async<Element, BM, D, T>(sdO + buffer * Traits::kTileBytesQ,
                                       static_cast<const Element*>(p.dout) + plan.q_offset, q_stride, view.q, tile * BM);
    if (tid < BM) {
      const i64 query = tile * BM + tid;
      const bool valid = query < view.q.rows;
      const i64 row = valid ? view.q.row(query) : 0;
      ptx::cp_async_4(sLse + (buffer * BM + tid) * 4, lse + row, valid);
      ptx::cp_async_4(sDelta + (buffer * BM + tid) * 4, delta + row, valid);
    }
  };
  load_tile_async<Element, BN, D, T>(sK, static_cast<const Element*>(p.k) + plan.kv_offset, kv_stride, view.k, k_begin);
  load_tile_async<Element, BN, D, T>(sV, static_cast<const Element*>(p.v) + plan.kv_offset, kv_stride, view.k, k_begin);
  load_query_tile(0, plan.visit_begin);
  ptx::cp_async_commit();

  // This warp's tile in each GEMM.
  const int m_s = (warp % S::kWarpsM) * S::kRows, n_s = (warp / S::kWarpsM) * S::kCols;
  const int m_kv = (warp % KV::kWarpsM) * KV::kRows, n_kv = (warp / KV::kWarpsM) * KV::kCols;
  const int m_q = (warp % Q::kWarpsM) * Q::kRows, n_q = (warp / Q::kWarpsM) * Q::kCols;
  // Per-lane swizzled offsets (swizzle<> spelled out). Every row a lane addresses has row mod 8 = lane mod 8
  // (g for the C-fragment stores), and the chunk of step kk, pair np or tile mt differs from that of step 0
  // only in bits that no other term sets, so each offset is step 0's offset XOR a constant.
  const int r8 = lane % 8;
  const std::uint32_t a_fragment_s = (m_s + lane % 16) * kRowBytes + (((lane / 16) ^ r8) << 4);
  const std::uint32_t b_fragment_s = (n_s + lane % 8 + (lane / 16) * 8) * kRowBytes + ((((lane / 8) % 2) ^ r8) << 4);
  const std::uint32_t store_fragment = (m_s + g) * kRowBytesP + ((((n_s / 8) ^ g)) << 4) + 4 * c;
  const std::uint32_t a_fragment_kv =
      (lane % 8 + (lane / 16) * 8) * kRowBytesP + ((((lane / 8) % 2) ^ r8 ^ (m_kv / 8)) << 4);
  const std::uint32_t b_fragment_kv = (lane % 16) * kRowBytes + ((((lane / 16) ^ r8) ^ (n_kv / 8)) << 4);
  const std::uint32_t a_fragment_q = (m_q + lane % 16) * kRowBytesP + (((lane / 16) ^ r8) << 4);
  const std::uint32_t b_fragment_q = (lane % 16) * kRowBytes + ((((lane / 16) ^ r8) ^ (n_q / 8)) << 4);

  float acc_dv[KV::kMT][KV::kNT][4], acc_dk[KV::kMT][KV::kNT][4];
#pragma unroll
  for (int mt = 0; mt < KV::kMT; ++mt)
#pragma unroll
    for (int nt = 0; nt < KV::kNT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_dv[mt][nt][e] = acc_dk[mt][nt][e] = 0.0f;

  const int i_begin = static_cast<int>(plan.visit_begin);
  for (int i = i_begin; i < plan.visit_end; ++i) {
    const int buffer = (i - i_begin) & 1;
    const std::uint32_t q_tile = sQ + buffer * Traits::kTileBytesQ, do_tile = sdO + buffer * Traits::kTileBytesQ;
    ptx::cp_async_wait<0>();
    __syncthreads();  // tile i is in; every warp is done with tile i−1 (its buffer, P and dS)
    if (i + 1 < plan.visit_end) {
      load_query_tile(buffer ^ 1, i + 1);
      ptx::cp_async_commit();
    }

    // S = Q_i·Kᵀ and dP = dO_i·Vᵀ: this warp's [16·MT × 8·NT] slice.
    float s[S::kMT][S::kNT][4], dp[S::kMT][S::kNT][4];
#pragma unroll
    for (int mt = 0; mt < S::kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < S::kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] = dp[mt][nt][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      std::uint32_t a_q[S::kMT][4], a_do[S::kMT][4];
#pragma unroll
      for (int mt = 0; mt < S::kMT; ++mt) {
        ptx::ldmatrix_x4(q_tile + (a_fragment_s ^ (kk << 5)) + mt * 16 * kRowBytes, a_q[mt]);
        ptx::ldmatrix_x4(do_tile + (a_fragment_s ^ (kk << 5)) + mt * 16 * kRowBytes, a_do[mt]);
      }
#pragma unroll
      for (int np = 0; np < S::kNT / 2; ++np) {
        const std::uint32_t offset = (b_fragment_s ^ (kk << 5)) + np * 16 * kRowBytes;
        std::uint32_t b_k[4], b_v[4];
        ptx::ldmatrix_x4(sK + offset, b_k);
        ptx::ldmatrix_x4(sV + offset, b_v);
#pragma unroll
        for (int mt = 0; mt < S::kMT; ++mt) {
          ptx::mma_16816<Element>(s[mt][2 * np], a_q[mt], b_k[0], b_k[1]);
          ptx::mma_16816<Element>(s[mt][2 * np + 1], a_q[mt], b_k[2], b_k[3]);
          ptx::mma_16816<Element>(dp[mt][2 * np], a_do[mt], b_v[0], b_v[1]);
          ptx::mma_16816<Element>(dp[mt][2 * np + 1], a_do[mt], b_v[2], b_v[3]);
        }
      }
    }

    if (i < plan.full_begin || i >= plan.full_end || plan.fixed_end - k_begin < BN) {  // a partial tile
      i64 q_min, q_max;
      tile_positions(view.q, i, BM, q_min, q_max);
      const TileClass tile =
          classify(view, plan.span, /*span_of_query=*/false, q_min, q_max, plan.fixed_min, plan.fixed_max);
      mask_scores<S::kMT, S::kNT>(s, view, static_cast<i64>(i) * BM + m_s, k_begin + n_s, lane, tile.band_only);
    }

    // P = exp(S·τ − LSE) (0 where masked, on rows past the block and on rows with LSE = −∞),
    // dS = τ·P ∘ (dP − δ); both rounded to the element type into shared memory.
#pragma unroll
    for (int mt = 0; mt < S::kMT; ++mt)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int r = m_s + mt * 16 + g + 8 * half;  // this lane's query row in the tile
        const float row_lse = lse_tile[buffer * BM + r];
        const float row_delta = delta_tile[buffer * BM + r];
        const bool valid = static_cast<i64>(i) * BM + r < view.q.rows && row_lse != -INFINITY;
        const float lse_log2 = valid ? row_lse * kLog2e : INFINITY;
#pragma unroll
        for (int nt = 0; nt < S::kNT; ++nt) {
          const float p0 = ptx::ex2(fmaf(s[mt][nt][2 * half], p.scale_log2, -lse_log2));
          const float p1 = ptx::ex2(fmaf(s[mt][nt][2 * half + 1], p.scale_log2, -lse_log2));
          const float ds0 = p0 * (dp[mt][nt][2 * half] - row_delta) * p.scale;
          const float ds1 = p1 * (dp[mt][nt][2 * half + 1] - row_delta) * p.scale;
          const std::uint32_t offset = (store_fragment ^ (nt << 4)) + (mt * 16 + half * 8) * kRowBytesP;
          *reinterpret_cast<std::uint32_t*>(shared + (sP - sK) + offset) = ptx::pack2<Element>(p0, p1);
          *reinterpret_cast<std::uint32_t*>(shared + (sdS - sK) + offset) = ptx::pack2<Element>(ds0, ds1);
        }
      }
    __syncthreads();  // P and dS are complete

    // dV += Pᵀ·dO_i and dK += dSᵀ·Q_i: this warp's [16·MT × 8·NT] slice of [BN × D]; A = Pᵀ by ldmatrix.trans.
#pragma unroll
    for (int kq = 0; kq < BM / 16; ++kq) {
      std::uint32_t a_p[KV::kMT][4], a_ds[KV::kMT][4];
#pragma unroll
      for (int mt = 0; mt < KV::kMT; ++mt) {
        const std::uint32_t offset = (a_fragment_kv ^ (mt << 5)) + kq * 16 * kRowBytesP;
        ptx::ldmatrix_x4_trans(sP + offset, a_p[mt]);
        ptx::ldmatrix_x4_trans(sdS + offset, a_ds[mt]);
      }
#pragma unroll
      for (int np = 0; np < KV::kNT / 2; ++np) {
        const std::uint32_t offset = (b_fragment_kv ^ (np << 5)) + kq * 16 * kRowBytes;
        std::uint32_t b_do[4], b_q[4];
        ptx::ldmatrix_x4_trans(do_tile + offset, b_do);
        ptx::ldmatrix_x4_trans(q_tile + offset, b_q);
#pragma unroll
        for (int mt = 0; mt < KV::kMT; ++mt) {
          ptx::mma_16816<Element>(acc_dv[mt][2 * np], a_p[mt], b_do[0], b_do[1]);
          ptx::mma_16816<Element>(acc_dv[mt][2 * np + 1], a_p[mt], b_do[2], b_do[3]);
          ptx::mma_16816<Element>(acc_dk[mt][2 * np], a_ds[mt], b_q[0], b_q[1]);
          ptx::mma_16816<Element>(acc_dk[mt][2 * np + 1], a_ds[mt], b_q[2], b_q[3]);
        }
      }
    }

    // dQ_i += dS·K: this warp's [16·MT × 8·NT] slice of [BM × D], added into the fp32 dQ with atomics.
    float acc_dq[Q::kMT][Q::kNT][4];
#pragma unroll
    for (int mt = 0; mt < Q::kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < Q::kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_dq[mt][nt][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      std::uint32_t a_ds[Q::kMT][4];
#pragma unroll
      for (int mt = 0; mt < Q::kMT; ++mt)
        ptx::ldmatrix_x4(sdS + (a_fragment_q ^ (kk << 5)) + mt * 16 * kRowBytesP, a_ds[mt]);
#pragma unroll
      for (int np = 0; np < Q::kNT / 2; ++np) {
        std::uint32_t b_k[4];
        ptx::ldmatrix_x4_trans(sK + (b_fragment_q ^ (np << 5)) + kk * 16 * kRowBytes, b_k);
#pragma unroll
        for (int mt = 0; mt < Q::kMT; ++mt) {
          ptx::mma_16816<Element>(acc_dq[mt][2 * np], a_ds[mt], b_k[0], b_k[1]);
          ptx::mma_16816<Element>(acc_dq[mt][2 * np + 1], a_ds[mt], b_k[2], b_k[3]);
        }
      }
    }
#pragma unroll
    for (int mt = 0; mt < Q::kMT; ++mt)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const i64 query = static_cast<i64>(i) * BM + m_q + mt * 16 + g + 8 * half;
        if (query >= view.q.rows) continue;
        float* dq = p.dq + ((b * p.rows_q + view.q.row(query)) * p.heads + h) * D + n_q + 2 * c;
#pragma unroll
        for (int nt = 0; nt < Q::kNT; ++nt)
          ptx::atomic_add2(dq + nt * 8, acc_dq[mt][nt][2 * half], acc_dq[mt][nt][2 * half + 1]);
      }
  }

  // dK, dV of these keys: added into the fp32 accumulators.
  add_key_gradients(acc_dk, acc_dv, p, view.k, plan.kv_offset, k_begin + m_kv, plan.fixed_end, n_kv, lane);
}

// Tile shapes (FlashAttention-2's for sm_80/sm_90): 128 keys per block, 64 queries per step, 8 warps with
// warp tiles of two m16 tiles (S, dP: 32 × 32; dK, dV: 32 × D/2; dQ: 32 × D/4). 255 registers, one block
// (8 warps) per SM. Measured on an H100 (bench/results/gpu-2026-11-22-*): 1.5× faster than the first
// version's 64 keys per block with one m16 tile per warp, which loaded twice the B fragments per mma.
template <class Element, int HeadDim>
using BackwardConfig = BackwardTraits<Element, HeadDim, 128, 64, 8, 2, 4, 2, 1>;

}  // namespace

template <class Element, int HeadDim>
void launch_fast_backward(const AttentionParams& params, i64 rows_k, cudaStream_t stream) {
  if (hopper_backward_available()) return launch_hopper_backward<Element, HeadDim>(params, rows_k, stream);
  using Traits = BackwardConfig<Element, HeadDim>;
  launch_per_tile(fast_backward<Traits>, rows_k, Traits::kBlockN, Traits::kThreads, Traits::kSharedBytes, params,
                  stream);
}

template void launch_fast_backward<__nv_bfloat16, 64>(const AttentionParams&, i64, cudaStream_t);
template void launch_fast_backward<__nv_bfloat16, 128>(const AttentionParams&, i64, cudaStream_t);
template void launch_fast_backward<__half, 64>(const AttentionParams&, i64, cudaStream_t);
template void launch_fast_backward<__half, 128>(const AttentionParams&, i64, cudaStream_t);

}  // namespace ringlab::gpu::detail
