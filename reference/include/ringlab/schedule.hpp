// RingSchedule: the one source of truth for a ring of P devices — which K/V chunk each device holds at each
// step, whose it is, which positions meet, how many score entries the mask leaves, whether the step is
// skipped and how many bytes move. The reference ring, the simulator and the viz all read this.
//
// Step s, device p holds the K/V chunk of owner (p − s) mod P and then sends it to device (p + 1) mod P.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "ringlab/config.hpp"
#include "ringlab/positions.hpp"

namespace ringlab {

struct ScheduleOptions {
  std::int64_t bytes_per_element = 2;           // of the K/V being sent (bf16 by default: what real rings move)
  std::int64_t gradient_bytes_per_element = 4;  // of the dK/dV accumulators sent in backward (fp32, as the GPU
                                                // ring and ring-flash-attention keep them)
  // Of the final dK/dV hop home, after which nothing is added: the dtype the ring returns dK, dV in. 0: the
  // K/V's bytes_per_element (the GPU ring's default: the gradients in the input dtype, as autograd returns
  // them, rounded once before that hop instead of after it — half the bytes of an fp32 hop).
  std::int64_t returned_gradient_bytes_per_element = 0;
};

struct RingStep {
  int step = 0;
  int kv_owner = 0;           // whose chunk this device holds during the step
  std::int64_t kv_rows = 0;   // tokens in that chunk
  std::int64_t pairs = 0;     // unmasked score entries, summed over heads and dilation patterns (one batch element)
  bool skipped = false;       // the mask excludes every pair: nothing to compute
  std::int64_t forward_bytes_sent = 0;   // K and V passed on after this step (0 after the last step)
  std::int64_t backward_bytes_sent = 0;  // K, V and the dK, dV accumulators passed on (the last step returns
                                         // dK, dV to the owner, at returned_gradient_bytes_per_row)
  std::int64_t selected_rows = 0;        // dilation: rows of the chunk some head/pattern selects (= kv_rows otherwise)
};

struct DeviceSchedule {
  int id = 0;
  PositionSet query_positions;  // the queries this device owns (all of them with q_replicated)
  std::vector<RingStep> steps;  // steps[s], s = 0..P−1
  std::int64_t total_pairs = 0;  // saturates at 2^63 − 1 (see saturating_add)
  int skipped_steps = 0;
};

struct RingSchedule {
  int ring_size = 1;
  Layout layout = Layout::contiguous;
  bool q_replicated = false;
  std::vector<PositionSet> chunk_positions;  // [owner]: the K/V tokens each device owns
  std::vector<DeviceSchedule> devices;       // [device]
  std::int64_t kv_bytes_per_row = 0;          // 2 · B · Hkv · D · bytes_per_element (K and V of one token)
  std::int64_t gradient_bytes_per_row = 0;    // 2 · B · Hkv · D · gradient_bytes_per_element (its dK and dV)
  std::int64_t returned_gradient_bytes_per_row = 0;  // the same on the final hop home (returned_gradient_bytes_…)
  // Every step after 0 is skipped on every device: each device's queries meet only its own chunk (LongNet
  // segments that fit inside the chunks), so nothing needs to move — no K/V, no dK/dV; every step's bytes are 0
  // and the rings (GPU, simulated) send nothing.
  bool local_only = false;

  const RingStep& at(int device, int step) const { return devices[device].steps[step]; }
  std::int64_t total_pairs() const;
  int skipped_steps() const;
  // Forward bytes a "send only the rows some pattern selects" policy would not send (0 without dilation).
  std::int64_t selected_rows_bytes_saved() const;
};

// a + b for pair totals: saturates at 2^63 − 1 instead of overflowing. Per-step counts are exact (they throw
// beyond 64 bits); a total can exceed that at N = 2^30 with replicated queries (≈ 1.4·10^19 pairs per device).
inline std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  std::int64_t sum = 0;
  return __builtin_add_overflow(a, b, &sum) ? std::numeric_limits<std::int64_t>::max() : sum;
}

// Owner of the chunk device `device` holds at `step`: (device − step) mod P.
inline int kv_chunk_owner(int step, int device, int ring_size) {
  return ((device - step) % ring_size + ring_size) % ring_size;
}

// Builds the schedule of a validated config (config.ring devices, config.layout, config.q_replicated).
RingSchedule make_ring_schedule(const AttentionConfig& config, const ScheduleOptions& options = {});

}  // namespace ringlab
