// Host conversions between float and the kernels' element types, with CUDA's own round-to-nearest-even
// functions (callable on the host) so that host and device round identically.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>

#include "ringlab/errors.hpp"
#include "ringlab/gpu/dtype.hpp"

namespace ringlab::gpu {

std::size_t size_of(DType dtype) {
  switch (dtype) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
  }
  throw Error("gpu::size_of: unknown dtype");
}

std::string to_string(DType dtype) {
  switch (dtype) {
    case DType::f32: return "fp32";
    case DType::f16: return "fp16";
    case DType::bf16: return "bf16";
  }
  return "unknown";
}

void encode(DType dtype, std::span<const float> values, void* bytes) {
  switch (dtype) {
    case DType::f32: std::memcpy(bytes, values.data(), values.size_bytes()); return;
    case DType::f16: {
      auto* out = static_cast<__half*>(bytes);
      for (std::size_t i = 0; i < values.size(); ++i) out[i] = __float2half_rn(values[i]);
      return;
    }
    case DType::bf16: {
      auto* out = static_cast<__nv_bfloat16*>(bytes);
      for (std::size_t i = 0; i < values.size(); ++i) out[i] = __float2bfloat16_rn(values[i]);
      return;
    }
  }
}

void decode(DType dtype, const void* bytes, std::span<float> values) {
  switch (dtype) {
    case DType::f32: std::memcpy(values.data(), bytes, values.size_bytes()); return;
    case DType::f16: {
      const auto* in = static_cast<const __half*>(bytes);
      for (std::size_t i = 0; i < values.size(); ++i) values[i] = __half2float(in[i]);
      return;
    }
    case DType::bf16: {
      const auto* in = static_cast<const __nv_bfloat16*>(bytes);
      for (std::size_t i = 0; i < values.size(); ++i) values[i] = __bfloat162float(in[i]);
      return;
    }
  }
}

float round_to(DType dtype, float x) {
  switch (dtype) {
    case DType::f32: return x;
    case DType::f16: return __half2float(__float2half_rn(x));
    case DType::bf16: return __bfloat162float(__float2bfloat16_rn(x));
  }
  return x;
}

}  // namespace ringlab::gpu
