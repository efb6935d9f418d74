// What a simulation writes: the summary tables, the JSON report, and a Chrome/Perfetto trace.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "ringlab/sim/simulation.hpp"

namespace ringlab::sim {

// Per device: peak memory by category, compute / communication / exposed / idle time, bytes sent; then
// the memory comparison against dense attention on one device.
std::string format_report(const Report& report);

// {"config", "devices": [{"id", "peak_bytes", "peak_bytes_by_category", "compute_ns", "comm_ns", "idle_ns",
//  "exposed_comm_ns", "bytes_sent"}], "makespan_ns", "dense_reference": {"naive_peak_bytes",
//  "flash_peak_bytes"}, "max_abs_error_vs_dense"} plus a few more keys (docs/simulator.md).
nlohmann::json report_json(const Report& report);

// Trace-event JSON: pid = device, tid = compute / send / receive; X slices, flow events from each send to
// its receive, C counters for memory, M metadata names. Open it in https://ui.perfetto.dev or chrome://tracing.
nlohmann::json chrome_trace(const Simulation& simulation);

// 1536 → "1.50 KiB"; 2^63 − 1 (a saturated count) → "> 8 EiB".
std::string format_bytes(std::int64_t bytes);
std::string format_bytes(double bytes);

// Writes text to path through a temporary file; refuses to overwrite an existing file unless `force`.
void write_text_file(const std::filesystem::path& path, const std::string& text, bool force, const std::string& flag);

}  // namespace ringlab::sim
