// ringlab simulate: P virtual devices running the ring schedule (simulator/, docs/simulator.md). With no
// flags it runs the built-in teaching scenario; prints the per-device tables and the memory comparison,
// writes --trace (Chrome/Perfetto) and --report-json. Exit 3 when an injected fault or the memory budget
// stopped the run (detected, named), 2 for unusable input. `--backend gpu` runs the ring on one GPU instead,
// beside the simulator's analytic twin (simulate_gpu.cpp).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fmt/core.h>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "config_flags.hpp"
#include "ringlab/errors.hpp"
#include "ringlab/sim/output.hpp"
#include "simulate_gpu.hpp"

namespace ringlab::cli {
namespace {

constexpr int kExitRunFailed = 3;

// The scenario `ringlab simulate` runs without flags: causal attention over 8 devices, zigzag layout,
// real tensors — small enough for seconds on two cores, large enough to show balance and overlap.
AttentionConfig teaching_scenario() {
  AttentionConfig config;
  config.seq = config.kv_seq = 8192;
  config.heads = config.kv_heads = 8;
  config.head_dim = 64;
  config.causal = true;
  config.ring = 8;
  config.layout = Layout::zigzag;
  return config;
}

// --config FILE: a JSON object whose keys are the long flag names ("seq", "kv-seq" or "kv_seq", "causal",
// "mode", ...). Flags given on the command line win over the file. CLI11 reads config files on the root app
// only, so the option lives there and every item is routed to the `simulate` subcommand.
class JsonConfig : public CLI::Config {
 public:
  explicit JsonConfig(const CLI::App* simulate) : simulate_(simulate) {}
  std::string to_config(const CLI::App*, bool, bool, std::string) const override { return "{}"; }
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    nlohmann::json document;
    try {
      document = nlohmann::json::parse(input);
    } catch (const nlohmann::json::exception& error) {
      throw CLI::ConversionError("--config: not valid JSON: " + std::string(error.what()));
    }
    if (!document.is_object()) throw CLI::ConversionError("--config: expected a JSON object of flag: value");
    std::vector<CLI::ConfigItem> items;
    for (const auto& [key, value] : document.items()) {
      CLI::ConfigItem item;
      item.parents = {"simulate"};
      item.name = key;
      std::replace(item.name.begin(), item.name.end(), '_', '-');
      if (item.name == "config" || simulate_->get_option_no_throw("--" + item.name) == nullptr)
        throw CLI::ConversionError("--config: unknown key '" + key +
                                   "'; the keys are the long flag names of 'ringlab simulate --help'");
      auto text = [](const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
      if (value.is_array())
        for (const auto& element : value) item.inputs.push_back(text(element));
      else
        item.inputs.push_back(text(value));
      items.push_back(item);
    }
    return items;
  }

