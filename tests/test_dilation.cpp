// Dilated attention against a brute-force implementation of the definition in docs/semantics.md: an
// explicit multiplicity matrix C[q, k] (how many of the head's patterns let q see k) and one softmax with
// those multiplicities. The offsets and head groups are re-derived here from the text, not from dilation.cpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include "catch_compat.hpp"
#include "helpers.hpp"
#include "ringlab/dilation.hpp"
#include "ringlab/schedule.hpp"

using namespace ringlab;
using ringlab::testing::random_inputs;
using ringlab::testing::scaled_error;

namespace {

struct PatternOffset {
  std::int64_t w, r, o;
};

// Which (pattern, offset) each head runs, straight from the definition.
std::vector<PatternOffset> runs_of_head(const AttentionConfig& c, std::int64_t h, int& group_out) {
  std::vector<PatternOffset> runs;
  const auto k = static_cast<std::int64_t>(c.dilation.size());
  group_out = -1;
  if (c.offset_rule == OffsetRule::group) {
    // Explicit list of group sizes: ⌊H/k⌋ each, the first H mod k get one more; walk them cumulatively.
    std::int64_t first_head = 0;
    for (std::int64_t g = 0; g < k; ++g) {
      const std::int64_t size = c.heads / k + (g < c.heads % k ? 1 : 0);
      if (h >= first_head && h < first_head + size) group_out = static_cast<int>(g);
      first_head += size;
    }
    const auto& p = c.dilation[group_out];
    runs.push_back({p.segment_length, p.rate, group_out % p.rate});
    return runs;
  }
  for (const auto& p : c.dilation) {
    std::int64_t o = 0;
    if (c.offset_rule == OffsetRule::paper) o = h % p.rate;
    if (c.offset_rule == OffsetRule::torchscale) o = h / ((c.heads + p.rate - 1) / p.rate);
    runs.push_back({p.segment_length, p.rate, o});
  }
  return runs;
}

AttentionOutput<double> brute_force(const AttentionConfig& c, const testing::Inputs& in) {
  AttentionOutput<double> result{Tensor<double>(query_shape(c)), Tensor<double>(lse_shape(c))};
  const std::int64_t N = c.seq, D = c.head_dim;
  for (std::int64_t b = 0; b < c.batch; ++b)
    for (std::int64_t h = 0; h < c.heads; ++h) {
      int group = -1;
      const auto runs = runs_of_head(c, h, group);
      const std::int64_t kvh = h / (c.heads / c.kv_heads);
      for (std::int64_t q = 0; q < N; ++q) {
        std::vector<double> weights(N, 0.0), scores(N, 0.0);
        double max_score = -INFINITY;
        for (std::int64_t key = 0; key < N; ++key) {
          int multiplicity = 0;
          for (const auto& run : runs) {
            const bool band = (!c.causal || key <= q) && (c.window_left < 0 || key >= q - c.window_left) &&
                              (c.window_right < 0 || key <= q + c.window_right);
            const bool same_segment = q / run.w == key / run.w;
            const bool selected = (q - (q / run.w) * run.w) % run.r == run.o &&
                                  (key - (key / run.w) * run.w) % run.r == run.o;
            multiplicity += band && same_segment && selected;
          }
          if (multiplicity == 0) continue;
          double dot = 0;
          for (std::int64_t d = 0; d < D; ++d) dot += in.q.head(b, h).row(q)[d] * in.k.head(b, kvh).row(key)[d];
          scores[key] = c.tau() * dot;
          weights[key] = multiplicity;
          max_score = std::max(max_score, scores[key]);
        }
        double total = 0;
        std::vector<double> out(D, 0.0);
        for (std::int64_t key = 0; key < N; ++key) {
          if (weights[key] == 0) continue;
          const double p = weights[key] * std::exp(scores[key] - max_score);
          total += p;
          for (std::int64_t d = 0; d < D; ++d) out[d] += p * in.v.head(b, kvh).row(key)[d];
        }
        const double output_scale = c.combine == Combine::group_mean ? 1.0 / c.dilation.size() : 1.0;
        for (std::int64_t d = 0; d < D; ++d)
          result.out.head(b, h).row(q)[d] = total > 0 ? output_scale * out[d] / total : 0.0;
        result.lse.row(b, h)[q] = total > 0 ? max_score + std::log(total) : -INFINITY;
      }
    }
  return result;
}

AttentionConfig dilated_config(std::int64_t n, std::vector<DilationPattern> patterns, OffsetRule rule, Combine combine,
                               SegmentMode segments) {
  AttentionConfig c;
  c.seq = c.kv_seq = n;
  c.heads = 5;  // odd: groups of unequal size, offsets that wrap
  c.kv_heads = 5;
  c.head_dim = 6;
  c.dilation = std::move(patterns);
  c.offset_rule = rule;
  c.combine = combine;
  c.segments = segments;
  return c;
}

}  // namespace

