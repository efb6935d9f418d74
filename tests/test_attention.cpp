// Ring == blockwise == dense, forward and backward, in fp64 over a randomised sweep of configs; the LSE
// merge's algebra; edge cases (fully masked rows, huge logits, empty chunks).
#include <random>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include "catch_compat.hpp"
#include "helpers.hpp"
#include "ringlab/block_attention.hpp"
#include "ringlab/schedule.hpp"

using namespace ringlab;
using ringlab::testing::random_inputs;
using ringlab::testing::scaled_error;

namespace {

struct Comparison {
  double out = 0, lse = 0, dq = 0, dk = 0, dv = 0;
  double worst() const { return std::max({out, lse, dq, dk, dv}); }
};

// Runs `algorithm` and dense on the same inputs; scaled errors of every output.
Comparison compare_with_dense(const AttentionConfig& config, Algorithm algorithm, TileSizes tiles, std::uint64_t seed) {
  const auto in = random_inputs(config, seed);
  AttentionOptions<double> dense_options{Algorithm::dense};
  AttentionConfig single_device = config;
  single_device.ring = 1;
  single_device.q_replicated = false;
  const auto dense = attention_forward(single_device, in.q, in.k, in.v, dense_options);
  const auto dense_grads =
      attention_backward(single_device, in.q, in.k, in.v, dense.out, dense.lse, in.dout, dense_options);
  AttentionOptions<double> options{algorithm, tiles};
  const auto result = attention_forward(config, in.q, in.k, in.v, options);
  const auto grads = attention_backward(config, in.q, in.k, in.v, result.out, result.lse, in.dout, options);
  return {scaled_error(result.out, dense.out), scaled_error(result.lse, dense.lse), scaled_error(grads.dq, dense_grads.dq),
          scaled_error(grads.dk, dense_grads.dk), scaled_error(grads.dv, dense_grads.dv)};
}

}  // namespace

TEST_CASE("ring equals dense in fp64 over a randomised sweep of 240 configs", "[ring][sweep]") {
  std::mt19937_64 pick(20261122);
  auto choose = [&](auto options) { return options[pick() % options.size()]; };
  const std::vector<int> rings = {1, 2, 3, 4, 7, 8};
  const std::vector<std::int64_t> lengths = {1, 2, 5, 8, 16, 31, 64, 97, 130};
  const std::vector<Layout> layouts = {Layout::contiguous, Layout::zigzag, Layout::striped};
  int configs = 0, with_large_n = 0, with_p_over_n = 0;
  for (int index = 0; index < 240; ++index) {
    AttentionConfig config;
    config.ring = rings[index % rings.size()];
    config.layout = layouts[(index / rings.size()) % layouts.size()];
    config.q_replicated = index % 17 == 5;
    config.seq = config.kv_seq = index % 40 == 7 ? 1025 : choose(lengths);
    config.batch = 1 + static_cast<std::int64_t>(pick() % 2);
    config.kv_heads = choose(std::vector<std::int64_t>{1, 1, 2, 3});
    config.heads = config.kv_heads * choose(std::vector<std::int64_t>{1, 2, 3});
    config.head_dim = choose(std::vector<std::int64_t>{1, 3, 8, 16});
    switch (index % 3) {
      case 0: break;
      case 1: config.causal = true; break;
      case 2:
        config.window_left = choose(std::vector<std::int64_t>{-1, 0, 3, 17});
        config.window_right = choose(std::vector<std::int64_t>{-1, 0, 2, 9});
        config.causal = pick() % 2 == 0;
        break;
    }
    if (config.seq > 200) config.head_dim = 4, config.heads = config.kv_heads;  // keep the dense oracle cheap
    const TileSizes tiles{1 + static_cast<std::int64_t>(pick() % 40), 1 + static_cast<std::int64_t>(pick() % 40)};
    const Comparison error = compare_with_dense(config, Algorithm::ring, tiles, 1000 + index);
    INFO("config " << index << ": " << describe(config) << " tiles " << tiles.query_rows << "x" << tiles.key_rows);
    INFO("errors out " << error.out << " lse " << error.lse << " dq " << error.dq << " dk " << error.dk << " dv "
                       << error.dv);
    CHECK(error.worst() <= 1e-12);
    ++configs;
    with_large_n += config.seq == 1025;
    with_p_over_n += config.ring > config.seq;
  }
  CHECK(configs == 240);
  CHECK(with_large_n >= 5);
  CHECK(with_p_over_n >= 10);
}

