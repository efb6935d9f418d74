// Host helpers of ringlab/gpu/compare.hpp.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "cuda_check.cuh"
#include "ringlab/gpu/compare.hpp"

namespace ringlab::gpu {

std::vector<float> download_floats(const void* device, DType dtype, std::int64_t count) {
  std::vector<unsigned char> bytes(static_cast<std::size_t>(count) * size_of(dtype));
  RINGLAB_CUDA_CHECK(cudaMemcpy(bytes.data(), device, bytes.size(), cudaMemcpyDeviceToHost));
  std::vector<float> values(static_cast<std::size_t>(count));
  decode(dtype, bytes.data(), values);
  return values;
}

double relative_error(std::span<const float> got, std::span<const float> want) {
  double worst = 0, largest = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double a = got[i], b = want[i];
    if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
    if (std::isinf(a) || std::isinf(b)) {
      if (a != b) return std::numeric_limits<double>::infinity();
      continue;
    }
    worst = std::max(worst, std::abs(a - b));
    largest = std::max(largest, std::abs(b));
  }
  return worst / std::max(largest, 1.0);
}

RingCheckBounds ring_check_bounds(DType dtype) {
  return {dtype == DType::bf16 ? 1.6e-2 : 2e-3, 1e-4, 1e-2};
}

}  // namespace ringlab::gpu
