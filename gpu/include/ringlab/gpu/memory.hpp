// Device memory and streams for host code that includes no CUDA headers (tests, tools, the C API).
#pragma once

#include <cstddef>

struct CUstream_st;  // CUDA's opaque stream; cudaStream_t is CUstream_st*

namespace ringlab::gpu {

// A CUDA stream; nullptr is the legacy default stream. Interchangeable with cudaStream_t.
using Stream = CUstream_st*;

// cudaMalloc'd bytes, freed on destruction. Copies are synchronous; an error throws gpu::CudaError.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  template <class T>
  T* as() const { return static_cast<T*>(data_); }
  std::size_t bytes() const { return bytes_; }

  void upload(const void* host, std::size_t bytes);    // host → device, bytes ≤ this->bytes()
  void download(void* host, std::size_t bytes) const;  // device → host
  void fill(unsigned char byte);                       // every byte (0xFF makes fp32/fp16/bf16 NaN)

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

// cudaDeviceSynchronize; throws gpu::CudaError with the message of any pending asynchronous error.
void synchronize();

}  // namespace ringlab::gpu
