// The RingSchedule as Python dicts (the fields of `ringlab schedule --json`, plus the position runs), and the
// positions each device owns under a layout.
#include <nanobind/stl/string.h>

#include <string>

#include "bindings.hpp"
#include "ringlab/errors.hpp"
#include "ringlab/golden.hpp"
#include "ringlab/positions.hpp"
#include "ringlab/schedule.hpp"

namespace ringlab::python {

namespace {

// As `ringlab schedule`: the schedule lists P x P steps.
constexpr int kMaxScheduleDevices = 1024;

nb::list runs_of(const PositionSet& set) {
  nb::list runs;
  for (const PositionRun& run : set.runs) runs.append(nb::make_tuple(run.start, run.stride, run.count));
  return runs;
}

nb::dict schedule(const AttentionConfig& config, std::int64_t bytes_per_element) {
  if (config.ring > kMaxScheduleDevices)
    throw ConfigError("--ring", std::to_string(config.ring),
                      "the schedule lists P x P steps; at most " + std::to_string(kMaxScheduleDevices) + " devices");
  if (bytes_per_element < 1 || bytes_per_element > 64)
    throw ConfigError("--bytes-per-element", std::to_string(bytes_per_element),
                      "must be an integer in [1, 64] (2 for bf16/fp16, 4 for fp32)");
  RingSchedule built;
  {
    nb::gil_scoped_release release;
    built = make_ring_schedule(config, {bytes_per_element});
  }
  nb::dict result;
  result["config"] = to_python(config_to_json(config));
  result["description"] = describe(config);
  result["ring_size"] = built.ring_size;
  result["layout"] = to_string(built.layout);
  result["q_replicated"] = built.q_replicated;
  result["bytes_per_element"] = bytes_per_element;
  result["pairs_are"] = "unmasked score entries of one batch element, summed over query heads and dilation patterns";
  result["total_pairs"] = built.total_pairs();
  result["skipped_steps"] = built.skipped_steps();
  result["selected_rows_bytes_saved"] = built.selected_rows_bytes_saved();
  result["kv_bytes_per_row"] = built.kv_bytes_per_row;
  result["gradient_bytes_per_row"] = built.gradient_bytes_per_row;
  result["returned_gradient_bytes_per_row"] = built.returned_gradient_bytes_per_row;
  result["local_only"] = built.local_only;
  nb::list chunks;
  for (const PositionSet& chunk : built.chunk_positions) chunks.append(runs_of(chunk));
  result["chunk_runs"] = chunks;
  nb::list devices;
  for (const DeviceSchedule& device : built.devices) {
    nb::list steps;
    for (const RingStep& step : device.steps) {
      nb::dict entry;
      entry["step"] = step.step;
      entry["kv_owner"] = step.kv_owner;
      entry["pairs"] = step.pairs;
      entry["skipped"] = step.skipped;
      entry["kv_rows"] = step.kv_rows;
      entry["selected_rows"] = step.selected_rows;
      entry["forward_bytes_sent"] = step.forward_bytes_sent;
      entry["backward_bytes_sent"] = step.backward_bytes_sent;
      steps.append(entry);
    }
    nb::dict entry;
    entry["id"] = device.id;
    entry["total_pairs"] = device.total_pairs;
    entry["skipped_steps"] = device.skipped_steps;
    entry["query_positions"] = device.query_positions.describe();
    entry["query_count"] = device.query_positions.size();
    entry["query_runs"] = runs_of(device.query_positions);
    entry["steps"] = steps;
    devices.append(entry);
  }
  result["devices"] = devices;
  return result;
}

nb::list positions(const std::string& layout, std::int64_t seq, int ring) {
  if (seq < 1) throw ConfigError("--seq", std::to_string(seq), "must be >= 1");
  if (ring < 1 || ring > kMaxScheduleDevices)
    throw ConfigError("--ring", std::to_string(ring), "must be in [1, " + std::to_string(kMaxScheduleDevices) + "]");
  if (seq > (std::int64_t{1} << 26)) throw ConfigError("--seq", std::to_string(seq), "at most 2^26 positions listed");
  const Layout parsed = parse_layout(layout);
  nb::list result;
  for (int device = 0; device < ring; ++device) {
    std::vector<std::int64_t> expanded = layout_positions(parsed, seq, ring, device).expand();
    const std::size_t count = expanded.size();
    result.append(to_numpy(std::move(expanded), {count}));
  }
  return result;
}

}  // namespace

void bind_schedule(nb::module_& m) {
  m.def("schedule", &schedule, nb::arg("config"), nb::arg("bytes_per_element"));
  m.def("layout_positions", &positions, nb::arg("layout"), nb::arg("seq"), nb::arg("ring"));
}

}  // namespace ringlab::python
