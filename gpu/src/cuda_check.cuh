// Every CUDA call goes through RINGLAB_CUDA_CHECK so a failure names the call and where it happened.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "ringlab/gpu/device.hpp"

#define RINGLAB_CUDA_CHECK(call)                                                                            \
  do {                                                                                                      \
    const cudaError_t ringlab_status = (call);                                                              \
    if (ringlab_status != cudaSuccess)                                                                      \
      throw ::ringlab::gpu::CudaError(std::string(#call) + " failed at " + __FILE__ + ":" +                 \
                                      std::to_string(__LINE__) + ": " + cudaGetErrorString(ringlab_status)); \
  } while (false)
