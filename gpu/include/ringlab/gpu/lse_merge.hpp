// The LSE merge on the GPU, mirroring reference::lse_merge:
//   (O, L) ← (O, L) ⊕ (O_b, L_b) = (e^{L−L'} O + e^{L_b−L'} O_b, L'),  L' = logaddexp(L, L_b)
// Rows with L' = −∞ stay (0, −∞).
#pragma once

#include <cstdint>
#include <span>

namespace ringlab::gpu {

// Host API: copies in, merges on the device, copies back. out, other_out: [rows, head_dim]; lse: [rows].
void lse_merge(std::span<float> out, std::span<float> lse, std::span<const float> other_out,
               std::span<const float> other_lse, std::int64_t head_dim);

}  // namespace ringlab::gpu
