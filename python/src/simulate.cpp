// The simulator: run a config on P virtual devices and return report_json as a Python dict (plus the text
// summary and, on request, the timeline); write the Chrome/Perfetto trace; list the device presets.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "ringlab/errors.hpp"
#include "ringlab/sim/output.hpp"
#include "ringlab/sim/simulation.hpp"

namespace ringlab::python {

namespace {

std::vector<sim::DeviceSpec> device_list(const std::optional<std::string>& device_file) {
  return device_file ? sim::load_devices(*device_file) : sim::builtin_devices();
}

nb::dict device_to_python(const sim::DeviceSpec& device) {
  auto link = [](const sim::LinkSpec& spec) {
    nb::dict dict;
    dict["bandwidth"] = spec.bandwidth;
    dict["latency_ns"] = spec.latency_ns;
    return dict;
  };
  nb::dict dict;
  dict["name"] = device.name;
  dict["peak_flops"] = device.peak_flops;
  dict["memory_bytes"] = device.memory_bytes;
  dict["memory_bandwidth"] = device.memory_bandwidth;
  dict["attention_efficiency"] = device.attention_efficiency;
  dict["attention_backward_efficiency"] = device.attention_backward_efficiency;
  dict["attention_overhead_keys"] = device.attention_overhead_keys;
  dict["attention_backward_overhead_keys"] = device.attention_backward_overhead_keys;
  dict["intra_node_link"] = link(device.intra_node_link);
  dict["inter_node_link"] = link(device.inter_node_link);
  return dict;
}

nb::list devices(const std::optional<std::string>& device_file) {
  nb::list result;
  for (const auto& device : device_list(device_file)) result.append(device_to_python(device));
  return result;
}

nb::list timeline_slices(const sim::Simulation& simulation) {
  nb::list result;
  for (const sim::Slice& slice : simulation.slices()) {
    nb::dict entry;
    entry["device"] = slice.device;
    entry["stream"] = slice.stream == 0 ? "compute" : slice.stream == 1 ? "send" : "receive";
    entry["name"] = slice.name;
    entry["begin_ns"] = slice.begin_ns;
    entry["end_ns"] = slice.end_ns;
    entry["pass"] = slice.pass == 0 ? "forward" : "backward";
    entry["step"] = slice.step;
    entry["message"] = slice.message;
    result.append(entry);
  }
  return result;
}

nb::list timeline_snapshots(const sim::Simulation& simulation) {
  nb::list result;
  for (const sim::StepSnapshot& snapshot : simulation.snapshots()) {
    nb::dict entry;
    entry["pass"] = snapshot.pass == 0 ? "forward" : "backward";
    entry["step"] = snapshot.step;
    entry["time_ns"] = snapshot.time_ns;
    entry["kv_owner"] = nb::cast(snapshot.kv_owner);
    entry["pairs"] = nb::cast(snapshot.pairs);
    nb::list skipped;
    for (bool value : snapshot.skipped) skipped.append(value);
    entry["skipped"] = skipped;
    entry["memory_bytes"] = nb::cast(snapshot.memory_bytes);
    result.append(entry);
  }
  return result;
}

nb::object simulate(const AttentionConfig& config, const std::string& mode, const std::string& scheme,
                    const std::string& pass, const std::string& device, const std::optional<std::string>& device_file,
                    int devices_per_node, bool overlap, std::int64_t bytes_per_element, bool send_selected_rows,
                    std::optional<std::int64_t> memory_budget_bytes, const std::vector<std::string>& inject,
                    std::int64_t timeout_ns, std::int64_t delay_ns, std::int64_t tile_rows,
                    std::int64_t tile_columns, std::uint64_t seed, const std::optional<std::string>& trace,
                    bool timeline) {
  sim::SimulationOptions options;
  options.config = config;
  options.mode = sim::parse_mode(mode);
  options.scheme = sim::parse_scheme(scheme);
  options.pass = sim::parse_pass(pass);
  options.device = sim::find_device(device_list(device_file), device);
  options.devices_per_node = devices_per_node;
  options.overlap = overlap;
  options.bytes_per_element = bytes_per_element;
  options.send_selected_rows = send_selected_rows;
  if (memory_budget_bytes && *memory_budget_bytes <= 0)
    throw ConfigError("--memory-budget", std::to_string(*memory_budget_bytes), "must be > 0 bytes (None = none)");
  options.memory_budget = memory_budget_bytes;
  for (const auto& text : inject) options.faults.push_back(sim::parse_fault(text));
  if (delay_ns < 0) throw ConfigError("--delay-us", std::to_string(delay_ns), "must be >= 0");
  options.timeout_ns = timeout_ns;
  options.delay_ns = delay_ns;
  if (tile_rows < 1 || tile_columns < 1)
    throw ConfigError("tiles", "(" + std::to_string(tile_rows) + ", " + std::to_string(tile_columns) + ")",
                      "tile sizes must be >= 1");
  options.tiles = {tile_rows, tile_columns};
  options.seed = seed;

  std::optional<sim::Simulation> simulation;
  nlohmann::json report;
  std::string summary, trace_text;
  {
    nb::gil_scoped_release release;
    simulation.emplace(options);
    simulation->run();
    const sim::Report result = simulation->report();
    report = sim::report_json(result);
    summary = sim::format_report(result);
    if (trace) sim::write_text_file(*trace, sim::chrome_trace(*simulation).dump() + "\n", true, "trace");
  }
  nb::dict result = nb::borrow<nb::dict>(to_python(report));
  result["summary"] = summary;
  if (timeline) {
    result["slices"] = timeline_slices(*simulation);
    result["snapshots"] = timeline_snapshots(*simulation);
  }
  return result;
}

}  // namespace

void bind_simulate(nb::module_& m) {
  m.def("simulate", &simulate, nb::arg("config"), nb::arg("mode"), nb::arg("scheme"), nb::arg("pass_"),
        nb::arg("device"), nb::arg("device_file").none(), nb::arg("devices_per_node"), nb::arg("overlap"),
        nb::arg("bytes_per_element"), nb::arg("send_selected_rows"), nb::arg("memory_budget_bytes").none(),
        nb::arg("inject"), nb::arg("timeout_ns"), nb::arg("delay_ns"), nb::arg("tile_rows"),
        nb::arg("tile_columns"), nb::arg("seed"), nb::arg("trace").none(), nb::arg("timeline"));
  m.def("devices", &devices, nb::arg("device_file").none() = nb::none());
}

}  // namespace ringlab::python
