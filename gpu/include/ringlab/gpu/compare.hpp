// A ring's outputs against the single-GPU kernel's, on the host: one download and one error measure for
// `ringlab-ring --mode check`, `ringlab simulate --backend gpu` and ringlab_gpu_ring_bench. Host code that
// includes this needs no CUDA headers.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ringlab/gpu/dtype.hpp"

namespace ringlab::gpu {

// `count` elements of `dtype` in device memory, widened to float; synchronous. Throws CudaError.
std::vector<float> download_floats(const void* device, DType dtype, std::int64_t count);

// max |got − want| / max(max |want|, 1) over the entries finite on both sides. An infinity must be met by the same
// infinity (a query that sees no key has LSE = −∞ on both sides), else the error is +inf; a NaN on either side
// makes it NaN (the ring read something it never wrote), which no bound accepts.
double relative_error(std::span<const float> got, std::span<const float> want);

// How far a ring may be from the single-GPU kernel. Both run the same tile kernels and differ only in the order of
// the LSE merges and fp32 sums and in one rounding of O: a bf16/fp16 ulp or two on O, fp32 noise elsewhere. A lost
// or doubled step, a wrong chunk or a wrong position gives errors of order 1.
struct RingCheckBounds {
  double out, lse, gradients;
};
RingCheckBounds ring_check_bounds(DType dtype);

}  // namespace ringlab::gpu
