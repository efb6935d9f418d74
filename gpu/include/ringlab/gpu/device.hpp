// GPU availability and errors. Host code that includes this needs no CUDA headers.
#pragma once

#include <string>

#include "ringlab/errors.hpp"

namespace ringlab::gpu {

// A failed CUDA call: names the call, the file/line and CUDA's own message.
class CudaError : public Error {
 public:
  using Error::Error;
};

// Number of usable CUDA devices; 0 (never an exception) when there is no driver or no GPU.
int device_count();

// Why there is no usable device ("no CUDA driver", "no GPU"), for skip messages; empty when there is one.
std::string unavailable_reason();

// "NVIDIA H100 80GB HBM3, sm_90, 132 SMs" for device `index`.
std::string describe_device(int index = 0);

}  // namespace ringlab::gpu
