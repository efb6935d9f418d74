// LSE merge kernel: one thread block per row, threads striding over the head dimension.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "element.cuh"
#include "cuda_check.cuh"
#include "ringlab/errors.hpp"
#include "ringlab/gpu/lse_merge.hpp"

namespace ringlab::gpu {
namespace {

__global__ void lse_merge_kernel(float* __restrict__ out,              // [rows, D]
                                 float* __restrict__ lse,              // [rows]
                                 const float* __restrict__ other_out,  // [rows, D]
                                 const float* __restrict__ other_lse,  // [rows]
                                 int head_dim) {
  const long row = blockIdx.x;
  const float la = lse[row], lb = other_lse[row];
  const float larger = fmaxf(la, lb);
  if (larger == -INFINITY) return;  // (0, −∞) ⊕ (0, −∞) = (0, −∞)
  const float merged = larger + log1pf(expf(fminf(la, lb) - larger));
  const float weight_a = expf(la - merged), weight_b = expf(lb - merged);
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x)
    out[row * head_dim + d] = weight_a * out[row * head_dim + d] + weight_b * other_out[row * head_dim + d];
  __syncthreads();  // every thread has read lse[row] before it is overwritten
  if (threadIdx.x == 0) lse[row] = merged;
}


// The device API on [B, n, H, D] outputs: one warp per (batch, row, head), arithmetic in fp32.

template <class Element>
__global__ void lse_merge_tensor_kernel(Element* __restrict__ out, float* __restrict__ lse,
                                        const Element* __restrict__ other_out, const float* __restrict__ other_lse,
                                        long long batch, long long rows, long long heads, int head_dim) {
  const long long row = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;  // (b·n + r)·H + h
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (row >= batch * rows * heads) return;
  const long long h = row % heads, r = row / heads % rows, b = row / (heads * rows);
  float* l = lse + (b * heads + h) * rows + r;
  const float la = *l, lb = other_lse[(b * heads + h) * rows + r];
  const float larger = fmaxf(la, lb);
  if (larger == -INFINITY) return;  // (0, −∞) ⊕ (0, −∞) = (0, −∞)
  const float merged = larger + log1pf(expf(fminf(la, lb) - larger));
  const float weight_a = expf(la - merged), weight_b = expf(lb - merged);
  for (int d = lane; d < head_dim; d += 32) {
    const long long i = row * head_dim + d;
    out[i] = narrow<Element>(weight_a * widen(out[i]) + weight_b * widen(other_out[i]));
  }
  __syncwarp();  // every lane has read *l before lane 0 overwrites it
  if (lane == 0) *l = merged;
}

}  // namespace

void lse_merge(DeviceTensor out, float* lse, ConstDeviceTensor other_out, const float* other_lse, Stream stream) {
  if (out.dtype != other_out.dtype || out.batch != other_out.batch || out.rows != other_out.rows ||
      out.heads != other_out.heads || out.head_dim != other_out.head_dim)
    throw InputError("gpu::lse_merge: out and other_out must have the same dtype and [B, n, H, D] shape");
  const long long rows = out.batch * out.rows * out.heads;
  if (rows == 0) return;
  const unsigned blocks = static_cast<unsigned>((rows * 32 + 255) / 256);
  const int d = static_cast<int>(out.head_dim);
  switch (out.dtype) {
    case DType::f32:
      lse_merge_tensor_kernel<<<blocks, 256, 0, stream>>>(static_cast<float*>(out.data), lse,
                                                          static_cast<const float*>(other_out.data), other_lse,
                                                          out.batch, out.rows, out.heads, d);
      break;
    case DType::f16:
      lse_merge_tensor_kernel<<<blocks, 256, 0, stream>>>(static_cast<__half*>(out.data), lse,
                                                          static_cast<const __half*>(other_out.data), other_lse,
                                                          out.batch, out.rows, out.heads, d);
      break;
    case DType::bf16:
      lse_merge_tensor_kernel<<<blocks, 256, 0, stream>>>(static_cast<__nv_bfloat16*>(out.data), lse,
                                                          static_cast<const __nv_bfloat16*>(other_out.data),
                                                          other_lse, out.batch, out.rows, out.heads, d);
      break;
  }
  RINGLAB_CUDA_CHECK(cudaGetLastError());
}

void lse_merge(std::span<float> out, std::span<float> lse, std::span<const float> other_out,
               std::span<const float> other_lse, std::int64_t head_dim) {
  const std::size_t rows = lse.size();
  if (head_dim < 1 || out.size() != rows * head_dim || other_out.size() != out.size() || other_lse.size() != rows)
    throw InputError("gpu::lse_merge: out, other_out must be [rows, head_dim] and lse, other_lse [rows]");
  if (rows == 0) return;
  // Buffers free themselves if a CUDA call throws.
  DeviceBuffer d_out(out.size_bytes()), d_lse(lse.size_bytes()), d_other_out(other_out.size_bytes()),
      d_other_lse(other_lse.size_bytes());
  d_out.upload(out.data(), out.size_bytes());
  d_lse.upload(lse.data(), lse.size_bytes());
  d_other_out.upload(other_out.data(), other_out.size_bytes());
  d_other_lse.upload(other_lse.data(), other_lse.size_bytes());
  lse_merge_kernel<<<static_cast<unsigned>(rows), 128>>>(d_out.as<float>(), d_lse.as<float>(),
                                                         d_other_out.as<float>(), d_other_lse.as<float>(),
                                                         static_cast<int>(head_dim));
  RINGLAB_CUDA_CHECK(cudaGetLastError());
  d_out.download(out.data(), out.size_bytes());
  d_lse.download(lse.data(), lse.size_bytes());
}

}  // namespace ringlab::gpu
