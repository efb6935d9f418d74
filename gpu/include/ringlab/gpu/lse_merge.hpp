// The LSE merge on the GPU, mirroring reference::lse_merge:
//   (O, L) ← (O, L) ⊕ (O_b, L_b) = (e^{L−L'} O + e^{L_b−L'} O_b, L'),  L' = logaddexp(L, L_b)
// Rows with L' = −∞ stay (0, −∞).
#pragma once

#include <cstdint>
#include <span>

#include "ringlab/gpu/memory.hpp"
#include "ringlab/gpu/tensor.hpp"

namespace ringlab::gpu {

// Host API: copies in, merges on the device, copies back. out, other_out: [rows, head_dim]; lse: [rows].
void lse_merge(std::span<float> out, std::span<float> lse, std::span<const float> other_out,
               std::span<const float> other_lse, std::int64_t head_dim);

// Device API on whole attention outputs: out, other_out [B, n, H, D] (same dtype, arithmetic in fp32,
// out rounded back to its dtype), lse, other_lse [B, H, n] fp32. Asynchronous on `stream`.
void lse_merge(DeviceTensor out, float* lse, ConstDeviceTensor other_out, const float* other_lse,
               Stream stream = nullptr);

}  // namespace ringlab::gpu
