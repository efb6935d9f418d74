// The simulator: ledgers equal the closed-form formulas of docs/simulator.md, analytic and compute modes
// agree, compute mode equals single-device attention, traces obey the trace-event rules, every injected
// fault is detected, and the timing model behaves (overlap, multi-node links, budgets).
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include "catch_compat.hpp"
#include "ringlab/sim/output.hpp"

using namespace ringlab;
using namespace ringlab::sim;

namespace {

SimulationOptions small_options() {
  SimulationOptions options;
  options.config.seq = options.config.kv_seq = 97;
  options.config.heads = 6;
  options.config.kv_heads = 2;
  options.config.head_dim = 8;
  options.config.causal = true;
  options.config.ring = 4;
  options.config.layout = Layout::zigzag;
  options.device = find_device(builtin_devices(), "H100-SXM");
  return options;
}

Report run(const SimulationOptions& options) {
  Simulation simulation(options);
  simulation.run();
  return simulation.report();
}

// docs/simulator.md §Memory, written out again here: e bytes/element, fp32 accumulators.
std::map<std::string, std::int64_t> expected_ring_peaks(const SimulationOptions& o, int device, bool backward) {
  const auto& c = o.config;
  const std::int64_t B = c.batch, H = c.heads, Hkv = c.kv_heads, D = c.head_dim, e = o.bytes_per_element, f = 4;
  const RingSchedule schedule = make_ring_schedule(c);
  const std::int64_t n = schedule.devices[device].query_positions.size();
  std::int64_t m = 0;
  for (const auto& chunk : schedule.chunk_positions) m = std::max(m, chunk.size());
  const std::int64_t own = schedule.chunk_positions[device].size();
  const std::int64_t P = c.ring;
  std::map<std::string, std::int64_t> peaks;
  peaks["q"] = B * n * H * D * e;
  peaks["kv"] = 2 * B * own * Hkv * D * e;
  peaks["kv_recv"] = P > 1 ? 2 * 2 * B * m * Hkv * D * e : 0;
  if (!backward) {
    peaks["out"] = B * n * H * D * f;
    peaks["lse"] = B * H * n * f;
    peaks["scratch"] = B * n * H * D * e + B * H * n * f;
    peaks["grad"] = 0;
  } else {
    peaks["out"] = B * n * H * D * e;
    peaks["lse"] = B * H * n * f;
    peaks["scratch"] = B * H * n * f;
    peaks["grad"] = B * n * H * D * e + B * n * H * D * f +
                    (c.q_replicated ? 2 * B * own * Hkv * D * f + (P > 1 ? 2 * B * m * Hkv * D * f : 0)
                                    : (P > 1 ? 3 : 2) * 2 * B * m * Hkv * D * f);
  }
  std::int64_t total = 0;
  for (const auto& [name, bytes] : peaks) total += bytes;
  peaks["total"] = total;
  return peaks;
}

void check_ledger_against_formulas(const SimulationOptions& options, bool backward) {
  const Report report = run(options);
  for (const DeviceReport& device : report.devices) {
    const auto expected = expected_ring_peaks(options, device.id, backward);
    INFO(describe(options.config) << " device " << device.id << (backward ? " backward" : " forward"));
    for (Category category : kAllCategories)
      CHECK(device.peak_bytes_by_category[static_cast<std::size_t>(category)] == expected.at(to_string(category)));
    CHECK(device.peak_bytes == expected.at("total"));
  }
}

}  // namespace

