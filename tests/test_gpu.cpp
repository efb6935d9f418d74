// GPU tests: run for real on the GPU machines, skip with a message where there is no device (CI).
//
// gpu::block_attention_forward/backward are compared with the fp64 reference on fresh random inputs
// (ringlab's N(0,1) generator, a new seed per case), over awkward sizes (N = 97, 1025, 4099), D = 64 and
// 128, GQA/MQA, every mask (none, causal, window, causal + window, bottom-right causal, rows that see no
// key), LongNet dilation (strided r | w and the per-element fallback, one and two patterns) and the
// zigzag/striped position runs of ring steps. Outputs are poisoned (NaN) before each run; the fp32
// gradient accumulators start at random values that are subtracted afterwards (they accumulate, +=).
//
// Inputs are rounded to the dtype first and the fp64 reference is computed on the rounded inputs, so the
// errors measure the kernels' arithmetic only. Tolerances on the scaled error (docs/semantics.md §11):
//   fp32       1e-5 for every tensor (the teaching kernels)
//   bf16/fp16  O, dQ, dK, dV: 2 × the error of a naive same-precision baseline against the same fp64
//              reference, computed on the CPU: for whole-sequence cases the reference's dense path in
//              float with P and dS rounded to the dtype (AttentionOptions::round_intermediates), for
//              ring-step cases naive_block below (the same formulas on explicit positions); our dQ, dK,
//              dV (fp32 accumulators) are rounded to the dtype as gpu::convert would. LSE is an fp32
//              output in both: max(2 × baseline, 1e-5).
// Every case prints one line (errors and tolerances), so a run on the GPU machine shows the margins.
#include <Eigen/Dense>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <string>

#include "catch_compat.hpp"
#include "gpu_test_helpers.hpp"
#include "helpers.hpp"
#include "ringlab/block_attention.hpp"
#include "ringlab/dilation.hpp"
#include "ringlab/errors.hpp"
#include "ringlab/gpu/block_attention.hpp"
#include "ringlab/gpu/device.hpp"
#include "ringlab/gpu/lse_merge.hpp"
#include "ringlab/gpu/memory.hpp"
#include "ringlab/positions.hpp"

using namespace ringlab;

namespace ringlab::testing {
std::vector<std::int64_t> run_warp_search_cases(const std::vector<std::int64_t>& cases);  // gpu_search_cases.cu
std::int64_t serial_search_case(std::int64_t lo, std::int64_t hi, std::int64_t threshold);
std::string check_row_arithmetic();
std::string check_send_coverage();  // gpu_search_cases.cu
bool hopper_forward_runs();                // gpu_copy_probe.cu
std::int64_t tma_descriptors_encoded();
}  // namespace ringlab::testing

// Host code (runs without a GPU too): the integer helpers the kernels' plans are built from.
TEST_CASE("The kernels' row arithmetic equals 64-bit arithmetic and brute force", "[gpu]") {
  REQUIRE(testing::check_row_arithmetic() == "");
}

// Host code too: a virtual ring's hop done by the kernels (gpu::KernelSends) must move every byte once.
TEST_CASE("The kernels' sends cover K, V and the received dK, dV exactly once, in place", "[gpu]") {
  REQUIRE(testing::check_send_coverage() == "");
}

// The kernels' plans find their tile ranges with WarpSearch (32 probes per round); a range one tile too
// narrow would drop keys, one too wide would only cost time, which the attention tests cannot see. Every
// lane must agree with the serial search and never test a tile outside the range (the answer comes back
// negative if it did).
TEST_CASE("WarpSearch finds what SerialSearch finds, on every lane", "[gpu]") {
  if (gpu::device_count() == 0) RINGLAB_SKIP("GPU test skipped: " + gpu::unavailable_reason());
  std::vector<std::int64_t> cases;
  for (std::int64_t lo : {0, 5, 1000})
    for (std::int64_t length : {0, 1, 2, 31, 32, 33, 63, 64, 65, 97, 1000, 1024, 1025, 4099, 40000, 1 << 20})
      for (std::int64_t threshold : {lo - 3, lo, lo + 1, lo + length / 3, lo + length / 2, lo + length - 1,
                                     lo + length, lo + length + 7, lo + 31, lo + 32, lo + 33, lo + 1023})
        cases.insert(cases.end(), {lo, lo + length, threshold});
  const std::vector<std::int64_t> answers = testing::run_warp_search_cases(cases);
  for (std::size_t i = 0; i < cases.size() / 3; ++i) {
    const std::int64_t expected = testing::serial_search_case(cases[3 * i], cases[3 * i + 1], cases[3 * i + 2]);
    INFO("lo " << cases[3 * i] << ", hi " << cases[3 * i + 1] << ", holds from " << cases[3 * i + 2]);
    for (int lane = 0; lane < 32; ++lane) REQUIRE(answers[32 * i + lane] == expected);
  }
}

TEST_CASE("gpu::lse_merge equals reference::lse_merge", "[gpu]") {
  if (gpu::device_count() == 0) RINGLAB_SKIP("GPU test skipped: " + gpu::unavailable_reason());
  INFO("device: " << gpu::describe_device());
  const std::int64_t rows = 1025, head_dim = 97;
  std::mt19937 random(3);
  std::normal_distribution<float> normal;
  std::vector<float> out(rows * head_dim), other(rows * head_dim), lse(rows), other_lse(rows);
  for (auto* values : {&out, &other}) for (auto& x : *values) x = normal(random);
  for (std::int64_t i = 0; i < rows; ++i) {
    lse[i] = i % 7 == 0 ? -INFINITY : 3 * normal(random);
    other_lse[i] = i % 5 == 0 ? -INFINITY : 3 * normal(random);
    if (i % 7 == 0) std::fill_n(out.begin() + i * head_dim, head_dim, 0.0f);
    if (i % 5 == 0) std::fill_n(other.begin() + i * head_dim, head_dim, 0.0f);
  }
  std::vector<float> expected = out, expected_lse = lse, got = out, got_lse = lse;
  lse_merge(MatrixView<float>{expected.data(), rows, head_dim, head_dim}, std::span<float>(expected_lse),
            MatrixView<const float>{other.data(), rows, head_dim, head_dim}, std::span<const float>(other_lse));
  gpu::lse_merge(got, got_lse, other, other_lse, head_dim);
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::abs(got[i] - expected[i])));
  CHECK(worst < 1e-5);
  for (std::int64_t i = 0; i < rows; ++i) {
    if (std::isinf(expected_lse[i]))
      CHECK(got_lse[i] == expected_lse[i]);
    else
      CHECK(std::abs(got_lse[i] - expected_lse[i]) < 1e-5);
  }
}