 private:
  const CLI::App* simulate_;
};

struct SimulateFlags {
  std::unique_ptr<ConfigFlags> config;
  std::string mode = "compute", scheme = "ring", pass = "forward", device_preset = "H100-SXM", device_file;
  CLI::Option* device_preset_option = nullptr;  // --backend gpu: was a preset chosen, or match the GPU?
  std::string overlap = "on", trace, report_json;
  std::string backend = "cpu", dtype = "bf16", grad_precision = "input", hops = "copies";
  int iters = 10;
  const CLI::App* app = nullptr;  // the subcommand, to tell flags given from defaults
  std::vector<std::string> injections;
  int devices_per_node = 8;
  std::int64_t bytes_per_element = 2, tile_rows = 64, tile_columns = 128;
  double memory_budget_gib = 0, timeout_ms = 100, delay_us = 1000;
  bool send_selected_rows = false, force = false, memory_table = false, progress = true;
  std::uint64_t seed = 0;
};

sim::SimulationOptions options_from(const SimulateFlags& flags) {
  sim::SimulationOptions options;
  options.config = flags.config->config();
  options.mode = sim::parse_mode(flags.mode);
  options.scheme = sim::parse_scheme(flags.scheme);
  options.pass = sim::parse_pass(flags.pass);
  const auto devices = flags.device_file.empty() ? sim::builtin_devices() : sim::load_devices(flags.device_file);
  options.device = sim::find_device(devices, flags.device_preset);
  options.devices_per_node = flags.devices_per_node;
  if (flags.overlap != "on" && flags.overlap != "off")
    throw ConfigError("--overlap", "'" + flags.overlap + "'", "valid values are on, off");
  options.overlap = flags.overlap == "on";
  options.bytes_per_element = flags.bytes_per_element;
  options.send_selected_rows = flags.send_selected_rows;
  // The dK/dV hop home: in the K/V's dtype (the GPU ring's default) or fp32.
  options.returned_gradient_bytes_per_element = flags.grad_precision == "fp32" ? 4 : 0;
  if (flags.memory_budget_gib < 0)
    throw ConfigError("--memory-budget", fmt::format("{}", flags.memory_budget_gib), "must be >= 0 GiB (0 = none)");
  if (flags.memory_budget_gib > 0)
    options.memory_budget = static_cast<std::int64_t>(flags.memory_budget_gib * (1LL << 30));
  for (const auto& text : flags.injections) options.faults.push_back(sim::parse_fault(text));
  if (!(flags.timeout_ms > 0)) throw ConfigError("--timeout-ms", fmt::format("{}", flags.timeout_ms), "must be > 0");
  if (flags.delay_us < 0) throw ConfigError("--delay-us", fmt::format("{}", flags.delay_us), "must be >= 0");
  options.timeout_ns = static_cast<std::int64_t>(flags.timeout_ms * 1e6);
  options.delay_ns = static_cast<std::int64_t>(flags.delay_us * 1e3);
  if (flags.tile_rows < 1 || flags.tile_columns < 1)
    throw ConfigError("--tile", fmt::format("{}x{}", flags.tile_rows, flags.tile_columns), "tile sizes must be >= 1");
  options.tiles = {flags.tile_rows, flags.tile_columns};
  options.seed = flags.seed;
  return options;
}

bool given(const SimulateFlags& flags, const std::string& flag) { return flags.app->count(flag) > 0; }

// The last value a flag was given ("true" for a switch), for error messages.
std::string given_value(const SimulateFlags& flags, const std::string& flag) {
  const auto results = flags.app->get_option(flag)->results();
  return results.empty() ? "true" : results.back();
}

// --backend cpu | gpu, and the flags that only one of them honours: refused, never silently ignored.
bool gpu_backend_chosen(const SimulateFlags& flags) {
  if (flags.backend != "cpu" && flags.backend != "gpu")
    throw ConfigError("--backend", "'" + flags.backend + "'", "valid values are cpu (the simulator), gpu (the ring on "
                                                               "one GPU beside the simulator's prediction)");
  if (flags.dtype != "bf16" && flags.dtype != "fp16")
    throw ConfigError("--dtype", "'" + flags.dtype + "'", "valid values are bf16, fp16 (--backend gpu)");
  if (flags.hops != "copies" && flags.hops != "kernels")
    throw ConfigError("--hops", "'" + flags.hops + "'",
                      "valid values are copies, kernels (--backend gpu: how the virtual devices pass chunks on)");
  const bool gpu = flags.backend == "gpu";
  if (!gpu) {
    for (const char* flag : {"--dtype", "--iters", "--hops"})
      if (given(flags, flag))
        throw ConfigError(flag, given_value(flags, flag),
                          "applies to --backend gpu only (the simulator computes in fp64; --bytes-per-element sets "
                          "the element size of its memory accounting)");
    return false;
  }
  if (sim::parse_mode(flags.mode) == sim::Mode::analytic)
    throw ConfigError("--mode", "analytic", "--backend gpu always computes on the GPU (it runs the simulator's "
                                            "analytic twin itself for the predictions); drop --mode or use --backend "
                                            "cpu");
  if (sim::parse_scheme(flags.scheme) != sim::Scheme::ring)
    throw ConfigError("--scheme", flags.scheme, "--backend gpu runs the ring (and times the single-GPU kernel beside "
                                                "it); flash and dense are simulator-only (--backend cpu)");
  if (!flags.injections.empty())
    throw ConfigError("--inject", flags.injections.front(), "fault injection is simulator-only (--backend cpu); "
                                                            "the GPU ring has no faults to inject");
  for (const char* flag : {"--memory-budget", "--timeout-ms", "--delay-us", "--tile-rows", "--tile-columns", "--trace",
                           "--send-selected-rows"})
    if (given(flags, flag))
      throw ConfigError(flag, given_value(flags, flag), "simulator-only (--backend cpu); --backend gpu does not use it");
  if (given(flags, "--bytes-per-element") && flags.bytes_per_element != kGpuBackendElementBytes)
    throw ConfigError("--bytes-per-element", std::to_string(flags.bytes_per_element),
                      "--backend gpu uses its --dtype's size (bf16, fp16: 2)");
  if (flags.iters < 1) throw ConfigError("--iters", std::to_string(flags.iters), "must be >= 1");
  return true;
}

// Markdown table of per-device memory for the scenarios the seed documents quote (docs/memory-table.md).
std::string memory_table() {
  const auto h100 = sim::find_device(sim::builtin_devices(), "H100-SXM");
  auto peak = [&](std::int64_t n, int ring, bool replicated, sim::Scheme scheme, std::int64_t e, std::int64_t heads,
                  std::int64_t dim) {
    sim::SimulationOptions options;
    options.config.seq = options.config.kv_seq = n;
    options.config.heads = options.config.kv_heads = heads;
    options.config.head_dim = dim;
    options.config.ring = ring;
    options.config.q_replicated = replicated && ring > 1;
    options.scheme = scheme;
    options.mode = sim::Mode::analytic;
    options.bytes_per_element = e;
    options.device = h100;
    sim::Simulation simulation(options);
    simulation.run();
    std::int64_t most = 0;
    for (const auto& device : simulation.report().devices) most = std::max(most, device.peak_bytes);
    return most;
  };
  auto mib = [](std::int64_t bytes) { return fmt::format("{:.1f}", static_cast<double>(bytes) / (1 << 20)); };
  std::string text;
  text += "Per-device peak memory in MiB from `ringlab simulate --mode analytic` ledgers, forward pass, B = 1,\n"
          "H = 8, D = 64, fp32 elements (e = 4) like the seed documents' measurements.\n\n";
  text += "| tokens N | ring P | seed: standard | seed: ring | ringlab dense (scores) | ringlab flash, one device | "
          "ringlab ring | ringlab ring, queries replicated |\n|---|---|---|---|---|---|---|---|\n";
  struct SeedRow {
    std::int64_t n;
    int ring;
    const char* standard;
    const char* ring_claim;
  };
  const SeedRow rows[] = {{8192, 1, "2096", "2096.1"},  {8192, 2, "2096", "1072.1"},   {8192, 4, "2096", "560.1"},
                          {8192, 8, "2096", "304.1"},   {8192, 16, "2096", "176.1"},   {16384, 16, "8384", "352"},
                          {32768, 16, "33536", "704"},  {131072, 16, "OOM", "2816"}};
  for (const SeedRow& row : rows)
    text += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} |\n", row.n, row.ring, row.standard, row.ring_claim,
                        mib(peak(row.n, 1, false, sim::Scheme::dense, 4, 8, 64)),
                        mib(peak(row.n, 1, false, sim::Scheme::flash, 4, 8, 64)),
                        mib(peak(row.n, row.ring, false, sim::Scheme::ring, 4, 8, 64)),
                        mib(peak(row.n, row.ring, true, sim::Scheme::ring, 4, 8, 64)));
  text += "\nThe seed documents' long-context claims, bf16 (e = 2), H = 12, D = 64 (embed_dim 768):\n\n";
  text += "| tokens N | ring P | ringlab ring, per device | ringlab ring, queries replicated, per device | "
          "dense with scores, one device |\n|---|---|---|---|---|\n";
  for (const auto& [n, ring] : std::vector<std::pair<std::int64_t, int>>{
           {1 << 20, 1}, {1 << 20, 8}, {1 << 20, 64}, {1LL << 30, 64}, {1LL << 30, 256}, {1LL << 30, 1024}})
    text += fmt::format("| {} | {} | {} | {} | {} |\n", n, ring,
                        sim::format_bytes(peak(n, ring, false, sim::Scheme::ring, 2, 12, 64)),
                        sim::format_bytes(peak(n, ring, true, sim::Scheme::ring, 2, 12, 64)),
                        sim::format_bytes(sim::naive_dense_peak_bytes_real(
                            [&] {
                              AttentionConfig c;
                              c.seq = c.kv_seq = n;
                              c.heads = c.kv_heads = 12;
                              c.head_dim = 64;
                              return c;
                            }(),
                            2)));
  return text;
}

