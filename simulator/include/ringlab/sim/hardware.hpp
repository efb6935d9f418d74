// Hardware the simulator models: device presets (simulator/data/devices.json, each number with its source)
// or user-defined devices from a JSON file of the same format; the network of links between devices; and
// the roofline compute model. Units: FLOP/s, bytes, bytes/s, integer nanoseconds.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ringlab::sim {

struct LinkSpec {
  double bandwidth = 0;        // bytes/s, one direction
  std::int64_t latency_ns = 0;
};

struct DeviceSpec {
  std::string name;
  double peak_flops = 0;            // FLOP/s (dense BF16 tensor core)
  std::int64_t memory_bytes = 0;    // capacity
  double memory_bandwidth = 0;      // bytes/s
  double attention_efficiency = 1;  // fraction of peak an attention kernel reaches on long rows (forward)
  double attention_backward_efficiency = 1;  // the same for the backward kernel (FLOPs counted as 2.5× forward)
  // L₀: what a kernel block pays besides its key tiles (loading its first tiles, the epilogue), in keys per
  // query row. Query rows that see L keys each run at efficiency · L / (L + L₀): short rows (small chunks,
  // LongNet's w/r keys) are slower than the efficiency says. 0: not modelled.
  double attention_overhead_keys = 0;
  double attention_backward_overhead_keys = 0;
  LinkSpec intra_node_link;         // between devices of one node (NVLink class)
  LinkSpec inter_node_link;         // between nodes (InfiniBand class)
};

// The presets compiled in from simulator/data/devices.json.
std::vector<DeviceSpec> builtin_devices();
// Devices from a JSON file in the devices.json format. Throws InputError naming the file and field.
std::vector<DeviceSpec> load_devices(const std::filesystem::path& path);
// The device called `name`; ConfigError listing the names that exist.
DeviceSpec find_device(const std::vector<DeviceSpec>& devices, const std::string& name);

// Roofline: time = max((FLOPs + overhead FLOPs) / (peak · efficiency), bytes / memory bandwidth); the
// backward efficiency for backward work. Overhead FLOPs: the work L₀ more keys per active query row would be
// (Simulation counts the rows; DeviceSpec::attention_overhead_keys).
struct ComputeModel {
  DeviceSpec device;
  // `flops` of `pairs` unmasked score entries, seen by `active_row_heads` (query row, head, pattern) triples
  // (pairs = 0: no overhead term).
  std::int64_t time_ns(double flops, double bytes, bool backward = false, double pairs = 0,
                       double active_row_heads = 0) const;
};

// P devices, `devices_per_node` per node; device p sends to (p + 1) mod P over an intra-node link when both
// are on one node, else over an inter-node link.
struct Network {
  int devices = 1;
  int devices_per_node = 8;
  LinkSpec intra_node;
  LinkSpec inter_node;
  const LinkSpec& link(int from, int to) const;
  std::int64_t transfer_ns(int from, int to, std::int64_t bytes) const;  // latency + bytes / bandwidth
};

}  // namespace ringlab::sim