namespace {

using gpu::DType;
using i64 = std::int64_t;

// ---- one problem, its GPU result and its expected values ------------------------------------------------

using testing::DeviceArray;
using testing::poisoned;
using testing::rounded;
using testing::to_device;
using testing::to_host;
using Outputs = testing::GpuOutputs;

// A block pair: Q [B, n, H, D] at q_positions, K, V [B, m, Hkv, D] at k_positions, inputs already rounded
// to the dtype. `patterns` are the masks of a dilated config (⊕-merged in forward, summed in backward) or
// one mask; each gives every head its DilationSelect.
struct Problem {
  std::string name;
  Tensor<double> q, k, v, dout;
  PositionSet q_positions, k_positions;
  std::vector<gpu::HeadMasks> patterns;
  double scale = 1.0;
};

Outputs run_on_gpu(const Problem& problem, DType dtype, std::uint64_t seed) {
  const auto& q_shape = problem.q.shape;
  const auto& k_shape = problem.k.shape;
  const std::vector<i64> lse_shape{q_shape[0], q_shape[2], q_shape[1]};
  const i64 lse_count = lse_shape[0] * lse_shape[1] * lse_shape[2];
  DeviceArray q = to_device(problem.q, dtype), k = to_device(problem.k, dtype), v = to_device(problem.v, dtype);
  DeviceArray dout = to_device(problem.dout, dtype);
  DeviceArray out = poisoned(q_shape, dtype), partial = poisoned(q_shape, dtype);
  gpu::DeviceBuffer lse(lse_count * sizeof(float)), partial_lse(lse_count * sizeof(float)), delta(lse_count * sizeof(float));
  for (auto* buffer : {&lse, &partial_lse, &delta}) buffer->fill(0xFF);
  const auto scale = static_cast<float>(problem.scale);

  for (std::size_t p = 0; p < problem.patterns.size(); ++p) {
    const bool first = p == 0;
    gpu::block_attention_forward(q.tensor, problem.q_positions, k.tensor, v.tensor, problem.k_positions,
                                 problem.patterns[p], scale, first ? out.tensor : partial.tensor,
                                 (first ? lse : partial_lse).as<float>());
    if (!first) gpu::lse_merge(out.tensor, lse.as<float>(), partial.tensor, partial_lse.as<float>());
  }
  gpu::output_gradient_dot(dout.tensor, out.tensor, delta.as<float>());

  // The fp32 accumulators start at random values (they are +=), subtracted after the run.
  std::mt19937_64 random(seed);
  std::normal_distribution<double> normal;
  auto start_values = [&](const std::vector<i64>& shape) {
    Tensor<double> values(shape);
    for (double& x : values.data) x = static_cast<float>(normal(random));
    return values;
  };
  const Tensor<double> dq0 = start_values(q_shape), dk0 = start_values(k_shape), dv0 = start_values(k_shape);
  DeviceArray dq = to_device(dq0, DType::f32), dk = to_device(dk0, DType::f32), dv = to_device(dv0, DType::f32);
  for (const gpu::HeadMasks& mask : problem.patterns)
    gpu::block_attention_backward(q.tensor, problem.q_positions, k.tensor, v.tensor, problem.k_positions, mask, scale,
                                  dout.tensor, lse.as<float>(), delta.as<float>(), dq.tensor, dk.tensor, dv.tensor);
  gpu::synchronize();

  Outputs result;
  result.out = to_host(out.buffer, dtype, q_shape);
  result.lse = to_host(lse, DType::f32, {lse_shape[0], lse_shape[1], lse_shape[2], 1});
  result.lse.shape = lse_shape;
  auto gradient = [&](const DeviceArray& array, const Tensor<double>& start) {
    Tensor<double> g = to_host(array.buffer, DType::f32, start.shape);
    for (std::size_t i = 0; i < g.data.size(); ++i)
      g.data[i] = static_cast<float>(static_cast<float>(g.data[i]) - static_cast<float>(start.data[i]));
    return rounded(g, dtype);  // what gpu::convert to the input dtype would give
  };
  result.dq = gradient(dq, dq0);
  result.dk = gradient(dk, dk0);
  result.dv = gradient(dv, dv0);
  return result;
}

// Expected values of a problem: the fp64 reference and, for fp16/bf16, the naive baseline's outputs.
struct Expected {
  Outputs reference;
  std::optional<Outputs> baseline;
};

float round_bf16(float x) { return gpu::round_to(DType::bf16, x); }
float round_f16(float x) { return gpu::round_to(DType::f16, x); }

// Whole-sequence problems: a validated AttentionConfig (contiguous positions from q_start), computed by
// ringlab::attention_forward/backward.
Expected expected_for_config(const AttentionConfig& config, const Problem& problem, DType dtype) {
  Expected expected;
  const AttentionOptions<double> exact{Algorithm::blockwise, {}, nullptr};
  auto forward = attention_forward<double>(config, problem.q, problem.k, problem.v, exact);
  auto gradients =
      attention_backward<double>(config, problem.q, problem.k, problem.v, forward.out, forward.lse, problem.dout, exact);
  expected.reference = {forward.out, forward.lse, gradients.dq, gradients.dk, gradients.dv};
  if (dtype != DType::f32) {
    AttentionOptions<float> naive{Algorithm::dense, {}, dtype == DType::bf16 ? round_bf16 : round_f16};
    const auto q = tensor_cast<float>(problem.q), k = tensor_cast<float>(problem.k), v = tensor_cast<float>(problem.v);
    const auto dout = tensor_cast<float>(problem.dout);
    auto base = attention_forward<float>(config, q, k, v, naive);
    for (float& x : base.out.data) x = gpu::round_to(dtype, x);
    auto base_gradients = attention_backward<float>(config, q, k, v, base.out, base.lse, dout, naive);
    expected.baseline = Outputs{rounded(tensor_cast<double>(base.out), dtype), tensor_cast<double>(base.lse),
                                rounded(tensor_cast<double>(base_gradients.dq), dtype),
                                rounded(tensor_cast<double>(base_gradients.dk), dtype),
                                rounded(tensor_cast<double>(base_gradients.dv), dtype)};
  }
  return expected;
}

// The naive same-precision baseline of docs/semantics.md §11 for one block pair with explicit positions and
// one mask: dense per head, fp32 arithmetic on rounded inputs, P and dS rounded before their products,
// outputs rounded; LSE fp32.
Outputs naive_block(const Problem& problem, const MaskPredicate& mask, DType dtype) {
  using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const i64 batch = problem.q.shape[0], n = problem.q.shape[1], heads = problem.q.shape[2], d = problem.q.shape[3];
  const i64 m = problem.k.shape[1], kv_heads = problem.k.shape[2];
  const auto q_positions = problem.q_positions.expand(), k_positions = problem.k_positions.expand();
  const auto scale = static_cast<float>(problem.scale);
  auto round = [dtype](float x) { return gpu::round_to(dtype, x); };
  Outputs result{Tensor<double>(problem.q.shape), Tensor<double>({batch, heads, n}), Tensor<double>(problem.q.shape),
                 Tensor<double>(problem.k.shape), Tensor<double>(problem.k.shape)};
  auto load = [](const Tensor<double>& t, i64 b, i64 h) {
    const auto view = t.head(b, h);
    Matrix matrix(view.rows, view.cols);
    for (i64 i = 0; i < view.rows; ++i)
      for (i64 x = 0; x < view.cols; ++x) matrix(i, x) = static_cast<float>(view.row(i)[x]);
    return matrix;
  };
  auto add_into = [](Tensor<double>& t, i64 b, i64 h, const Matrix& matrix) {
    auto view = t.head(b, h);
    for (i64 i = 0; i < view.rows; ++i)
      for (i64 x = 0; x < view.cols; ++x) view.row(i)[x] += matrix(i, x);
  };
  for (i64 b = 0; b < batch; ++b)
    for (i64 h = 0; h < heads; ++h) {
      const i64 h_kv = h * kv_heads / heads;
      const Matrix q = load(problem.q, b, h), k = load(problem.k, b, h_kv), v = load(problem.v, b, h_kv);
      const Matrix dout = load(problem.dout, b, h);
      Matrix s = scale * (q * k.transpose());
      for (i64 i = 0; i < n; ++i)
        for (i64 j = 0; j < m; ++j)
          if (!mask.allows(q_positions[i], k_positions[j])) s(i, j) = -INFINITY;
      Matrix p = Matrix::Zero(n, m);
      std::vector<float> lse(n);
      for (i64 i = 0; i < n; ++i) {
        const float row_max = m > 0 ? s.row(i).maxCoeff() : -INFINITY;
        lse[i] = -INFINITY;
        if (row_max == -INFINITY) continue;
        float sum = 0;
        for (i64 j = 0; j < m; ++j) sum += p(i, j) = s(i, j) == -INFINITY ? 0.0f : std::exp(s(i, j) - row_max);
        p.row(i) /= sum;
        lse[i] = row_max + std::log(sum);
      }
      p = p.unaryExpr(round);
      const Matrix out = (p * v).unaryExpr(round);
      Matrix delta = (dout.array() * out.array()).rowwise().sum().matrix();
      Matrix p_saved = Matrix::Zero(n, m);  // P = exp(S − LSE), rounded
      for (i64 i = 0; i < n; ++i)
        for (i64 j = 0; j < m; ++j)
          if (lse[i] != -INFINITY && s(i, j) != -INFINITY) p_saved(i, j) = round(std::exp(s(i, j) - lse[i]));
      Matrix ds = dout * v.transpose();  // dP, then dS
      for (i64 i = 0; i < n; ++i) ds.row(i) = (p_saved.row(i).array() * (ds.row(i).array() - delta(i, 0))).matrix();
      ds = ds.unaryExpr(round);
      add_into(result.out, b, h, out);
      for (i64 i = 0; i < n; ++i) result.lse.row(b, h)[i] = lse[i];
      add_into(result.dq, b, h, scale * (ds * k));
      add_into(result.dk, b, h_kv, scale * (ds.transpose() * q));
      add_into(result.dv, b, h_kv, p_saved.transpose() * dout);
    }
  for (auto* t : {&result.dq, &result.dk, &result.dv}) *t = rounded(*t, dtype);
  return result;
}

// Ring-step problems: explicit positions, one mask, the reference block functions per head.
Expected expected_for_block(const Problem& problem, const MaskPredicate& mask, DType dtype) {
  const i64 batch = problem.q.shape[0], n = problem.q.shape[1], heads = problem.q.shape[2];
  const i64 kv_heads = problem.k.shape[2];
  const auto q_positions = problem.q_positions.expand(), k_positions = problem.k_positions.expand();
  Outputs reference{Tensor<double>(problem.q.shape), Tensor<double>({batch, heads, n}), Tensor<double>(problem.q.shape),
                    Tensor<double>(problem.k.shape), Tensor<double>(problem.k.shape)};
  for (i64 b = 0; b < batch; ++b)
    for (i64 h = 0; h < heads; ++h) {
      const i64 h_kv = h * kv_heads / heads;
      block_attention_forward<double>(problem.q.head(b, h), q_positions, problem.k.head(b, h_kv),
                                      problem.v.head(b, h_kv), k_positions, mask, problem.scale,
                                      reference.out.head(b, h), reference.lse.row(b, h));
      std::vector<double> delta(static_cast<std::size_t>(n));
      for (i64 i = 0; i < n; ++i)
        for (i64 x = 0; x < problem.q.shape[3]; ++x)
          delta[i] += problem.dout.head(b, h).row(i)[x] * reference.out.head(b, h).row(i)[x];
      block_attention_backward<double>(problem.q.head(b, h), q_positions, problem.k.head(b, h_kv),
                                       problem.v.head(b, h_kv), k_positions, mask, problem.scale,
                                       problem.dout.head(b, h), reference.lse.row(b, h), delta,
                                       reference.dq.head(b, h), reference.dk.head(b, h_kv), reference.dv.head(b, h_kv));
    }
  Expected expected{reference, std::nullopt};
  if (dtype != DType::f32) expected.baseline = naive_block(problem, mask, dtype);
  return expected;
}

// ---- the cases ------------------------------------------------------------------------------------------

struct Case {
  std::string name;
  Problem problem;
  std::function<Expected(const Problem&, DType)> expected;
};

Problem random_problem(const std::string& name, const AttentionConfig& config, std::uint64_t seed, DType dtype) {
  auto inputs = testing::random_inputs(config, seed);
  return {name, rounded(inputs.q, dtype), rounded(inputs.k, dtype), rounded(inputs.v, dtype),
          rounded(inputs.dout, dtype), {}, {}, {}, config.tau()};
}

// A whole-sequence case: contiguous positions [q_start, q_start + N) and [0, M); the GPU runs each dilation
// pattern of plan_heads (offsets per head) and ⊕-merges them, as attention_forward does.
Case config_case(const std::string& name, AttentionConfig config, std::uint64_t seed, DType dtype) {
  config.validate();
  Case c{name, random_problem(name, config, seed, dtype), {}};
  c.problem.q_positions = contiguous_positions(config.q_start, config.q_start + config.seq);
  c.problem.k_positions = contiguous_positions(0, config.kv_seq);
  const auto plans = plan_heads(config);
  for (std::size_t p = 0; p < plans[0].masks.size(); ++p) {
    gpu::HeadMasks mask;
    mask.band = plans[0].masks[p].band;
    if (config.dilated())
      for (const HeadPlan& plan : plans) mask.dilation.push_back(*plan.masks[p].dilation);
    c.problem.patterns.push_back(mask);
  }
  c.expected = [config](const Problem& problem, DType type) { return expected_for_config(config, problem, type); };
  return c;
}

// A ring step: the queries device `q_device` owns against the keys device `k_device` owns under `layout`.
// Inputs are gathered here (test data); the kernels address the position runs directly.
Case ring_step_case(const std::string& name, AttentionConfig config, Layout layout, int ring, int q_device,
                    int k_device, std::uint64_t seed, DType dtype,
                    std::optional<DilationSelect> dilation = std::nullopt) {
  const PositionSet q_positions = layout_positions(layout, config.seq, ring, q_device);
  const PositionSet k_positions = layout_positions(layout, config.seq, ring, k_device);
  const Problem whole = random_problem(name, config, seed, dtype);
  auto gather = [](const Tensor<double>& t, const PositionSet& positions) {
    const auto rows = positions.expand();
    Tensor<double> block({t.shape[0], static_cast<i64>(rows.size()), t.shape[2], t.shape[3]});
    const i64 row_size = t.shape[2] * t.shape[3];
    for (i64 b = 0; b < t.shape[0]; ++b)
      for (std::size_t r = 0; r < rows.size(); ++r)
        std::copy_n(t.data.begin() + (b * t.shape[1] + rows[r]) * row_size, row_size,
                    block.data.begin() + (b * block.shape[1] + static_cast<i64>(r)) * row_size);
    return block;
  };
  Problem problem{name,        gather(whole.q, q_positions), gather(whole.k, k_positions), gather(whole.v, k_positions),
                  gather(whole.dout, q_positions), q_positions, k_positions, {}, config.tau()};
  const MaskPredicate mask{BandMask::from(config), dilation};
  problem.patterns.push_back(gpu::HeadMasks(mask));
  return {name, problem, [mask](const Problem& p, DType type) { return expected_for_block(p, mask, type); }};
}

// LongNet's packages' head groups: each pattern on its own group of heads (offset rule group), their outputs
// summed, segments cut short at the sequence's end (ragged).
AttentionConfig head_groups(AttentionConfig config, std::vector<DilationPattern> patterns) {
  config.dilation = std::move(patterns);
  config.segments = SegmentMode::ragged;
  config.offset_rule = OffsetRule::group;
  config.combine = Combine::group_sum;
  return config;
}

AttentionConfig shape(i64 n, i64 heads, i64 kv_heads, i64 head_dim) {
  AttentionConfig config;
  config.seq = config.kv_seq = n;
  config.heads = heads;
  config.kv_heads = kv_heads;
  config.head_dim = head_dim;
  return config;
}

struct Measured {
  std::string line;
  bool passed = true;
};

// Compares one run; returns the printed line and whether every tensor is within its tolerance.
Measured compare(const std::string& name, DType dtype, const Outputs& got, const Expected& expected) {
  const char* tensors[] = {"O", "LSE", "dQ", "dK", "dV"};
  const Tensor<double>* got_of[] = {&got.out, &got.lse, &got.dq, &got.dk, &got.dv};
  const Tensor<double>* ref_of[] = {&expected.reference.out, &expected.reference.lse, &expected.reference.dq,
                                    &expected.reference.dk, &expected.reference.dv};
  Measured measured;
  std::ostringstream line;
  line << name << " [" << gpu::to_string(dtype) << "]";
  for (int t = 0; t < 5; ++t) {
    const double error = testing::scaled_error(*got_of[t], *ref_of[t]);
    double tolerance = 1e-5;
    if (expected.baseline) {
      const Tensor<double>* base_of[] = {&expected.baseline->out, &expected.baseline->lse, &expected.baseline->dq,
                                         &expected.baseline->dk, &expected.baseline->dv};
      tolerance = 2.0 * testing::scaled_error(*base_of[t], *ref_of[t]);
      if (t == 1) tolerance = std::max(tolerance, 1e-5);
    }
    const bool ok = error <= tolerance;  // NaN and ±∞ mismatches give +∞ and fail
    measured.passed = measured.passed && ok;
    char text[96];
    std::snprintf(text, sizeof text, "  %s %.2e/%.2e%s", tensors[t], error, tolerance, ok ? "" : " FAIL");
    line << text;
  }
  measured.line = line.str();
  return measured;
}

// Runs every case in every dtype; the CPU expectations are computed in parallel while the GPU works.
void run_cases(const std::vector<std::pair<std::function<Case(DType)>, std::vector<DType>>>& cases) {
  struct Pending {
    Case c;
    DType dtype;
    std::future<Expected> expected;
  };
  std::vector<Pending> pending;
  for (const auto& [make, dtypes] : cases)
    for (DType dtype : dtypes) {
      Case c = make(dtype);
      auto future = std::async(std::launch::async, [problem = c.problem, f = c.expected, dtype] { return f(problem, dtype); });
      pending.push_back({std::move(c), dtype, std::move(future)});
    }
  std::uint64_t seed = 1000;
  for (Pending& p : pending) {
    const Outputs got = run_on_gpu(p.c.problem, p.dtype, ++seed);
    const Measured measured = compare(p.c.name, p.dtype, got, p.expected.get());
    std::cout << measured.line << std::endl;
    INFO(measured.line);
    CHECK(measured.passed);
  }
}

}  // namespace