TEST_CASE("blockwise equals dense for every mask, GQA and awkward tiles", "[blockwise]") {
  for (const std::int64_t n : {1, 97, 257}) {
    for (const int mask_kind : {0, 1, 2, 3}) {
      AttentionConfig config;
      config.seq = n;
      config.kv_seq = n + 13;  // M ≠ N, and bottom-right alignment below
      config.heads = 6;
      config.kv_heads = 2;
      config.head_dim = 24;
      config.q_start = mask_kind == 3 ? config.kv_seq - config.seq : 0;
      config.causal = mask_kind == 1 || mask_kind == 3;
      if (mask_kind == 2) config.window_left = 7, config.window_right = 3;
      for (const TileSizes tiles : {TileSizes{1, 1}, TileSizes{16, 48}, TileSizes{64, 128}, TileSizes{300, 300}}) {
        const Comparison error = compare_with_dense(config, Algorithm::blockwise, tiles, 7 + n);
        INFO(describe(config) << " tiles " << tiles.query_rows << "x" << tiles.key_rows << " worst " << error.worst());
        CHECK(error.worst() <= 1e-12);
      }
    }
  }
}

TEST_CASE("fp32 blockwise lands far under 1e-5 of the fp64 reference", "[blockwise][fp32]") {
  AttentionConfig config;
  config.seq = config.kv_seq = 1025;
  config.heads = config.kv_heads = 3;
  config.head_dim = 64;
  config.causal = true;
  const auto in = random_inputs(config, 99);
  const auto exact = attention_forward(config, in.q, in.k, in.v);
  const auto exact_grads = attention_backward(config, in.q, in.k, in.v, exact.out, exact.lse, in.dout);
  const auto q = tensor_cast<float>(in.q), k = tensor_cast<float>(in.k), v = tensor_cast<float>(in.v);
  const auto result = attention_forward(config, q, k, v);
  const auto grads = attention_backward(config, q, k, v, result.out, result.lse, tensor_cast<float>(in.dout));
  CHECK(scaled_error(result.out, exact.out) < 1e-6);
  CHECK(scaled_error(result.lse, exact.lse) < 1e-6);
  CHECK(scaled_error(grads.dq, exact_grads.dq) < 1e-5);
  CHECK(scaled_error(grads.dk, exact_grads.dk) < 1e-5);
  CHECK(scaled_error(grads.dv, exact_grads.dv) < 1e-6);
}

TEST_CASE("LSE merge: identity, two empty rows, commutativity and associativity", "[merge]") {
  const double minus_infinity = -std::numeric_limits<double>::infinity();
  std::vector<double> a = {1.0, -2.0}, b = {0.5, 4.0}, c = {-3.0, 0.25}, zero = {0.0, 0.0};
  auto view = [](std::vector<double>& row) { return MatrixView<double>{row.data(), 1, 2, 2}; };
  auto merged = [&](std::vector<double> x, double lx, std::vector<double> y, double ly) {
    std::vector<double> lse = {lx};
    lse_merge(view(x), std::span<double>(lse), MatrixView<const double>(view(y)), std::span<const double>(&ly, 1));
    return std::make_pair(x, lse[0]);
  };
  SECTION("identity (0, −∞) leaves a result unchanged") {
    const auto [out, lse] = merged(a, 0.7, zero, minus_infinity);
    CHECK(out == a);
    CHECK(lse == 0.7);
    const auto [out2, lse2] = merged(zero, minus_infinity, a, 0.7);
    CHECK(out2 == a);
    CHECK(lse2 == 0.7);
  }
  SECTION("two empty rows stay (0, −∞), no NaN") {
    const auto [out, lse] = merged(zero, minus_infinity, zero, minus_infinity);
    CHECK(out == zero);
    CHECK(lse == minus_infinity);
  }
  SECTION("weights are e^{L−L_total}") {
    const auto [out, lse] = merged(a, std::log(1.0), b, std::log(3.0));
    CHECK(lse == Approx(std::log(4.0)).epsilon(1e-15));
    CHECK(out[0] == Approx(0.25 * a[0] + 0.75 * b[0]).epsilon(1e-15));
    CHECK(out[1] == Approx(0.25 * a[1] + 0.75 * b[1]).epsilon(1e-15));
  }
  SECTION("commutative and associative up to rounding") {
    const auto ab = merged(a, 0.3, b, -1.2), ba = merged(b, -1.2, a, 0.3);
    const auto ab_c = merged(ab.first, ab.second, c, 2.0);
    const auto bc = merged(b, -1.2, c, 2.0);
    const auto a_bc = merged(a, 0.3, bc.first, bc.second);
    for (int i = 0; i < 2; ++i) {
      CHECK(ab.first[i] == Approx(ba.first[i]).epsilon(1e-15));
      CHECK(ab_c.first[i] == Approx(a_bc.first[i]).epsilon(1e-14));
    }
    CHECK(ab_c.second == Approx(a_bc.second).epsilon(1e-15));
  }
  SECTION("huge LSE gaps do not overflow") {
    const auto [out, lse] = merged(a, 1e4, b, -1e4);
    CHECK(out == a);
    CHECK(lse == 1e4);
  }
}

