// Block attention on the GPU, mirroring reference/include/ringlab/block_attention.hpp for every head of
// a batch at once:
//
//   block_attention_forward:   Q [B, n, H, D], K/V [B, m, Hkv, D], their global positions, a mask
//                              → O [B, n, H, D] (normalised, in the input type) and LSE [B, H, n] (fp32)
//   output_gradient_dot:       δ = rowsum(dO ∘ O) [B, H, n] (fp32), once per backward pass
//   block_attention_backward:  dQ, dK, dV (fp32 accumulators, +=) from the saved global LSE and δ
//
// The semantics are docs/semantics.md §3, §5, §6 and §8 exactly: masks see global positions only, a query
// with no allowed key gets O = 0 and LSE = −∞, head h reads KV head ⌊h·Hkv/H⌋. Every call is
// asynchronous on `stream`; all pointers are device pointers.
//
// Positions. Each side is a PositionSet of at most two runs (start, stride, count), in increasing
// position order: one run for a contiguous or striped ring chunk, two for a zigzag chunk. Row i of the
// tensor has the i-th position of the set.
//
// Dilation (LongNet). A head's DilationSelect (w, r, o) keeps the rows whose position t has
// (t mod w) mod r = o and lets a query see only keys of its own segment ⌊t/w⌋. When r divides w (every
// power-of-two pattern) the selected rows of a run are again a run, and the kernels address them with
// strides: no gather, no work on unselected rows, which get O = 0, LSE = −∞ in forward and contribute
// nothing in backward. Otherwise the kernels visit every row and evaluate the predicate per element.
//
// Kernels. fp16/bf16 run the tensor-core kernels (FlashAttention-2 structure, mma.sync m16n8k16 with
// ldmatrix, fp32 accumulation) for head_dim 64 and 128. fp32 runs the teaching kernels (one thread per
// row, fp32 arithmetic, any head_dim ≤ 128): slow, for checking. Anything else throws ConfigError naming
// what is supported (supported_configurations()).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ringlab/config.hpp"
#include "ringlab/gpu/memory.hpp"
#include "ringlab/gpu/tensor.hpp"
#include "ringlab/mask.hpp"
#include "ringlab/positions.hpp"

namespace ringlab::gpu {

// The mask of every head: one band for all, and no dilation, one DilationSelect for every head, or one
// per query head (LongNet's offsets differ per head: o = h mod r under the `paper` rule).
struct HeadMasks {
  BandMask band;
  std::vector<DilationSelect> dilation;  // empty, size 1 or size H

