// View models (simulator/src/views.cpp): the attention map's pair counts add up to the schedule's, per step
// and in total, in both orders and every layout; cell states follow the ring rule; dilation views match
// brute force and docs/semantics.md §8; the memory closed forms equal the simulator's ledgers.
#include <set>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include "catch_compat.hpp"
#include "ringlab/sim/views.hpp"

using namespace ringlab;
using namespace ringlab::sim;

namespace {

AttentionConfig ring_config(Layout layout, int P, bool causal) {
  AttentionConfig config;
  config.seq = config.kv_seq = 97;
  config.heads = 4;
  config.kv_heads = 2;
  config.head_dim = 8;
  config.causal = causal;
  config.ring = P;
  config.layout = layout;
  return config;
}

std::int64_t total(const std::vector<std::int64_t>& values) {
  std::int64_t sum = 0;
  for (auto v : values) sum += v;
  return sum;
}

void check_map_against_schedule(const AttentionConfig& config, MapOrder order, int bins) {
  const RingSchedule schedule = make_ring_schedule(config);
  const AttentionMap map = attention_map(config, schedule, order, bins);
  const int P = config.ring;
  INFO(describe(config) << " order " << to_string(order) << " bins " << bins);
  // Every pair of the schedule lies in exactly one cell (q-replicated: every device computes it once).
  CHECK(total(map.pairs) * (config.q_replicated ? P : 1) == schedule.total_pairs());
  // The bins tile the axes.
  std::int64_t rows = 0, cols = 0;
  for (const MapBin& bin : map.rows) rows += bin.count;
  for (const MapBin& bin : map.cols) cols += bin.count;
  CHECK(rows == config.seq);
  CHECK(cols == config.seq);
  for (int step = 0; step < P; ++step) {
    std::int64_t now = 0, scheduled_pairs = 0;
    for (std::size_t cell = 0; cell < map.cells(); ++cell) {
      const CellState state = cell_state(map, schedule, cell, step);
      now += state.pairs_now;
      if (step == P - 1) CHECK(state.pairs_before + state.pairs_now == map.pairs[cell] * (config.q_replicated ? P : 1));
      if (state.skipped_now) CHECK(state.pairs_now == 0);
    }
    for (int p = 0; p < P; ++p) scheduled_pairs += schedule.at(p, step).pairs;
    INFO("step " << step);
    CHECK(now == scheduled_pairs);
  }
}

}  // namespace

TEST_CASE("position helpers restrict and slice runs exactly", "[views]") {
  for (const Layout layout : {Layout::contiguous, Layout::zigzag, Layout::striped})
    for (int p = 0; p < 5; ++p) {
      const PositionSet set = layout_positions(layout, 97, 5, p);
      const auto all = set.expand();
      for (std::int64_t begin : {0, 3, 40, 96})
        for (std::int64_t end : {1, 41, 97, 120}) {
          std::vector<std::int64_t> expected;
          for (auto t : all)
            if (t >= begin && t < end) expected.push_back(t);
          CHECK(restrict_positions(set, begin, end).expand() == expected);
        }
      const auto n = static_cast<std::int64_t>(all.size());
      for (std::int64_t first = 0; first <= n; first += 3)
        for (std::int64_t last = first; last <= n; last += 4)
          CHECK(slice_positions(set, first, last).expand() ==
                std::vector<std::int64_t>(all.begin() + first, all.begin() + last));
    }
}

TEST_CASE("attention map pairs add up to the ring schedule, per step and in total", "[views]") {
  for (const Layout layout : {Layout::contiguous, Layout::zigzag, Layout::striped})
    for (const int P : {1, 3, 4})
      for (const bool causal : {false, true})
        for (const MapOrder order : {MapOrder::positions, MapOrder::devices})
          for (const int bins : {7, 32, 200}) {
            AttentionConfig config = ring_config(layout, P, causal);
            check_map_against_schedule(config, order, bins);
            config.q_replicated = true;
            check_map_against_schedule(config, order, bins);
          }
  SECTION("dilation and a window") {
    AttentionConfig config = ring_config(Layout::zigzag, 4, true);
    config.seq = config.kv_seq = 96;
    config.dilation = {{16, 1}, {32, 2}, {96, 4}};
    for (const MapOrder order : {MapOrder::positions, MapOrder::devices}) check_map_against_schedule(config, order, 24);
    config.dilation.clear();
    config.window_left = 10;
    for (const MapOrder order : {MapOrder::positions, MapOrder::devices}) check_map_against_schedule(config, order, 40);
  }
}