TEST_CASE("dilated attention equals the brute-force definition for every rule, combination and segment mode",
          "[dilation]") {
  struct Case {
    OffsetRule rule;
    Combine combine;
  };
  const std::vector<Case> cases = {{OffsetRule::paper, Combine::lse},         {OffsetRule::torchscale, Combine::lse},
                                   {OffsetRule::group, Combine::lse},         {OffsetRule::group, Combine::group_mean},
                                   {OffsetRule::group, Combine::group_sum}};
  int checked = 0;
  for (const auto& test_case : cases)
    for (const SegmentMode segments : {SegmentMode::error, SegmentMode::ragged})
      for (const int mask_kind : {0, 1, 2}) {
        // error mode needs N divisible by every w; ragged gets an awkward N and a w > N pattern.
        const std::int64_t n = segments == SegmentMode::error ? 48 : 53;
        std::vector<DilationPattern> patterns = {{8, 1}, {16, 2}, {24, 3}};
        if (segments == SegmentMode::ragged) patterns.push_back({64, 4});
        AttentionConfig c = dilated_config(n, patterns, test_case.rule, test_case.combine, segments);
        if (mask_kind == 1) c.causal = true;
        if (mask_kind == 2) c.window_left = 5, c.window_right = 2;
        const auto in = random_inputs(c, 31 + checked);
        const auto expected = brute_force(c, in);
        for (const Algorithm algorithm : {Algorithm::dense, Algorithm::blockwise}) {
          const auto result = attention_forward(c, in.q, in.k, in.v, AttentionOptions<double>{algorithm, {7, 5}});
          INFO(describe(c) << " algorithm " << to_string(algorithm));
          CHECK(scaled_error(result.out, expected.out) <= 1e-12);
          CHECK(scaled_error(result.lse, expected.lse) <= 1e-12);
        }
        ++checked;
      }
  CHECK(checked == 30);
}

TEST_CASE("ring + dilated equals single-device dilated, forward and backward", "[dilation][ring]") {
  for (const Layout layout : {Layout::contiguous, Layout::zigzag, Layout::striped})
    for (const int ring : {2, 3, 4})
      for (const OffsetRule rule : {OffsetRule::paper, OffsetRule::group}) {
        AttentionConfig c = dilated_config(64, {{16, 1}, {32, 2}, {64, 4}}, rule,
                                           rule == OffsetRule::group ? Combine::group_mean : Combine::lse,
                                           SegmentMode::error);
        c.causal = ring != 3;
        c.kv_heads = 1;  // GQA: all five heads share one KV head
        c.ring = ring;
        c.layout = layout;
        const auto in = random_inputs(c, 500 + ring);
        AttentionConfig single = c;
        single.ring = 1;
        const auto expected = attention_forward(single, in.q, in.k, in.v);
        const auto expected_grads =
            attention_backward(single, in.q, in.k, in.v, expected.out, expected.lse, in.dout);
        const AttentionOptions<double> ring_options{Algorithm::ring, {5, 6}};
        const auto result = attention_forward(c, in.q, in.k, in.v, ring_options);
        const auto grads = attention_backward(c, in.q, in.k, in.v, result.out, result.lse, in.dout, ring_options);
        INFO(describe(c));
        CHECK(scaled_error(result.out, expected.out) <= 1e-12);
        CHECK(scaled_error(result.lse, expected.lse) <= 1e-12);
        CHECK(scaled_error(grads.dq, expected_grads.dq) <= 1e-12);
        CHECK(scaled_error(grads.dk, expected_grads.dk) <= 1e-12);
        CHECK(scaled_error(grads.dv, expected_grads.dv) <= 1e-12);
      }
}

