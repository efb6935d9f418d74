#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "ringlab/sim/output.hpp"

namespace ringlab::sim {

std::string format_bytes(std::int64_t bytes) {
  if (bytes == std::numeric_limits<std::int64_t>::max()) return "> 8 EiB";
  return format_bytes(static_cast<double>(bytes));
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"};
  double value = bytes;
  int unit = 0;
  while (std::abs(value) >= 1024 && unit < 7) value /= 1024, ++unit;
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", value, units[unit]);
}

namespace {

std::string format_time(std::int64_t ns) {
  if (ns >= 1'000'000'000) return fmt::format("{:.3f} s", ns / 1e9);
  if (ns >= 1'000'000) return fmt::format("{:.3f} ms", ns / 1e6);
  if (ns >= 1'000) return fmt::format("{:.1f} us", ns / 1e3);
  return fmt::format("{} ns", ns);
}

}  // namespace

std::string format_report(const Report& report) {
  const auto& options = report.options;
  std::string text;
  text += fmt::format("ringlab simulate: {} | scheme {} | mode {} | pass {} | device {} | overlap {}\n",
                      describe(options.config), to_string(options.scheme), to_string(options.mode),
                      to_string(options.pass), options.device.name, options.overlap ? "on" : "off");
  text += fmt::format("\n{:>6} {:>12} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>12} {:>12} {:>12} {:>12} {:>12}\n",
                      "device", "peak", "q", "kv", "kv_recv", "out", "lse", "scratch", "grad", "compute",
                      "exposed comm", "idle", "bytes sent");
  const std::size_t shown = std::min<std::size_t>(report.devices.size(), 32);
  for (std::size_t i = 0; i < report.devices.size(); ++i) {
    if (i == shown) {
      text += fmt::format("{:>6}\n", fmt::format("... {} more devices (see --report-json)", report.devices.size() - shown));
      break;
    }
    const DeviceReport& d = report.devices[i];
    text += fmt::format("{:>6} {:>12}", d.id, format_bytes(d.peak_bytes));
    for (std::int64_t bytes : d.peak_bytes_by_category) text += fmt::format(" {:>11}", format_bytes(bytes));
    text += fmt::format(" {:>12} {:>12} {:>12} {:>12}\n", format_time(d.compute_ns), format_time(d.exposed_comm_ns),
                        format_time(d.idle_ns), format_bytes(d.bytes_sent));
  }
  std::int64_t peak = 0, compute = 0, exposed = 0;
  for (const auto& d : report.devices)
    peak = std::max(peak, d.peak_bytes), compute = std::max(compute, d.compute_ns), exposed += d.exposed_comm_ns;
  text += fmt::format("\nmakespan {} | busiest device computes {} | mean exposed communication {} | skipped steps {}\n",
                      format_time(report.makespan_ns), format_time(compute),
                      format_time(exposed / std::max<std::int64_t>(1, static_cast<std::int64_t>(report.devices.size()))),
                      report.skipped_steps);
  if (report.selected_rows_bytes_saved > 0)
    text += fmt::format("sending only the rows some dilation pattern selects would save {} of forward traffic\n",
                        format_bytes(report.selected_rows_bytes_saved));
  text += fmt::format("\nmemory per device against one device holding everything ({} bytes/element):\n",
                      options.bytes_per_element);
  text += fmt::format("  {:<44} {:>12}\n", "this run, largest device peak", format_bytes(peak));
  text += fmt::format("  {:<44} {:>12}  ({:.1f}x this run)\n", "dense on one device, flash-style (no scores)",
                      format_bytes(report.flash_dense_peak_bytes),
                      static_cast<double>(report.flash_dense_peak_bytes) / std::max<std::int64_t>(1, peak));
  text += fmt::format("  {:<44} {:>12}  ({:.1f}x this run)\n", "dense on one device, materialised scores",
                      format_bytes(report.naive_dense_peak_bytes),
                      static_cast<double>(report.naive_dense_peak_bytes) / std::max<std::int64_t>(1, peak));
  if (report.max_abs_error_vs_dense)
    text += fmt::format("\ncompute mode: max |ring − single-device reference| = {:.3g} over O, LSE{}\n",
                        *report.max_abs_error_vs_dense, options.pass == Pass::forward ? "" : ", dQ, dK, dV");
  return text;
}

nlohmann::json report_json(const Report& report) {
  using nlohmann::json;
  const auto& o = report.options;
  const auto& c = o.config;
  json config = {{"batch", c.batch},
                 {"seq", c.seq},
                 {"kv_seq", c.kv_seq},
                 {"heads", c.heads},
                 {"kv_heads", c.kv_heads},
                 {"head_dim", c.head_dim},
                 {"causal", c.causal},
                 {"window_left", c.window_left},
                 {"window_right", c.window_right},
                 {"ring", c.ring},
                 {"layout", to_string(c.layout)},
                 {"q_replicated", c.q_replicated},
                 {"dilation", format_dilation(c.dilation)},
                 {"offset_rule", to_string(c.offset_rule)},
                 {"combine", to_string(c.combine)},
                 {"segments", to_string(c.segments)},
                 {"scheme", to_string(o.scheme)},
                 {"mode", to_string(o.mode)},
                 {"pass", to_string(o.pass)},
                 {"device", o.device.name},
                 {"devices_per_node", o.devices_per_node},
                 {"overlap", o.overlap},
                 {"bytes_per_element", o.bytes_per_element},
                 {"send_selected_rows", o.send_selected_rows}};
  json devices = json::array();
  for (const DeviceReport& d : report.devices) {
    json by_category = json::object();
    for (Category category : kAllCategories)
      by_category[to_string(category)] = d.peak_bytes_by_category[static_cast<std::size_t>(category)];
    devices.push_back({{"id", d.id},
                       {"peak_bytes", d.peak_bytes},
                       {"peak_bytes_by_category", by_category},
                       {"compute_ns", d.compute_ns},
                       {"comm_ns", d.comm_ns},
                       {"idle_ns", d.idle_ns},
                       {"exposed_comm_ns", d.exposed_comm_ns},
                       {"bytes_sent", d.bytes_sent},
                       {"pairs", d.pairs}});
  }
  return {{"config", config},
          {"devices", devices},
          {"makespan_ns", report.makespan_ns},
          {"skipped_steps", report.skipped_steps},
          {"selected_rows_bytes_saved", report.selected_rows_bytes_saved},
          {"dense_reference",
           {{"naive_peak_bytes", report.naive_dense_peak_bytes}, {"flash_peak_bytes", report.flash_dense_peak_bytes}}},
          {"max_abs_error_vs_dense",
           report.max_abs_error_vs_dense ? json(*report.max_abs_error_vs_dense) : json(nullptr)}};
}

void write_text_file(const std::filesystem::path& path, const std::string& text, bool force, const std::string& flag) {
  if (std::filesystem::exists(path) && !force)
    throw InputError(flag + " " + path.string() + ": the file exists; add --force to overwrite it");
  const auto temporary = std::filesystem::path(path.string() + ".tmp");
  {
    std::ofstream file(temporary, std::ios::binary);
    if (!file) throw InputError(flag + " " + path.string() + ": cannot write here");
    file << text;
    if (!file) throw InputError(flag + " " + path.string() + ": write failed");
  }
  std::filesystem::rename(temporary, path);
}

}  // namespace ringlab::sim