TEST_CASE("attention map cells: who computes them when, and skipped steps", "[views]") {
  // Contiguous causal, P = 4, N = 8192: device 0's steps 1..3 are skipped (its keys come later).
  AttentionConfig config = ring_config(Layout::contiguous, 4, true);
  config.seq = config.kv_seq = 8192;
  const RingSchedule schedule = make_ring_schedule(config);
  const AttentionMap map = attention_map(config, schedule, MapOrder::devices, 64);
  REQUIRE(map.rows.size() == 64);
  for (std::size_t r = 0; r < map.rows.size(); ++r)
    for (std::size_t c = 0; c < map.cols.size(); ++c) {
      const int p = map.rows[r].device, o = map.cols[c].device;
      REQUIRE(p >= 0);
      REQUIRE(o >= 0);
      const int step = ((p - o) % 4 + 4) % 4;
      const CellState state = cell_state(map, schedule, map.cell(r, c), step);
      CHECK(state.scheduled_now);
      CHECK(state.skipped_now == schedule.at(p, step).skipped);
      CHECK(state.skipped_now == (o > p));  // causal: keys after the queries
      if (state.pairs_now > 0) CHECK(state.device_now == p);
    }
  SECTION("striped in position order mixes every device in a bin, and the grid is coarsened to bound the work") {
    AttentionConfig striped = ring_config(Layout::striped, 64, true);
    striped.seq = striped.kv_seq = 1 << 16;
    const RingSchedule s = make_ring_schedule(striped);
    const AttentionMap coarse = attention_map(striped, s, MapOrder::positions, 128);
    CHECK(coarse.coarsened);
    CHECK(coarse.rows.size() < 128);
    CHECK(total(coarse.pairs) == s.total_pairs());
    const AttentionMap by_device = attention_map(striped, s, MapOrder::devices, 128);
    CHECK(!by_device.coarsened);
    CHECK(by_device.rows.size() == 128);
  }
}

TEST_CASE("ring state names the held chunk of every device", "[views]") {
  const AttentionConfig config = ring_config(Layout::zigzag, 4, true);
  const RingSchedule schedule = make_ring_schedule(config);
  for (int step = 0; step < 4; ++step) {
    const auto devices = ring_state(schedule, step);
    REQUIRE(devices.size() == 4);
    std::set<int> owners;
    for (const auto& d : devices) {
      CHECK(d.held_owner == kv_chunk_owner(step, d.device, 4));
      CHECK(d.held_keys == schedule.chunk_positions[static_cast<std::size_t>(d.held_owner)]);
      owners.insert(d.held_owner);
    }
    CHECK(owners.size() == 4);  // a permutation: every chunk is somewhere
  }
  // LongNet segments inside the chunks: nothing moves, every device keeps its own chunk.
  AttentionConfig local = config;
  local.causal = false;
  local.layout = Layout::contiguous;
  local.seq = local.kv_seq = 96;  // chunks of 24 tokens, segments of 24
  local.dilation = {{24, 1}};
  const RingSchedule local_schedule = make_ring_schedule(local);
  REQUIRE(local_schedule.local_only);
  for (int step = 0; step < 4; ++step)
    for (const auto& d : ring_state(local_schedule, step)) {
      CHECK(d.held_owner == d.device);
      CHECK(d.skipped == (step > 0));
    }
}