TEST_CASE("ledger peaks equal the closed-form per-device formulas", "[simulator][memory]") {
  SimulationOptions options = small_options();
  options.mode = Mode::analytic;
  for (const Layout layout : {Layout::contiguous, Layout::zigzag, Layout::striped})
    for (const bool replicated : {false, true})
      for (const Pass pass : {Pass::forward, Pass::backward}) {
        options.config.layout = layout;
        options.config.q_replicated = replicated;
        options.pass = pass;
        check_ledger_against_formulas(options, pass == Pass::backward);
      }
  SECTION("one device: flash-style and dense with materialised scores") {
    options.pass = Pass::forward;
    options.config.q_replicated = false;
    options.scheme = Scheme::flash;
    const Report flash = run(options);
    CHECK(flash.devices.size() == 1);
    CHECK(flash.devices[0].peak_bytes == flash.flash_dense_peak_bytes);
    options.scheme = Scheme::dense;
    const Report dense = run(options);
    CHECK(dense.devices[0].peak_bytes == dense.naive_dense_peak_bytes);
    CHECK(dense.naive_dense_peak_bytes - dense.flash_dense_peak_bytes == 6LL * 97 * 97 * 2);  // S: B·H·N·M·e
  }
}

TEST_CASE("analytic and compute modes produce the same ledgers and timelines", "[simulator]") {
  SimulationOptions options = small_options();
  options.pass = Pass::both;
  options.mode = Mode::analytic;
  Simulation analytic(options);
  analytic.run();
  options.mode = Mode::compute;
  Simulation compute(options);
  compute.run();
  const Report a = analytic.report(), c = compute.report();
  CHECK(a.makespan_ns == c.makespan_ns);
  REQUIRE(a.devices.size() == c.devices.size());
  for (std::size_t i = 0; i < a.devices.size(); ++i) {
    CHECK(a.devices[i].peak_bytes_by_category == c.devices[i].peak_bytes_by_category);
    CHECK(a.devices[i].compute_ns == c.devices[i].compute_ns);
    CHECK(a.devices[i].exposed_comm_ns == c.devices[i].exposed_comm_ns);
    CHECK(a.devices[i].bytes_sent == c.devices[i].bytes_sent);
  }
  REQUIRE(analytic.slices().size() == compute.slices().size());
  for (std::size_t i = 0; i < analytic.slices().size(); ++i) {
    CHECK(analytic.slices()[i].begin_ns == compute.slices()[i].begin_ns);
    CHECK(analytic.slices()[i].end_ns == compute.slices()[i].end_ns);
  }
  CHECK(!a.max_abs_error_vs_dense);
  REQUIRE(c.max_abs_error_vs_dense);
}

TEST_CASE("compute mode equals single-device attention, forward and backward", "[simulator]") {
  SimulationOptions options = small_options();
  options.pass = Pass::both;
  struct Variant {
    Layout layout;
    int ring;
    bool replicated;
    bool dilated;
  };
  for (const Variant variant : {Variant{Layout::contiguous, 3, false, false}, Variant{Layout::zigzag, 4, false, false},
                                Variant{Layout::striped, 5, false, false}, Variant{Layout::zigzag, 4, true, false},
                                Variant{Layout::striped, 4, false, true}, Variant{Layout::contiguous, 1, false, false},
                                Variant{Layout::contiguous, 8, false, false}}) {
    options.config.layout = variant.layout;
    options.config.ring = variant.ring;
    options.config.q_replicated = variant.replicated;
    options.config.seq = options.config.kv_seq = variant.dilated ? 96 : 97;
    options.config.dilation.clear();
    if (variant.dilated) options.config.dilation = {{16, 1}, {32, 2}, {96, 4}};
    const Report report = run(options);
    INFO(describe(options.config) << " error " << *report.max_abs_error_vs_dense);
    REQUIRE(report.max_abs_error_vs_dense);
    CHECK(*report.max_abs_error_vs_dense <= 1e-12);
  }
}

