// Host ↔ device helpers shared by the GPU tests (test_gpu.cpp, test_gpu_ring.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "ringlab/gpu/dtype.hpp"
#include "ringlab/gpu/memory.hpp"
#include "ringlab/gpu/tensor.hpp"
#include "ringlab/tensor.hpp"

namespace ringlab::testing {

// x rounded to the dtype (round to nearest even), kept in double.
inline Tensor<double> rounded(const Tensor<double>& tensor, gpu::DType dtype) {
  Tensor<double> result = tensor;
  for (double& x : result.data) x = gpu::round_to(dtype, static_cast<float>(x));
  return result;
}

struct DeviceArray {
  gpu::DeviceBuffer buffer;
  gpu::DeviceTensor tensor;
};

// A [B, rows, heads, D] tensor on the device in `dtype` (values already representable, or rounded here).
inline DeviceArray to_device(const Tensor<double>& host, gpu::DType dtype) {
  std::vector<float> values(host.data.begin(), host.data.end());
  std::vector<unsigned char> bytes(values.size() * gpu::size_of(dtype));
  gpu::encode(dtype, values, bytes.data());
  DeviceArray array{gpu::DeviceBuffer(bytes.size()), {}};
  array.buffer.upload(bytes.data(), bytes.size());
  array.tensor = {array.buffer.data(), dtype, host.shape[0], host.shape[1], host.shape[2], host.shape[3]};
  return array;
}

// An uninitialised device tensor filled with 0xFF bytes: NaN in fp32, fp16 and bf16.
inline DeviceArray poisoned(std::vector<std::int64_t> shape, gpu::DType dtype) {
  const std::int64_t count = shape[0] * shape[1] * shape[2] * shape[3];
  DeviceArray array{gpu::DeviceBuffer(static_cast<std::size_t>(count) * gpu::size_of(dtype)), {}};
  array.buffer.fill(0xFF);
  array.tensor = {array.buffer.data(), dtype, shape[0], shape[1], shape[2], shape[3]};
  return array;
}

inline Tensor<double> to_host(const gpu::DeviceBuffer& buffer, gpu::DType dtype, std::vector<std::int64_t> shape) {
  Tensor<double> host(std::move(shape));
  std::vector<unsigned char> bytes(host.data.size() * gpu::size_of(dtype));
  buffer.download(bytes.data(), bytes.size());
  std::vector<float> values(host.data.size());
  gpu::decode(dtype, bytes.data(), values);
  host.data.assign(values.begin(), values.end());
  return host;
}

struct GpuOutputs {
  Tensor<double> out, lse, dq, dk, dv;
};

}  // namespace ringlab::testing
