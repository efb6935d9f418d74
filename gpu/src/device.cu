#include <string>

#include "cuda_check.cuh"
#include "ringlab/gpu/device.hpp"

namespace ringlab::gpu {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error so later calls start clean
    return 0;
  }
  return count;
}

std::string unavailable_reason() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return std::string("no usable CUDA device (") + cudaGetErrorString(status) + ")";
  }
  return count == 0 ? "no CUDA device present" : "";
}

std::string describe_device(int index) {
  cudaDeviceProp properties{};
  RINGLAB_CUDA_CHECK(cudaGetDeviceProperties(&properties, index));
  return std::string(properties.name) + ", sm_" + std::to_string(properties.major) + std::to_string(properties.minor) +
         ", " + std::to_string(properties.multiProcessorCount) + " SMs";
}

}  // namespace ringlab::gpu
