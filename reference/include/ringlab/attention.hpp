// Whole-problem attention for one AttentionConfig: forward (O, LSE) and backward (dQ, dK, dV) by
//   dense      materialised N×M scores per head (the textbook formulas; the oracle for the others)
//   blockwise  flash-style tiles through block_attention_*; never holds an N×M matrix
//   ring       P virtual devices over the RingSchedule, K/V (and dK/dV) rotating one hop per step
// Dilated configs run each head's patterns (plan_heads) and combine them with the LSE merge or a group rule.
#pragma once

#include "ringlab/config.hpp"
#include "ringlab/dilation.hpp"
#include "ringlab/tensor.hpp"

namespace ringlab {

template <class T>
struct AttentionOutput {
  Tensor<T> out;  // O   [B, N, H, D]
  Tensor<T> lse;  // LSE [B, H, N], natural log
};

template <class T>
struct AttentionGradients {
  Tensor<T> dq;  // [B, N, H, D]
  Tensor<T> dk;  // [B, M, Hkv, D]
  Tensor<T> dv;  // [B, M, Hkv, D]
};

// Optional rounding of intermediates, used to emulate a naive low-precision baseline (fp32 arithmetic with
// P and dS rounded to bf16/fp16 before their matmuls). Dense algorithm only; nullptr = exact.
template <class T>
using RoundFunction = T (*)(T);

template <class T>
struct AttentionOptions {
  Algorithm algorithm = Algorithm::blockwise;
  TileSizes tiles = {};
  RoundFunction<T> round_intermediates = nullptr;
};

// q [B, N, H, D], k, v [B, M, Hkv, D]. Throws ConfigError / InputError on a bad config or shape.
template <class T>
AttentionOutput<T> attention_forward(const AttentionConfig& config, const Tensor<T>& q, const Tensor<T>& k,
                                     const Tensor<T>& v, const AttentionOptions<T>& options = {});

// out, lse from attention_forward of the same config; dout [B, N, H, D].
template <class T>
AttentionGradients<T> attention_backward(const AttentionConfig& config, const Tensor<T>& q, const Tensor<T>& k,
                                         const Tensor<T>& v, const Tensor<T>& out, const Tensor<T>& lse,
                                         const Tensor<T>& dout, const AttentionOptions<T>& options = {});

// One ring step of one device — the unit the reference ring and the simulator both run:
// its queries q_shard [B, n, H, D] (positions q_positions) against one K/V chunk [B, m, Hkv, D] (positions
// k_positions), every head and every mask of the head's plan, ⊕-merged into out [B, n, H, D] and
// lse [B, H, n] (start them at (0, −∞)). Blockwise kernels with `tiles`.
template <class T>
void chunk_forward(const AttentionConfig& config, const std::vector<HeadPlan>& plans, const Tensor<T>& q_shard,
                   std::span<const std::int64_t> q_positions, const Tensor<T>& k_chunk, const Tensor<T>& v_chunk,
                   std::span<const std::int64_t> k_positions, Tensor<T>& out, Tensor<T>& lse, TileSizes tiles = {});

// After the last step: multiply each head's output by its plan's factor (1/k for group_mean).
template <class T>
void apply_output_scale(const std::vector<HeadPlan>& plans, Tensor<T>& out);

// Backward of one ring step: accumulates dq [B, n, H, D] and the chunk's dk, dv [B, m, Hkv, D] from the
// saved global out_shard, lse_shard of these queries and dout_shard.
template <class T>
void chunk_backward(const AttentionConfig& config, const std::vector<HeadPlan>& plans, const Tensor<T>& q_shard,
                    std::span<const std::int64_t> q_positions, const Tensor<T>& k_chunk, const Tensor<T>& v_chunk,
                    std::span<const std::int64_t> k_positions, const Tensor<T>& out_shard,
                    const Tensor<T>& lse_shard, const Tensor<T>& dout_shard, Tensor<T>& dq, Tensor<T>& dk,
                    Tensor<T>& dv, TileSizes tiles = {});

// Shapes a config expects.
std::vector<std::int64_t> query_shape(const AttentionConfig& config);  // [B, N, H, D]
std::vector<std::int64_t> kv_shape(const AttentionConfig& config);     // [B, M, Hkv, D]
std::vector<std::int64_t> lse_shape(const AttentionConfig& config);    // [B, H, N]

}  // namespace ringlab
