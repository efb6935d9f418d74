// ringlab schedule: the RingSchedule of a config — per device and step the K/V chunk held, its owner, the
// unmasked pairs, whether the step is skipped and the bytes sent — as a table or as JSON.
#include <fmt/core.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.hpp"
#include "config_flags.hpp"
#include "ringlab/errors.hpp"
#include "ringlab/golden.hpp"
#include "ringlab/schedule.hpp"

namespace ringlab::cli {
namespace {

// The schedule lists P×P steps; beyond this the output (and the memory for it) stops being useful.
constexpr int kMaxScheduleDevices = 1024;

struct ScheduleFlags {
  std::int64_t bytes_per_element = 2;
  bool json = false;
  std::unique_ptr<ConfigFlags> config;
};

struct Summary {
  std::int64_t total_pairs = 0;
  double mean_pairs = 0;
  std::int64_t max_pairs = 0;
  std::int64_t critical_path_pairs = 0;  // Σ over steps of the busiest device's pairs (devices in lockstep)
  // max/mean pairs per device; 1 when there is no work at all.
  double imbalance() const { return mean_pairs > 0 ? static_cast<double>(max_pairs) / mean_pairs : 1.0; }
};

Summary summarise(const RingSchedule& schedule) {
  Summary summary;
  summary.total_pairs = schedule.total_pairs();
  summary.mean_pairs = static_cast<double>(summary.total_pairs) / schedule.ring_size;
  for (const auto& device : schedule.devices) summary.max_pairs = std::max(summary.max_pairs, device.total_pairs);
  for (int step = 0; step < schedule.ring_size; ++step) {
    std::int64_t busiest = 0;
    for (int device = 0; device < schedule.ring_size; ++device)
      busiest = std::max(busiest, schedule.at(device, step).pairs);
    summary.critical_path_pairs = saturating_add(summary.critical_path_pairs, busiest);
  }
  return summary;
}

double share(std::int64_t pairs, std::int64_t total) {
  return total > 0 ? static_cast<double>(pairs) / static_cast<double>(total) : 0.0;
}

void print_json(const AttentionConfig& config, const RingSchedule& schedule, const ScheduleFlags& flags) {
  const Summary summary = summarise(schedule);
  nlohmann::ordered_json root;
  root["config"] = config_to_json(config);
  root["description"] = describe(config);
  root["ring_size"] = schedule.ring_size;
  root["layout"] = to_string(schedule.layout);
  root["q_replicated"] = schedule.q_replicated;
  root["bytes_per_element"] = flags.bytes_per_element;
  root["pairs_are"] = "unmasked score entries of one batch element, summed over query heads and dilation patterns";
  root["total_pairs"] = summary.total_pairs;
  root["skipped_steps"] = schedule.skipped_steps();
  root["local_only"] = schedule.local_only;
  root["kv_bytes_per_row"] = schedule.kv_bytes_per_row;
  root["gradient_bytes_per_row"] = schedule.gradient_bytes_per_row;
  root["returned_gradient_bytes_per_row"] = schedule.returned_gradient_bytes_per_row;
  root["critical_path_pairs"] = summary.critical_path_pairs;
  root["imbalance"] = summary.imbalance();
  root["selected_rows_bytes_saved"] = schedule.selected_rows_bytes_saved();
  nlohmann::ordered_json devices = nlohmann::ordered_json::array();
  for (const auto& device : schedule.devices) {
    nlohmann::ordered_json steps = nlohmann::ordered_json::array();
    for (const auto& step : device.steps)
      steps.push_back({{"step", step.step},
                       {"kv_owner", step.kv_owner},
                       {"pairs", step.pairs},
                       {"skipped", step.skipped},
                       {"kv_rows", step.kv_rows},
                       {"selected_rows", step.selected_rows},
                       {"forward_bytes_sent", step.forward_bytes_sent},
                       {"backward_bytes_sent", step.backward_bytes_sent}});
    devices.push_back({{"id", device.id},
                       {"total_pairs", device.total_pairs},
                       {"skipped_steps", device.skipped_steps},
                       {"share", share(device.total_pairs, summary.total_pairs)},
                       {"query_positions", device.query_positions.describe()},
                       {"query_count", device.query_positions.size()},
                       {"steps", std::move(steps)}});
  }
  root["devices"] = std::move(devices);
  fmt::print("{}\n", root.dump(2));
}

void print_table(const AttentionConfig& config, const RingSchedule& schedule, const ScheduleFlags& flags) {
  const Summary summary = summarise(schedule);
  fmt::print("ring schedule: {} | {} bytes per element\n", describe(config), flags.bytes_per_element);
  fmt::print("pairs = unmasked score entries of one batch element, summed over heads and dilation patterns\n");
  for (const auto& device : schedule.devices) {
    fmt::print("\ndevice {}: {} queries {}\n", device.id, device.query_positions.size(),
               device.query_positions.describe());
    fmt::print("  {:>5} {:>9} {:>8} {:>12} {:>8} {:>14} {:>14}\n", "step", "kv owner", "kv rows", "pairs", "skipped",
               "fwd bytes sent", "bwd bytes sent");
    for (const auto& step : device.steps)
      fmt::print("  {:>5} {:>9} {:>8} {:>12} {:>8} {:>14} {:>14}\n", step.step, step.kv_owner, step.kv_rows, step.pairs,
                 step.skipped ? "yes" : "no", step.forward_bytes_sent, step.backward_bytes_sent);
  }
  fmt::print("\nper-device totals\n  {:>6} {:>12} {:>14} {:>8}\n", "device", "pairs", "skipped steps", "share");
  for (const auto& device : schedule.devices)
    fmt::print("  {:>6} {:>12} {:>14} {:>7.1f}%\n", device.id, device.total_pairs, device.skipped_steps,
               100.0 * share(device.total_pairs, summary.total_pairs));
  fmt::print("\ntotal pairs {}, skipped steps {}\n", summary.total_pairs, schedule.skipped_steps());
  if (schedule.local_only && schedule.ring_size > 1)
    fmt::print("local only: every step after 0 is skipped on every device, so nothing is sent\n");
  fmt::print("imbalance (max/mean pairs per device) {:.3f}\n", summary.imbalance());
  fmt::print("critical path {} pairs (sum over steps of the busiest device; ideal {:.0f})\n",
             summary.critical_path_pairs, summary.mean_pairs);
  if (config.dilated())
    fmt::print("sending only the K/V rows some pattern selects would save {} forward bytes\n",
               schedule.selected_rows_bytes_saved());
}

int run_schedule(const ScheduleFlags& flags) {
  const AttentionConfig config = flags.config->config();
  if (config.ring > kMaxScheduleDevices)
    throw ConfigError("--ring", std::to_string(config.ring),
                      "the schedule lists P x P steps; at most " + std::to_string(kMaxScheduleDevices) + " devices");
  if (flags.bytes_per_element < 1 || flags.bytes_per_element > 64)
    throw ConfigError("--bytes-per-element", std::to_string(flags.bytes_per_element),
                      "must be an integer in [1, 64] (2 for bf16/fp16, 4 for fp32)");
  const RingSchedule schedule = make_ring_schedule(config, {flags.bytes_per_element});
  if (flags.json)
    print_json(config, schedule, flags);
  else
    print_table(config, schedule, flags);
  return 0;
}

}  // namespace

Command add_schedule_command(CLI::App& parent) {
  auto flags = std::make_shared<ScheduleFlags>();
  CLI::App* app = parent.add_subcommand(
      "schedule",
      "Print the ring schedule: per device and step the K/V owner, unmasked pairs, skipped flag and bytes sent, "
      "plus per-device totals and the imbalance.");
  app->add_option("--bytes-per-element", flags->bytes_per_element,
                  "bytes of one K/V element on the wire (default 2 = bf16/fp16)")
      ->type_name("BYTES");
  app->add_flag("--json", flags->json,
                "print JSON: {\"devices\": [{\"id\", \"total_pairs\", \"steps\": [{\"step\", \"kv_owner\", \"pairs\", "
                "\"skipped\", ...}]}], ...}");
  flags->config = std::make_unique<ConfigFlags>(*app);
  app->footer("Example: ringlab schedule --seq 8 --heads 1 --ring 2 --layout zigzag --causal");
  return {app, [flags] { return run_schedule(*flags); }};
}

}  // namespace ringlab::cli
