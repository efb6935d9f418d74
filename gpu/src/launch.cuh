// The one way the attention kernels are launched: one block per (tile, head, batch), the dynamic
// shared-memory limit raised to what the kernel asks for first.
#pragma once

#include <cuda_runtime.h>

#include "attention_params.cuh"
#include "cuda_check.cuh"

namespace ringlab::gpu::detail {

// `rows` are the most rows any head has on the side the blocks tile (`tile_rows` per block).
template <class Kernel>
void launch_per_tile(Kernel kernel, i64 rows, int tile_rows, int threads, int shared_bytes,
                     const AttentionParams& params, cudaStream_t stream) {
  RINGLAB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared_bytes));
  const dim3 grid(static_cast<unsigned>((rows + tile_rows - 1) / tile_rows), static_cast<unsigned>(params.heads),
                  static_cast<unsigned>(params.batch));
  kernel<<<grid, threads, shared_bytes, stream>>>(params);
  RINGLAB_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ringlab::gpu::detail