int run_simulate(SimulateFlags& flags) {
  if (flags.memory_table) {
    fmt::print("{}", memory_table());
    return 0;
  }
  const bool gpu = gpu_backend_chosen(flags);
  const sim::SimulationOptions options = options_from(flags);
  // Refuse to overwrite outputs before spending any time.
  for (const auto& [path, flag] : {std::pair{flags.trace, "--trace"}, std::pair{flags.report_json, "--report-json"}})
    if (!path.empty() && std::filesystem::exists(path) && !flags.force)
      throw InputError(std::string(flag) + " " + path + ": the file exists; add --force to overwrite it");
  if (gpu) {
    GpuSimulateRequest request;
    request.twin = options;
    request.dtype = flags.dtype;
    request.hops = flags.hops;
    request.iters = flags.iters;
    request.seed = flags.seed;
    request.report_json = flags.report_json;
    request.force = flags.force;
    request.device_chosen = flags.device_preset_option->count() > 0 || !flags.device_file.empty();
    return run_simulate_gpu(request);
  }

  const bool show_progress = flags.progress && isatty(fileno(stdout));
  const auto started = std::chrono::steady_clock::now();
  std::unique_ptr<sim::Simulation> simulation;
  try {
    simulation = std::make_unique<sim::Simulation>(options);
    const int steps_total = options.config.ring * (options.pass == sim::Pass::both ? 2 : 1);
    int steps = 0;
    while (simulation->step()) {
      ++steps;
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (show_progress && elapsed > 0.5) {
        const int width = 30, filled = width * steps / std::max(1, steps_total);
        fmt::print(stderr, "\r[{}{}] step {}/{}  {:.1f} s", std::string(filled, '#'), std::string(width - filled, ' '),
                   steps, steps_total, elapsed);
      }
    }
    if (show_progress) fmt::print(stderr, "\r{}\r", std::string(60, ' '));
  } catch (const sim::FaultDetected& detected) {
    if (show_progress) fmt::print(stderr, "\n");
    fmt::print(stderr, "ringlab simulate: fault detected: {}\n", detected.what());
    return kExitRunFailed;
  } catch (const sim::OutOfMemory& error) {
    fmt::print(stderr, "ringlab simulate: {}\n", error.what());
    return kExitRunFailed;
  }
  const sim::Report report = simulation->report();
  fmt::print("{}", sim::format_report(report));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  fmt::print("\nsimulated in {:.2f} s of wall time\n", seconds);
  if (!flags.report_json.empty()) {
    sim::write_text_file(flags.report_json, sim::report_json(report).dump(2) + "\n", flags.force, "--report-json");
    fmt::print("report written to {}\n", flags.report_json);
  }
  if (!flags.trace.empty()) {
    if (simulation->slices().empty())
      fmt::print("note: the timeline is recorded for rings of at most 256 devices; {} has none\n", flags.trace);
    sim::write_text_file(flags.trace, sim::chrome_trace(*simulation).dump() + "\n", flags.force, "--trace");
    fmt::print("trace written to {}: open it at https://ui.perfetto.dev (or chrome://tracing)\n", flags.trace);
  } else {
    fmt::print("add --trace run.json to see every device's compute and transfers in Perfetto "
               "(https://ui.perfetto.dev)\n");
  }
  return 0;
}

}  // namespace

