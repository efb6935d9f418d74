// Invalid configurations: each is rejected with a ConfigError that names the parameter and the value.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include "catch_compat.hpp"
#include "ringlab/attention.hpp"
#include "ringlab/errors.hpp"

using namespace ringlab;

namespace {

// Applies `change` to a valid config and expects validate() to name `parameter`.
template <class Change>
void expect_rejected(Change change, const std::string& parameter, const std::string& fragment) {
  AttentionConfig config;
  change(config);
  try {
    config.validate();
    FAIL("accepted an invalid config: " << describe(config));
  } catch (const ConfigError& error) {
    const std::string message = error.what();
    INFO(message);
    CHECK(error.parameter().rfind(parameter, 0) == 0);
    CHECK(message.find(parameter) != std::string::npos);
    CHECK(message.find(fragment) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("invalid configs name the parameter, the value and what is valid", "[config]") {
  AttentionConfig{}.validate();  // the default is valid
  expect_rejected([](auto& c) { c.batch = 0; }, "--batch", "= 0");
  expect_rejected([](auto& c) { c.seq = 0; }, "--seq", "= 0");
  expect_rejected([](auto& c) { c.seq = -5; }, "--seq", "= -5");
  expect_rejected([](auto& c) { c.kv_seq = 0; }, "--kv-seq", "must be");
  expect_rejected([](auto& c) { c.heads = 0; }, "--heads", "= 0");
  expect_rejected([](auto& c) { c.kv_heads = 0; }, "--kv-heads", "= 0");
  expect_rejected([](auto& c) { c.heads = 6, c.kv_heads = 4; }, "--kv-heads", "must divide --heads = 6");
  expect_rejected([](auto& c) { c.head_dim = 0; }, "--head-dim", "= 0");
  expect_rejected([](auto& c) { c.head_dim = 100000; }, "--head-dim", "4096");
  expect_rejected([](auto& c) { c.scale = INFINITY; }, "--scale", "finite");
  expect_rejected([](auto& c) { c.scale = NAN; }, "--scale", "finite");
  expect_rejected([](auto& c) { c.window_left = -2; }, "--window left", "= -2");
  expect_rejected([](auto& c) { c.window_right = -7; }, "--window right", "= -7");
  expect_rejected([](auto& c) { c.ring = 0; }, "--ring", "= 0");
  expect_rejected([](auto& c) { c.ring = 4, c.kv_seq = 100; }, "--kv-seq", "equal to --seq");
  expect_rejected([](auto& c) { c.ring = 4, c.q_start = 3; }, "--q-start", "--q-start 0");
  expect_rejected([](auto& c) { c.q_replicated = true, c.kv_seq = 7; }, "--kv-seq", "ring");
  expect_rejected([](auto& c) { c.dilation = {{16, 2}}, c.kv_seq = 64; }, "--kv-seq", "dilated");
  expect_rejected([](auto& c) { c.dilation = {{16, 2}}, c.q_start = 1; }, "--q-start", "dilated");
  expect_rejected([](auto& c) { c.dilation = {{0, 1}}; }, "--dilation", "segment length");
  expect_rejected([](auto& c) { c.dilation = {{16, 0}}; }, "--dilation", "rate r");
  expect_rejected([](auto& c) { c.dilation = {{16, 32}}; }, "--dilation", "rate r");
  expect_rejected([](auto& c) { c.dilation = {{48, 1}}; }, "--dilation", "--segments ragged");
  expect_rejected([](auto& c) { c.dilation = {{256, 1}}; }, "--dilation", "exceeds --seq");
  expect_rejected([](auto& c) { c.dilation = {{16, 1}, {32, 2}, {64, 4}, {128, 8}}, c.heads = c.kv_heads = 2,
                                c.offset_rule = OffsetRule::group; },
                  "--heads", "at least 4 heads");
  expect_rejected([](auto& c) { c.dilation = {{16, 1}}, c.combine = Combine::group_mean; }, "--combine",
                  "--offset-rule group");
}

TEST_CASE("text parsers reject bad values with the valid choices", "[config]") {
  auto message_of = [](auto parse) -> std::string {
    try {
      parse();
    } catch (const ConfigError& error) {
      return error.what();
    }
    return "accepted";
  };
  CHECK(message_of([] { parse_layout("diagonal"); }).find("contiguous, zigzag, striped") != std::string::npos);
  CHECK(message_of([] { parse_offset_rule("random"); }).find("paper, torchscale, group") != std::string::npos);
  CHECK(message_of([] { parse_combine("max"); }).find("lse, group_mean, group_sum") != std::string::npos);
  CHECK(message_of([] { parse_segment_mode("pad"); }).find("error, ragged") != std::string::npos);
  CHECK(message_of([] { parse_algorithm("fast"); }).find("dense, blockwise, ring") != std::string::npos);
  CHECK(message_of([] { parse_dilation("2048"); }).find("w:r") != std::string::npos);
  CHECK(message_of([] { parse_dilation("2048:x"); }).find("rate") != std::string::npos);
  CHECK(message_of([] { parse_dilation("16:1,"); }).find("--dilation") != std::string::npos);
  CHECK(message_of([] { parse_window("5"); }).find("L,R") != std::string::npos);
  CHECK(message_of([] { parse_window("5,abc"); }).find("right") != std::string::npos);
  AttentionConfig config;
  CHECK(message_of([&] { apply_preset(config, "flash"); }).find("longnet, torchscale, dilated-attention-pytorch") !=
        std::string::npos);
  CHECK(parse_dilation("2048:1,4096:2") == std::vector<DilationPattern>{{2048, 1}, {4096, 2}});
  CHECK(parse_window("-1,0") == std::pair<std::int64_t, std::int64_t>{-1, 0});
}

TEST_CASE("wrong tensor shapes and algorithms are input errors, not crashes", "[config]") {
  AttentionConfig config;
  Tensor<double> q(query_shape(config), 1.0), k(kv_shape(config), 1.0), v({1, 2, 3}, 1.0);
  CHECK_THROWS_AS(attention_forward(config, q, k, v), InputError);
  config.ring = 2;
  Tensor<double> v_ok(kv_shape(config), 1.0);
  CHECK_THROWS_AS(attention_forward(config, q, k, v_ok, AttentionOptions<double>{Algorithm::blockwise}), ConfigError);
}
