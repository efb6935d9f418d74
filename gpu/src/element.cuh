// One element of fp32, fp16 or bf16 to fp32 and back (round to nearest even): the conversion every kernel
// that reads or writes the input dtype uses.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

namespace ringlab::gpu {

template <class Element>
__device__ __forceinline__ float widen(Element x) {
  if constexpr (std::is_same_v<Element, float>) return x;
  else if constexpr (std::is_same_v<Element, __half>) return __half2float(x);
  else return __bfloat162float(x);
}

template <class Element>
__device__ __forceinline__ Element narrow(float x) {
  if constexpr (std::is_same_v<Element, float>) return x;
  else if constexpr (std::is_same_v<Element, __half>) return __float2half_rn(x);
  else return __float2bfloat16_rn(x);
}

}  // namespace ringlab::gpu
