// The tensor-core forward kernel (fp16/bf16, head_dim 64 or 128): FlashAttention-2's structure on
// mma.sync m16n8k16 with ldmatrix. teaching.cu computes the same thing in the paper's notation.
//
//   grid: (query tiles, H, B), heaviest query tiles first; block: 4 warps, BlockM = 128 query rows (32 per
//   warp, two m16 tiles), BlockN = 48 (D = 128) or 64 (D = 64, and under dilation) keys per step.
//   Shared memory: Q [128][D], K [BlockN][D], V [BlockN][D], XOR-swizzled. 255 registers, so 2 blocks
//   (8 warps) per SM: the kernel is latency-bound (ncu: tensor pipe ~46% busy, most stalls waiting on
//   fixed-latency dependencies), which is why it stays below FlashAttention-2 (bench/results).
//   Per key tile j in the range the mask can reach (two binary searches, attention_params.cuh):
//     wait K_j; barrier; cp.async V_j                 (V_j's copy overlaps S = Q·K_jᵀ)
//     S = Q·K_jᵀ in fp32 registers (Q and K fragments by ldmatrix)
//     mask S only if the tile is partial (classify), online softmax in the exp2 domain
//     wait V_j; barrier; cp.async K_{j+1}             (K_{j+1}'s copy overlaps O += P·V_j)
//     O += P·V_j with P converted from the S accumulators to A fragments in registers
//   Epilogue: O / ℓ rounded to the element type, staged through the warp's own rows of the Q tile and
//   written with 16-byte stores; LSE = τ·m + ln ℓ (fp32); rows without an allowed key get (0, −∞).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda_check.cuh"
#include "forward_common.cuh"
#include "kernels.cuh"
#include "launch.cuh"
#include "ptx.cuh"
#include "tiles.cuh"