TEST_CASE("a ring whose chunks hold whole LongNet segments sends nothing and equals attention", "[simulator]") {
  // 128 tokens on 4 devices: contiguous chunks of 32 hold whole segments of 16 and 32, so every step after 0
  // is skipped everywhere (RingSchedule::local_only) and no K/V or dK/dV moves.
  SimulationOptions options = small_options();
  options.pass = Pass::both;
  options.config.seq = options.config.kv_seq = 128;
  options.config.layout = Layout::contiguous;
  options.config.dilation = {{16, 1}, {32, 2}};
  REQUIRE(make_ring_schedule(options.config).local_only);
  for (const bool overlap : {true, false}) {
    options.overlap = overlap;
    const Report report = run(options);
    INFO("overlap " << overlap << " error " << *report.max_abs_error_vs_dense);
    CHECK(*report.max_abs_error_vs_dense <= 1e-12);
    for (const DeviceReport& device : report.devices) {
      CHECK(device.bytes_sent == 0);
      CHECK(device.exposed_comm_ns == 0);
    }
  }
  options.faults = {parse_fault("drop@1:0")};  // nothing to drop
  try {
    Simulation refused(options);
    FAIL("a message fault on a ring that sends nothing was accepted");
  } catch (const ConfigError& error) {
    CHECK(std::string(error.what()).find("sends no messages") != std::string::npos);
  }
  options.faults = {parse_fault("kill@1:1")};  // still noticed: the others finish, device 1 never does
  CHECK_THROWS_AS(run(options), FaultDetected);
}

TEST_CASE("the trace is valid trace-event JSON: nested slices, paired flows, counters, names", "[simulator][trace]") {
  SimulationOptions options = small_options();
  options.pass = Pass::both;
  options.mode = Mode::analytic;
  Simulation simulation(options);
  simulation.run();
  const nlohmann::json trace = nlohmann::json::parse(chrome_trace(simulation).dump());
  REQUIRE(trace.contains("traceEvents"));
  std::map<std::pair<int, int>, std::vector<std::pair<double, double>>> tracks;
  std::map<long long, int> flow_starts, flow_ends;
  int counters = 0, names = 0;
  for (const auto& event : trace["traceEvents"]) {
    const std::string phase = event["ph"];
    if (phase == "X") {
      CHECK(event["dur"].get<double>() >= 0);
      tracks[{event["pid"].get<int>(), event["tid"].get<int>()}].push_back(
          {event["ts"].get<double>(), event["ts"].get<double>() + event["dur"].get<double>()});
    } else if (phase == "s") {
      ++flow_starts[event["id"].get<long long>()];
    } else if (phase == "f") {
      ++flow_ends[event["id"].get<long long>()];
      CHECK(event["bp"] == "e");
    } else if (phase == "C") {
      ++counters;
      CHECK(event["args"].contains("bytes"));
    } else if (phase == "M") {
      ++names;
    }
  }
  // Slices of one track never partly overlap (they are sequential or nested).
  for (auto& [track, slices] : tracks) {
    std::sort(slices.begin(), slices.end());
    for (std::size_t i = 1; i < slices.size(); ++i) {
      INFO("pid " << track.first << " tid " << track.second);
      const bool disjoint = slices[i].first >= slices[i - 1].second - 1e-9;
      const bool nested = slices[i].second <= slices[i - 1].second + 1e-9;
      CHECK((disjoint || nested));
    }
  }
  CHECK(!flow_starts.empty());
  CHECK(flow_starts == flow_ends);  // every send's flow ends at its receive
  CHECK(counters > 0);
  CHECK(names == 4 * (2 + 3));      // process name + sort index, three thread names, per device
}

