// The per-warp pieces both tensor-core forward kernels share (forward_fast.cu on mma.sync, forward_hopper.cu
// on wgmma): the online softmax over a score tile, the P fragments for O += P·V, and the epilogue (normalise,
// LSE, write or ⊕-merge into the ring's accumulator). Both kernels hold S and O in the same register layout:
// m16n8 C fragments, s[mt][nt][0..1] = S[16mt + g][8nt + 2c ..+1], s[mt][nt][2..3] = S[16mt + g + 8][..]
// (g = lane/4, c = lane%4), which is what wgmma's accumulators are per warp too.
#pragma once

#include <cstdint>

#include "attention_params.cuh"
#include "ptx.cuh"

namespace ringlab::gpu::detail {

// Running softmax state of a warp's rows: m (raw score units) and this lane's part of ℓ.
template <int MT>
struct SoftmaxRows {
  float max[MT][2];
  float sum[MT][2];
  __device__ __forceinline__ void reset() {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      max[mt][0] = max[mt][1] = -INFINITY;
      sum[mt][0] = sum[mt][1] = 0.0f;
    }
  }
};

template <int MT, int DT>
__device__ __forceinline__ void zero(float (&acc)[MT][DT][4]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int dt = 0; dt < DT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mt][dt][e] = 0.0f;
}

// Online softmax of one key tile, in two halves so that a kernel whose O += P·V runs asynchronously can do
// the first while the tensor cores still write O:
//   softmax_scores: m' = max(m, rowmax S), P = 2^{(S − m')·τ·log2 e} (in place of S),
//                   ℓ' = 2^{(m − m')·τ·log2 e}·ℓ + rowsum P; returns whether any row of the warp changed m.
//   rescale_output: O ← 2^{(m − m')·τ·log2 e}·O (skipped when no row changed: the factor is exactly 1).
template <int MT, int NT>
__device__ __forceinline__ bool softmax_scores(float (&s)[MT][NT][4], SoftmaxRows<MT>& rows, float scale_log2,
                                               float (&correction)[MT][2]) {
  bool rescale = false;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float new_max = rows.max[mt][half];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) new_max = fmaxf(new_max, fmaxf(s[mt][nt][2 * half], s[mt][nt][2 * half + 1]));
      new_max = fmaxf(new_max, __shfl_xor_sync(0xffffffffu, new_max, 1));  // the 4 lanes of a row
      new_max = fmaxf(new_max, __shfl_xor_sync(0xffffffffu, new_max, 2));
      // A row with nothing allowed yet keeps m = −∞: subtract 0 so that P stays 0, not NaN.
      // (__fmul_rn: no fused multiply-add, so an unchanged maximum gives a correction of exactly 1.)
      const float scaled_max = new_max == -INFINITY ? 0.0f : __fmul_rn(new_max, scale_log2);
      correction[mt][half] = ptx::ex2(__fmul_rn(rows.max[mt][half], scale_log2) - scaled_max);
      rescale = rescale || new_max != rows.max[mt][half];
      rows.max[mt][half] = new_max;
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float& x = s[mt][nt][2 * half + e];
          x = ptx::ex2(fmaf(x, scale_log2, -scaled_max));
          sum += x;
        }
      rows.sum[mt][half] = rows.sum[mt][half] * correction[mt][half] + sum;
    }
  // Once the row maxima settle (after the first few key tiles) no row of the warp changes.
  return __any_sync(0xffffffffu, rescale);
}

template <int MT, int DT>
__device__ __forceinline__ void rescale_output(float (&acc_o)[MT][DT][4], const float (&correction)[MT][2]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int dt = 0; dt < DT; ++dt) {
      acc_o[mt][dt][0] *= correction[mt][0];
      acc_o[mt][dt][1] *= correction[mt][0];
      acc_o[mt][dt][2] *= correction[mt][1];
      acc_o[mt][dt][3] *= correction[mt][1];
    }
}

