#include <fstream>

#include "ringlab/sim/output.hpp"

namespace ringlab::sim {

namespace {
constexpr const char* kStreamNames[] = {"compute", "send", "receive"};
double microseconds(std::int64_t ns) { return static_cast<double>(ns) / 1000.0; }
}  // namespace

nlohmann::json chrome_trace(const Simulation& simulation) {
  using nlohmann::json;
  json events = json::array();
  const int devices = simulation.schedule().ring_size;
  for (int p = 0; p < devices; ++p) {
    events.push_back({{"ph", "M"}, {"name", "process_name"}, {"pid", p}, {"args", {{"name", "device " + std::to_string(p)}}}});
    events.push_back({{"ph", "M"}, {"name", "process_sort_index"}, {"pid", p}, {"args", {{"sort_index", p}}}});
    for (int stream = 0; stream < 3; ++stream)
      events.push_back({{"ph", "M"}, {"name", "thread_name"}, {"pid", p}, {"tid", stream},
                        {"args", {{"name", kStreamNames[stream]}}}});
  }
  for (const Slice& slice : simulation.slices()) {
    json event = {{"ph", "X"},   {"name", slice.name},           {"pid", slice.device},
                  {"tid", slice.stream}, {"ts", microseconds(slice.begin_ns)},
                  {"dur", microseconds(slice.end_ns - slice.begin_ns)},
                  {"cat", slice.stream == 0 ? "compute" : "comm"},
                  {"args", {{"pass", slice.pass == 0 ? "forward" : "backward"}, {"step", slice.step}}}};
    events.push_back(event);
    if (slice.message >= 0) {
      // Flow from the start of the send slice to the end of the matching receive slice.
      const bool is_send = slice.stream == 1;
      json flow = {{"ph", is_send ? "s" : "f"}, {"name", "message"}, {"cat", "comm"}, {"id", slice.message},
                   {"pid", slice.device}, {"tid", slice.stream},
                   {"ts", microseconds(is_send ? slice.begin_ns : slice.end_ns)}};
      if (!is_send) flow["bp"] = "e";
      events.push_back(flow);
    }
  }
  for (const MemorySample& sample : simulation.memory_samples())
    events.push_back({{"ph", "C"}, {"name", "memory"}, {"pid", sample.device}, {"ts", microseconds(sample.time_ns)},
                      {"args", {{"bytes", sample.bytes}}}});
  return {{"traceEvents", events}, {"displayTimeUnit", "ns"}};
}

}  // namespace ringlab::sim