TEST_CASE("every injected fault is detected and names the device and the step", "[simulator][faults]") {
  for (const Mode mode : {Mode::analytic, Mode::compute})
    for (const std::string kind : {"drop", "duplicate", "corrupt", "stale", "kill"}) {
      SimulationOptions options = small_options();
      options.mode = mode;
      options.faults = {parse_fault(kind + "@1:1")};
      INFO(kind << " in " << to_string(mode) << " mode");
      try {
        run(options);
        FAIL("the fault went undetected");
      } catch (const FaultDetected& detected) {
        const std::string message = detected.what();
        INFO(message);
        CHECK(message.find("device") != std::string::npos);
        CHECK(message.find("step") != std::string::npos);
        if (kind == "drop" || kind == "kill") CHECK(message.find("timeout") != std::string::npos);
        if (kind == "duplicate") CHECK(message.find("duplicate") != std::string::npos);
        if (kind == "corrupt") CHECK(message.find("checksum") != std::string::npos);
        if (kind == "stale") CHECK(message.find("stale") != std::string::npos);
        if (kind != "kill") CHECK(detected.device() == 2);  // the receiver of device 1's message detects it
      }
    }
  SECTION("delay only lengthens the timeline; the result stays exact") {
    SimulationOptions options = small_options();
    const Report clean = run(options);
    options.faults = {parse_fault("delay@1:1")};
    const Report delayed = run(options);
    CHECK(delayed.makespan_ns >= clean.makespan_ns + options.delay_ns / 2);
    CHECK(*delayed.max_abs_error_vs_dense <= 1e-12);
  }
  SECTION("bad fault specs are config errors") {
    CHECK_THROWS_AS(parse_fault("explode@1:1"), ConfigError);
    CHECK_THROWS_AS(parse_fault("drop@x:1"), ConfigError);
    CHECK_THROWS_AS(parse_fault("drop1:1"), ConfigError);
    SimulationOptions options = small_options();
    options.faults = {parse_fault("drop@9:1")};
    CHECK_THROWS_AS(Simulation(options), ConfigError);
    options.faults = {parse_fault("drop@1:3")};  // the last step sends nothing forward
    CHECK_THROWS_AS(Simulation(options), ConfigError);
  }
}

TEST_CASE("timing model: overlap hides communication, slower links cost time, budgets are enforced",
          "[simulator][timing]") {
  SimulationOptions options = small_options();
  options.mode = Mode::analytic;
  options.config.seq = options.config.kv_seq = 1 << 16;
  options.config.heads = options.config.kv_heads = 16;
  options.config.head_dim = 128;
  options.config.causal = false;
  options.config.ring = 8;
  const Report overlapped = run(options);
  options.overlap = false;
  const Report serial = run(options);
  CHECK(serial.makespan_ns > overlapped.makespan_ns);
  CHECK(serial.devices[0].exposed_comm_ns > overlapped.devices[0].exposed_comm_ns);
  // With 8K tokens per device, H = 16, D = 128 a step computes far longer than its transfer: hidden.
  CHECK(overlapped.devices[0].exposed_comm_ns < overlapped.devices[0].compute_ns / 20);
  options.overlap = true;
  options.devices_per_node = 2;  // every other hop crosses InfiniBand
  const Report multi_node = run(options);
  CHECK(multi_node.makespan_ns >= overlapped.makespan_ns);
  options.devices_per_node = 8;
  options.memory_budget = overlapped.devices[0].peak_bytes - 1;
  try {
    run(options);
    FAIL("budget not enforced");
  } catch (const OutOfMemory& error) {
    const std::string message = error.what();
    CHECK(message.find("device 0") != std::string::npos);
    CHECK(message.find("budget") != std::string::npos);
    CHECK(message.find(std::to_string(*options.memory_budget)) != std::string::npos);
  }
}