namespace ringlab::gpu::detail {
namespace {

template <class Element_, int HeadDim, int BlockM, int BlockN, int Warps, int MinBlocks = 1>
struct ForwardTraits {
  using Element = Element_;
  static constexpr int kMinBlocks = MinBlocks;  // blocks per SM the register allocation must allow
  static constexpr int kHeadDim = HeadDim;
  static constexpr int kBlockM = BlockM;
  static constexpr int kBlockN = BlockN;
  static constexpr int kThreads = Warps * 32;
  static constexpr int kRowsPerWarp = BlockM / Warps;
  static constexpr int kMTiles = kRowsPerWarp / 16;
  static constexpr int kSharedBytes = (BlockM + 2 * BlockN) * HeadDim * 2;
  static_assert(kRowsPerWarp % 16 == 0 && BlockN % 16 == 0 && HeadDim % 16 == 0, "tile shapes");
};

template <class Traits>
__global__ void __launch_bounds__(Traits::kThreads, Traits::kMinBlocks) fast_forward(const AttentionParams p) {
  using Element = typename Traits::Element;
  constexpr int D = Traits::kHeadDim, BM = Traits::kBlockM, BN = Traits::kBlockN, T = Traits::kThreads;
  constexpr int MT = Traits::kMTiles, NT = BN / 8, DT = D / 8, CH = D / 8;
  extern __shared__ __align__(128) unsigned char shared[];
  const std::uint32_t sQ = ptx::shared_address(shared);
  const std::uint32_t sK = sQ + BM * D * 2, sV = sK + BN * D * 2;

  const i64 h = blockIdx.y, b = blockIdx.z;
  __shared__ SharedBlockPlan plan_storage;
  // Heavy (late) query tiles first: causal blocks finish together.
  const i64 tile = static_cast<i64>(gridDim.x) - 1 - blockIdx.x;
  if (head_lacks_tile(p, h, tile, BM, true)) return;
  publish_plan(plan_storage, p, b, h, tile, BM, BN, true);
  __syncthreads();
  const BlockPlan& plan = plan_storage.get();
  const HeadView& view = plan.view;
  if (plan.fixed_begin >= view.q.rows) return;
  // Merging, a query tile that sees no key tile adds nothing (its O = 0, LSE = −∞ would ⊕ as identity); a
  // ring's first and last steps still write its rows.
  if (p.accumulate != nullptr && p.accumulate_step == kAccumulateMiddle && plan.visit_begin >= plan.visit_end) return;
  const i64 q_begin = plan.fixed_begin;
  const int q_stride = static_cast<int>(p.heads * D), kv_stride = static_cast<int>(p.kv_heads * D);
  const int j_begin = static_cast<int>(plan.visit_begin);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int warp_row = warp * Traits::kRowsPerWarp;
  // Per-lane ldmatrix offsets (swizzle<CH> spelled out). Every row these lanes address has row mod 8 =
  // lane mod 8, and the chunk of k16 step kk is 2kk + (0 or 1), so the swizzled offset of step kk is the
  // offset of step 0 XOR (kk << 5): one LOP3 per ldmatrix instead of a register per step.
  constexpr int kRowBytes = CH * 16;
  const std::uint32_t q_fragment = (warp_row + lane % 16) * kRowBytes + (((lane / 16) ^ (lane % 8)) << 4);
  const std::uint32_t k_fragment = (lane % 8 + (lane / 16) * 8) * kRowBytes + ((((lane / 8) % 2) ^ (lane % 8)) << 4);
  const std::uint32_t v_fragment = (lane % 16) * kRowBytes + (((lane / 16) ^ (lane % 8)) << 4);

  // K and V of this head (recomputed from the plan where used, so they need no registers across the loop).
  auto keys = [&] { return static_cast<const Element*>(p.k) + plan.kv_offset; };
  auto values = [&] { return static_cast<const Element*>(p.v) + plan.kv_offset; };
  load_tile_async<Element, BM, D, T>(sQ, static_cast<const Element*>(p.q) + plan.q_offset, q_stride, view.q, q_begin);
  if (j_begin < plan.visit_end) load_tile_async<Element, BN, D, T>(sK, keys(), kv_stride, view.k, j_begin * BN);
  ptx::cp_async_commit();

  float acc_o[MT][DT][4];
  zero(acc_o);
  SoftmaxRows<MT> rows;
  rows.reset();

  for (int j = j_begin; j < plan.visit_end; ++j) {
    ptx::cp_async_wait<0>();
    __syncthreads();  // K_j is in; every warp is done with V_{j−1}
    load_tile_async<Element, BN, D, T>(sV, values(), kv_stride, view.k, static_cast<i64>(j) * BN);
    ptx::cp_async_commit();

    // S = Q·K_jᵀ: this warp's [16·MT × BN] slice.
    float s[MT][NT][4];
    zero(s);
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      std::uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) ptx::ldmatrix_x4(sQ + (q_fragment ^ (kk << 5)) + mt * 16 * kRowBytes, a[mt]);
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        std::uint32_t bk[4];  // K rows np·16 .. +15 as the B operand of two n8 tiles
        ptx::ldmatrix_x4(sK + (k_fragment ^ (kk << 5)) + np * 16 * kRowBytes, bk);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          ptx::mma_16816<Element>(s[mt][2 * np], a[mt], bk[0], bk[1]);
          ptx::mma_16816<Element>(s[mt][2 * np + 1], a[mt], bk[2], bk[3]);
        }
      }
    }

    // Mask only partial tiles (the diagonal of a causal mask, segment borders, the last key tile).
    if (j < plan.full_begin || j >= plan.full_end || static_cast<i64>(j + 1) * BN > view.k.rows) {
      i64 k_min, k_max;
      tile_positions(view.k, j, BN, k_min, k_max);
      const TileClass tile =
          classify(view, plan.span, /*span_of_query=*/true, plan.fixed_min, plan.fixed_max, k_min, k_max);
      mask_scores<MT, NT>(s, view, plan.fixed_begin + warp_row, static_cast<i64>(j) * BN, lane, tile.band_only);
    }

    online_softmax(s, rows, acc_o, p.scale_log2);

    ptx::cp_async_wait<0>();
    __syncthreads();  // V_j is in; every warp is done with K_j
    if (j + 1 < plan.visit_end) {
      load_tile_async<Element, BN, D, T>(sK, keys(), kv_stride, view.k, static_cast<i64>(j + 1) * BN);
      ptx::cp_async_commit();
    }

    // O += P·V_j. The C fragments of two adjacent n8 score tiles are the A fragment of one k16 step.
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      std::uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) p_fragment<Element>(s, mt, kk, a[mt]);
#pragma unroll
      for (int dp = 0; dp < DT / 2; ++dp) {
        std::uint32_t bv[4];  // V rows kk·16 .. +15, columns dp·16 .. +15, transposed into B fragments
        ptx::ldmatrix_x4_trans(sV + (v_fragment ^ (dp << 5)) + kk * 16 * kRowBytes, bv);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          ptx::mma_16816<Element>(acc_o[mt][2 * dp], a[mt], bv[0], bv[1]);
          ptx::mma_16816<Element>(acc_o[mt][2 * dp + 1], a[mt], bv[2], bv[3]);
        }
      }
    }
  }

  // Epilogue. Q may still be arriving if no key tile was visited; after this barrier each warp reuses its
  // own rows of the Q tile to stage O.
  ptx::cp_async_wait<0>();
  __syncthreads();
  float row_lse[MT][2], row_inverse[MT][2];
  finish_rows(rows, p.scale, row_lse, row_inverse);
  float* lse_head = p.lse + (b * p.heads + h) * p.rows_q;
  const i64 first_query = q_begin + warp_row;
  if (p.accumulate != nullptr) {
    accumulate_rows(acc_o, row_lse, row_inverse, view.q, first_query, plan.fixed_end, lse_head,
                    p.accumulate + plan.q_offset,
                    p.accumulate_step == kAccumulateLast ? static_cast<Element*>(p.out) + plan.q_offset : nullptr,
                    p.accumulate_step, q_stride, lane);
    return;
  }
  store_rows<Element, SwizzledRows<CH>>(acc_o, row_inverse, shared, warp_row, view.q, first_query, plan.fixed_end,
                                        static_cast<Element*>(p.out) + plan.q_offset, q_stride, lane);
  write_lse_rows(row_lse, view.q, first_query, plan.fixed_end, lse_head, lane);
}

