// A C ABI over gpu::block_attention_* for ctypes and other foreign callers (bench/gpu/bench_attention.py
// loads it to time our kernels on the same torch tensors as PyTorch SDPA). Device pointers in, nothing
// allocated, asynchronous on `stream` (a cudaStream_t, e.g. torch.cuda.current_stream().cuda_stream).
//
// dtype codes: 0 fp32, 1 fp16, 2 bf16. Tensors are contiguous [B, rows, heads, D]. Positions: query i is at
// q_start + i, key j at j. Mask: allowed iff band_lo ≤ k − q ≤ band_hi (BandMask; ±2^61 = unbounded;
// causal is band_hi = 0). Dilation: `dilation_heads` (0, 1 or H) triples (segment_length, rate, offset).
// Every function returns 0, or 1 with the error message copied into error[error_size].
#include <cstring>
#include <exception>
#include <vector>

#include "ringlab/errors.hpp"
#include "ringlab/gpu/block_attention.hpp"
#include "ringlab/gpu/lse_merge.hpp"

namespace {

using namespace ringlab;

gpu::DType dtype_of(int code) {
  switch (code) {
    case 0: return gpu::DType::f32;
    case 1: return gpu::DType::f16;
    case 2: return gpu::DType::bf16;
  }
  throw ConfigError("dtype code", std::to_string(code), "0 (fp32), 1 (fp16) or 2 (bf16)");
}

template <class Call>
int guarded(char* error, int error_size, Call&& call) {
  try {
    call();
    return 0;
  } catch (const std::exception& failure) {
    if (error && error_size > 0) {
      std::strncpy(error, failure.what(), static_cast<std::size_t>(error_size) - 1);
      error[error_size - 1] = '\0';
    }
    return 1;
  }
}

PositionSet run_of(long long start, long long count) {
  PositionSet set;
  if (count > 0) set.runs.push_back(PositionRun{start, 1, count});
  return set;
}

gpu::HeadMasks masks(long long band_lo, long long band_hi, int dilation_heads, const long long* dilation) {
  gpu::HeadMasks mask;
  mask.band = BandMask{band_lo, band_hi};
  for (int h = 0; h < dilation_heads; ++h)
    mask.dilation.push_back(DilationSelect{dilation[3 * h], dilation[3 * h + 1], dilation[3 * h + 2]});
  return mask;
}

}  // namespace