TEST_CASE("compute model: rows that see few keys pay the per-block overhead L0", "[simulator][timing]") {
  DeviceSpec device = find_device(builtin_devices(), "H200");
  REQUIRE(device.attention_overhead_keys > 0);
  const ComputeModel model{device};
  const double L0 = device.attention_overhead_keys, rate = device.peak_flops * device.attention_efficiency;
  // The same FLOPs, as 2^30 pairs over 2^16 rows (L = 16384 keys each) or over 2^19 rows (L = 2048).
  const double pairs = 1 << 30, flops = 512.0 * pairs;
  const auto long_rows = static_cast<double>(model.time_ns(flops, 0, false, pairs, 1 << 16));
  const auto short_rows = static_cast<double>(model.time_ns(flops, 0, false, pairs, 1 << 19));
  CHECK(long_rows == Approx(flops * (16384 + L0) / 16384 / rate * 1e9).epsilon(1e-6));
  CHECK(short_rows / long_rows == Approx((2048 + L0) / 2048 * 16384 / (16384 + L0)).epsilon(1e-6));
  CHECK(static_cast<double>(model.time_ns(flops, 0, false)) == Approx(flops / rate * 1e9).epsilon(1e-6));  // no rows given

  // In a simulation: LongNet rows (w/r = 64 keys) against dense rows with the same pairs.
  SimulationOptions options = small_options();
  options.mode = Mode::analytic;
  options.device = device;
  options.config.ring = 1;
  options.config.causal = false;
  options.config.seq = options.config.kv_seq = 4096;
  options.config.heads = options.config.kv_heads = 1;
  options.config.head_dim = 128;
  const Report dense = run(options);  // 4096 rows × 4096 keys
  options.config.seq = options.config.kv_seq = 4096 * 64;
  options.config.dilation = {{64, 1}};  // 262144 rows × 64 keys: the same pairs
  const Report dilated = run(options);
  CHECK(static_cast<double>(dilated.devices[0].compute_ns) / static_cast<double>(dense.devices[0].compute_ns) ==
        Approx((64 + L0) / 64 * 4096 / (4096 + L0)).epsilon(0.01));
}

TEST_CASE("a LongNet pattern that never reaches the held chunk adds no overhead to the step", "[simulator][timing]") {
  // 8192 tokens on 4 devices (chunks of 2048): the 256:1 pattern has pairs only at step 0, the 8192:32 one at
  // every step. Adding the short pattern must not change what an off-diagonal step costs.
  auto step_ns = [](const std::vector<DilationPattern>& patterns, Pass pass) {
    SimulationOptions options = small_options();
    options.mode = Mode::analytic;
    options.pass = pass;
    options.device = find_device(builtin_devices(), "H200");
    options.config.seq = options.config.kv_seq = 8192;
    options.config.heads = options.config.kv_heads = 4;
    options.config.head_dim = 128;
    options.config.layout = Layout::contiguous;
    options.config.causal = true;
    options.config.dilation = patterns;
    Simulation simulation(options);
    simulation.run();
    for (const Slice& slice : simulation.slices())  // device 3's compute at step 2 (the K/V of device 1)
      if (slice.device == 3 && slice.stream == 0 && slice.step == 2) return slice.end_ns - slice.begin_ns;
    FAIL("no compute slice for device 3, step 2");
    return std::int64_t{0};
  };
  for (const Pass pass : {Pass::forward, Pass::backward}) {
    const std::int64_t long_only = step_ns({{8192, 32}}, pass);
    CHECK(long_only > 0);
    CHECK(step_ns({{256, 1}, {8192, 32}}, pass) == long_only);
  }
}

TEST_CASE("rows_meeting_keys counts the query rows that have a key in their band", "[simulator][timing]") {
  // Brute force on every (device, chunk) pair of 97 tokens on 4 devices: exact for causal / full masks on every
  // layout and for windows on stride-1 chunks.
  struct Case {
    Layout layout;
    bool causal;
    std::int64_t left, right;
  };
  for (const Case c : {Case{Layout::contiguous, true, -1, -1}, Case{Layout::zigzag, true, -1, -1},
                       Case{Layout::striped, true, -1, -1}, Case{Layout::zigzag, false, -1, -1},
                       Case{Layout::contiguous, false, 5, 3}, Case{Layout::zigzag, true, 7, -1}}) {
    MaskPredicate mask;
    mask.band = BandMask::from(c.causal, c.left, c.right);
    for (int p = 0; p < 4; ++p)
      for (int owner = 0; owner < 4; ++owner) {
        const PositionSet queries = layout_positions(c.layout, 97, 4, p), keys = layout_positions(c.layout, 97, 4, owner);
        std::int64_t expected = 0;
        for (const std::int64_t q : queries.expand()) {
          bool any = false;
          for (const std::int64_t k : keys.expand()) any = any || mask.allows(q, k);
          expected += any ? 1 : 0;
        }
        INFO(to_string(c.layout) << " causal " << c.causal << " window " << c.left << "," << c.right << " device " << p
                                 << " chunk " << owner);
        CHECK(rows_meeting_keys(queries, keys, mask) == expected);
      }
  }
}

