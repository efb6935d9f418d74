#include "model.hpp"

#include <algorithm>
#include <chrono>
#include <limits>

#include "ringlab/errors.hpp"

namespace ringlab::viz {
namespace {

// Multiply-adds of the whole attention (one device's view of the problem), weighted by pass.
double compute_work(const Settings& settings) {
  const auto& c = settings.options.config;
  const double pass = settings.options.pass == sim::Pass::forward ? 1.0 : settings.options.pass == sim::Pass::backward ? 2.5 : 3.5;
  return static_cast<double>(c.batch) * static_cast<double>(c.seq) * static_cast<double>(c.kv_seq) *
         static_cast<double>(c.heads) * static_cast<double>(c.head_dim) * pass;
}

// The viz injects no faults, so nothing can time out: a receiver's timeout (100 ms of simulated time by
// default) would fire on a healthy run whose steps take longer, as they do at N = 2^30.
sim::SimulationOptions without_faults(sim::SimulationOptions options) {
  options.faults.clear();
  options.memory_budget.reset();
  options.timeout_ns = std::numeric_limits<std::int64_t>::max() / 4;
  return options;
}

}  // namespace

SchemeChoice scheme_choice(const Settings& settings) {
  switch (settings.options.scheme) {
    case sim::Scheme::flash: return SchemeChoice::flash;
    case sim::Scheme::dense: return SchemeChoice::dense;
    case sim::Scheme::ring: break;
  }
  return settings.options.config.q_replicated ? SchemeChoice::ring_replicated : SchemeChoice::ring;
}

void set_scheme_choice(Settings& settings, SchemeChoice choice) {
  settings.options.config.q_replicated = choice == SchemeChoice::ring_replicated;
  settings.options.scheme = choice == SchemeChoice::flash   ? sim::Scheme::flash
                            : choice == SchemeChoice::dense ? sim::Scheme::dense
                                                            : sim::Scheme::ring;
}

std::string to_string(SchemeChoice choice) {
  switch (choice) {
    case SchemeChoice::ring: return "ring attention";
    case SchemeChoice::ring_replicated: return "ring, replicated queries";
    case SchemeChoice::flash: return "one device, flash-style";
    case SchemeChoice::dense: return "one device, dense (scores)";
  }
  return "?";
}

Settings default_settings() {
  Settings settings;
  auto& c = settings.options.config;
  c.seq = c.kv_seq = 4096;
  c.heads = 8;
  c.kv_heads = 8;
  c.head_dim = 64;
  c.ring = 4;
  settings.options.mode = sim::Mode::analytic;
  settings.options.device = sim::find_device(sim::builtin_devices(), "H100-SXM");
  return settings;
}

Model::Model() {
  if (!apply(default_settings())) throw Error("internal error: the default settings are invalid: " + error_);
}

Model::~Model() = default;  // the futures wait for running checks

bool Model::apply(const Settings& settings) {
  try {
    settings.options.config.validate();
    if (settings.options.config.ring > kMaxDevices)
      throw ConfigError("P", std::to_string(settings.options.config.ring),
                        "the viz draws rings of up to " + std::to_string(kMaxDevices) +
                            " devices (`ringlab simulate` runs up to 4096)");
    sim::SimulationOptions options = without_faults(settings.options);
    options.mode = sim::Mode::analytic;
    auto simulation = std::make_unique<sim::Simulation>(options);
    simulation->run();
    report_ = simulation->report();
    simulation_ = std::move(simulation);
  } catch (const Error& e) {
    error_ = e.what();
    return false;
  }
  settings_ = settings;
  error_.clear();
  ++generation_;
  maps_.clear();
  waits_.reset();
  flash_.reset();
  dense_.reset();
  scaling_.reset();
  heads_.reset();
  undilated_pairs_.reset();
  masks_.clear();

  if (running_.valid()) stale_.push_back(std::move(running_));
  check_error_.reset();
  check_message_.clear();
  check_ = Check::off;
  if (compute_mode_active()) {
    sim::SimulationOptions options = without_faults(settings.options);
    options.mode = sim::Mode::compute;
    running_ = std::async(std::launch::async, [options]() -> CheckResult {
      try {
        sim::Simulation simulation(options);
        simulation.run();
        return {simulation.report().max_abs_error_vs_dense, ""};
      } catch (const std::exception& e) {
        return {std::nullopt, e.what()};
      }
    });
    check_ = Check::running;
  }
  return true;
}

StepRef Model::step_ref(int global) const {
  const auto& snaps = snapshots();
  if (snaps.empty()) return {};
  const auto& s = snaps[static_cast<std::size_t>(std::clamp(global, 0, total_steps() - 1))];
  return {s.pass, s.step};
}

int Model::global_step(int pass, int step) const {
  const auto& snaps = snapshots();
  for (std::size_t i = 0; i < snaps.size(); ++i)
    if (snaps[i].pass == pass && snaps[i].step == step) return static_cast<int>(i);
  return 0;
}

std::int64_t Model::pairs_at(int global) const {
  const auto& snaps = snapshots();
  if (global < 0 || global >= total_steps()) return 0;
  std::int64_t total = 0;
  for (auto p : snaps[static_cast<std::size_t>(global)].pairs) total += p;
  return total;
}

std::int64_t Model::undilated_pairs() {
  if (!undilated_pairs_) {
    AttentionConfig plain = config();
    plain.dilation.clear();
    plain.offset_rule = OffsetRule::paper;
    plain.combine = Combine::lse;
    undilated_pairs_ = make_ring_schedule(plain).total_pairs();
  }
  return *undilated_pairs_;
}

const sim::AttentionMap& Model::attention_map(sim::MapOrder order) {
  auto it = maps_.find(order);
  if (it == maps_.end()) it = maps_.emplace(order, sim::attention_map(config(), schedule(), order, 128)).first;
  return it->second;
}

const std::vector<std::vector<sim::Interval>>& Model::exposed_waits() {
  if (!waits_) {
    const auto& options = settings().options;
    waits_ = sim::exposed_waits(simulation_->slices(), devices(),
                                options.overlap && !options.config.q_replicated && devices() > 1);
  }
  return *waits_;
}

const std::optional<sim::MemoryBar>& Model::flash_memory() {
  if (!flash_) flash_ = sim::single_device_memory(settings_.options, sim::Scheme::flash);
  return *flash_;
}

const std::optional<sim::MemoryBar>& Model::dense_memory() {
  if (!dense_) dense_ = sim::single_device_memory(settings_.options, sim::Scheme::dense);
  return *dense_;
}

const std::vector<sim::ScalingSeries>& Model::memory_scaling() {
  if (!scaling_) {
    std::vector<int> rings = {1, 8, 64, 512, 4096};
    if (std::find(rings.begin(), rings.end(), config().ring) == rings.end()) rings.push_back(config().ring);
    std::sort(rings.begin(), rings.end());
    sim::SimulationOptions options = settings_.options;
    options.config.q_replicated = config().q_replicated;
    scaling_ = sim::memory_scaling(options, rings, 10, 30);
  }
  return *scaling_;
}

const std::vector<sim::HeadAssignment>& Model::head_assignments() {
  if (!heads_) heads_ = sim::head_assignments(config());
  return *heads_;
}

const sim::HeadMask& Model::head_mask(int head, std::int64_t begin, std::int64_t end, int bins) {
  const MaskKey key{head, begin, end, bins};
  auto it = masks_.find(key);
  if (it == masks_.end()) {
    if (masks_.size() > 16) masks_.clear();
    it = masks_.emplace(key, sim::head_mask(config(), head, begin, end, bins)).first;
  }
  return it->second;
}

bool Model::small_enough_for_compute(const Settings& settings) {
  const auto& c = settings.options.config;
  const double tokens = static_cast<double>(c.batch) * static_cast<double>(c.seq) * static_cast<double>(c.heads) *
                        static_cast<double>(c.head_dim);
  return tokens <= 0x1p20 && compute_work(settings) <= 0x1p30;  // about a second on one core
}

bool Model::compute_mode_active() const {
  switch (settings_.mode) {
    case ModeChoice::analytic: return false;
    case ModeChoice::automatic: return small_enough_for_compute(settings_);
    case ModeChoice::compute: return compute_work(settings_) <= 0x1p34;  // a few seconds at most
  }
  return false;
}

void Model::poll() {
  using namespace std::chrono_literals;
  if (check_ == Check::running && running_.valid() && running_.wait_for(0s) == std::future_status::ready) {
    CheckResult result = running_.get();
    check_error_ = result.error;
    check_message_ = result.message;
    check_ = result.error ? Check::done : Check::failed;
  }
  std::erase_if(stale_, [](std::future<CheckResult>& f) { return f.wait_for(0s) == std::future_status::ready; });
}

void Model::wait_for_check() {
  if (check_ == Check::running && running_.valid()) running_.wait();
  poll();
}

}  // namespace ringlab::viz
