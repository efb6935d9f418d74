// What both tensor-core backward kernels share (backward_fast.cu on mma.sync, backward_hopper.cu on wgmma).
#pragma once

#include "attention_params.cuh"
#include "ptx.cuh"

namespace ringlab::gpu::detail {

constexpr float kLog2e = 1.4426950408889634f;

// Adds a warp's dK, dV (m16n8 C fragments: rows first_key + 16mt + g (+8) of the key row map, columns
// first_column + 8nt + 2c, +1; g = lane/4, c = lane%4) into the fp32 accumulators p.dk, p.dv of the block's
// KV head (`kv_offset`: elements to its (batch, head, row 0)), for keys below k_end. Atomically when several
// query heads share the KV head (GQA): their blocks add to the same rows.
template <int MT, int NT>
__device__ __forceinline__ void add_key_gradients(const float (&dk)[MT][NT][4], const float (&dv)[MT][NT][4],
                                                  const AttentionParams& p, const RowMap& k_rows, i64 kv_offset,
                                                  i64 first_key, i64 k_end, int first_column, int lane) {
  const int g = lane / 4, c = lane % 4;
  const bool shared_kv = p.heads != p.kv_heads;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const i64 key = first_key + mt * 16 + g + 8 * half;
      if (key >= k_end) continue;
      const i64 offset = kv_offset + k_rows.row(key) * p.kv_heads * p.head_dim + first_column + 2 * c;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        float* dk_pair = p.dk + offset + nt * 8;
        float* dv_pair = p.dv + offset + nt * 8;
        const float* k_values = &dk[mt][nt][2 * half];
        const float* v_values = &dv[mt][nt][2 * half];
        if (shared_kv) {
          ptx::atomic_add2(dk_pair, k_values[0], k_values[1]);
          ptx::atomic_add2(dv_pair, v_values[0], v_values[1]);
        } else {
          const float2 x = *reinterpret_cast<float2*>(dk_pair), y = *reinterpret_cast<float2*>(dv_pair);
          *reinterpret_cast<float2*>(dk_pair) = make_float2(x.x + k_values[0], x.y + k_values[1]);
          *reinterpret_cast<float2*>(dv_pair) = make_float2(y.x + v_values[0], y.y + v_values[1]);
        }
      }
    }
}

}  // namespace ringlab::gpu::detail
