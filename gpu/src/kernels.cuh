// Launchers of the attention kernels, called from the one dispatch place in block_attention.cu.
// `rows_q` / `rows_k` are the most rows any head visits on that side (after strided dilation): the grid.
#pragma once

#include <cuda_runtime.h>

#include "attention_params.cuh"

namespace ringlab::gpu::detail {

// teaching.cu: fp32, one thread per row, any head_dim ≤ 128.
void launch_teaching_forward(const AttentionParams& params, i64 rows_q, cudaStream_t stream);
void launch_teaching_backward(const AttentionParams& params, i64 rows_q, i64 rows_k, cudaStream_t stream);

// forward_fast.cu / backward_fast.cu: fp16/bf16 tensor-core kernels, instantiated for head_dim 64 and 128.
template <class Element, int HeadDim>
void launch_fast_forward(const AttentionParams& params, i64 rows_q, cudaStream_t stream);
// forward_hopper.cu / backward_hopper.cu: the same kernels on wgmma (sm_90a). launch_fast_forward and
// launch_fast_backward call them when hopper_forward_available() / hopper_backward_available(): the current
// GPU has compute capability 9.0, the binary holds sm_90a code (hopper_kernels_loadable) and
// RINGLAB_FORWARD_VARIANT / RINGLAB_BACKWARD_VARIANT does not ask for the mma.sync kernel ("mma"; "n64" is
// the mma.sync forward with 64-key tiles).
bool hopper_kernels_loadable();
bool hopper_forward_available();
bool hopper_backward_available();
template <class Element, int HeadDim>
void launch_hopper_forward(const AttentionParams& params, i64 rows_q, cudaStream_t stream);
template <class Element, int HeadDim>
void launch_hopper_backward(const AttentionParams& params, i64 rows_k, cudaStream_t stream);
template <class Element, int HeadDim>
void launch_fast_backward(const AttentionParams& params, i64 rows_k, cudaStream_t stream);

}  // namespace ringlab::gpu::detail
