// The Hopper forward kernel (sm_90a: H100, H200): forward_fast.cu's algorithm with the matrix products on
// wgmma, which multiplies a 64-row tile of one warpgroup (4 warps) straight from shared memory. The mma.sync
// kernel is bound by every warp loading its own operand fragments with ldmatrix (bench/results: ~46% tensor
// pipe); here the tensor cores read Q, K and V from shared memory themselves, and P stays in registers.
//
//   grid: (query tiles, H, B), heaviest query tiles first; block: 2 warpgroups (256 threads), BlockM = 128
//   query rows (64 per warpgroup), BlockN = 128 keys per step. Shared memory (128-byte swizzle, the layout
//   wgmma's descriptors read, tiles.cuh Swizzle128Halves): Q [128][D], and K, V [128][D] twice (two stages).
//   Per key tile j in the range the mask can reach (the same plan as forward_fast.cu), pipelined:
//     wait K_j, V_{j−1}; barrier; cp.async K_{j+1}, V_j into the buffers step j does not read
//     issue S = Q·K_jᵀ: wgmma m64n128k16, A = Q and B = K_j from shared memory (K-major), fp32 accumulators
//     issue O += P_{j−1}·V_{j−1}: wgmma m64nDk16, A = P from registers (bf16/fp16), B = V from shared
//       memory (MN-major)
//     wait for S; mask it only if the tile is partial; softmax (forward_common.cuh, the mma.sync kernel's
//       code) while O's product still runs; wait for O; rescale O; P_j → registers
//   Epilogue as forward_fast.cu: O / ℓ and LSE written, or ⊕-merged into the ring's fp32 accumulator.
//
// Compiled for sm_90a only (gpu/CMakeLists.txt); hopper_forward_available() says whether this process's GPU
// can run it, and block_attention.cu's dispatch falls back to the mma.sync kernel otherwise.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "cuda_check.cuh"
#include "forward_common.cuh"
#include "kernels.cuh"
#include "ptx.cuh"
#include "tiles.cuh"
#include "wgmma.cuh"