Command add_simulate_command(CLI::App& parent) {
  auto flags = std::make_shared<SimulateFlags>();
  CLI::App* app = parent.add_subcommand(
      "simulate",
      "Simulate P virtual devices running ring attention: memory per device, compute/communication timeline, "
      "faults. With no flags: causal attention, N = 8192, P = 8, H = 8, D = 64, zigzag, compute mode. "
      "--backend gpu: the ring on one GPU beside the simulator's prediction.");
  flags->app = app;
  flags->config = std::make_unique<ConfigFlags>(*app, teaching_scenario());
  const std::string run_group = "Simulation";
  app->add_option("--mode", flags->mode, "compute (real fp64 tensors, compared with dense) or analytic (no tensors, "
                                          "N up to 2^30) [compute]")->group(run_group);
  app->add_option("--scheme", flags->scheme, "ring (Q sharded; --q-replicated for the seed variant), flash (one "
                                              "device, no scores) or dense (one device, materialised scores) [ring]")
      ->group(run_group);
  app->add_option("--pass", flags->pass, "forward, backward or both [forward]")->group(run_group);
  flags->device_preset_option =
      app->add_option("--device-preset", flags->device_preset,
                      "A100-80GB, H100-SXM or H200, or a name from --device-file [H100-SXM; with --backend gpu: "
                      "the preset of the GPU it runs on]")
          ->group(run_group);
  app->add_option("--device-file", flags->device_file, "JSON file of devices in the format of "
                                                        "simulator/data/devices.json")->group(run_group);
  app->add_option("--devices-per-node", flags->devices_per_node, "G devices share one node's fast links; hops "
                                                                  "between nodes use the slower link [8]")
      ->group(run_group);
  app->add_option("--overlap", flags->overlap, "on: send each chunk while computing on it; off: after [on]")
      ->group(run_group);
  app->add_option("--bytes-per-element", flags->bytes_per_element, "dtype size of Q, K, V, O (bf16 = 2) [2]")
      ->group(run_group);
  app->add_option("--grad-precision", flags->grad_precision,
                  "the dK, dV that come home after the last step: in the K/V's dtype (input, as the GPU ring returns "
                  "them by default) or fp32 [input]")
      ->check(CLI::IsMember({"input", "fp32"}))
      ->group(run_group);
  app->add_flag("--send-selected-rows", flags->send_selected_rows, "dilation: send only the K/V rows some pattern "
                                                                     "selects")->group(run_group);
  app->add_option("--memory-budget", flags->memory_budget_gib, "GiB per device; exceeding it stops the run (0 = "
                                                                "none) [0]")->group(run_group);
  app->add_option("--inject", flags->injections, "KIND@DEVICE:STEP, KIND = drop, duplicate, corrupt, stale, delay, "
                                                  "kill (repeatable)")->group(run_group);
  app->add_option("--timeout-ms", flags->timeout_ms, "watchdog: simulated ms without progress anywhere in the ring before a waiting device times out [100]")
      ->group(run_group);
  app->add_option("--delay-us", flags->delay_us, "extra latency of a delay fault, us [1000]")->group(run_group);
  app->add_option("--tile-rows", flags->tile_rows, "compute mode: query rows per tile Br [64]")->group(run_group);
  app->add_option("--tile-columns", flags->tile_columns, "compute mode: key rows per tile Bc [128]")->group(run_group);
  app->add_option("--seed", flags->seed, "compute mode and --backend gpu: seed of the N(0,1) inputs [0]")
      ->group(run_group);
  const std::string gpu_group = "GPU backend";
  app->add_option("--backend", flags->backend, "cpu: the simulator; gpu: the ring on one GPU (gpu::VirtualRing, P "
                                                "virtual devices) against the single-GPU kernel, beside the "
                                                "simulator's prediction (docs/simulator.md) [cpu]")
      ->group(gpu_group);
  app->add_option("--dtype", flags->dtype, "--backend gpu: element type of Q, K, V, O, dO: bf16 or fp16 [bf16]")
      ->group(gpu_group);
  app->add_option("--iters", flags->iters, "--backend gpu: timed runs after one warm-up; the median is reported [10]")
      ->group(gpu_group);
  app->add_option("--hops", flags->hops,
                  "--backend gpu: how the virtual devices pass chunks on: copies (cudaMemcpyAsync per link) or kernels "
                  "(each step's attention kernel copies what it holds on; gpu::RingHops, docs/gpu-rings.md) [copies]")
      ->group(gpu_group);
  const std::string output_group = "Output";
  app->add_option("--trace", flags->trace, "write a Chrome/Perfetto trace-event JSON file")->group(output_group);
  app->add_option("--report-json", flags->report_json, "write the report as JSON")->group(output_group);
  app->add_flag("--force", flags->force, "overwrite existing --trace / --report-json files")->group(output_group);
  app->add_flag("!--no-progress", flags->progress, "no progress bar (it only shows on a terminal)")
      ->group(output_group);
  app->add_flag("--memory-table", flags->memory_table, "print the per-device memory table of the seed documents' "
                                                        "scenarios (docs/memory-table.md) and exit")
      ->group(output_group);
  // `ringlab simulate --config FILE`: unknown to the subcommand, so it falls through to the root's option.
  app->fallthrough();
  parent.set_config("--config", "", "simulate: JSON file of flag: value pairs (command-line flags win)");
  parent.config_formatter(std::make_shared<JsonConfig>(app));
  parent.allow_config_extras(CLI::config_extras_mode::error);  // a misspelt key is an error, not ignored
  return {app, [flags] { return run_simulate(*flags); }};
}

}  // namespace ringlab::cli
