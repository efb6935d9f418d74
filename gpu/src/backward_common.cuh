// What both tensor-core backward kernels share (backward_fast.cu on mma.sync, backward_hopper.cu on wgmma).
#pragma once

#include "attention_params.cuh"
#include "ptx.cuh"

namespace ringlab::gpu::detail {

constexpr float kLog2e = 1.4426950408889634f;

// Adds a warp's dK, dV (m16n8 C fragments: rows first_key + 16mt + g (+8) of the key row map, columns
// first_column + 8nt + 2c, +1; g = lane/4, c = lane%4) into the fp32 accumulators p.dk, p.dv of the block's
// KV head (`kv_offset`: elements to its (batch, head, row 0)), for keys below k_end.
// Always as reductions (red.global.add, which nothing waits for): several query heads' blocks add to the
// same rows under GQA, and without GQA a read-add-write per pair made each lane wait for 32 loads in turn
// (the compiler cannot move a load above the store before it: dK and dV might alias), 13–26 µs per block
// on an H100 (bench/gpu/profile_blocks.py). Each pair is added once per launch, so without GQA the result
// is the same bits as the read-add-write's.
template <int MT, int NT>
__device__ __forceinline__ void add_key_gradients(const float (&dk)[MT][NT][4], const float (&dv)[MT][NT][4],
                                                  const AttentionParams& p, const RowMap& k_rows, i64 kv_offset,
                                                  i64 first_key, i64 k_end, int first_column, int lane) {
  const int g = lane / 4, c = lane % 4;
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
        ptx::atomic_add2(dk_pair, dk[mt][nt][2 * half], dk[mt][nt][2 * half + 1]);
        ptx::atomic_add2(dv_pair, dv[mt][nt][2 * half], dv[mt][nt][2 * half + 1]);
      }
    }
}

}  // namespace ringlab::gpu::detail
