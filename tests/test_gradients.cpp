// Analytic gradients against central finite differences of L = Σ dO ∘ O in fp64.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include "catch_compat.hpp"
#include "helpers.hpp"

using namespace ringlab;

namespace {

double loss(const AttentionConfig& c, const testing::Inputs& in, Algorithm algorithm) {
  const auto result = attention_forward(c, in.q, in.k, in.v, AttentionOptions<double>{algorithm, {4, 4}});
  double total = 0;
  for (std::size_t i = 0; i < result.out.data.size(); ++i) total += result.out.data[i] * in.dout.data[i];
  return total;
}

void check_against_finite_differences(const AttentionConfig& c, Algorithm algorithm) {
  testing::Inputs in = testing::random_inputs(c, 77);
  const auto result = attention_forward(c, in.q, in.k, in.v, AttentionOptions<double>{algorithm, {4, 4}});
  const auto grads =
      attention_backward(c, in.q, in.k, in.v, result.out, result.lse, in.dout, AttentionOptions<double>{algorithm, {4, 4}});
  const double h = 1e-6;
  double worst = 0, largest = 0;
  struct Target {
    Tensor<double>* input;
    const Tensor<double>* gradient;
  };
  for (const Target target : {Target{&in.q, &grads.dq}, Target{&in.k, &grads.dk}, Target{&in.v, &grads.dv}})
    for (std::size_t i = 0; i < target.input->data.size(); i += 3) {  // every third element keeps it quick
      const double saved = target.input->data[i];
      target.input->data[i] = saved + h;
      const double plus = loss(c, in, algorithm);
      target.input->data[i] = saved - h;
      const double minus = loss(c, in, algorithm);
      target.input->data[i] = saved;
      const double numeric = (plus - minus) / (2 * h);
      worst = std::max(worst, std::abs(numeric - target.gradient->data[i]));
      largest = std::max(largest, std::abs(target.gradient->data[i]));
    }
  INFO(describe(c) << " algorithm " << to_string(algorithm) << ": worst |numeric − analytic| " << worst
                   << " largest gradient " << largest);
  CHECK(largest > 1e-3);            // the gradients are not trivially zero
  CHECK(worst <= 1e-7 * std::max(1.0, largest));
}

}  // namespace

TEST_CASE("gradients match central finite differences", "[gradients]") {
  AttentionConfig c;
  c.seq = c.kv_seq = 13;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 3;
  SECTION("causal, dense and blockwise") {
    c.causal = true;
    check_against_finite_differences(c, Algorithm::dense);
    check_against_finite_differences(c, Algorithm::blockwise);
  }
  SECTION("window with bottom-right alignment") {
    c.kv_seq = 17;
    c.q_start = 4;
    c.window_left = 3;
    c.window_right = 1;
    check_against_finite_differences(c, Algorithm::blockwise);
  }
  SECTION("zigzag ring, causal") {
    c.causal = true;
    c.ring = 3;
    c.layout = Layout::zigzag;
    check_against_finite_differences(c, Algorithm::ring);
  }
  SECTION("dilated, lse combination: the gradient flows through the pattern weights") {
    c.seq = c.kv_seq = 16;
    c.dilation = {{4, 1}, {8, 2}, {16, 4}};
    check_against_finite_differences(c, Algorithm::blockwise);
  }
  SECTION("dilated, group_mean") {
    c.seq = c.kv_seq = 16;
    c.dilation = {{8, 2}, {16, 4}};
    c.offset_rule = OffsetRule::group;
    c.combine = Combine::group_mean;
    check_against_finite_differences(c, Algorithm::dense);
  }
}