TEST_CASE("fully masked rows give O = 0 and LSE = −∞, never NaN, in every algorithm", "[edge]") {
  // Queries at positions −5..−1 under a causal mask see no key at all.
  AttentionConfig config;
  config.seq = 12;
  config.kv_seq = 7;
  config.q_start = -5;
  config.causal = true;
  config.heads = config.kv_heads = 2;
  config.head_dim = 5;
  const auto in = random_inputs(config, 3);
  for (const Algorithm algorithm : {Algorithm::dense, Algorithm::blockwise}) {
    AttentionOptions<double> options{algorithm, {4, 3}};
    const auto result = attention_forward(config, in.q, in.k, in.v, options);
    const auto grads = attention_backward(config, in.q, in.k, in.v, result.out, result.lse, in.dout, options);
    for (std::int64_t i = 0; i < 5; ++i) {
      CHECK(result.lse.row(0, 1)[i] == -std::numeric_limits<double>::infinity());
      for (std::int64_t d = 0; d < 5; ++d) CHECK(result.out.head(0, 1).row(i)[d] == 0.0);
    }
    CHECK(std::isfinite(result.lse.row(0, 0)[5]));
    CHECK(ringlab::testing::all_finite_or_minus_infinity(result.out));
    for (const auto* tensor : {&grads.dq, &grads.dk, &grads.dv})
      CHECK(std::all_of(tensor->data.begin(), tensor->data.end(), [](double x) { return std::isfinite(x); }));
  }
  // A ring whose window excludes whole chunks: those steps are skipped and the rows are still right.
  AttentionConfig ring_config;
  ring_config.seq = ring_config.kv_seq = 64;
  ring_config.ring = 8;
  ring_config.window_left = 0;
  ring_config.window_right = 0;
  const Comparison error = compare_with_dense(ring_config, Algorithm::ring, {8, 8}, 5);
  CHECK(error.worst() <= 1e-12);
  CHECK(make_ring_schedule(ring_config).skipped_steps() == 8 * 7);
}

TEST_CASE("logits around 1e4 stay finite and exact", "[edge]") {
  AttentionConfig config;
  config.seq = config.kv_seq = 33;
  config.heads = config.kv_heads = 1;
  config.head_dim = 4;
  config.scale = 2500.0;  // |τ·q·k| ~ 1e4 for N(0,1) inputs
  config.causal = true;
  config.ring = 3;
  config.layout = Layout::zigzag;
  const Comparison error = compare_with_dense(config, Algorithm::ring, {5, 7}, 11);
  INFO("errors out " << error.out << " lse " << error.lse << " dq " << error.dq << " dk " << error.dk << " dv "
                     << error.dv);
  CHECK(std::max(error.out, error.lse) <= 1e-12);
  // Logits of 1e4 carry a rounding error of ~1e4·ε that depends on the summation order of Q·Kᵀ; the
  // gradients multiply it by τ = 2500 once more, so they agree to ~1e-10, not 1e-12.
  CHECK(std::max({error.dq, error.dk, error.dv}) <= 1e-9);
  const auto in = random_inputs(config, 11);
  const auto result = attention_forward(config, in.q, in.k, in.v, AttentionOptions<double>{Algorithm::ring});
  CHECK(ringlab::testing::all_finite_or_minus_infinity(result.out));
  CHECK(std::all_of(result.lse.data.begin(), result.lse.data.end(), [](double x) { return std::isfinite(x); }));
}

TEST_CASE("q-replicated ring equals dense and standard ring", "[ring]") {
  for (const Layout layout : {Layout::contiguous, Layout::zigzag, Layout::striped}) {
    AttentionConfig config;
    config.seq = config.kv_seq = 45;
    config.ring = 4;
    config.layout = layout;
    config.q_replicated = true;
    config.causal = true;
    const Comparison error = compare_with_dense(config, Algorithm::ring, {8, 8}, 21);
    INFO(describe(config) << " worst " << error.worst());
    CHECK(error.worst() <= 1e-12);
  }
}