TEST_CASE("gpu::block_attention_* rejects what it does not support, naming what it does", "[gpu]") {
  // Validation happens before any CUDA call, so this runs without a GPU too.
  const gpu::ConstDeviceTensor q(nullptr, DType::bf16, 1, 8, 2, 96), k(nullptr, DType::bf16, 1, 8, 2, 96);
  const gpu::DeviceTensor out{nullptr, DType::bf16, 1, 8, 2, 96};
  const PositionSet positions = contiguous_positions(0, 8);
  const MaskPredicate mask{};
  auto call = [&](gpu::ConstDeviceTensor qq, gpu::ConstDeviceTensor kk, gpu::DeviceTensor oo, const PositionSet& qp) {
    float* lse = nullptr;
    gpu::block_attention_forward(qq, qp, kk, kk, positions, mask, 1.0f, oo, lse);
  };
  auto message_of = [&](auto&& f) -> std::string {
    try {
      f();
    } catch (const ConfigError& error) {
      return error.what();
    }
    return "";
  };
  const std::string head_dim = message_of([&] { call(q, k, out, positions); });
  CHECK(head_dim.find("head_dim = 96 with bf16") != std::string::npos);
  CHECK(head_dim.find("bf16 and fp16 with head_dim 64 or 128") != std::string::npos);
  const gpu::ConstDeviceTensor q64(nullptr, DType::bf16, 1, 8, 3, 64), k64(nullptr, DType::bf16, 1, 8, 2, 64);
  const gpu::DeviceTensor out64{nullptr, DType::bf16, 1, 8, 3, 64};
  CHECK(message_of([&] { call(q64, k64, out64, positions); }).find("H a multiple of Hkv") != std::string::npos);
  PositionSet three_runs;
  three_runs.runs = {{0, 1, 2}, {4, 1, 3}, {9, 1, 3}};
  const gpu::ConstDeviceTensor q2(nullptr, DType::bf16, 1, 8, 2, 64);
  const gpu::DeviceTensor out2{nullptr, DType::bf16, 1, 8, 2, 64};
  CHECK(message_of([&] { call(q2, q2, out2, three_runs); }).find("at most two runs") != std::string::npos);
  // A ring's first and last merging steps write every query row: a dilated mask (which visits its selected rows
  // only) is refused there, by the step's name.
  MaskPredicate dilated{};
  dilated.dilation = DilationSelect{4, 2, 0};
  float lse_stand_in = 0.0f;  // (validation fails before any pointer is used)
  const gpu::DeviceTensor acc2{nullptr, DType::f32, 1, 8, 2, 64};
  for (auto [step, name] : {std::pair{gpu::AccumulateStep::first, "step = first"},
                            std::pair{gpu::AccumulateStep::last, "step = last"}}) {
    const std::string message = message_of([&] {
      gpu::block_attention_forward_accumulate(q2, positions, q2, q2, positions, dilated, 1.0f, acc2, &lse_stand_in,
                                              nullptr, step, out2);
    });
    INFO(message);
    CHECK(message.find(name) != std::string::npos);
    CHECK(message.find("middle for a dilated mask") != std::string::npos);
  }
  // A virtual ring's hop done by the kernel (KernelSends) needs one owner per key row: no dilation (nor GQA).
  alignas(16) int stand_in[4];
  gpu::KernelSends sends;
  sends.k_to = sends.v_to = stand_in;
  const std::string sends_message = message_of([&] {
    gpu::block_attention_forward_accumulate(q2, positions, q2, q2, positions, dilated, 1.0f, acc2, &lse_stand_in,
                                            nullptr, gpu::AccumulateStep::middle, {}, &sends);
  });
  INFO(sends_message);
  CHECK(sends_message.find("sends") != std::string::npos);
  CHECK(sends_message.find("no dilation") != std::string::npos);
}

