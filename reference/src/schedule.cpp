#include "ringlab/schedule.hpp"

#include <algorithm>

#include "ringlab/dilation.hpp"
#include "ringlab/errors.hpp"
#include "ringlab/mask.hpp"

namespace ringlab {
namespace {

// Rows of `chunk` that at least one of the (w, r, o) selections picks (one pass over the chunk).
std::int64_t selected_rows(const PositionSet& chunk, const std::vector<DilationSelect>& selections) {
  if (selections.empty()) return chunk.size();
  std::int64_t count = 0;
  for (const auto& run : chunk.runs)
    for (std::int64_t i = 0; i < run.count; ++i) {
      const std::int64_t t = run.at(i);
      for (const auto& select : selections)
        if (select.selects(t)) {
          ++count;
          break;
        }
    }
  return count;
}

// pairs + heads · count, exactly, or a clear error: a step's score entries beyond 2^63 (one device holding
// all of N = 2^30 with many heads) is no schedule anyone can run.
std::int64_t checked_pairs(std::int64_t pairs, std::int64_t heads, std::int64_t count) {
  std::int64_t product = 0, sum = 0;
  if (__builtin_mul_overflow(heads, count, &product) || __builtin_add_overflow(pairs, product, &sum))
    throw Error("a ring step would compute more than 2^63 score entries; use more devices (--ring) or fewer tokens");
  return sum;
}

}  // namespace

std::int64_t RingSchedule::total_pairs() const {
  std::int64_t total = 0;
  for (const auto& device : devices) total = saturating_add(total, device.total_pairs);
  return total;
}

int RingSchedule::skipped_steps() const {
  int total = 0;
  for (const auto& device : devices) total += device.skipped_steps;
  return total;
}

std::int64_t RingSchedule::selected_rows_bytes_saved() const {
  std::int64_t saved = 0;
  for (const auto& device : devices)
    for (const auto& step : device.steps)
      if (step.forward_bytes_sent > 0) saved += (step.kv_rows - step.selected_rows) * kv_bytes_per_row;
  return saved;
}

RingSchedule make_ring_schedule(const AttentionConfig& config, const ScheduleOptions& options) {
  config.validate();
  RingSchedule schedule;
  const int P = config.ring;
  schedule.ring_size = P;
  schedule.layout = config.layout;
  schedule.q_replicated = config.q_replicated;
  schedule.kv_bytes_per_row = 2 * config.batch * config.kv_heads * config.head_dim * options.bytes_per_element;
  schedule.gradient_bytes_per_row =
      2 * config.batch * config.kv_heads * config.head_dim * options.gradient_bytes_per_element;
  schedule.returned_gradient_bytes_per_row =
      2 * config.batch * config.kv_heads * config.head_dim *
      (options.returned_gradient_bytes_per_element > 0 ? options.returned_gradient_bytes_per_element
                                                       : options.bytes_per_element);
  for (int owner = 0; owner < P; ++owner)
    schedule.chunk_positions.push_back(layout_positions(config.layout, config.kv_seq, P, owner));

  const auto masks = distinct_masks(plan_heads(config));
  std::vector<DilationSelect> selections;
  for (const auto& weighted : masks)
    if (weighted.mask.dilation) selections.push_back(*weighted.mask.dilation);
  std::vector<std::int64_t> chunk_selected_rows(static_cast<std::size_t>(P));
  for (int owner = 0; owner < P; ++owner)
    chunk_selected_rows[owner] = selected_rows(schedule.chunk_positions[owner], selections);

  for (int device = 0; device < P; ++device) {
    DeviceSchedule device_schedule;
    device_schedule.id = device;
    device_schedule.query_positions = config.q_replicated ? contiguous_positions(0, config.seq)
                                                          : layout_positions(config.layout, config.seq, P, device);
    for (int step = 0; step < P; ++step) {
      RingStep ring_step;
      ring_step.step = step;
      ring_step.kv_owner = kv_chunk_owner(step, device, P);
      const PositionSet& keys = schedule.chunk_positions[ring_step.kv_owner];
      ring_step.kv_rows = keys.size();
      for (const auto& weighted : masks)
        ring_step.pairs = checked_pairs(ring_step.pairs, weighted.heads,
                                        count_allowed_pairs(device_schedule.query_positions, keys, weighted.mask));
      ring_step.skipped = ring_step.pairs == 0;
      const std::int64_t chunk_bytes = ring_step.kv_rows * schedule.kv_bytes_per_row;
      const std::int64_t gradient_bytes = ring_step.kv_rows * schedule.gradient_bytes_per_row;
      const std::int64_t returned_bytes = ring_step.kv_rows * schedule.returned_gradient_bytes_per_row;
      ring_step.forward_bytes_sent = step + 1 < P ? chunk_bytes : 0;
      // Backward sends K, V, dK, dV on every step but the last, where only dK, dV go home to the owner.
      // With replicated queries each owner computes its own dK, dV from all queries: only K, V travel.
      if (config.q_replicated)
        ring_step.backward_bytes_sent = ring_step.forward_bytes_sent;
      else
        ring_step.backward_bytes_sent = step + 1 < P ? chunk_bytes + gradient_bytes : (P > 1 ? returned_bytes : 0);
      ring_step.selected_rows = chunk_selected_rows[ring_step.kv_owner];
      device_schedule.total_pairs = saturating_add(device_schedule.total_pairs, ring_step.pairs);
      device_schedule.skipped_steps += ring_step.skipped ? 1 : 0;
      device_schedule.steps.push_back(ring_step);
    }
    schedule.devices.push_back(std::move(device_schedule));
  }
  schedule.local_only = true;
  for (const DeviceSchedule& device : schedule.devices)
    for (const RingStep& step : device.steps)
      if (step.step > 0 && !step.skipped) schedule.local_only = false;
  if (schedule.local_only)
    for (DeviceSchedule& device : schedule.devices)
      for (RingStep& step : device.steps) step.forward_bytes_sent = step.backward_bytes_sent = 0;
  return schedule;
}

}  // namespace ringlab