// Both halves at once (the mma.sync kernel, whose products are synchronous).
template <int MT, int NT, int DT>
__device__ __forceinline__ void online_softmax(float (&s)[MT][NT][4], SoftmaxRows<MT>& rows, float (&acc_o)[MT][DT][4],
                                               float scale_log2) {
  float correction[MT][2];
  if (softmax_scores(s, rows, scale_log2, correction)) rescale_output(acc_o, correction);
}

// P (fp32 C fragments of two adjacent n8 tiles nt = 2kk, 2kk + 1) as the m16k16 A fragment of k16 step kk.
template <class Element, int MT, int NT>
__device__ __forceinline__ void p_fragment(const float (&s)[MT][NT][4], int mt, int kk, std::uint32_t (&a)[4]) {
  a[0] = ptx::pack2<Element>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
  a[1] = ptx::pack2<Element>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
  a[2] = ptx::pack2<Element>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
  a[3] = ptx::pack2<Element>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
}

// The rows' final ℓ (summed over the 4 lanes of a row), 1/ℓ and LSE = τ·m + ln ℓ; rows without an allowed
// key get 1/ℓ = 0 and LSE = −∞ (their O is 0).
template <int MT>
__device__ __forceinline__ void finish_rows(const SoftmaxRows<MT>& rows, float scale, float (&lse)[MT][2],
                                            float (&inverse)[MT][2]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float sum = rows.sum[mt][half];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const bool any_key = sum > 0.0f;
      inverse[mt][half] = any_key ? 1.0f / sum : 0.0f;
      lse[mt][half] = any_key ? rows.max[mt][half] * scale + logf(sum) : -INFINITY;
    }
}

// Lane c = 0 of each row writes its LSE (rows as in accumulate_rows).
template <int MT>
__device__ __forceinline__ void write_lse_rows(const float (&lse)[MT][2], const RowMap& q_rows, i64 first_query,
                                               i64 q_end, float* lse_head, int lane) {
  if (lane % 4 != 0) return;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const i64 query = first_query + mt * 16 + lane / 4 + 8 * half;
      if (query < q_end) lse_head[q_rows.row(query)] = lse[mt][half];
    }
}