TEST_CASE("head assignments follow the offset rules of docs/semantics.md §8.1", "[views][dilation]") {
  AttentionConfig config;
  config.seq = config.kv_seq = 8;
  config.heads = config.kv_heads = 4;
  config.dilation = {{4, 1}, {8, 2}};
  // (pattern 1's offset per head): paper h mod 2; torchscale ⌊h/2⌋; group: heads 2, 3 run only pattern 1, o = 1.
  config.offset_rule = OffsetRule::paper;
  auto heads = head_assignments(config);
  REQUIRE(heads.size() == 4);
  for (int h = 0; h < 4; ++h) {
    CHECK(heads[h].patterns == std::vector<int>{0, 1});
    CHECK(heads[h].offsets == std::vector<std::int64_t>{0, h % 2});
  }
  config.offset_rule = OffsetRule::torchscale;
  heads = head_assignments(config);
  for (int h = 0; h < 4; ++h) CHECK(heads[h].offsets == std::vector<std::int64_t>{0, h / 2});
  config.offset_rule = OffsetRule::group;
  config.combine = Combine::group_mean;
  heads = head_assignments(config);
  CHECK(heads[0].patterns == std::vector<int>{0});
  CHECK(heads[3].patterns == std::vector<int>{1});
  CHECK(heads[3].offsets == std::vector<std::int64_t>{1});
  CHECK(heads[3].group == 1);
  CHECK(heads[3].output_scale == Approx(0.5));
}

TEST_CASE("selection strips and head masks equal brute force", "[views][dilation]") {
  const DilationSelect select{8, 4, 1};
  const auto exact = selection_strip(select, 0, 32, 32);
  for (int t = 0; t < 32; ++t) CHECK(exact[t] == (select.selects(t) ? 1.0f : 0.0f));
  const auto binned = selection_strip(select, 0, 32, 4);
  for (float share : binned) CHECK(share == Approx(0.25));

  // docs/semantics.md §8.2: paper rule, N = 8, patterns (4:1, 8:2), head 0, no mask: query 2 counts keys 0
  // and 2 twice; query 3 sees {0, 1, 2, 3} once.
  AttentionConfig config;
  config.seq = config.kv_seq = 8;
  config.heads = config.kv_heads = 4;
  config.dilation = {{4, 1}, {8, 2}};
  const HeadMask mask = head_mask(config, 0, 0, 8, 8);
  auto at = [&](int q, int k) { return mask.multiplicity[static_cast<std::size_t>(q * 8 + k)]; };
  CHECK(at(2, 0) == 2.0f);
  CHECK(at(2, 2) == 2.0f);
  CHECK(at(2, 1) == 1.0f);
  CHECK(at(2, 4) == 1.0f);  // pattern 8:2 only
  CHECK(at(2, 5) == 0.0f);
  CHECK(at(3, 0) == 1.0f);
  CHECK(at(3, 3) == 1.0f);
  CHECK(at(6, 4) == 2.0f);
  CHECK(at(6, 0) == 1.0f);  // pattern 8:2 only
  CHECK(mask.max_multiplicity == 2.0f);
  // Brute force over every head and causal.
  config.causal = true;
  const auto plans = plan_heads(config);
  for (int h = 0; h < 4; ++h) {
    const HeadMask m = head_mask(config, h, 0, 8, 8);
    for (int q = 0; q < 8; ++q)
      for (int k = 0; k < 8; ++k) {
        int count = 0;
        for (const auto& predicate : plans[h].masks) count += predicate.allows(q, k) ? 1 : 0;
        CHECK(m.multiplicity[static_cast<std::size_t>(q * 8 + k)] == static_cast<float>(count));
      }
  }
}

