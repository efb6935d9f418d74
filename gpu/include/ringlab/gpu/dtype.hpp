// Element types of the GPU kernels and exact host conversions to and from them. Host code that includes
// this needs no CUDA headers.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace ringlab::gpu {

// f32: checking precision (the teaching kernels, 1e-5 against fp64); f16 and bf16: the tensor-core
// kernels (fp32 accumulation, O in the input type, LSE always fp32).
enum class DType { f32, f16, bf16 };

// The precision a ring returns dK and dV in. input: rounded to the ring's dtype before the final hop home
// (the rounding an autograd framework applies anyway, and half the bytes of that hop, which follows the last
// step and so overlaps nothing); fp32: the accumulators unrounded. dQ is fp32 either way (it never travels).
enum class GradientPrecision { input, fp32 };

std::size_t size_of(DType dtype);
std::string to_string(DType dtype);  // "fp32", "fp16", "bf16"

// Host conversions with round-to-nearest-even, bit-identical to the device's __float2half_rn and
// __float2bfloat16_rn. `bytes` holds values.size() elements of `dtype`.
void encode(DType dtype, std::span<const float> values, void* bytes);
void decode(DType dtype, const void* bytes, std::span<float> values);
// x rounded to `dtype` and widened back to float (the identity for f32).
float round_to(DType dtype, float x);

}  // namespace ringlab::gpu