TEST_CASE("gpu block attention equals the fp64 reference: masks, GQA, awkward sizes", "[gpu]") {
  if (gpu::device_count() == 0) RINGLAB_SKIP("GPU test skipped: " + gpu::unavailable_reason());
  std::cout << "device: " << gpu::describe_device() << "\n"
            << "case [dtype]  tensor scaled-error/tolerance ...\n";
  const std::vector<DType> all{DType::f32, DType::bf16, DType::f16}, low{DType::bf16, DType::f16};
  const std::vector<DType> f32_bf16{DType::f32, DType::bf16};
  std::vector<std::pair<std::function<Case(DType)>, std::vector<DType>>> cases;
  auto add = [&](std::string name, AttentionConfig config, std::vector<DType> dtypes) {
    cases.push_back({[name, config](DType dtype) { return config_case(name, config, 11, dtype); }, dtypes});
  };
  {
    add("N=97 D=64 H=4 Hkv=2 none", shape(97, 4, 2, 64), all);
    auto c = shape(97, 4, 2, 64);
    c.batch = 3;
    c.causal = true;
    add("B=3 N=97 D=64 H=4 Hkv=2 causal", c, all);
    c = shape(97, 4, 2, 64);
    c.kv_seq = 130;
    c.q_start = 33;  // bottom-right causal: q_start = M − N
    c.causal = true;
    add("N=97 M=130 q_start=33 D=64 causal", c, f32_bf16);
    c = shape(97, 2, 2, 128);
    c.window_left = 16;
    c.window_right = 8;
    add("N=97 D=128 window(16,8)", c, all);
    c = shape(97, 4, 1, 64);
    c.q_start = -40;  // queries at −40..56: the first 40 see no key (O = 0, LSE = −∞)
    c.causal = true;
    c.window_left = 20;
    add("N=97 q_start=-40 D=64 MQA causal+window(20,-1)", c, f32_bf16);
    c = shape(1025, 2, 1, 128);
    c.causal = true;
    add("N=1025 D=128 H=2 Hkv=1 causal", c, all);
    c = shape(1025, 4, 4, 64);
    c.window_left = c.window_right = 100;
    add("N=1025 D=64 window(100,100)", c, low);
    c = shape(4099, 2, 2, 128);
    add("N=4099 D=128 none", c, f32_bf16);
    c = shape(4099, 4, 1, 64);
    c.causal = true;
    add("N=4099 D=64 H=4 Hkv=1 causal", c, low);
  }
  run_cases(cases);
}

