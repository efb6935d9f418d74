// Layouts and the RingSchedule: positions partition the sequence, exact pair counts equal brute force,
// zigzag balances causal work, bytes and skips are as documented.
#include <random>
#include <set>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include "catch_compat.hpp"
#include "ringlab/dilation.hpp"
#include "ringlab/schedule.hpp"

using namespace ringlab;

namespace {

std::int64_t brute_force_pairs(const PositionSet& queries, const PositionSet& keys, const MaskPredicate& mask) {
  std::int64_t pairs = 0;
  for (const auto q : queries.expand())
    for (const auto k : keys.expand()) pairs += mask.allows(q, k);
  return pairs;
}

}  // namespace

TEST_CASE("every layout partitions the positions, for any N and P", "[layout]") {
  for (const Layout layout : {Layout::contiguous, Layout::zigzag, Layout::striped})
    for (const std::int64_t n : {1, 2, 7, 16, 97, 1025})
      for (const int ring : {1, 2, 3, 4, 7, 8, 13}) {
        std::multiset<std::int64_t> seen;
        for (int p = 0; p < ring; ++p) {
          const auto positions = layout_positions(layout, n, ring, p).expand();
          seen.insert(positions.begin(), positions.end());
        }
        INFO(to_string(layout) << " n " << n << " P " << ring);
        REQUIRE(static_cast<std::int64_t>(seen.size()) == n);
        std::int64_t expected = 0;
        for (const auto position : seen) CHECK(position == expected++);
      }
  // The documented examples.
  CHECK(layout_positions(Layout::zigzag, 8, 2, 0).expand() == std::vector<std::int64_t>{0, 1, 6, 7});
  CHECK(layout_positions(Layout::zigzag, 8, 2, 1).expand() == std::vector<std::int64_t>{2, 3, 4, 5});
  CHECK(layout_positions(Layout::striped, 10, 4, 1).expand() == std::vector<std::int64_t>{1, 5, 9});
  CHECK(layout_positions(Layout::contiguous, 10, 4, 3).expand() == std::vector<std::int64_t>{7, 8, 9});
  CHECK(layout_positions(Layout::striped, 3, 5, 4).empty());
}

TEST_CASE("exact pair counts equal brute force", "[mask][count]") {
  std::mt19937_64 pick(5);
  for (int trial = 0; trial < 600; ++trial) {
    const std::int64_t n = 1 + static_cast<std::int64_t>(pick() % 70);
    const int ring = 1 + static_cast<int>(pick() % 6);
    const Layout layout = static_cast<Layout>(pick() % 3);
    const int p = static_cast<int>(pick() % ring), owner = static_cast<int>(pick() % ring);
    const bool replicated = pick() % 5 == 0;
    const PositionSet queries = replicated ? contiguous_positions(0, n) : layout_positions(layout, n, ring, p);
    const PositionSet keys = layout_positions(layout, n, ring, owner);
    MaskPredicate mask;
    const auto left = static_cast<std::int64_t>(pick() % 12) - 1, right = static_cast<std::int64_t>(pick() % 12) - 1;
    mask.band = BandMask::from(pick() % 2 == 0, pick() % 3 == 0 ? left : -1, pick() % 3 == 0 ? right : -1);
    if (pick() % 2 == 0) {
      const std::int64_t w = 1 + static_cast<std::int64_t>(pick() % 20), r = 1 + static_cast<std::int64_t>(pick() % w);
      mask.dilation = DilationSelect{w, r, static_cast<std::int64_t>(pick() % r)};
    }
    INFO("trial " << trial << " n " << n << " P " << ring << " " << to_string(layout) << " q " << queries.describe()
                  << " k " << keys.describe() << " band [" << mask.band.lo << ", " << mask.band.hi << "]");
    CHECK(count_allowed_pairs(queries, keys, mask) == brute_force_pairs(queries, keys, mask));
  }
}

TEST_CASE("exact pair counts scale to 2^30 tokens", "[mask][count]") {
  // Causal over all of [0, N): N(N+1)/2 pairs.
  const std::int64_t n = std::int64_t{1} << 30;
  MaskPredicate causal{BandMask::from(true, -1, -1), std::nullopt};
  CHECK(count_allowed_pairs(contiguous_positions(0, n), contiguous_positions(0, n), causal) == n * (n + 1) / 2);
  // Striped over 1024 devices: device p against owner q holds c = N/P tokens each; causal pairs are
  // c(c+1)/2 when q ≤ p, else c(c−1)/2.
  const int ring = 1024;
  const std::int64_t c = n / ring;
  CHECK(count_allowed_pairs(layout_positions(Layout::striped, n, ring, 5), layout_positions(Layout::striped, n, ring, 3),
                            causal) == c * (c + 1) / 2);
  CHECK(count_allowed_pairs(layout_positions(Layout::striped, n, ring, 3), layout_positions(Layout::striped, n, ring, 5),
                            causal) == c * (c - 1) / 2);
}