// (O, LSE) ← (O, LSE) ⊕ (this warp's O, LSE) in fp32, in place (docs/semantics.md §5), for the warp's rows
// first_query + 16mt + g + 8half (indices into the head's query row map) below q_end. Each row belongs to
// one warp alone, and its 4 lanes (c = 0..3) hold 2 of every 8 columns. All lanes read the old LSE before
// lane c = 0 writes the merged one. `lse_head`: the LSE of this (batch, head) at tensor row 0; `o_head`:
// the fp32 O accumulator at (batch, head, row 0), rows `row_stride` apart.
// `step` (AttentionParams::accumulate_step): kAccumulateFirst writes (O, LSE) without reading the old ones (a
// ring's first step: nothing to clear beforehand); kAccumulateLast merges and writes O rounded to Element at
// `out_head` (same layout) instead of the accumulator (a ring's last step: no conversion pass afterwards),
// also for rows this block adds nothing to.
// The old values of a row are all loaded before any is stored: the compiler cannot move a load above a
// store that might alias it, so load, merge, store pair by pair made each lane wait for its loads in turn
// (the backward's dK/dV epilogue did that and took 13–26 µs per block; this tail now takes ~4 µs in a ring
// step: bench/results/gpu-block-costs-2026-11-22-H100.md). Each row's tensor row is computed once.
template <class Element, int MT, int DT>
__device__ __forceinline__ void accumulate_rows(const float (&acc_o)[MT][DT][4], const float (&lse)[MT][2],
                                                const float (&inverse)[MT][2], const RowMap& q_rows, i64 first_query,
                                                i64 q_end, float* lse_head, float* o_head, Element* out_head,
                                                int step, i64 row_stride, int lane) {
  const int g = lane / 4, c = lane % 4;
  const bool reads = step != kAccumulateFirst;
  i64 tensor_row[MT][2];  // of each of the lane's rows; −1 past q_end
  float old_lse[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const i64 query = first_query + mt * 16 + g + 8 * half;
      tensor_row[mt][half] = query < q_end ? q_rows.row(query) : -1;
      old_lse[mt][half] = reads && query < q_end ? lse_head[tensor_row[mt][half]] : -INFINITY;
    }
  float merged_lse[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float la = old_lse[mt][half], lb = lse[mt][half];
      merged_lse[mt][half] = la;
      if (tensor_row[mt][half] < 0) continue;
      float wa, wb;  // O = wa·O_old + wb·(this block's unnormalised O)
      if (lb == -INFINITY) {  // this block adds nothing to the row
        if (step == kAccumulateMiddle) continue;  // the accumulator holds it already
        wa = reads ? 1.0f : 0.0f;                 // first: (0, −∞); last: the old row, converted
        wb = 0.0f;
      } else {
        const float larger = fmaxf(la, lb);
        const float merged = larger + log1pf(expf(fminf(la, lb) - larger));
        merged_lse[mt][half] = merged;
        wa = la == -INFINITY ? 0.0f : expf(la - merged);
        wb = expf(lb - merged) * inverse[mt][half];
      }
      float2* row = reinterpret_cast<float2*>(o_head + tensor_row[mt][half] * row_stride + 2 * c);
      float2 value[DT];
#pragma unroll
      for (int dt = 0; dt < DT; ++dt) value[dt] = wa != 0.0f ? row[dt * 4] : make_float2(0.0f, 0.0f);  // 8dt + 2c, +1
      if (step == kAccumulateLast) {
        auto* out_row = reinterpret_cast<std::uint32_t*>(out_head + tensor_row[mt][half] * row_stride + 2 * c);
#pragma unroll
        for (int dt = 0; dt < DT; ++dt)
          out_row[dt * 4] = ptx::pack2<Element>(wa * value[dt].x + wb * acc_o[mt][dt][2 * half],
                                                wa * value[dt].y + wb * acc_o[mt][dt][2 * half + 1]);
      } else {
#pragma unroll
        for (int dt = 0; dt < DT; ++dt)
          row[dt * 4] = make_float2(wa * value[dt].x + wb * acc_o[mt][dt][2 * half],
                                    wa * value[dt].y + wb * acc_o[mt][dt][2 * half + 1]);
      }
    }
  __syncwarp();  // every lane of a row has read its old LSE
  if (c != 0) return;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half)
      if (tensor_row[mt][half] >= 0) lse_head[tensor_row[mt][half]] = merged_lse[mt][half];
}

// O / ℓ rounded to the element type, staged in shared memory at the warp's own rows (`first_row` in the
// tile, laid out by `Layout`, whose offsets the caller's 16-byte reads use too), then written with 16-byte
// stores to rows first_query + r of the query row map below q_end.
template <class Element, class Layout, int MT, int DT>
__device__ __forceinline__ void store_rows(const float (&acc_o)[MT][DT][4], const float (&inverse)[MT][2],
                                           unsigned char* stage, int first_row, const RowMap& q_rows,
                                           i64 first_query, i64 q_end, Element* o_head, i64 row_stride, int lane) {
  const int g = lane / 4, c = lane % 4;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = first_row + mt * 16 + g + 8 * half;
#pragma unroll
      for (int dt = 0; dt < DT; ++dt)
        *reinterpret_cast<std::uint32_t*>(stage + Layout::offset(row, dt) + 4 * c) = ptx::pack2<Element>(
            acc_o[mt][dt][2 * half] * inverse[mt][half], acc_o[mt][dt][2 * half + 1] * inverse[mt][half]);
    }
  __syncwarp();
  constexpr int kChunks = DT;  // 16-byte chunks per row: 8 values each, as many as n8 tiles
#pragma unroll
  for (int index = lane; index < MT * 16 * kChunks; index += 32) {
    const int r = index / kChunks, chunk = index % kChunks;
    const i64 query = first_query + r;
    if (query < q_end)
      *reinterpret_cast<uint4*>(o_head + q_rows.row(query) * row_stride + chunk * 8) =
          *reinterpret_cast<const uint4*>(stage + Layout::offset(first_row + r, chunk));
  }
}

}  // namespace ringlab::gpu::detail