TEST_CASE("gpu block attention equals the fp64 reference: LongNet dilation", "[gpu]") {
  if (gpu::device_count() == 0) RINGLAB_SKIP("GPU test skipped: " + gpu::unavailable_reason());
  const std::vector<DType> f32_bf16{DType::f32, DType::bf16};
  std::vector<std::pair<std::function<Case(DType)>, std::vector<DType>>> cases;
  auto add = [&](std::string name, AttentionConfig config, std::vector<DType> dtypes) {
    cases.push_back({[name, config](DType dtype) { return config_case(name, config, 23, dtype); }, dtypes});
  };
  auto c = shape(1025, 4, 2, 64);
  c.dilation = {{256, 2}};  // strided addressing: offsets h mod 2, last segment ragged
  c.segments = SegmentMode::ragged;
  c.causal = true;
  add("N=1025 D=64 GQA dilation 256:2 ragged causal (strided)", c, f32_bf16);
  c = shape(1025, 3, 3, 64);
  c.dilation = {{100, 3}};  // 3 does not divide 100: the per-element predicate
  c.segments = SegmentMode::ragged;
  add("N=1025 D=64 dilation 100:3 ragged (predicate)", c, f32_bf16);
  c = shape(1024, 2, 2, 128);
  c.dilation = {{128, 1}, {256, 2}};  // two patterns ⊕-merged on the GPU (gpu::lse_merge)
  add("N=1024 D=128 dilation 128:1,256:2 lse", c, f32_bf16);
  c = shape(2048, 2, 2, 128);
  c.dilation = {{512, 4}};
  c.causal = true;
  add("N=2048 D=128 dilation 512:4 causal (strided, full tiles)", c, {DType::bf16});
  // The packages' preset: head groups run different patterns, so heads select 2048, 1024 and 512 rows and
  // most blocks of the rate-4 heads have no rows (they leave before their plan: head_lacks_tile).
  c = shape(2048, 5, 5, 128);
  c.dilation = {{512, 1}, {1024, 2}, {2048, 4}};
  c.offset_rule = OffsetRule::group;
  c.combine = Combine::group_sum;
  add("N=2048 D=128 H=5 dilation 512:1,1024:2,2048:4 group_sum (per-head row counts differ)", c, {DType::bf16});
  run_cases(cases);
}