TEST_CASE("offset rules and head groups follow the definitions", "[dilation]") {
  // paper: h mod r; torchscale: ⌊h/⌈H/r⌉⌋ — H = 8, r = 3: ⌈8/3⌉ = 3 → 0,0,0,1,1,1,2,2.
  const std::vector<std::int64_t> torchscale = {0, 0, 0, 1, 1, 1, 2, 2};
  for (std::int64_t h = 0; h < 8; ++h) {
    CHECK(pattern_offset(OffsetRule::paper, h, 8, 3) == h % 3);
    CHECK(pattern_offset(OffsetRule::torchscale, h, 8, 3) == torchscale[h]);
  }
  // H = 7 over k = 3 groups: sizes 3, 2, 2.
  const std::vector<int> groups = {0, 0, 0, 1, 1, 2, 2};
  for (std::int64_t h = 0; h < 7; ++h) CHECK(head_group(h, 7, 3) == groups[h]);
  // Rows that no pattern selects get O = 0 and LSE = −∞.
  AttentionConfig c = dilated_config(16, {{8, 4}}, OffsetRule::paper, Combine::lse, SegmentMode::error);
  const auto in = random_inputs(c, 1);
  const auto result = attention_forward(c, in.q, in.k, in.v);
  CHECK(result.lse.row(0, 0)[1] == -INFINITY);  // head 0 selects offsets ≡ 0 (mod 4) only
  CHECK(std::isfinite(result.lse.row(0, 0)[4]));
  CHECK(result.out.head(0, 0).row(1)[0] == 0.0);
}

TEST_CASE("ring + dilated skips the steps where no pattern has a pair and reports selected-row savings",
          "[dilation][schedule]") {
  AttentionConfig c = dilated_config(64, {{16, 2}}, OffsetRule::paper, Combine::lse, SegmentMode::error);
  c.ring = 4;  // contiguous chunks of 16 = one segment each: only the diagonal steps have pairs
  const RingSchedule schedule = make_ring_schedule(c);
  CHECK(schedule.skipped_steps() == 4 * 3);
  for (int p = 0; p < 4; ++p) CHECK(!schedule.at(p, 0).skipped);
  // ... so each device keeps its own chunk: the ring sends nothing.
  CHECK(schedule.local_only);
  for (int p = 0; p < 4; ++p)
    for (int s = 0; s < 4; ++s) CHECK(schedule.at(p, s).forward_bytes_sent + schedule.at(p, s).backward_bytes_sent == 0);
  CHECK(schedule.selected_rows_bytes_saved() == 0);
  // Segments of 32 span two chunks: step 1 has pairs, chunks travel.
  c = dilated_config(64, {{32, 2}}, OffsetRule::paper, Combine::lse, SegmentMode::error);
  c.ring = 4;
  const RingSchedule spanning = make_ring_schedule(c);
  CHECK(!spanning.local_only);
  CHECK(!spanning.at(1, 1).skipped);
  CHECK(spanning.at(1, 0).forward_bytes_sent == 16 * spanning.kv_bytes_per_row);
  // Heads 0..4 with r = 2 use offsets 0 and 1: every row is selected by some head, nothing saved.
  CHECK(spanning.selected_rows_bytes_saved() == 0);
  c.heads = c.kv_heads = 1;  // only offset 0: half the rows are never needed
  const RingSchedule one_head = make_ring_schedule(c);
  CHECK(one_head.at(0, 1).selected_rows == 8);
  CHECK(one_head.selected_rows_bytes_saved() == 4 * 3 * 8 * one_head.kv_bytes_per_row);
}