namespace ringlab::gpu::detail {
namespace {

template <class Element_, int HeadDim>
struct HopperTraits {
  using Element = Element_;
  static constexpr int kHeadDim = HeadDim;
  static constexpr int kBlockM = 128;  // 64 rows per warpgroup: wgmma's M
  static constexpr int kBlockN = 128;
  static constexpr int kWarpgroups = kBlockM / 64;
  static constexpr int kThreads = kWarpgroups * 128;
  static constexpr int kTileBytesQ = kBlockM * HeadDim * 2;
  static constexpr int kTileBytesKV = kBlockN * HeadDim * 2;
  // Q, then K stage 0, K stage 1, V stage 0, V stage 1; +1024 to align the start to the swizzle's 1024 bytes.
  static constexpr int kSharedBytes = kTileBytesQ + 4 * kTileBytesKV + 1024;
  static_assert(HeadDim % 64 == 0, "the 128-byte swizzle holds 64 values per row");
};

template <class Traits>
__global__ void __launch_bounds__(Traits::kThreads, 1) hopper_forward(const AttentionParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Element = typename Traits::Element;
  constexpr int D = Traits::kHeadDim, BM = Traits::kBlockM, BN = Traits::kBlockN, T = Traits::kThreads;
  constexpr int NT = BN / 8, DT = D / 8;
  using QLayout = Swizzle128Halves<BM>;
  using KVLayout = Swizzle128Halves<BN>;
  using ScoreMma = wgmma::Mma<Element, BN>;
  using OutputMma = wgmma::Mma<Element, D>;
  extern __shared__ unsigned char shared_raw[];
  unsigned char* shared = shared_raw + ((1024 - ptx::shared_address(shared_raw) % 1024) % 1024);
  const std::uint32_t sQ = ptx::shared_address(shared);
  const std::uint32_t sK = sQ + Traits::kTileBytesQ, sV = sK + 2 * Traits::kTileBytesKV;

  const i64 h = blockIdx.y, b = blockIdx.z;
  __shared__ SharedBlockPlan plan_storage;
  if (threadIdx.x == 0)  // heavy (late) query tiles first: causal blocks finish together
    make_plan(plan_storage.get(), p, b, h, static_cast<i64>(gridDim.x) - 1 - blockIdx.x, BM, BN, true);
  __syncthreads();
  const BlockPlan& plan = plan_storage.get();
  const HeadView& view = plan.view;
  if (plan.fixed_begin >= view.q.rows) return;
  if (p.accumulate != nullptr && plan.visit_begin >= plan.visit_end) return;  // adds nothing (⊕ identity)
  const int q_stride = static_cast<int>(p.heads * D), kv_stride = static_cast<int>(p.kv_heads * D);
  const int j_begin = static_cast<int>(plan.visit_begin);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int warpgroup = warp / 4;
  const int warp_row = warp * 16;  // warpgroup·64 + (warp mod 4)·16: this warp's rows of the accumulators

  auto keys = [&] { return static_cast<const Element*>(p.k) + plan.kv_offset; };
  auto values = [&] { return static_cast<const Element*>(p.v) + plan.kv_offset; };
  auto load_keys = [&](int j, int stage) {
    load_tile_async<Element, BN, D, T, KVLayout>(sK + stage * Traits::kTileBytesKV, keys(), kv_stride, view.k,
                                                 static_cast<i64>(j) * BN);
  };
  auto load_values = [&](int j, int stage) {
    load_tile_async<Element, BN, D, T, KVLayout>(sV + stage * Traits::kTileBytesKV, values(), kv_stride, view.k,
                                                 static_cast<i64>(j) * BN);
  };
  load_tile_async<Element, BM, D, T, QLayout>(sQ, static_cast<const Element*>(p.q) + plan.q_offset, q_stride, view.q,
                                              plan.fixed_begin);
  if (j_begin < plan.visit_end) load_keys(j_begin, 0);
  ptx::cp_async_commit();

  // Descriptors. Q and K are K-major (D contiguous): k16 step kk reads 32 bytes at (kk mod 4)·32 of column
  // block kk/4; 8-row groups 1024 bytes apart. V is MN-major for O += P·V (D contiguous, the sum over
  // keys): k16 step kk starts at key 16kk; 8-key groups 1024 bytes apart, D's column blocks BN·128 apart.
  auto q_descriptor = [&](int kk) {
    return wgmma::descriptor(sQ + (kk / 4) * BM * 128 + warpgroup * 64 * 128 + (kk % 4) * 32, 16, 1024);
  };
  auto k_descriptor = [&](int stage, int kk) {
    return wgmma::descriptor(sK + stage * Traits::kTileBytesKV + (kk / 4) * BN * 128 + (kk % 4) * 32, 16, 1024);
  };
  auto v_descriptor = [&](int stage, int kk) {
    return wgmma::descriptor(sV + stage * Traits::kTileBytesKV + kk * 16 * 128, BN * 128, 1024);
  };

  float acc_o[1][DT][4];
  zero(acc_o);
  SoftmaxRows<1> rows;
  rows.reset();
  float s[1][NT][4];              // S_j, then P_j in fp32
  std::uint32_t a[BN / 16][4];    // P_{j−1} as wgmma's A operand (k16 step kk = keys 16kk .. 16kk + 15)

  // Issue S = Q·K_jᵀ for this warpgroup's [64 × BN] (this warp's 16 rows of it in registers) as one group.
  auto issue_scores = [&](int stage) {
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) ScoreMma::ss(s[0], q_descriptor(kk), k_descriptor(stage, kk), kk > 0);
    wgmma::commit_group();
  };
  // Issue O += P·V as one group, P from `a`.
  auto issue_output = [&](int stage) {
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) OutputMma::rs(acc_o[0], a[kk], v_descriptor(stage, kk), 1);
    wgmma::commit_group();
  };
  // Mask S_j if its tile is partial, then its half of the online softmax (P_j in s; O untouched).
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
  // Every thread's copies are in and published to wgmma (async proxy); the barrier also says that every
  // warpgroup is done with the products of the previous step (they were waited for).
  auto arrive = [&] {
    ptx::cp_async_wait<0>();
    wgmma::fence_proxy_async();
    __syncthreads();
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

  // Software pipeline (FlashAttention-3's intra-warpgroup overlap): step j issues S_j = Q·K_jᵀ and
  // O += P_{j−1}·V_{j−1} together, waits for S_j only, and runs S_j's softmax while the tensor cores still
  // compute O; then waits for O, rescales it and turns P_j into A fragments. K_{j+1} and V_j are copied
  // during step j (K stage = j mod 2, V stage = j mod 2, counted from the first visited tile): K_{j−1}'s and
  // V_{j−2}'s buffers, which step j no longer reads.
  if (j_begin < plan.visit_end) {
    arrive();  // Q and K_first
    if (j_begin + 1 < plan.visit_end) load_keys(j_begin + 1, 1);
    load_values(j_begin, 0);
    ptx::cp_async_commit();
    issue_scores(0);
    wgmma::wait_group<0>();
    fence_registers();
    float correction[1][2];
    softmax(j_begin, correction);  // O is still 0: nothing to rescale
    p_to_registers();
    for (int j = j_begin + 1; j < plan.visit_end; ++j) {
      const int stage = (j - j_begin) & 1;
      arrive();  // K_j and V_{j−1}
      if (j + 1 < plan.visit_end) load_keys(j + 1, stage ^ 1);
      load_values(j, stage);
      ptx::cp_async_commit();
      issue_scores(stage);
      issue_output(stage ^ 1);
      wgmma::wait_group<1>();  // S_j (the older group) is done; O += P_{j−1}·V_{j−1} may still run
      ScoreMma::fence_operands(s[0]);
      const bool rescale = softmax(j, correction);
      wgmma::wait_group<0>();
      fence_registers();
      if (rescale) rescale_output(acc_o, correction);
      p_to_registers();
    }
    arrive();  // V_last
    issue_output((plan.visit_end - 1 - j_begin) & 1);
    wgmma::wait_group<0>();
    fence_registers();
  }

  // Epilogue: each warp stages O in its own rows of the Q tile (its warpgroup's products are complete).
  ptx::cp_async_wait<0>();
  __syncthreads();
  float row_lse[1][2], row_inverse[1][2];
  finish_rows(rows, p.scale, row_lse, row_inverse);
  float* lse_head = p.lse + (b * p.heads + h) * p.rows_q;
  const i64 first_query = plan.fixed_begin + warp_row;
  if (p.accumulate != nullptr) {
    accumulate_rows(acc_o, row_lse, row_inverse, view.q, first_query, plan.fixed_end, lse_head,
                    p.accumulate + plan.q_offset, q_stride, lane);
    return;
  }
  store_rows<Element, QLayout>(acc_o, row_inverse, shared, warp_row, view.q, first_query, plan.fixed_end,
                               static_cast<Element*>(p.out) + plan.q_offset, q_stride, lane);
  write_lse_rows(row_lse, view.q, first_query, plan.fixed_end, lse_head, lane);
#endif
}

template <class Traits>
void launch(const AttentionParams& params, i64 rows_q, cudaStream_t stream) {
  const auto kernel = hopper_forward<Traits>;
  RINGLAB_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Traits::kSharedBytes));
  const dim3 grid(static_cast<unsigned>((rows_q + Traits::kBlockM - 1) / Traits::kBlockM),
                  static_cast<unsigned>(params.heads), static_cast<unsigned>(params.batch));
  kernel<<<grid, Traits::kThreads, Traits::kSharedBytes, stream>>>(params);
  RINGLAB_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