TEST_CASE("gpu block attention on ring-step position runs (zigzag, striped)", "[gpu]") {
  if (gpu::device_count() == 0) RINGLAB_SKIP("GPU test skipped: " + gpu::unavailable_reason());
  const std::vector<DType> f32_bf16{DType::f32, DType::bf16};
  std::vector<std::pair<std::function<Case(DType)>, std::vector<DType>>> cases;
  auto add = [&](std::string name, AttentionConfig config, Layout layout, int ring, int q_device, int k_device) {
    cases.push_back({[=](DType dtype) {
                       return ring_step_case(name, config, layout, ring, q_device, k_device, 37, dtype);
                     },
                     f32_bf16});
  };
  auto c = shape(1025, 4, 2, 64);
  c.causal = true;
  add("N=1025 zigzag P=2 q0 k1 causal D=64 GQA", c, Layout::zigzag, 2, 0, 1);
  add("N=1025 zigzag P=3 q1 k1 causal D=64 GQA", c, Layout::zigzag, 3, 1, 1);
  c = shape(1025, 2, 2, 128);
  c.causal = true;
  add("N=1025 striped P=4 q3 k1 causal D=128", c, Layout::striped, 4, 3, 1);
  c.causal = false;
  c.window_left = c.window_right = 64;
  add("N=1025 striped P=4 q0 k2 window(64,64) D=128", c, Layout::striped, 4, 0, 2);
  run_cases(cases);
}

namespace {

// Sets an environment variable for a scope (the library reads RINGLAB_* at each launch), then restores it.
class ScopedEnvironment {
 public:
  ScopedEnvironment(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    if (old != nullptr) saved_ = old;
    ::setenv(name, value, 1);
  }
  ~ScopedEnvironment() {
    if (saved_) ::setenv(name_, saved_->c_str(), 1); else ::unsetenv(name_);
  }
  ScopedEnvironment(const ScopedEnvironment&) = delete;
  ScopedEnvironment& operator=(const ScopedEnvironment&) = delete;

 private:
  const char* name_;
  std::optional<std::string> saved_;
};

}  // namespace

// The Hopper forward copies K/V tiles by TMA where a descriptor can address them (tma.cuh) and by cp.async
// elsewhere; both must land the same bytes in shared memory, so the outputs are bit for bit the same. The cases
// mix both kinds of tile in one launch: several batches (TMA coordinates cross batch boundaries), an odd row
// count under rates 2 and 4 (the descriptor's last extent rounds up), per-head row steps 1, 2, 4, and zigzag
// chunks whose tiles cross their two runs. On other GPUs both settings run the mma.sync kernel: the test then
// says so and checks the results only.
TEST_CASE("gpu forward: TMA and cp.async tile copies give the same bits", "[gpu]") {
  if (gpu::device_count() == 0) RINGLAB_SKIP("GPU test skipped: " + gpu::unavailable_reason());
  const bool hopper = testing::hopper_forward_runs();
  if (!hopper)
    std::cout << "no Hopper forward on this GPU (or RINGLAB_FORWARD_VARIANT set): both settings run the same kernel; "
                 "checking the results only\n";
  std::vector<std::pair<Case, DType>> cases;
  auto c = shape(1025, 4, 2, 128);
  c.batch = 2;
  c.causal = true;
  cases.push_back({config_case("B=2 N=1025 D=128 GQA causal", c, 41, DType::bf16), DType::bf16});
  c = head_groups(shape(1027, 6, 6, 64), {{128, 1}, {256, 2}, {512, 4}});
  c.batch = 2;
  cases.push_back({config_case("B=2 N=1027 D=64 H=6 dilation 128:1,256:2,512:4 group_sum", c, 43, DType::f16),
                   DType::f16});
  c = shape(2050, 2, 2, 128);
  c.causal = true;
  cases.push_back({ring_step_case("N=2050 zigzag P=2 q0 k0 causal D=128", c, Layout::zigzag, 2, 0, 0, 47, DType::bf16),
                   DType::bf16});
  // Five rates: a fifth row step has no descriptor (RowTileMaps::kMaxSteps = 4), so that head's tiles go by
  // cp.async in the same launch as the other four heads' TMA copies.
  c = head_groups(shape(4099, 5, 5, 128), {{64, 1}, {128, 2}, {192, 3}, {256, 4}, {320, 5}});
  cases.push_back({config_case("N=4099 D=128 H=5 rates 1-5 group_sum (5 row steps)", c, 61, DType::bf16),
                   DType::bf16});
  // A striped chunk under dilation: device 1 of 3 holds positions 1, 4, 7, …, rate 2 selects every other one,
  // so the selected rows advance by 2 in the chunk's tensor (a row step of 2 on a striped run).
  c = shape(6001, 4, 2, 64);
  c.causal = true;
  cases.push_back({ring_step_case("N=6001 striped P=3 q1 k1 causal GQA D=64 dilation 600:2 offset 1", c,
                                  Layout::striped, 3, 1, 1, 63, DType::f16, DilationSelect{600, 2, 1}),
                   DType::f16});
  for (const auto& [test, dtype] : cases) {
    Outputs by_copy, by_tma;
    const std::int64_t before = testing::tma_descriptors_encoded();
    {
      ScopedEnvironment copies("RINGLAB_HOPPER_COPIES", "cp.async");
      by_copy = run_on_gpu(test.problem, dtype, 7);
    }
    const std::int64_t after_copy = testing::tma_descriptors_encoded();
    {
      ScopedEnvironment copies("RINGLAB_HOPPER_COPIES", "tma");
      by_tma = run_on_gpu(test.problem, dtype, 7);
    }
    INFO(test.name);
    CHECK(after_copy == before);  // cp.async: no descriptors
    if (hopper) CHECK(testing::tma_descriptors_encoded() > after_copy);  // the TMA path was taken
    CHECK(by_tma.out.data == by_copy.out.data);
    CHECK(by_tma.lse.data == by_copy.lse.data);
    // And the shared result is right (the cp.async path alone would pass the other tests).
    const Measured measured = compare(test.name, dtype, by_tma, test.expected(test.problem, dtype));
    std::cout << measured.line << std::endl;
    INFO(measured.line);
    CHECK(measured.passed);
  }
}

