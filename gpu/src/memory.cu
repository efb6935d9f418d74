#include <utility>

#include "cuda_check.cuh"
#include "ringlab/errors.hpp"
#include "ringlab/gpu/memory.hpp"

namespace ringlab::gpu {

DeviceBuffer::DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
  if (bytes > 0) RINGLAB_CUDA_CHECK(cudaMalloc(&data_, bytes));
}

DeviceBuffer::~DeviceBuffer() {
  if (data_) cudaFree(data_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::upload(const void* host, std::size_t bytes) {
  if (bytes > bytes_) throw InputError("DeviceBuffer::upload: " + std::to_string(bytes) + " bytes into a buffer of " +
                                       std::to_string(bytes_));
  if (bytes > 0) RINGLAB_CUDA_CHECK(cudaMemcpy(data_, host, bytes, cudaMemcpyHostToDevice));
}

void DeviceBuffer::download(void* host, std::size_t bytes) const {
  if (bytes > bytes_) throw InputError("DeviceBuffer::download: " + std::to_string(bytes) + " bytes from a buffer of " +
                                       std::to_string(bytes_));
  if (bytes > 0) RINGLAB_CUDA_CHECK(cudaMemcpy(host, data_, bytes, cudaMemcpyDeviceToHost));
}

void DeviceBuffer::fill(unsigned char byte) {
  if (bytes_ > 0) RINGLAB_CUDA_CHECK(cudaMemset(data_, byte, bytes_));
}

void synchronize() { RINGLAB_CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace ringlab::gpu
