// Launchers of the attention kernels, called from the one dtype × head_dim dispatch in block_attention.cu
// (launch_fast_forward / launch_fast_backward then pick the wgmma or mma.sync kernel: variants.cu).
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
// forward_hopper.cu / backward_hopper.cu: the same kernels on wgmma (sm_90a), in their own library.
// hopper_kernels_loadable(): the current GPU has compute capability 9.0 and the binary holds sm_90a code.
bool hopper_kernels_loadable();

// variants.cu: the kernel the environment asks for. RINGLAB_FORWARD_VARIANT = auto (unset: the wgmma forward
// where it can run, else mma.sync) | mma (the mma.sync forward) | n64 (it with 64-key tiles at D = 128);
// RINGLAB_BACKWARD_VARIANT = auto | mma. Other values throw ConfigError naming the variable. Benchmarks
// use them to time the alternatives; launch_fast_forward / launch_fast_backward call the wgmma kernels when
// hopper_forward_available() / hopper_backward_available().
enum class ForwardVariant { automatic, mma, mma_n64 };
enum class BackwardVariant { automatic, mma };
ForwardVariant forward_variant();
BackwardVariant backward_variant();
bool hopper_forward_available();
bool hopper_backward_available();
// RINGLAB_HOPPER_COPIES = auto (unset) | tma | cp.async: how the Hopper forward's producer copies K and V
// tiles (tma.cuh). Both give the same bits; cp.async is there to compare them.
bool hopper_copies_by_tma();
// `tma_copies`: K/V tiles by TMA where a descriptor can address them (else all by cp.async).
template <class Element, int HeadDim>
void launch_hopper_forward(const AttentionParams& params, i64 rows_q, bool tma_copies, cudaStream_t stream);
template <class Element, int HeadDim>
void launch_hopper_backward(const AttentionParams& params, i64 rows_k, cudaStream_t stream);
template <class Element, int HeadDim>
void launch_fast_backward(const AttentionParams& params, i64 rows_k, cudaStream_t stream);

}  // namespace ringlab::gpu::detail