// GradientWrite::overwrite (what a whole backward needs: dK, dV in the dtype, no zeroed fp32 accumulators, no
// conversion pass) gives what accumulate into zeros and a conversion give: bit for bit where each key row has one
// writer (Hkv = H: the Hopper kernel stores it; elsewhere zero, accumulate, convert, which is the same arithmetic), and
// to the last bit of the dtype under GQA, whose fp32 atomics add in any order. The outputs start poisoned (NaN), so a
// row left unwritten shows: keys no query reaches (whole key tiles of them), rows outside a dilated head's view.
TEST_CASE("gpu::block_attention_backward with GradientWrite::overwrite equals accumulate and convert", "[gpu]") {
  if (gpu::device_count() == 0) RINGLAB_SKIP("GPU test skipped: " + gpu::unavailable_reason());
  std::vector<std::pair<Case, bool>> cases;  // (case, one writer per key row)
  auto c = shape(1025, 3, 3, 128);
  c.causal = true;
  cases.push_back({config_case("N=1025 D=128 H=3 causal", c, 81, DType::bf16), true});
  c = shape(1025, 2, 2, 64);
  c.q_start = -600;  // queries at −600..424: keys past 424 (key tiles 4–8) see none
  c.causal = true;
  cases.push_back({config_case("N=1025 q_start=-600 D=64 causal (key tiles with no query)", c, 83, DType::f16), true});
  c = head_groups(shape(1027, 6, 6, 128), {{128, 1}, {256, 2}, {512, 4}});
  cases.push_back({config_case("N=1027 D=128 H=6 dilation 128:1,256:2,512:4 group_sum", c, 85, DType::bf16), true});
  c = shape(2050, 2, 2, 128);
  c.causal = true;
  cases.push_back({ring_step_case("N=2050 zigzag P=2 q1 k0 causal D=128", c, Layout::zigzag, 2, 1, 0, 87, DType::bf16),
                   true});
  cases.push_back({ring_step_case("N=2050 zigzag P=2 q0 k1 causal D=128 (half the keys unseen)", c, Layout::zigzag, 2,
                                  0, 1, 89, DType::bf16),
                   true});
  c = shape(97, 4, 2, 64);
  c.causal = true;
  cases.push_back({config_case("N=97 D=64 H=4 Hkv=2 causal (GQA)", c, 91, DType::bf16), false});
  for (const auto& [test, one_writer] : cases) {
    const Problem& problem = test.problem;
    for (const DType type : {DType::bf16, DType::f16}) {
      INFO(test.name << ", " << gpu::to_string(type));
      const auto& q_shape = problem.q.shape;
      const auto& k_shape = problem.k.shape;
      const i64 lse_count = q_shape[0] * q_shape[1] * q_shape[2];
      DeviceArray q = to_device(problem.q, type), k = to_device(problem.k, type), v = to_device(problem.v, type);
      DeviceArray dout = to_device(problem.dout, type);
      DeviceArray out = poisoned(q_shape, type);
      gpu::DeviceBuffer lse(lse_count * sizeof(float)), delta(lse_count * sizeof(float));
      const auto scale = static_cast<float>(problem.scale);
      for (const gpu::HeadMasks& mask : problem.patterns) {  // each pattern on its own: one call, one mask set
        gpu::block_attention_forward(q.tensor, problem.q_positions, k.tensor, v.tensor, problem.k_positions, mask,
                                     scale, out.tensor, lse.as<float>());
        gpu::output_gradient_dot(dout.tensor, out.tensor, delta.as<float>());
        auto backward = [&](gpu::DeviceTensor dk, gpu::DeviceTensor dv, gpu::GradientWrite write) {
          DeviceArray dq = poisoned(q_shape, DType::f32);
          dq.buffer.fill(0);
          gpu::block_attention_backward(q.tensor, problem.q_positions, k.tensor, v.tensor, problem.k_positions, mask,
                                        scale, dout.tensor, lse.as<float>(), delta.as<float>(), dq.tensor, dk, dv,
                                        nullptr, write);
          return to_host(dq.buffer, DType::f32, q_shape);
        };
        // accumulate into zeros, then convert
        DeviceArray dk32 = poisoned(k_shape, DType::f32), dv32 = poisoned(k_shape, DType::f32);
        dk32.buffer.fill(0);
        dv32.buffer.fill(0);
        backward(dk32.tensor, dv32.tensor, gpu::GradientWrite::accumulate);
        DeviceArray dk_converted = poisoned(k_shape, type), dv_converted = poisoned(k_shape, type);
        gpu::convert(dk32.tensor, dk_converted.tensor);
        gpu::convert(dv32.tensor, dv_converted.tensor);
        // overwrite, in the dtype and in fp32, over NaN
        DeviceArray dk_over = poisoned(k_shape, type), dv_over = poisoned(k_shape, type);
        backward(dk_over.tensor, dv_over.tensor, gpu::GradientWrite::overwrite);
        DeviceArray dk_over32 = poisoned(k_shape, DType::f32), dv_over32 = poisoned(k_shape, DType::f32);
        backward(dk_over32.tensor, dv_over32.tensor, gpu::GradientWrite::overwrite);
        gpu::synchronize();
        const Tensor<double> expected_dk = to_host(dk_converted.buffer, type, k_shape);
        const Tensor<double> expected_dv = to_host(dv_converted.buffer, type, k_shape);
        const Tensor<double> got_dk = to_host(dk_over.buffer, type, k_shape);
        const Tensor<double> got_dv = to_host(dv_over.buffer, type, k_shape);
        const Tensor<double> got_dk32 = rounded(to_host(dk_over32.buffer, DType::f32, k_shape), type);
        const Tensor<double> got_dv32 = rounded(to_host(dv_over32.buffer, DType::f32, k_shape), type);
        double worst = 0, scale_of = 1, nonzero = 0;
        bool finite = true;
        for (std::size_t i = 0; i < expected_dk.data.size(); ++i) {
          for (const auto& [got, want] : {std::pair{got_dk.data[i], expected_dk.data[i]},
                                          std::pair{got_dv.data[i], expected_dv.data[i]},
                                          std::pair{got_dk32.data[i], expected_dk.data[i]},
                                          std::pair{got_dv32.data[i], expected_dv.data[i]}}) {
            finite = finite && std::isfinite(got);
            worst = std::max(worst, std::abs(got - want));
            scale_of = std::max(scale_of, std::abs(want));
            nonzero += want != 0;
          }
        }
        CHECK(finite);
        CHECK(nonzero > 0);  // (not a test on zeros)
        if (one_writer)
          CHECK(worst == 0);
        else  // one unit in the last place of the dtype at the largest value
          CHECK(worst <= scale_of * (type == DType::bf16 ? 1.0 / 128 : 1.0 / 1024));
      }
    }
  }
}