bool hopper_forward_available() {
  const char* variant = std::getenv("RINGLAB_FORWARD_VARIANT");  // "mma"/"n64": the mma.sync kernel (bench)
  if (variant != nullptr && (std::string(variant) == "mma" || std::string(variant) == "n64")) return false;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0) return false;
  // Per device: 0 unknown, 1 no, 2 yes (ring threads ask concurrently, one device each).
  static std::atomic<int> known[64];
  if (device < 64 && known[device].load() != 0) return known[device].load() == 2;
  int major = 0, minor = 0;
  bool available = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
                   cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) == cudaSuccess &&
                   major == 9 && minor == 0;  // sm_90a code runs on compute capability 9.0 only
  if (available) {
    cudaFuncAttributes attributes{};
    available = cudaFuncGetAttributes(&attributes, hopper_forward<HopperTraits<__nv_bfloat16, 128>>) == cudaSuccess;
    if (!available) (void)cudaGetLastError();  // clear the error of a binary without sm_90a code
  }
  if (device < 64) known[device].store(available ? 2 : 1);
  return available;
}

template <class Element, int HeadDim>
void launch_hopper_forward(const AttentionParams& params, i64 rows_q, cudaStream_t stream) {
  launch<HopperTraits<Element, HeadDim>>(params, rows_q, stream);
}

template void launch_hopper_forward<__nv_bfloat16, 64>(const AttentionParams&, i64, cudaStream_t);
template void launch_hopper_forward<__nv_bfloat16, 128>(const AttentionParams&, i64, cudaStream_t);
template void launch_hopper_forward<__half, 64>(const AttentionParams&, i64, cudaStream_t);
template void launch_hopper_forward<__half, 128>(const AttentionParams&, i64, cudaStream_t);

}  // namespace ringlab::gpu::detail