  HeadMasks() = default;
  HeadMasks(const MaskPredicate& mask)  // NOLINT: a reference mask is a HeadMasks for every head
      : band(mask.band) {
    if (mask.dilation) dilation.push_back(*mask.dilation);
  }
  HeadMasks(BandMask band_, std::vector<DilationSelect> dilation_) : band(band_), dilation(std::move(dilation_)) {}
};

// The kernel masks of a whole config, one HeadMasks per pattern index j: head h's j-th mask of
// plan_heads(config) (reference/include/ringlab/dilation.hpp). Attention under the config is the ⊕ (LSE merge)
// of block attention under each, times output_scale(config). Plans whose heads run different numbers of
// patterns are rejected (ConfigError). Without dilation: one set.
std::vector<HeadMasks> head_mask_sets(const AttentionConfig& config);

// The factor every head's output is multiplied by (plan_heads' output_scale: 1/k for combine group_mean with
// k patterns, else 1). The LSE is not shifted (docs/semantics.md §8.2). With a factor c ≠ 1 the gradients of
// O = c·O' follow from the kernels' linearity in (dO, δ): run them with the caller's dO and δ/c
// (δ = rowsum(dO ∘ O)), then multiply dQ, dK, dV by c. A plan whose heads differ is a ConfigError.
double output_scale(const AttentionConfig& config);

// Attention under a whole (self-attention) config on one GPU — the counterpart of reference::attention_forward /
// attention_backward: positions 0..N−1 on both sides, every mask set of head_mask_sets(config), ⊕-merged.
// q [B, N, H, D], k, v [B, N, Hkv, D]; out [B, N, H, D] in q's dtype, lse [B, H, N]. With several mask sets
// (dilation) the merge needs scratch: partial_out shaped like out and partial_lse like lse (unused otherwise).
void attention_forward(const AttentionConfig& config, ConstDeviceTensor q, ConstDeviceTensor k, ConstDeviceTensor v,
                       DeviceTensor out, float* lse, DeviceTensor partial_out, float* partial_lse,
                       Stream stream = nullptr);
// dq [B, N, H, D], dk, dv [B, N, Hkv, D] fp32, zeroed here then accumulated; delta: [B, H, N] scratch for δ.
void attention_backward(const AttentionConfig& config, ConstDeviceTensor q, ConstDeviceTensor k, ConstDeviceTensor v,
                        ConstDeviceTensor out, const float* lse, ConstDeviceTensor dout, float* delta, DeviceTensor dq,
                        DeviceTensor dk, DeviceTensor dv, Stream stream = nullptr);

// q: [B, n, H, D]; k, v: [B, m, Hkv, D] (same dtype); out: [B, n, H, D] in q's dtype; lse: [B, H, n].
// scale is τ (1/√D in attention). Throws ConfigError (unsupported dtype/head_dim, bad shapes, positions or
// dilation) or InputError (misaligned pointers) before launching anything.
void block_attention_forward(ConstDeviceTensor q, const PositionSet& q_positions, ConstDeviceTensor k,
                             ConstDeviceTensor v, const PositionSet& k_positions, const HeadMasks& mask,
                             float scale, DeviceTensor out, float* lse, Stream stream = nullptr);

// Where a call of block_attention_forward_accumulate stands in a sequence of merges (a ring rank's steps):
//   middle: (O, LSE) ⊕= this block, in place in the fp32 accumulator;
//   first:  (O, LSE) = this block: the accumulator's old contents are neither read nor needed (no clearing
//           to (0, −∞) beforehand);
//   last:   (O, LSE) ⊕ this block, with O written in the inputs' dtype to `out` and the LSE in place; the
//           accumulator is read, not written (no conversion pass afterwards).
// first and last write every query row, also rows that see no key here, so they need a mask without dilation
// (a dilated mask visits only its selected rows) and keys to look at (k.rows > 0).
enum class AccumulateStep { middle, first, last };

// A virtual ring step's hop, done by the step's own kernel (gpu::VirtualRing with RingHops::kernels): on one GPU
// a device-to-device copy is itself a kernel that waits for SMs, while the Hopper attention kernels' producer
// warps have idle issue slots. k_to, v_to: where the kernel copies the K and V it is given (shaped like them:
// the next device's receive buffers). dk_from, dv_from (backward with GradientWrite::accumulate only): the
// dK/dV accumulator received from the previous device; the kernel writes dk = dk_from + this block pair's
// gradients (dv likewise), so that dk is the accumulator sent on. Each block copies the rows it owns (backward:
// its key rows; forward: an equal share), the dK/dV rows before its own additions. Needs
// kernel_sends_available(); all four pointers device pointers, 16-byte aligned, none overlapping k, v, dk, dv.
struct KernelSends {
  void* k_to = nullptr;
  void* v_to = nullptr;
  const float* dk_from = nullptr;
  const float* dv_from = nullptr;
};

// Whether block_attention_forward_accumulate / block_attention_backward can send for these inputs here: the
// Hopper kernels (sm_90a) in bf16/fp16, Hkv = H (one block owns each key row), a mask without dilation (every
// row has an owner).
bool kernel_sends_available(DType dtype, std::int64_t head_dim, std::int64_t heads, std::int64_t kv_heads,
                            const HeadMasks& mask);

// (O, LSE) ← (O, LSE) ⊕ block attention, in place: `acc` [B, n, H, D] fp32 and `lse` [B, H, n] are a running
// output (start at (0, −∞), or at a `first` step); this block's normalised O and its LSE are merged into them in
// the kernel's epilogue, in fp32 — no partial buffer, no merge kernel (a ring step's forward). `out` [B, n, H, D]
// in q's dtype receives O at a `last` step (unused otherwise). bf16/fp16 only (the tensor-core kernels);
// otherwise as block_attention_forward.
void block_attention_forward_accumulate(ConstDeviceTensor q, const PositionSet& q_positions, ConstDeviceTensor k,
                                        ConstDeviceTensor v, const PositionSet& k_positions, const HeadMasks& mask,
                                        float scale, DeviceTensor acc, float* lse, Stream stream = nullptr,
                                        AccumulateStep step = AccumulateStep::middle, DeviceTensor out = {},
                                        const KernelSends* sends = nullptr);

// δ [B, H, n] = rowsum(dO ∘ O) in fp32; dout and out have the same dtype and shape [B, n, H, D].
void output_gradient_dot(ConstDeviceTensor dout, ConstDeviceTensor out, float* delta, Stream stream = nullptr);

// How block_attention_backward writes dK and dV.
enum class GradientWrite {
  accumulate,  // dK, dV fp32: += this block pair's gradients
  overwrite,   // dK, dV fp32 or in q's dtype: = this block pair's gradients (0 for keys no query reaches), rounded once.
               // On the Hopper kernel with Hkv = H each key row has one writer, which stores it: no zeroed fp32
               // accumulators and no conversion pass (what a whole backward needs); otherwise done by zeroing,
               // accumulating and, for the dtype, converting from a temporary fp32 buffer.
};

// Accumulates (+=) dQ [B, n, H, D] (fp32) and writes dK, dV [B, m, Hkv, D] as `write` says, for one block pair:
//   P = exp(τ·Q·Kᵀ − LSE) (0 where masked or LSE = −∞),  dS = P ∘ (dO·Vᵀ − δ)
//   dV += Pᵀ·dO,  dK += τ·dSᵀ·Q,  dQ += τ·dS·K
// lse and delta are the global values of these queries ([B, H, n]); an output factor (group_mean) is the
// caller's to apply (output_scale). dQ is accumulated with fp32 atomics, so its last bits may vary run to run.
void block_attention_backward(ConstDeviceTensor q, const PositionSet& q_positions, ConstDeviceTensor k,
                              ConstDeviceTensor v, const PositionSet& k_positions, const HeadMasks& mask,
                              float scale, ConstDeviceTensor dout, const float* lse, const float* delta,
                              DeviceTensor dq, DeviceTensor dk, DeviceTensor dv, Stream stream = nullptr,
                              GradientWrite write = GradientWrite::accumulate, const KernelSends* sends = nullptr);

// Element-wise dtype conversion between two tensors of the same shape (e.g. fp32 dQ → bf16).
void convert(ConstDeviceTensor from, DeviceTensor to, Stream stream = nullptr);

// tensor ← factor · tensor, element-wise, in place (any dtype; the shape only gives the element count).
void scale_in_place(DeviceTensor tensor, float factor, Stream stream = nullptr);

// Throws the ConfigError the kernels would throw for this dtype, head_dim and head count (with per-head
// dilation at most 128 heads), so that callers (the rings) can refuse before allocating anything.
void require_supported(DType dtype, std::int64_t head_dim, std::int64_t heads, bool per_head_dilation);

// "bf16/fp16: head_dim 64, 128 (tensor cores); fp32: head_dim 1..128 (teaching kernel)" and the other
// limits, for error messages and documentation.
std::string supported_configurations();

}  // namespace ringlab::gpu
