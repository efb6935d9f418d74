// The viz's model: the settings a student edits and what the simulator makes of them. It runs the analytic
// simulation (instant up to P = 256), caches the simulator's view models (ringlab/sim/views.hpp) per
// result, and — for problems small enough — runs compute mode (real fp64 tensors) in the background to
// show the error against dense attention. No ImGui here: the panels read this and draw.
#pragma once

#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ringlab/sim/simulation.hpp"
#include "ringlab/sim/views.hpp"

namespace ringlab::viz {

// The largest ring the viz draws: the simulator records timelines and snapshots for P² ≤ 65536.
inline constexpr int kMaxDevices = 256;

enum class ModeChoice { automatic, analytic, compute };
// How the attention is distributed: the ring (queries sharded or replicated), or one device.
enum class SchemeChoice { ring, ring_replicated, flash, dense };

struct Settings {
  sim::SimulationOptions options;  // config, scheme, pass, device, overlap, bytes per element, selected rows
  ModeChoice mode = ModeChoice::automatic;
};
SchemeChoice scheme_choice(const Settings& settings);
void set_scheme_choice(Settings& settings, SchemeChoice choice);
std::string to_string(SchemeChoice choice);

// The defaults every scene starts from: H100-SXM, bf16, forward, overlap on.
Settings default_settings();

// A step of the playback: the snapshots run forward steps 0..P−1, then backward steps 0..P−1.
struct StepRef {
  int pass = 0;  // 0 forward, 1 backward
  int step = 0;
};

class Model {
 public:
  Model();
  ~Model();

  // Validates and re-runs. On an error (ConfigError, or a ring too large to draw) keeps the previous
  // results, records the message and returns false.
  bool apply(const Settings& settings);
  const Settings& settings() const { return settings_; }
  const std::string& error() const { return error_; }
  std::uint64_t generation() const { return generation_; }  // changes whenever the results change

  const sim::Simulation& simulation() const { return *simulation_; }
  const sim::Report& report() const { return report_; }
  const RingSchedule& schedule() const { return simulation_->schedule(); }
  const AttentionConfig& config() const { return report_.options.config; }  // effective: ring = 1 for one device
  int devices() const { return config().ring; }
  const std::vector<sim::StepSnapshot>& snapshots() const { return simulation_->snapshots(); }
  int total_steps() const { return static_cast<int>(snapshots().size()); }
  StepRef step_ref(int global) const;
  int global_step(int pass, int step) const;  // the inverse; 0 when the run has no such step
  // Total score entries computed by all devices at a step (one batch element), and at all steps.
  std::int64_t pairs_at(int global) const;
  std::int64_t total_pairs() const { return schedule().total_pairs(); }
  // The same config without dilation patterns: what dilation saves.
  std::int64_t undilated_pairs();

  // The simulator's view models, computed on first use for the current results.
  const sim::AttentionMap& attention_map(sim::MapOrder order);
  const std::vector<std::vector<sim::Interval>>& exposed_waits();
  // One device running everything (nullopt: beyond 2^62 bytes, dense scores near N = 2^30).
  const std::optional<sim::MemoryBar>& flash_memory();
  const std::optional<sim::MemoryBar>& dense_memory();
  const std::vector<sim::ScalingSeries>& memory_scaling();
  const std::vector<sim::HeadAssignment>& head_assignments();
  const sim::HeadMask& head_mask(int head, std::int64_t begin, std::int64_t end, int bins);

  // Compute mode: the same run with real tensors, checked against single-device attention.
  enum class Check { off, running, done, failed };
  Check check() const { return check_; }
  std::optional<double> check_error() const { return check_error_; }
  const std::string& check_message() const { return check_message_; }
  bool compute_mode_active() const;        // the settings ask for compute mode and it is allowed
  static bool small_enough_for_compute(const Settings& settings);
  void poll();             // collects a finished background check (call once per frame)
  void wait_for_check();   // blocks until the check is done (headless screenshots)

 private:
  Settings settings_;
  std::string error_;
  std::uint64_t generation_ = 0;
  std::unique_ptr<sim::Simulation> simulation_;
  sim::Report report_;

  std::map<sim::MapOrder, sim::AttentionMap> maps_;
  std::optional<std::vector<std::vector<sim::Interval>>> waits_;
  std::optional<std::optional<sim::MemoryBar>> flash_, dense_;
  std::optional<std::vector<sim::ScalingSeries>> scaling_;
  std::optional<std::vector<sim::HeadAssignment>> heads_;
  std::optional<std::int64_t> undilated_pairs_;
  struct MaskKey {
    int head;
    std::int64_t begin, end;
    int bins;
    auto operator<=>(const MaskKey&) const = default;
  };
  std::map<MaskKey, sim::HeadMask> masks_;

  struct CheckResult {
    std::optional<double> error;
    std::string message;
  };
  Check check_ = Check::off;
  std::optional<double> check_error_;
  std::string check_message_;
  std::future<CheckResult> running_;
  std::vector<std::future<CheckResult>> stale_;  // checks of settings since replaced, left to finish
};

}  // namespace ringlab::viz