TEST_CASE("device files: the overhead keys are optional and must not be negative", "[simulator][devices]") {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "ringlab_devices_test";
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& extra) {
    const auto path = dir / "devices.json";
    std::ofstream(path) << R"({"format": "ringlab-devices", "devices": [{"name": "X", "peak_flops": 1e15,
      "memory_bytes": 1000000000, "memory_bandwidth": 1e12, "attention_efficiency": 0.5, )" << extra << R"(
      "intra_node_link": {"bandwidth": 1e11, "latency_ns": 1000}, "inter_node_link": {"bandwidth": 1e10, "latency_ns": 1000}}]})";
    return path;
  };
  const DeviceSpec plain = load_devices(write("")).front();
  CHECK(plain.attention_overhead_keys == 0);
  CHECK(plain.attention_backward_overhead_keys == 0);
  const DeviceSpec with = load_devices(write(R"("attention_overhead_keys": 500,)")).front();
  CHECK(with.attention_overhead_keys == 500);
  CHECK(with.attention_backward_overhead_keys == 500);  // the forward's when the backward's is not given
  CHECK_THROWS_AS(load_devices(write(R"("attention_overhead_keys": -1,)")), InputError);
  std::filesystem::remove_all(dir);
}

TEST_CASE("stepping exposes one snapshot per ring step that matches the schedule", "[simulator][api]") {
  SimulationOptions options = small_options();
  options.mode = Mode::analytic;
  options.config.layout = Layout::contiguous;
  Simulation simulation(options);
  int steps = 0;
  while (simulation.step()) ++steps;
  REQUIRE(simulation.snapshots().size() == 4);
  for (const StepSnapshot& snapshot : simulation.snapshots())
    for (int p = 0; p < 4; ++p) {
      CHECK(snapshot.kv_owner[p] == simulation.schedule().at(p, snapshot.step).kv_owner);
      CHECK(snapshot.skipped[p] == simulation.schedule().at(p, snapshot.step).skipped);
    }
  CHECK(simulation.snapshots()[1].skipped[0]);  // causal contiguous: device 0 never needs later keys
}

TEST_CASE("a healthy run never times out, however long a device waits behind a slow neighbour",
          "[simulator][faults]") {
  // Causal + contiguous at 2^30 tokens: device 0 finishes its one real step in seconds and then waits far
  // longer than the 100 ms watchdog while the others compute. Only a stalled ring may time out.
  SimulationOptions options = small_options();
  options.mode = Mode::analytic;
  options.config.seq = options.config.kv_seq = std::int64_t{1} << 30;
  options.config.ring = 128;
  options.config.heads = options.config.kv_heads = 8;
  options.config.layout = Layout::contiguous;
  const Report report = run(options);
  CHECK(report.devices[0].idle_ns > 100 * options.timeout_ns);
}

TEST_CASE("analytic mode scales to 2^30 tokens on 1024 devices", "[simulator][scale]") {
  SimulationOptions options = small_options();
  options.mode = Mode::analytic;
  options.config.seq = options.config.kv_seq = std::int64_t{1} << 30;
  options.config.ring = 1024;
  options.config.heads = options.config.kv_heads = 8;
  options.config.head_dim = 128;
  const Report report = run(options);
  CHECK(report.devices.size() == 1024);
  CHECK(report.makespan_ns > 0);
  // Zigzag balances causal work: every device computes the same number of pairs, within 0.1%.
  std::int64_t least = INT64_MAX, most = 0;
  for (const auto& device : report.devices) least = std::min(least, device.pairs), most = std::max(most, device.pairs);
  CHECK(static_cast<double>(most) / least < 1.001);
}
