#include "ringlab/sim/hardware.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ringlab/errors.hpp"
#include "ringlab_builtin_devices.hpp"  // generated from simulator/data/devices.json

namespace ringlab::sim {
namespace {

using nlohmann::json;

template <class T>
T field(const json& object, const std::string& key, const std::string& where) {
  if (!object.contains(key)) throw InputError(where + ": missing field '" + key + "'");
  try {
    return object.at(key).get<T>();
  } catch (const json::exception&) {
    throw InputError(where + ": field '" + key + "' has the wrong type");
  }
}

LinkSpec parse_link(const json& object, const std::string& where) {
  LinkSpec link{field<double>(object, "bandwidth", where), field<std::int64_t>(object, "latency_ns", where)};
  if (!(link.bandwidth > 0) || link.latency_ns < 0)
    throw InputError(where + ": a link needs bandwidth > 0 (bytes/s) and latency_ns >= 0");
  return link;
}

std::vector<DeviceSpec> parse_devices(const std::string& text, const std::string& source) {
  json document;
  try {
    document = json::parse(text);
  } catch (const json::parse_error& error) {
    throw InputError(source + ": not valid JSON: " + error.what());
  }
  if (!document.is_object() || document.value("format", "") != "ringlab-devices")
    throw InputError(source + ": expected a JSON object with \"format\": \"ringlab-devices\"");
  if (!document.contains("devices") || !document["devices"].is_array())
    throw InputError(source + ": expected a \"devices\" array");
  std::vector<DeviceSpec> devices;
  for (const json& entry : document["devices"]) {
    const std::string where = source + ": device '" + entry.value("name", std::string("?")) + "'";
    DeviceSpec device;
    device.name = field<std::string>(entry, "name", where);
    device.peak_flops = field<double>(entry, "peak_flops", where);
    device.memory_bytes = field<std::int64_t>(entry, "memory_bytes", where);
    device.memory_bandwidth = field<double>(entry, "memory_bandwidth", where);
    device.attention_efficiency = field<double>(entry, "attention_efficiency", where);
    // Optional: devices.json files written before it existed use the forward efficiency.
    device.attention_backward_efficiency = entry.contains("attention_backward_efficiency")
                                               ? field<double>(entry, "attention_backward_efficiency", where)
                                               : device.attention_efficiency;
    // Optional (0: no per-block overhead modelled).
    device.attention_overhead_keys =
        entry.contains("attention_overhead_keys") ? field<double>(entry, "attention_overhead_keys", where) : 0.0;
    device.attention_backward_overhead_keys =
        entry.contains("attention_backward_overhead_keys")
            ? field<double>(entry, "attention_backward_overhead_keys", where)
            : device.attention_overhead_keys;
    if (!(device.attention_overhead_keys >= 0) || !(device.attention_backward_overhead_keys >= 0))
      throw InputError(where + ": attention_overhead_keys and attention_backward_overhead_keys must be >= 0 (got " +
                       std::to_string(device.attention_overhead_keys) + ", " +
                       std::to_string(device.attention_backward_overhead_keys) + ")");
    device.intra_node_link = parse_link(field<json>(entry, "intra_node_link", where), where + " intra_node_link");
    device.inter_node_link = parse_link(field<json>(entry, "inter_node_link", where), where + " inter_node_link");
    if (!(device.peak_flops > 0) || !(device.memory_bandwidth > 0) || device.memory_bytes <= 0 ||
        !(device.attention_efficiency > 0 && device.attention_efficiency <= 1) ||
        !(device.attention_backward_efficiency > 0 && device.attention_backward_efficiency <= 1))
      throw InputError(where +
                       ": peak_flops, memory_bandwidth, memory_bytes must be > 0 and attention_efficiency, "
                       "attention_backward_efficiency in (0, 1]");
    devices.push_back(device);
  }
  return devices;
}

}  // namespace

std::vector<DeviceSpec> builtin_devices() { return parse_devices(kBuiltinDevicesJson, "simulator/data/devices.json"); }

std::vector<DeviceSpec> load_devices(const std::filesystem::path& path) {
  std::ifstream file(path);
  if (!file) throw InputError(path.string() + ": cannot open the device file");
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  return parse_devices(text, path.string());
}

DeviceSpec find_device(const std::vector<DeviceSpec>& devices, const std::string& name) {
  std::string valid;
  for (const auto& device : devices) {
    if (device.name == name) return device;
    valid += (valid.empty() ? "" : ", ") + device.name;
  }
  throw ConfigError("--device-preset", "'" + name + "'", "valid devices are " + valid);
}

std::int64_t ComputeModel::time_ns(double flops, double bytes, bool backward, double pairs,
                                   double active_row_heads) const {
  const double efficiency = backward ? device.attention_backward_efficiency : device.attention_efficiency;
  const double overhead_keys = backward ? device.attention_backward_overhead_keys : device.attention_overhead_keys;
  // Each active query row costs as if it saw L₀ more keys: L keys per row run at efficiency · L / (L + L₀).
  const double overhead_flops = pairs > 0 ? flops / pairs * active_row_heads * overhead_keys : 0.0;
  const double compute_s = (flops + overhead_flops) / (device.peak_flops * efficiency);
  const double memory_s = bytes / device.memory_bandwidth;
  return static_cast<std::int64_t>(std::ceil(std::max(compute_s, memory_s) * 1e9));
}

const LinkSpec& Network::link(int from, int to) const {
  return from / devices_per_node == to / devices_per_node ? intra_node : inter_node;
}

std::int64_t Network::transfer_ns(int from, int to, std::int64_t bytes) const {
  const LinkSpec& used = link(from, to);
  return used.latency_ns + static_cast<std::int64_t>(std::ceil(static_cast<double>(bytes) / used.bandwidth * 1e9));
}

}  // namespace ringlab::sim