TEST_CASE("memory views equal the simulator's ledgers", "[views][memory]") {
  SimulationOptions options;
  options.config = ring_config(Layout::zigzag, 4, true);
  options.mode = Mode::analytic;
  options.device = find_device(builtin_devices(), "H100-SXM");
  for (const Layout layout : {Layout::contiguous, Layout::zigzag, Layout::striped})
    for (const int P : {1, 3, 4})
      for (const bool replicated : {false, true})
        for (const Pass pass : {Pass::forward, Pass::backward, Pass::both}) {
          options.config.layout = layout;
          options.config.ring = P;
          options.config.q_replicated = replicated;
          options.pass = pass;
          Simulation simulation(options);
          simulation.run();
          std::int64_t peak = 0;
          for (const auto& device : simulation.report().devices) peak = std::max(peak, device.peak_bytes);
          INFO(describe(options.config) << " pass " << to_string(pass));
          CHECK(ring_peak_bytes(options.config, options.bytes_per_element, pass) == peak);
        }
  options.pass = Pass::forward;
  const Report report = [&] {
    Simulation simulation(options);
    simulation.run();
    return simulation.report();
  }();
  CHECK(single_device_memory(options, Scheme::flash)->total == report.flash_dense_peak_bytes);
  CHECK(single_device_memory(options, Scheme::dense)->total == report.naive_dense_peak_bytes);
  SimulationOptions huge = options;
  huge.config.seq = huge.config.kv_seq = std::int64_t{1} << 30;
  CHECK(!single_device_memory(huge, Scheme::dense));  // H·N²·e passes 2^62 bytes
  CHECK(single_device_memory(huge, Scheme::flash));

  const auto series = memory_scaling(options, {1, 8, 64}, 4, 30);
  REQUIRE(series.size() == 5);
  CHECK(series[2].tokens.front() == 64);  // P > N left out
  for (const auto& s : series)
    for (std::size_t i = 1; i < s.bytes.size(); ++i) CHECK(s.bytes[i] > s.bytes[i - 1]);
  // At N = 2^30: ring per-device memory falls with P; dense with scores is far above everything.
  CHECK(series[1].bytes.back() < series[0].bytes.back());
  REQUIRE(!series[4].bytes.empty());
  CHECK(series[4].tokens.back() < series[3].tokens.back());  // stopped before 2^63 bytes
  CHECK(series[4].bytes.back() > 1000 * series[3].bytes[series[4].bytes.size() - 1]);
  AttentionConfig big = options.config;
  big.seq = big.kv_seq = std::int64_t{1} << 30;
  big.ring = 64;
  CHECK(series[2].bytes.back() == ring_peak_bytes(big, options.bytes_per_element, Pass::forward));
}

TEST_CASE("exposed waits replay the step rule and add up to the simulator's totals", "[views]") {
  SimulationOptions options;
  options.config = ring_config(Layout::contiguous, 8, true);
  options.config.seq = options.config.kv_seq = 1 << 14;
  options.config.heads = 8;
  options.config.head_dim = 64;
  options.mode = Mode::analytic;
  options.device = find_device(builtin_devices(), "H100-SXM");
  options.devices_per_node = 4;  // slow inter-node hops: communication shows
  for (const Layout layout : {Layout::contiguous, Layout::zigzag, Layout::striped})
    for (const bool overlap : {true, false})
      for (const bool replicated : {false, true})
        for (const Pass pass : {Pass::forward, Pass::backward, Pass::both}) {
          options.config.layout = layout;
          options.config.q_replicated = replicated;
          options.overlap = overlap;
          options.pass = pass;
          Simulation simulation(options);
          simulation.run();
          const auto waits = exposed_waits(simulation.slices(), 8, overlap && !replicated);
          const Report report = simulation.report();
          for (int p = 0; p < 8; ++p) {
            std::int64_t sum = 0;
            for (const Interval& w : waits[static_cast<std::size_t>(p)]) {
              CHECK(w.end_ns > w.begin_ns);
              sum += w.end_ns - w.begin_ns;
              for (const Slice& s : simulation.slices())
                if (s.device == p && s.stream == 0) CHECK((s.end_ns <= w.begin_ns || s.begin_ns >= w.end_ns));
            }
            INFO(describe(options.config) << " overlap " << overlap << " pass " << to_string(pass) << " device " << p);
            CHECK(sum == report.devices[static_cast<std::size_t>(p)].exposed_comm_ns);
          }
        }
}