// Tile shapes: 128 query rows over 4 warps (32 rows = two m16 tiles each, so every K/V fragment loaded
// from shared memory feeds two mma), BlockN keys per step. Registers decide BlockN: S (32·BlockN/32 per
// lane) and O (32·D/32) accumulators must fit beside the fragments in 255 registers.
//   D = 128: BlockN = 48 (spills ~80 bytes per lane). Measured on an H100 (bench/results/gpu-2026-11-22-*):
//            48 beat 64 (~150 bytes of spills, 3-6% slower at N >= 16k, equal at 4k) and 32 (no spills but
//            twice the barriers per key: 2-27% slower). Under dilation 64: LongNet segments hold powers of
//            two of selected keys, and 48-key tiles would straddle segment borders and take the per-element
//            mask (measured 0.76x instead of 0.91x of gather + SDPA). RINGLAB_FORWARD_VARIANT=n64 selects 64
//            everywhere (a measuring hook for bench/gpu).
//   D = 64:  BlockN = 64 (no spills). FlashAttention-2 takes 128 keys at D = 64; here that spills, and
//            capping registers at 168 for 3 blocks per SM spilled ~300 bytes and ran 5-10% slower.
template <class Traits>
void launch(const AttentionParams& params, i64 rows_q, cudaStream_t stream) {
  launch_per_tile(fast_forward<Traits>, rows_q, Traits::kBlockM, Traits::kThreads, Traits::kSharedBytes, params, stream);
}

}  // namespace

template <class Element, int HeadDim>
void launch_fast_forward(const AttentionParams& params, i64 rows_q, cudaStream_t stream) {
  if (hopper_forward_available()) return launch_hopper_forward<Element, HeadDim>(params, rows_q, hopper_copies_by_tma(), stream);
  if constexpr (HeadDim == 128) {
    if (forward_variant() != ForwardVariant::mma_n64 && params.dilation_count == 0)
      return launch<ForwardTraits<Element, HeadDim, 128, 48, 4>>(params, rows_q, stream);
  }
  launch<ForwardTraits<Element, HeadDim, 128, 64, 4>>(params, rows_q, stream);
}

template void launch_fast_forward<__nv_bfloat16, 64>(const AttentionParams&, i64, cudaStream_t);
template void launch_fast_forward<__nv_bfloat16, 128>(const AttentionParams&, i64, cudaStream_t);
template void launch_fast_forward<__half, 64>(const AttentionParams&, i64, cudaStream_t);
template void launch_fast_forward<__half, 128>(const AttentionParams&, i64, cudaStream_t);

}  // namespace ringlab::gpu::detail
