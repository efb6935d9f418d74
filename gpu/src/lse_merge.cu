// LSE merge kernel: one thread block per row, threads striding over the head dimension.
#include <cmath>

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

// A device buffer freed on scope exit, so an exception cannot leak GPU memory.
struct DeviceBuffer {
  float* data = nullptr;
  explicit DeviceBuffer(std::size_t count) { RINGLAB_CUDA_CHECK(cudaMalloc(&data, count * sizeof(float))); }
  ~DeviceBuffer() { cudaFree(data); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

}  // namespace

void lse_merge(std::span<float> out, std::span<float> lse, std::span<const float> other_out,
               std::span<const float> other_lse, std::int64_t head_dim) {
  const std::size_t rows = lse.size();
  if (head_dim < 1 || out.size() != rows * head_dim || other_out.size() != out.size() || other_lse.size() != rows)
    throw InputError("gpu::lse_merge: out, other_out must be [rows, head_dim] and lse, other_lse [rows]");
  if (rows == 0) return;
  DeviceBuffer d_out(out.size()), d_lse(rows), d_other_out(out.size()), d_other_lse(rows);
  RINGLAB_CUDA_CHECK(cudaMemcpy(d_out.data, out.data(), out.size_bytes(), cudaMemcpyHostToDevice));
  RINGLAB_CUDA_CHECK(cudaMemcpy(d_lse.data, lse.data(), lse.size_bytes(), cudaMemcpyHostToDevice));
  RINGLAB_CUDA_CHECK(cudaMemcpy(d_other_out.data, other_out.data(), other_out.size_bytes(), cudaMemcpyHostToDevice));
  RINGLAB_CUDA_CHECK(cudaMemcpy(d_other_lse.data, other_lse.data(), other_lse.size_bytes(), cudaMemcpyHostToDevice));
  lse_merge_kernel<<<static_cast<unsigned>(rows), 128>>>(d_out.data, d_lse.data, d_other_out.data, d_other_lse.data,
                                                         static_cast<int>(head_dim));
  RINGLAB_CUDA_CHECK(cudaGetLastError());
  RINGLAB_CUDA_CHECK(cudaMemcpy(out.data(), d_out.data, out.size_bytes(), cudaMemcpyDeviceToHost));
  RINGLAB_CUDA_CHECK(cudaMemcpy(lse.data(), d_lse.data, lse.size_bytes(), cudaMemcpyDeviceToHost));
}

}  // namespace ringlab::gpu
