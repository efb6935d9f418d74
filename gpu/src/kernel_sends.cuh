// A virtual ring's hop done inside the step's Hopper kernel (gpu::KernelSends, AttentionParams::k_send .. dv_from).
//
// On one GPU a device-to-device copy is a kernel on the SMs (bench/gpu/copy_engine_probe.cu): it waits for SMs
// that the attention kernels hold and then takes them from those kernels. The attention kernels' producer
// warpgroup, meanwhile, issues one tile's copies per tile and waits: its threads copy the hop's bytes in 16-byte
// units, two units a thread per tile (both loads in flight before either store), so that the copy spreads over
// the products; what is left after the main loop is copied then.
//
//   backward (key_row_unit): the block's own key rows, of K and V into k_send / v_send and of dk_from / dv_from
//     into dk / dv. A key row has one block (Hkv = H, no dilation: gpu::kernel_sends_available), and that block
//     copies the received accumulator's row before its epilogue adds its dK, dV rows to it.
//   forward (slice_unit): an equal share of K's and V's bytes per block, whoever reads them.
//
// Everything is read from the kernel parameters and the block's plan, as the kernels' other helpers do: the
// producer has 40 registers, and a helper object holding a pointer to the parameters would copy them to the stack.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "attention_params.cuh"

namespace ringlab::gpu::detail {

// Unit u of a block's sends: where its 16 bytes come from and go to.
struct SendUnit {
  const uint4* from;
  uint4* to;
};

// Backward: per key row of the block, K's and V's row (kv units each, element type) when sending K/V, then dK's
// and dV's (grad units each, fp32) when passing an accumulator on.
template <int ElementBytes>
__host__ __device__ __forceinline__ int key_row_kv_units(const AttentionParams& p) {
  return p.k_send != nullptr ? static_cast<int>(p.head_dim) * ElementBytes / 16 : 0;
}
__host__ __device__ __forceinline__ int key_row_grad_units(const AttentionParams& p) {
  return p.dk_from != nullptr ? static_cast<int>(p.head_dim) * 4 / 16 : 0;
}
template <int ElementBytes>
__host__ __device__ __forceinline__ i64 key_row_units(const AttentionParams& p, const BlockPlan& plan) {
  const int per_row = 2 * key_row_kv_units<ElementBytes>(p) + 2 * key_row_grad_units(p);
  return plan.fixed_end > plan.fixed_begin ? (plan.fixed_end - plan.fixed_begin) * per_row : 0;
}
template <int ElementBytes>
__host__ __device__ __forceinline__ SendUnit key_row_unit(const AttentionParams& p, const BlockPlan& plan, i64 u) {
  const int kv_units = key_row_kv_units<ElementBytes>(p), grad_units = key_row_grad_units(p);
  const int per_row = 2 * kv_units + 2 * grad_units;
  const i64 i = u / per_row;
  int column = static_cast<int>(u - i * per_row);
  const i64 element = plan.kv_offset + plan.view.k.row(plan.fixed_begin + i) * p.kv_heads * p.head_dim;
  if (column < 2 * kv_units) {
    const bool value = column >= kv_units;
    const i64 byte = element * ElementBytes + static_cast<i64>(column - (value ? kv_units : 0)) * 16;
    const auto* from = static_cast<const unsigned char*>(value ? p.v : p.k) + byte;
    auto* to = static_cast<unsigned char*>(value ? p.v_send : p.k_send) + byte;
    return {reinterpret_cast<const uint4*>(from), reinterpret_cast<uint4*>(to)};
  }
  column -= 2 * kv_units;
  const bool value = column >= grad_units;
  const i64 at = element + static_cast<i64>(column - (value ? grad_units : 0)) * 4;
  return {reinterpret_cast<const uint4*>((value ? p.dv_from : p.dk_from) + at),
          reinterpret_cast<uint4*>((value ? p.dv : p.dk) + at)};
}

// Forward: K then V, T units each (the whole [B, rows_k, Hkv, D] tensors); block β of G sends units
// ⌊β·2T/G⌋ .. ⌊(β + 1)·2T/G⌋ − 1 (`first`, `end`).
template <int ElementBytes>
__host__ __device__ __forceinline__ i64 slice_tensor_units(const AttentionParams& p) {
  return p.batch * p.rows_k * p.kv_heads * p.head_dim * ElementBytes / 16;
}
template <int ElementBytes>
__host__ __device__ __forceinline__ void block_slice(const AttentionParams& p, i64 block, i64 blocks, i64& first,
                                                     i64& end) {
  first = end = 0;
  if (p.k_send == nullptr) return;
  const i64 both = 2 * slice_tensor_units<ElementBytes>(p);
  first = block * both / blocks;
  end = (block + 1) * both / blocks;
}
// This block's: β = its linear index in the grid.
template <int ElementBytes>
__device__ __forceinline__ void block_slice(const AttentionParams& p, i64& first, i64& end) {
  const i64 blocks = static_cast<i64>(gridDim.x) * gridDim.y * gridDim.z;
  const i64 block = blockIdx.x + static_cast<i64>(gridDim.x) * (blockIdx.y + static_cast<i64>(gridDim.y) * blockIdx.z);
  block_slice<ElementBytes>(p, block, blocks, first, end);
}
template <int ElementBytes>
__host__ __device__ __forceinline__ SendUnit slice_unit(const AttentionParams& p, i64 g) {
  const i64 tensor_units = slice_tensor_units<ElementBytes>(p);
  const bool value = g >= tensor_units;
  const i64 at = value ? g - tensor_units : g;
  return {static_cast<const uint4*>(value ? p.v : p.k) + at, static_cast<uint4*>(value ? p.v_send : p.k_send) + at};
}

// Units next + thread and next + threads + thread below `end` (unit_of(u) says where each goes): both loaded
// before either is stored, so that one memory latency covers two units. Returns the next unit to send.
template <class UnitOf>
__device__ __forceinline__ i64 send_pair(const UnitOf& unit_of, i64 next, i64 end, int thread, int threads) {
  const i64 u0 = next + thread, u1 = u0 + threads;
  SendUnit a{}, b{};
  uint4 x{}, y{};
  if (u0 < end) {
    a = unit_of(u0);
    x = *a.from;
  }
  if (u1 < end) {
    b = unit_of(u1);
    y = *b.from;
  }
  if (u0 < end) *a.to = x;
  if (u1 < end) *b.to = y;
  return next + 2 * static_cast<i64>(threads);
}

// Every unit from `next` to `end`, two in flight per thread (one at a time, each thread would wait a whole
// memory latency per unit: ~90 in a row for a short backward block).
template <class UnitOf>
__device__ __forceinline__ void send_rest(const UnitOf& unit_of, i64 next, i64 end, int thread, int threads) {
  while (next < end) next = send_pair(unit_of, next, end, thread, threads);
}

}  // namespace ringlab::gpu::detail