// A ring rank's merges staged (gpu::AccumulateStep): the first step writes (O, LSE) without reading the
// accumulator, middle steps merge, the last merges and writes O in the dtype. Rank 0 of a zigzag ring of 3 (query
// chunks 0 and 5 of 6) meets the three ranks' keys in two orders: own keys first (at the last step, its chunk-0
// query tiles see nothing of rank 2's chunks 2 and 3, and must still be written) and own keys last (at the
// first step they see nothing). The accumulator, LSE and output start as NaN, so a first step that read them
// or a last step that skipped a row would show. Both forward kernels (wgmma where it runs, and mma.sync).
TEST_CASE("gpu::block_attention_forward_accumulate: first, middle and last steps equal one forward over all keys",
          "[gpu]") {
  if (gpu::device_count() == 0) RINGLAB_SKIP("GPU test skipped: " + gpu::unavailable_reason());
  auto c = shape(3001, 3, 1, 128);
  c.causal = true;
  const DType dtype = DType::bf16;
  std::vector<Case> steps;  // rank 0's queries against rank s's keys (same seed: the same whole tensors)
  for (int s = 0; s < 3; ++s)
    steps.push_back(ring_step_case("zigzag P=3 q0 k" + std::to_string(s), c, Layout::zigzag, 3, 0, s, 71, dtype));
  // Every key at once, for the reference: the three key blocks end to end with their positions.
  Problem all_keys = steps[0].problem;
  all_keys.name = "N=3001 zigzag P=3 rank 0 against all keys, causal, MQA, D=128";
  const i64 B = c.batch, n = all_keys.q.shape[1], H = c.heads, Hkv = c.kv_heads, D = c.head_dim;
  i64 m = 0;
  for (const Case& step : steps) m += step.problem.k.shape[1];
  all_keys.k = Tensor<double>({B, m, Hkv, D});
  all_keys.v = Tensor<double>({B, m, Hkv, D});
  all_keys.k_positions.runs.clear();
  i64 row = 0;
  for (const Case& step : steps) {
    const i64 rows = step.problem.k.shape[1], row_size = Hkv * D;
    for (i64 b = 0; b < B; ++b) {
      std::copy_n(step.problem.k.data.begin() + b * rows * row_size, rows * row_size,
                  all_keys.k.data.begin() + (b * m + row) * row_size);
      std::copy_n(step.problem.v.data.begin() + b * rows * row_size, rows * row_size,
                  all_keys.v.data.begin() + (b * m + row) * row_size);
    }
    for (const auto& run : step.problem.k_positions.runs) all_keys.k_positions.runs.push_back(run);
    row += rows;
  }
  const MaskPredicate mask{BandMask::from(c), std::nullopt};
  const Expected expected = expected_for_block(all_keys, mask, dtype);
  const std::vector<i64> q_shape{B, n, H, D};
  const DeviceArray q = to_device(steps[0].problem.q, dtype);
  for (const char* variant : {"auto", "mma"})
    for (const std::vector<int>& order : {std::vector<int>{0, 1, 2}, std::vector<int>{2, 1, 0}}) {
      ScopedEnvironment kernel("RINGLAB_FORWARD_VARIANT", variant);
      DeviceArray acc = poisoned(q_shape, DType::f32), out = poisoned(q_shape, dtype);
      gpu::DeviceBuffer lse(static_cast<std::size_t>(B * H * n) * sizeof(float));
      lse.fill(0xFF);
      std::vector<DeviceArray> keys, values;  // (alive until the synchronisation below)
      for (std::size_t i = 0; i < order.size(); ++i) {
        const Problem& block = steps[static_cast<std::size_t>(order[i])].problem;
        keys.push_back(to_device(block.k, dtype));
        values.push_back(to_device(block.v, dtype));
        const auto step = i == 0 ? gpu::AccumulateStep::first
                          : i + 1 == order.size() ? gpu::AccumulateStep::last
                                                  : gpu::AccumulateStep::middle;
        gpu::block_attention_forward_accumulate(q.tensor, block.q_positions, keys.back().tensor, values.back().tensor,
                                                block.k_positions, mask, static_cast<float>(block.scale), acc.tensor,
                                                lse.as<float>(), nullptr, step, out.tensor);
      }
      gpu::synchronize();
      Tensor<double> got_lse = to_host(lse, DType::f32, {B, H, n, 1});
      got_lse.shape = {B, H, n};
      const Tensor<double> got_out = to_host(out.buffer, dtype, q_shape);
      const double out_error = testing::scaled_error(got_out, expected.reference.out);
      const double lse_error = testing::scaled_error(got_lse, expected.reference.lse);
      const double out_tolerance = 2.0 * testing::scaled_error(expected.baseline->out, expected.reference.out);
      const double lse_tolerance =
          std::max(1e-5, 2.0 * testing::scaled_error(expected.baseline->lse, expected.reference.lse));
      const std::string line = all_keys.name + ", kernel " + variant + ", key order " + std::to_string(order[0]) +
                               std::to_string(order[1]) + std::to_string(order[2]) + ": O " +
                               std::to_string(out_error) + "/" + std::to_string(out_tolerance) + "  LSE " +
                               std::to_string(lse_error) + "/" + std::to_string(lse_tolerance);
      std::cout << line << std::endl;
      INFO(line);
      CHECK(out_error <= out_tolerance);
      CHECK(lse_error <= lse_tolerance);
    }
}