TEST_CASE("zigzag balances causal work; contiguous does not", "[schedule]") {
  AttentionConfig c;
  c.seq = c.kv_seq = 8;
  c.heads = c.kv_heads = 1;
  c.causal = true;
  c.ring = 2;
  c.layout = Layout::contiguous;
  auto contiguous = make_ring_schedule(c);
  CHECK(contiguous.devices[0].total_pairs == 10);  // [0,4) against itself: 4·5/2
  CHECK(contiguous.devices[1].total_pairs == 26);  // 10 + 16
  CHECK(contiguous.at(0, 1).skipped);              // device 0 never needs device 1's keys
  c.layout = Layout::zigzag;
  auto zigzag = make_ring_schedule(c);
  CHECK(zigzag.devices[0].total_pairs == 18);
  CHECK(zigzag.devices[1].total_pairs == 18);
  CHECK(zigzag.total_pairs() == 36);

  c.seq = c.kv_seq = 4096;
  c.ring = 8;
  for (const Layout layout : {Layout::zigzag, Layout::striped}) {
    c.layout = layout;
    const auto schedule = make_ring_schedule(c);
    std::int64_t lightest = INT64_MAX, heaviest = 0;
    for (const auto& device : schedule.devices) {
      lightest = std::min(lightest, device.total_pairs);
      heaviest = std::max(heaviest, device.total_pairs);
    }
    INFO(to_string(layout) << " lightest " << lightest << " heaviest " << heaviest);
    CHECK(static_cast<double>(heaviest) / lightest < 1.01);
    CHECK(schedule.total_pairs() == 4096LL * 4097 / 2);
  }
}

TEST_CASE("schedule steps: owners, bytes, heads and batch", "[schedule]") {
  AttentionConfig c;
  c.seq = c.kv_seq = 100;
  c.batch = 2;
  c.heads = 6;
  c.kv_heads = 3;
  c.head_dim = 16;
  c.ring = 3;
  const auto schedule = make_ring_schedule(c, ScheduleOptions{2});
  CHECK(schedule.kv_bytes_per_row == 2 * 2 * 3 * 16 * 2);
  for (int p = 0; p < 3; ++p)
    for (int s = 0; s < 3; ++s) {
      const RingStep& step = schedule.at(p, s);
      CHECK(step.kv_owner == ((p - s) % 3 + 3) % 3);
      CHECK(step.kv_rows == schedule.chunk_positions[step.kv_owner].size());
      // Non-causal: every pair of the two chunks, times H heads.
      CHECK(step.pairs == 6 * schedule.devices[p].query_positions.size() * step.kv_rows);
      CHECK(step.forward_bytes_sent == (s < 2 ? step.kv_rows * schedule.kv_bytes_per_row : 0));
      // dK, dV travel as fp32 accumulators (gradient_bytes_per_element = 4 by default).
      CHECK(schedule.gradient_bytes_per_row == 2 * 2 * 3 * 16 * 4);
      // The final hop home carries the finished dK, dV in the K/V's dtype (returned_gradient_bytes_per_element 0).
      CHECK(schedule.returned_gradient_bytes_per_row == 2 * 2 * 3 * 16 * 2);
      CHECK(step.backward_bytes_sent == step.kv_rows * (s < 2 ? schedule.kv_bytes_per_row + schedule.gradient_bytes_per_row
                                                              : schedule.returned_gradient_bytes_per_row));
    }
  CHECK(schedule.total_pairs() == 6 * 100 * 100);

  ScheduleOptions fp32_returned{2};
  fp32_returned.returned_gradient_bytes_per_element = 4;  // gradients returned unrounded
  const auto unrounded = make_ring_schedule(c, fp32_returned);
  CHECK(unrounded.returned_gradient_bytes_per_row == unrounded.gradient_bytes_per_row);
  CHECK(unrounded.at(1, 2).backward_bytes_sent == unrounded.at(1, 2).kv_rows * unrounded.gradient_bytes_per_row);
}