extern "C" {

int ringlab_gpu_forward(int dtype, const void* q, const void* k, const void* v, void* out, float* lse,
                        long long batch, long long seq_q, long long seq_k, long long heads, long long kv_heads,
                        long long head_dim, long long q_start, long long band_lo, long long band_hi,
                        int dilation_heads, const long long* dilation, double scale, void* stream, char* error,
                        int error_size) {
  return guarded(error, error_size, [&] {
    const gpu::DType type = dtype_of(dtype);
    gpu::block_attention_forward({q, type, batch, seq_q, heads, head_dim}, run_of(q_start, seq_q),
                                 {k, type, batch, seq_k, kv_heads, head_dim}, {v, type, batch, seq_k, kv_heads, head_dim},
                                 run_of(0, seq_k), masks(band_lo, band_hi, dilation_heads, dilation),
                                 static_cast<float>(scale), {out, type, batch, seq_q, heads, head_dim}, lse,
                                 static_cast<gpu::Stream>(stream));
  });
}

int ringlab_gpu_output_gradient_dot(int dtype, const void* dout, const void* out, float* delta, long long batch,
                                    long long seq_q, long long heads, long long head_dim, void* stream, char* error,
                                    int error_size) {
  return guarded(error, error_size, [&] {
    const gpu::DType type = dtype_of(dtype);
    gpu::output_gradient_dot({dout, type, batch, seq_q, heads, head_dim}, {out, type, batch, seq_q, heads, head_dim},
                             delta, static_cast<gpu::Stream>(stream));
  });
}

int ringlab_gpu_backward(int dtype, const void* q, const void* k, const void* v, const void* dout, const float* lse,
                         const float* delta, float* dq, float* dk, float* dv, long long batch, long long seq_q,
                         long long seq_k, long long heads, long long kv_heads, long long head_dim, long long q_start,
                         long long band_lo, long long band_hi, int dilation_heads, const long long* dilation,
                         double scale, void* stream, char* error, int error_size) {
  return guarded(error, error_size, [&] {
    const gpu::DType type = dtype_of(dtype), f32 = gpu::DType::f32;
    gpu::block_attention_backward(
        {q, type, batch, seq_q, heads, head_dim}, run_of(q_start, seq_q), {k, type, batch, seq_k, kv_heads, head_dim},
        {v, type, batch, seq_k, kv_heads, head_dim}, run_of(0, seq_k), masks(band_lo, band_hi, dilation_heads, dilation),
        static_cast<float>(scale), {dout, type, batch, seq_q, heads, head_dim}, lse, delta,
        {dq, f32, batch, seq_q, heads, head_dim}, {dk, f32, batch, seq_k, kv_heads, head_dim},
        {dv, f32, batch, seq_k, kv_heads, head_dim}, static_cast<gpu::Stream>(stream));
  });
}

// As ringlab_gpu_backward, but dK, dV are overwritten (gpu::GradientWrite::overwrite) in `gradient_dtype` (0 fp32, or
// q's dtype): what a whole backward pass needs, without zeroed fp32 accumulators and a conversion pass.
int ringlab_gpu_backward_overwrite(int dtype, const void* q, const void* k, const void* v, const void* dout,
                                   const float* lse, const float* delta, float* dq, void* dk, void* dv,
                                   int gradient_dtype, long long batch, long long seq_q, long long seq_k,
                                   long long heads, long long kv_heads, long long head_dim, long long q_start,
                                   long long band_lo, long long band_hi, int dilation_heads,
                                   const long long* dilation, double scale, void* stream, char* error,
                                   int error_size) {
  return guarded(error, error_size, [&] {
    const gpu::DType type = dtype_of(dtype), f32 = gpu::DType::f32, gradients = dtype_of(gradient_dtype);
    gpu::block_attention_backward(
        {q, type, batch, seq_q, heads, head_dim}, run_of(q_start, seq_q), {k, type, batch, seq_k, kv_heads, head_dim},
        {v, type, batch, seq_k, kv_heads, head_dim}, run_of(0, seq_k), masks(band_lo, band_hi, dilation_heads, dilation),
        static_cast<float>(scale), {dout, type, batch, seq_q, heads, head_dim}, lse, delta,
        {dq, f32, batch, seq_q, heads, head_dim}, {dk, gradients, batch, seq_k, kv_heads, head_dim},
        {dv, gradients, batch, seq_k, kv_heads, head_dim}, static_cast<gpu::Stream>(stream),
        gpu::GradientWrite::overwrite);
  });
}

int ringlab_gpu_convert(int from_dtype, const void* from, int to_dtype, void* to, long long batch, long long rows,
                        long long heads, long long head_dim, void* stream, char* error, int error_size) {
  return guarded(error, error_size, [&] {
    gpu::convert({from, dtype_of(from_dtype), batch, rows, heads, head_dim},
                 {to, dtype_of(to_dtype), batch, rows, heads, head_dim}, static_cast<gpu::Stream>(stream));
  });
}

int ringlab_gpu_lse_merge(int dtype, void* out, float* lse, const void* other_out, const float* other_lse,
                          long long batch, long long rows, long long heads, long long head_dim, void* stream,
                          char* error, int error_size) {
  return guarded(error, error_size, [&] {
    const gpu::DType type = dtype_of(dtype);
    gpu::lse_merge({out, type, batch, rows, heads, head_dim}, lse, {other_out, type, batch, rows, heads, head_dim},
                   other_lse, static_cast<gpu::Stream>(stream));
  });
}

}  // extern "C"
