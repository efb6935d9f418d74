// GPU ring tests (issue 6): gpu::VirtualRing — P virtual devices on one GPU over the shared RingSchedule —
// against the fp64 reference on the whole sequence. Skip with a message where there is no device.
//
// For each problem (N, D, H/Hkv, mask, dtype) the fp64 reference and the naive same-precision baseline are
// computed once (they do not depend on the ring) and every ring P = 2, 4, 8 × layout contiguous / zigzag /
// striped is compared with them. The ring's internal buffers and the gathered outputs are poisoned (NaN)
// first. Tolerance policy as tests/test_gpu.cpp (docs/semantics.md §11): O, dQ, dK, dV ≤ 2 × the naive
// same-precision baseline's error (our fp32 dQ/dK/dV rounded to the dtype as gpu::convert would), LSE ≤
// max(2 × baseline, 1e-5). The host ↔ device helpers are shared with tests/test_gpu.cpp (gpu_test_helpers.hpp).
// gpu::run_nccl_ring (a thread per GPU, NCCL send/recv) is checked the same way where there are ≥ 2 GPUs
// (tag [nccl]; run it with NCCL_NVLS_ENABLE=0).
#include <cmath>
#include <cstdio>
#include <future>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "catch_compat.hpp"
#include "gpu_test_helpers.hpp"
#include "helpers.hpp"
#include "ringlab/attention.hpp"
#include "ringlab/errors.hpp"
#include "ringlab/gpu/device.hpp"
#include "ringlab/gpu/memory.hpp"
#include "ringlab/gpu/nccl_ring.hpp"
#include "ringlab/gpu/ring.hpp"

using namespace ringlab;

namespace {

using gpu::DType;
using i64 = std::int64_t;

using testing::DeviceArray;
using testing::poisoned;
using testing::rounded;
using testing::to_device;
using testing::to_host;
using Outputs = testing::GpuOutputs;

struct Expected {
  Outputs reference;
  Outputs baseline;
};

struct Inputs {
  Tensor<double> q, k, v, dout;  // rounded to the dtype
};

float round_bf16(float x) { return gpu::round_to(DType::bf16, x); }
float round_f16(float x) { return gpu::round_to(DType::f16, x); }

// The whole-sequence fp64 reference and the naive same-precision baseline (dense, fp32 arithmetic with P
// and dS rounded to the dtype, outputs rounded), as expected_for_config in tests/test_gpu.cpp.
Expected expected_for(AttentionConfig config, const Inputs& in, DType dtype) {
  config.q_replicated = false;  // (the same function; the reference computes it on one device)
  Expected expected;
  const AttentionOptions<double> exact{Algorithm::blockwise, {}, nullptr};
  auto forward = attention_forward<double>(config, in.q, in.k, in.v, exact);
  auto gradients = attention_backward<double>(config, in.q, in.k, in.v, forward.out, forward.lse, in.dout, exact);
  expected.reference = {forward.out, forward.lse, gradients.dq, gradients.dk, gradients.dv};
  AttentionOptions<float> naive{Algorithm::dense, {}, dtype == DType::bf16 ? round_bf16 : round_f16};
  const auto q = tensor_cast<float>(in.q), k = tensor_cast<float>(in.k), v = tensor_cast<float>(in.v);
  const auto dout = tensor_cast<float>(in.dout);
  auto base = attention_forward<float>(config, q, k, v, naive);
  for (float& x : base.out.data) x = gpu::round_to(dtype, x);
  auto base_gradients = attention_backward<float>(config, q, k, v, base.out, base.lse, dout, naive);
  expected.baseline = Outputs{rounded(tensor_cast<double>(base.out), dtype), tensor_cast<double>(base.lse),
                              rounded(tensor_cast<double>(base_gradients.dq), dtype),
                              rounded(tensor_cast<double>(base_gradients.dk), dtype),
                              rounded(tensor_cast<double>(base_gradients.dv), dtype)};
  return expected;
}

// One ring: scatter, forward, backward, gather into poisoned whole tensors. The gradients come back rounded
// to the dtype (as the baselines are) unless `as_gathered`.
Outputs run_ring(AttentionConfig config, int ring_size, Layout layout, const Inputs& in, DType dtype,
                 gpu::GradientPrecision gradients = gpu::GradientPrecision::input, bool as_gathered = false,
                 int repeat = 1, gpu::RingHops hops = gpu::RingHops::automatic) {
  config.ring = ring_size;
  config.layout = layout;
  const std::vector<i64> q_shape = in.q.shape, k_shape = in.k.shape;
  const std::vector<i64> lse_shape{q_shape[0], q_shape[2], q_shape[1], 1};
  DeviceArray q = to_device(in.q, dtype), k = to_device(in.k, dtype), v = to_device(in.v, dtype);
  DeviceArray dout = to_device(in.dout, dtype);
  DeviceArray out = poisoned(q_shape, dtype), lse = poisoned(lse_shape, DType::f32);
  DeviceArray dq = poisoned(q_shape, DType::f32), dk = poisoned(k_shape, DType::f32), dv = poisoned(k_shape, DType::f32);
  gpu::VirtualRing ring(config, dtype, gradients, hops);
  ring.poison();
  ring.load(q.tensor, k.tensor, v.tensor);
  gpu::RingPassOptions passes;
  passes.repeat = repeat;
  ring.forward(passes);
  ring.poison_in_transit();  // the backward's own hops must bring every chunk (the forward left them in place)
  ring.load_output_gradient(dout.tensor);
  ring.backward(passes);
  ring.gather_output(out.tensor, lse.buffer.as<float>());
  ring.gather_gradients(dq.tensor, dk.tensor, dv.tensor);
  gpu::synchronize();
  Outputs result;
  result.out = to_host(out.buffer, dtype, q_shape);
  result.lse = to_host(lse.buffer, DType::f32, lse_shape);
  result.lse.shape = {lse_shape[0], lse_shape[1], lse_shape[2]};
  result.dq = to_host(dq.buffer, DType::f32, q_shape);
  result.dk = to_host(dk.buffer, DType::f32, k_shape);
  result.dv = to_host(dv.buffer, DType::f32, k_shape);
  if (!as_gathered)
    for (Tensor<double>* t : {&result.dq, &result.dk, &result.dv}) *t = rounded(*t, dtype);
  return result;
}

bool compare(const std::string& name, DType dtype, const Outputs& got, const Expected& expected) {
  const char* tensors[] = {"O", "LSE", "dQ", "dK", "dV"};
  const Tensor<double>* got_of[] = {&got.out, &got.lse, &got.dq, &got.dk, &got.dv};
  const Tensor<double>* ref_of[] = {&expected.reference.out, &expected.reference.lse, &expected.reference.dq,
                                    &expected.reference.dk, &expected.reference.dv};
  const Tensor<double>* base_of[] = {&expected.baseline.out, &expected.baseline.lse, &expected.baseline.dq,
                                     &expected.baseline.dk, &expected.baseline.dv};
  bool passed = true;
  std::ostringstream line;
  line << name << " [" << gpu::to_string(dtype) << "]";
  for (int t = 0; t < 5; ++t) {
    const double error = testing::scaled_error(*got_of[t], *ref_of[t]);
    double tolerance = 2.0 * testing::scaled_error(*base_of[t], *ref_of[t]);
    if (t == 1) tolerance = std::max(tolerance, 1e-5);
    const bool ok = error <= tolerance;  // NaN gives false
    passed = passed && ok;
    char text[96];
    std::snprintf(text, sizeof text, "  %s %.2e/%.2e%s", tensors[t], error, tolerance, ok ? "" : " FAIL");
    line << text;
  }
  std::cout << line.str() << std::endl;
  INFO(line.str());
  CHECK(passed);
  return passed;
}

AttentionConfig shape(i64 batch, i64 n, i64 heads, i64 kv_heads, i64 head_dim) {
  AttentionConfig config;
  config.batch = batch;
  config.seq = config.kv_seq = n;
  config.heads = heads;
  config.kv_heads = kv_heads;
  config.head_dim = head_dim;
  return config;
}

// The ring problems (N, D, H/Hkv, mask, dtype): every ring layout and size runs each of them.
std::vector<std::pair<AttentionConfig, DType>> ring_problems() {
  std::vector<std::pair<AttentionConfig, DType>> specs;
  auto c = shape(1, 1024, 4, 2, 64);  // GQA, causal and full
  c.causal = true;
  specs.push_back({c, DType::bf16});
  c.causal = false;
  specs.push_back({c, DType::bf16});
  c = shape(1, 4099, 2, 1, 128);  // MQA, an awkward N
  c.causal = true;
  specs.push_back({c, DType::bf16});
  c = shape(1, 4099, 2, 2, 128);
  specs.push_back({c, DType::bf16});
  c = shape(2, 1024, 2, 2, 128);  // a window, fp16, B = 2
  c.causal = true;
  c.window_left = 100;
  specs.push_back({c, DType::f16});
  // LongNet on the ring: two patterns, each head its own offsets (paper rule), ⊕-combined (lse).
  c = shape(1, 2048, 4, 2, 64);
  c.causal = true;
  c.dilation = parse_dilation("256:1,512:2");
  specs.push_back({c, DType::bf16});
  c = shape(1, 2048, 3, 3, 128);  // odd head count, non-causal, rates 2 and 4
  c.dilation = parse_dilation("512:2,1024:4");
  specs.push_back({c, DType::bf16});
  // The PyTorch packages' combination: head groups, each its pattern, outputs divided by the pattern count.
  c = shape(1, 2048, 5, 5, 128);
  c.causal = true;
  c.dilation = parse_dilation("256:1,512:2,1024:4");
  c.offset_rule = OffsetRule::group;
  c.combine = Combine::group_mean;
  specs.push_back({c, DType::bf16});
  // Segments inside the chunks at P = 2 and 4 (contiguous): a local_only ring, one kernel per rank writing O.
  c = shape(1, 2048, 3, 3, 64);
  c.dilation = parse_dilation("128:1,256:2,512:4");
  c.offset_rule = OffsetRule::group;
  c.combine = Combine::group_mean;
  specs.push_back({c, DType::bf16});
  return specs;
}

std::string label(const AttentionConfig& c) {
  std::ostringstream text;
  text << "B=" << c.batch << " N=" << c.seq << " D=" << c.head_dim << " H=" << c.heads << " Hkv=" << c.kv_heads
       << (c.causal ? " causal" : " full");
  if (c.window_left >= 0 || c.window_right >= 0) text << " window(" << c.window_left << "," << c.window_right << ")";
  if (c.dilated()) text << " dilation " << format_dilation(c.dilation);
  if (c.combine == Combine::group_mean) text << " group_mean";
  if (c.q_replicated) text << " q_replicated";
  return text.str();
}

}  // namespace

TEST_CASE("gpu::head_mask_sets: one kernel mask set per LongNet pattern; gpu::output_scale: 1/k under group_mean",
          "[gpu][ring]") {
  auto config = shape(1, 2048, 4, 4, 64);
  CHECK(gpu::head_mask_sets(config).size() == 1);
  CHECK(gpu::head_mask_sets(config).front().dilation.empty());
  CHECK(gpu::output_scale(config) == 1.0);
  config.dilation = parse_dilation("256:1,512:2");
  const auto sets = gpu::head_mask_sets(config);
  REQUIRE(sets.size() == 2);
  REQUIRE(sets[1].dilation.size() == 4);
  for (int h = 0; h < 4; ++h) CHECK(sets[1].dilation[h].offset == h % 2);  // paper rule: o = h mod r
  config.offset_rule = OffsetRule::group;
  config.combine = Combine::group_sum;
  CHECK(gpu::output_scale(config) == 1.0);
  config.combine = Combine::group_mean;
  CHECK(gpu::output_scale(config) == 0.5);  // two patterns
  CHECK(gpu::head_mask_sets(config).size() == 1);  // group rule: each head runs its group's pattern only
}

TEST_CASE("the ring problems include local_only rings (segments inside the chunks)", "[gpu][ring]") {
  auto local = ring_problems().back().first;
  local.layout = Layout::contiguous;
  for (int ring : {2, 4, 8}) {
    local.ring = ring;
    CHECK(make_ring_schedule(local).local_only == (ring < 8));  // P = 8: chunks of 256 split the 512-segments
  }
}

TEST_CASE("gpu::VirtualRing rejects what it does not support, before touching the GPU", "[gpu][ring]") {
  auto config = shape(1, 64, 2, 2, 32);  // the tensor-core kernels take D = 64 or 128
  config.ring = 2;
  std::string message;
  try {
    gpu::VirtualRing ring(config, DType::bf16);
  } catch (const ConfigError& error) {
    message = error.what();
  }
  CHECK(message.find("head_dim = 32") != std::string::npos);
}

TEST_CASE("gpu::VirtualRing refuses hops by the kernels where the kernels cannot send, naming the option",
          "[gpu][ring]") {
  auto gqa = shape(1, 1024, 4, 2, 64);  // Hkv < H: a key row has several writers
  gqa.ring = 2;
  std::string message;
  try {
    gpu::VirtualRing ring(gqa, DType::bf16, gpu::GradientPrecision::input, gpu::RingHops::kernels);
  } catch (const ConfigError& error) {
    message = error.what();
  }
  INFO(message);
  CHECK(message.find("hops") != std::string::npos);
  CHECK(message.find("Hkv = H") != std::string::npos);
}

TEST_CASE("gpu::VirtualRing equals the fp64 reference: P = 2, 4, 8, every layout, causal and not, GQA",
          "[gpu][ring]") {
  if (gpu::device_count() == 0) RINGLAB_SKIP("GPU test skipped: " + gpu::unavailable_reason());
  std::cout << "device: " << gpu::describe_device() << "\n"
            << "ring case [dtype]  tensor scaled-error/tolerance ...\n";
  struct Problem {
    AttentionConfig config;
    DType dtype;
    Inputs inputs;
    std::future<Expected> expected;
  };
  const auto specs = ring_problems();
  std::vector<Problem> problems;
  std::uint64_t seed = 600;
  for (const auto& [config, dtype] : specs) {
    config.validate();
    auto raw = testing::random_inputs(config, ++seed);
    Inputs inputs{rounded(raw.q, dtype), rounded(raw.k, dtype), rounded(raw.v, dtype), rounded(raw.dout, dtype)};
    auto future = std::async(std::launch::async,
                             [config = config, inputs, dtype = dtype] { return expected_for(config, inputs, dtype); });
    problems.push_back({config, dtype, std::move(inputs), std::move(future)});
  }
  for (Problem& problem : problems) {
    const Expected expected = problem.expected.get();
    for (int ring_size : {2, 4, 8})
      for (Layout layout : {Layout::contiguous, Layout::zigzag, Layout::striped}) {
        const Outputs got = run_ring(problem.config, ring_size, layout, problem.inputs, problem.dtype);
        compare("P=" + std::to_string(ring_size) + " " + to_string(layout) + " " + label(problem.config),
                problem.dtype, got, expected);
      }
  }
}

TEST_CASE("gpu::VirtualRing with q_replicated (every rank holds all queries) equals the fp64 reference",
          "[gpu][ring]") {
  if (gpu::device_count() == 0) RINGLAB_SKIP("GPU test skipped: " + gpu::unavailable_reason());
  // The seed documents' variant (docs/semantics.md §7.5): K/V rotate, dK/dV stay home. GQA causal (staged merges),
  // MQA non-causal at an awkward N, and LongNet (dilated multi-step merges). Device 0's O, LSE and dQ are gathered.
  auto gqa = shape(1, 1024, 4, 2, 64);
  gqa.causal = true;
  auto mqa = shape(1, 1025, 3, 1, 128);
  auto longnet = shape(1, 2048, 4, 2, 64);
  longnet.causal = true;
  longnet.dilation = parse_dilation("256:1,512:2");
  std::uint64_t seed = 680;
  for (AttentionConfig config : {gqa, mqa, longnet}) {
    config.q_replicated = true;
    const DType dtype = DType::bf16;
    auto raw = testing::random_inputs(config, ++seed);
    const Inputs in{rounded(raw.q, dtype), rounded(raw.k, dtype), rounded(raw.v, dtype), rounded(raw.dout, dtype)};
    const Expected expected = expected_for(config, in, dtype);
    for (int ring_size : {2, 3, 4})
      for (Layout layout : {Layout::contiguous, Layout::zigzag, Layout::striped})
        compare("P=" + std::to_string(ring_size) + " " + to_string(layout) + " " + label(config), dtype,
                run_ring(config, ring_size, layout, in, dtype), expected);
  }
}

TEST_CASE("gpu::VirtualRing returns dK, dV rounded to the dtype before the last hop, or in fp32", "[gpu][ring]") {
  if (gpu::device_count() == 0) RINGLAB_SKIP("GPU test skipped: " + gpu::unavailable_reason());
  // H = Hkv: each key row's dK, dV have one writer per kernel, so both precisions add the same fp32 numbers in
  // the same order and the rounded return must equal the fp32 return rounded. P = 3: the odd ring stages in K/V buffer 1
  // and brings the gradients home into accumulator 1. P = 4: the steps' kernels add into the travelling dK/dV
  // themselves (RingProblem::gradients_added_by_kernel). The second problem multiplies by 1/k (group_mean).
  auto causal = shape(1, 1000, 3, 3, 64);
  causal.causal = true;
  auto grouped = shape(1, 2048, 5, 5, 128);
  grouped.causal = true;
  grouped.dilation = parse_dilation("256:1,512:2,1024:4");
  grouped.offset_rule = OffsetRule::group;
  grouped.combine = Combine::group_mean;
  std::uint64_t seed = 650;
  for (const auto& [config, dtype] : {std::pair{causal, DType::bf16}, std::pair{grouped, DType::f16}}) {
    auto raw = testing::random_inputs(config, ++seed);
    const Inputs in{rounded(raw.q, dtype), rounded(raw.k, dtype), rounded(raw.v, dtype), rounded(raw.dout, dtype)};
    const Expected expected = expected_for(config, in, dtype);
    for (int ring_size : {2, 3, 4}) {
      const Outputs input = run_ring(config, ring_size, Layout::zigzag, in, dtype, gpu::GradientPrecision::input, true);
      const Outputs fp32 = run_ring(config, ring_size, Layout::zigzag, in, dtype, gpu::GradientPrecision::fp32, true);
      const std::string name = "P=" + std::to_string(ring_size) + " zigzag " + label(config);
      compare(name + " (dK, dV in the dtype)", dtype, input, expected);
      Outputs fp32_rounded = fp32;
      for (Tensor<double>* t : {&fp32_rounded.dq, &fp32_rounded.dk, &fp32_rounded.dv}) *t = rounded(*t, dtype);
      compare(name + " (dK, dV in fp32)", dtype, fp32_rounded, expected);
      i64 unrepresentable = 0, mismatched = 0;
      for (std::size_t i = 0; i < fp32.dk.data.size(); ++i) {
        const auto k32 = static_cast<float>(fp32.dk.data[i]), v32 = static_cast<float>(fp32.dv.data[i]);
        unrepresentable += (gpu::round_to(dtype, k32) != k32) + (gpu::round_to(dtype, v32) != v32);
        mismatched += (static_cast<float>(input.dk.data[i]) != gpu::round_to(dtype, k32)) +
                      (static_cast<float>(input.dv.data[i]) != gpu::round_to(dtype, v32));
      }
      INFO(name << ": fp32 values not representable in " << gpu::to_string(dtype) << ": " << unrepresentable
                << "; rounded return ≠ round(fp32 return): " << mismatched);
      CHECK(unrepresentable > static_cast<i64>(fp32.dk.data.size()));  // most of 2 × size: really fp32
      CHECK(mismatched == 0);
    }
  }
}

TEST_CASE("gpu::VirtualRing: runs and repeated passes give the same results", "[gpu][ring]") {
  if (gpu::device_count() == 0) RINGLAB_SKIP("GPU test skipped: " + gpu::unavailable_reason());
  // H = Hkv and no dilation: O, LSE and dK, dV are summed in a fixed order, so neither a second ring nor a pass
  // run twice over the same buffers may change a bit of them, however the copy streams and the devices' streams
  // interleave. dQ is summed by atomics across key tiles (its order varies from run to run): it is held to the
  // tolerance policy.
  auto causal = shape(1, 1025, 3, 3, 128);
  causal.causal = true;
  const DType dtype = DType::bf16;
  auto raw = testing::random_inputs(causal, 660);
  const Inputs in{rounded(raw.q, dtype), rounded(raw.k, dtype), rounded(raw.v, dtype), rounded(raw.dout, dtype)};
  const Expected expected = expected_for(causal, in, dtype);
  const auto input = gpu::GradientPrecision::input;
  // P = 6 contiguous causal: the devices' work differs sixfold, so a device runs ahead of its neighbour and the
  // copy streams' ordering is exercised (a copy out of a device must wait for the copy into it).
  for (auto [ring_size, layout] : {std::pair{3, Layout::zigzag}, std::pair{6, Layout::contiguous}}) {
    const std::string name = "P=" + std::to_string(ring_size) + " " + to_string(layout) + " " + label(causal);
    const Outputs first = run_ring(causal, ring_size, layout, in, dtype);
    compare(name, dtype, first, expected);
    const Outputs again = run_ring(causal, ring_size, layout, in, dtype);
    compare(name + " (again)", dtype, again, expected);
    const Outputs twice = run_ring(causal, ring_size, layout, in, dtype, input, false, 2);
    compare(name + " (two passes)", dtype, twice, expected);
    const char* tensors[] = {"O", "LSE", "dK", "dV"};
    const Tensor<double>* a[] = {&first.out, &first.lse, &first.dk, &first.dv};
    const Tensor<double>* b[] = {&again.out, &again.lse, &again.dk, &again.dv};
    const Tensor<double>* c[] = {&twice.out, &twice.lse, &twice.dk, &twice.dv};
    for (int t = 0; t < 4; ++t) {
      i64 differ_again = 0, differ_twice = 0;
      for (std::size_t i = 0; i < a[t]->data.size(); ++i) {
        differ_again += a[t]->data[i] != b[t]->data[i];  // (poison is NaN: unwritten values differ too)
        differ_twice += a[t]->data[i] != c[t]->data[i];
      }
      INFO(name << ", " << tensors[t] << ": values that differ from the first ring's: another ring " << differ_again
                << ", two passes " << differ_twice << " of " << a[t]->data.size());
      CHECK(differ_again == 0);
      CHECK(differ_twice == 0);
    }
  }
}

TEST_CASE("gpu::VirtualRing: hops by the kernels give the bits of hops by copies", "[gpu][ring]") {
  if (gpu::device_count() == 0) RINGLAB_SKIP("GPU test skipped: " + gpu::unavailable_reason());
  // RingHops::kernels: each step's attention kernel copies the held K/V on and passes the received dK/dV on with its
  // share added (gpu::KernelSends); RingHops::copies: the same hops by cudaMemcpyAsync, the share added by the
  // kernel (P ≥ 4) or an add kernel. Both add the same two fp32 numbers per element per step, so O, LSE, dK and dV
  // must agree to the bit (dQ, summed by atomics, to the tolerance). Skipped steps (causal contiguous, the window)
  // pass the chunk on by copies in both. Where the Hopper kernels cannot run there is nothing to compare.
  auto causal = shape(1, 1025, 3, 3, 128);
  causal.causal = true;
  auto full = shape(2, 97 * 8, 2, 2, 64);  // B = 2, 97 rows per device at P = 8
  auto window = shape(1, 1536, 5, 5, 64);  // most steps skipped at P = 6
  window.causal = true;
  window.window_left = 200;
  std::uint64_t seed = 690;
  struct Case {
    AttentionConfig config;
    DType dtype;
    bool fp32_twice;  // dK/dV home in fp32 (the hop home from the other accumulator), two passes back to back
  };
  for (const auto& [config, dtype, fp32_twice] :
       {Case{causal, DType::bf16, true}, Case{full, DType::f16, false}, Case{window, DType::bf16, false}}) {
    if (!gpu::kernel_sends_available(dtype, config.head_dim, config.heads, config.kv_heads, gpu::HeadMasks{}))
      RINGLAB_SKIP("hops by the kernels need the Hopper kernels (sm_90a): " + gpu::describe_device());
    auto raw = testing::random_inputs(config, ++seed);
    const Inputs in{rounded(raw.q, dtype), rounded(raw.k, dtype), rounded(raw.v, dtype), rounded(raw.dout, dtype)};
    const Expected expected = expected_for(config, in, dtype);
    for (int ring_size : {2, 3, 5, 6, 8})
      for (Layout layout : {Layout::contiguous, Layout::zigzag, Layout::striped}) {
        AttentionConfig ring_config = config;
        ring_config.ring = ring_size;
        ring_config.layout = layout;
        try {
          ring_config.validate();
        } catch (const ConfigError&) {
          continue;  // (zigzag needs 2P chunks of the sequence, and so on)
        }
        const std::string name = "P=" + std::to_string(ring_size) + " " + to_string(layout) + " " + label(config);
        const auto gradients = fp32_twice ? gpu::GradientPrecision::fp32 : gpu::GradientPrecision::input;
        const int passes = fp32_twice ? 2 : 1;
        const Outputs copies =
            run_ring(config, ring_size, layout, in, dtype, gradients, true, passes, gpu::RingHops::copies);
        const Outputs kernels =
            run_ring(config, ring_size, layout, in, dtype, gradients, true, passes, gpu::RingHops::kernels);
        Outputs kernels_rounded = kernels;
        for (Tensor<double>* t : {&kernels_rounded.dq, &kernels_rounded.dk, &kernels_rounded.dv}) *t = rounded(*t, dtype);
        compare(name + " (hops by kernels)", dtype, kernels_rounded, expected);
        const char* tensors[] = {"O", "LSE", "dK", "dV"};
        const Tensor<double>* a[] = {&copies.out, &copies.lse, &copies.dk, &copies.dv};
        const Tensor<double>* b[] = {&kernels.out, &kernels.lse, &kernels.dk, &kernels.dv};
        for (int t = 0; t < 4; ++t) {
          i64 differ = 0;
          for (std::size_t i = 0; i < a[t]->data.size(); ++i) differ += a[t]->data[i] != b[t]->data[i];  // (NaN ≠ NaN)
          INFO(name << ", " << tensors[t] << ": values that differ between the hops by copies and by kernels: " << differ
                    << " of " << a[t]->data.size());
          CHECK(differ == 0);
        }
      }
  }
}

namespace {

std::vector<unsigned char> encoded(const Tensor<double>& t, DType dtype) {
  std::vector<float> values(t.data.begin(), t.data.end());
  std::vector<unsigned char> bytes(values.size() * gpu::size_of(dtype));
  gpu::encode(dtype, values, bytes.data());
  return bytes;
}

Tensor<double> from_floats(const std::vector<float>& values, std::vector<i64> shape) {
  Tensor<double> t(std::move(shape));
  t.data.assign(values.begin(), values.end());
  return t;
}

}  // namespace

// Both transports of the thread-per-GPU ring: NCCL's send/recv, and the copy engines (NcclOptions::
// copy_engine_transfers: cudaMemcpyPeerAsync, ranks meeting on the host each round).
TEST_CASE("gpu::run_nccl_ring (a thread per GPU) equals the fp64 reference", "[gpu][ring][nccl]") {
  if (!gpu::nccl_ring_available()) RINGLAB_SKIP("NCCL ring test skipped: built without NCCL");
  if (gpu::device_count() < 2)
    RINGLAB_SKIP("NCCL ring test skipped: needs 2 GPUs (" + std::to_string(gpu::device_count()) + " here)");
  std::cout << "NCCL ring on " << gpu::device_count() << " GPUs: " << gpu::describe_device(0) << "\n";
  // The first three (GQA causal and full, MQA at N = 4099), dilation (lse), dilation (group_mean), and the first
  // again with q_replicated.
  const auto all = ring_problems();
  std::vector<std::pair<AttentionConfig, DType>> specs{all[0], all[1], all[2], all[5], all[7], all[0]};
  specs.back().first.q_replicated = true;  // the seed documents' variant: every rank holds all queries
  std::vector<int> rings{2};
  if (gpu::device_count() >= 4) rings.push_back(4);
  if (gpu::device_count() >= 8) rings.push_back(8);
  std::uint64_t seed = 700;
  for (const auto& [config, dtype] : specs) {
    auto raw = testing::random_inputs(config, ++seed);
    const Inputs in{rounded(raw.q, dtype), rounded(raw.k, dtype), rounded(raw.v, dtype), rounded(raw.dout, dtype)};
    const Expected expected = expected_for(config, in, dtype);
    const auto q = encoded(in.q, dtype), k = encoded(in.k, dtype), v = encoded(in.v, dtype), dout = encoded(in.dout, dtype);
    for (int ring_size : rings)
      for (Layout layout : {Layout::contiguous, Layout::zigzag, Layout::striped})
        for (const bool copy_engines : {false, true}) {
          AttentionConfig ring_config = config;
          ring_config.ring = ring_size;
          ring_config.layout = layout;
          gpu::NcclOptions options;
          options.copy_engine_transfers = copy_engines;
          const auto result = gpu::run_nccl_ring(ring_config, dtype, {q.data(), k.data(), v.data(), dout.data()},
                                                 gpu::GradientPrecision::input, options);
          Outputs got;
          std::vector<float> out_values(in.q.data.size());
          gpu::decode(dtype, result.out.data(), out_values);
          got.out = from_floats(out_values, in.q.shape);
          got.lse = from_floats(result.lse, {config.batch, config.heads, config.seq});
          got.dq = rounded(from_floats(result.dq, in.q.shape), dtype);
          got.dk = rounded(from_floats(result.dk, in.k.shape), dtype);
          got.dv = rounded(from_floats(result.dv, in.k.shape), dtype);
          compare(std::string(copy_engines ? "copy engines" : "NCCL") + " P=" + std::to_string(ring_size) + " " +
                      to_string(layout) + " " + label(config),
                  dtype, got, expected);
        }
  }
}

// The copy-engine ranks meet on the host once per round of hops, numbered over the communicators' life: a second
// ring of another size on the same communicators must not read the first ring's round (it once did: rank 0 read
// rank 1's 8K-token hop while expecting a 16K one). Two rings in turn, a thread per GPU; each ring's output must
// equal, bit for bit, what the same ring gives with NCCL's send/recv (same kernels, same bytes moved).
TEST_CASE("gpu::NcclRing with copy engines: consecutive rings on the same communicators", "[gpu][ring][nccl]") {
  if (!gpu::nccl_ring_available()) RINGLAB_SKIP("NCCL ring test skipped: built without NCCL");
  if (gpu::device_count() < 2)
    RINGLAB_SKIP("copy-engine ring test skipped: needs 2 GPUs (" + std::to_string(gpu::device_count()) + " here)");
  const DType dtype = DType::bf16;
  std::vector<AttentionConfig> configs;
  for (const i64 n : {1024, 2050}) {
    AttentionConfig config;
    config.seq = config.kv_seq = n;
    config.heads = 4;
    config.kv_heads = 2;
    config.head_dim = 64;
    config.causal = true;
    config.layout = Layout::zigzag;
    config.ring = 2;
    config.validate();
    configs.push_back(config);
  }
  std::vector<std::vector<unsigned char>> q, k, v;
  std::vector<std::vector<unsigned char>> expected_out;
  std::uint64_t seed = 900;
  for (const AttentionConfig& config : configs) {
    auto raw = testing::random_inputs(config, ++seed);
    q.push_back(encoded(rounded(raw.q, dtype), dtype));
    k.push_back(encoded(rounded(raw.k, dtype), dtype));
    v.push_back(encoded(rounded(raw.v, dtype), dtype));
    const auto dout = encoded(rounded(raw.dout, dtype), dtype);
    expected_out.push_back(gpu::run_nccl_ring(config, dtype, {q.back().data(), k.back().data(), v.back().data(),
                                                              dout.data()}).out);
  }
  gpu::NcclOptions options;
  options.copy_engine_transfers = true;
  auto comms = gpu::NcclCommunicator::for_local_gpus(2, options);
  std::vector<std::vector<unsigned char>> got_out;
  for (const auto& out : expected_out) got_out.emplace_back(out.size(), 0);  // each rank fills its own rows
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      try {
        for (std::size_t c = 0; c < configs.size(); ++c) {
          const AttentionConfig& config = configs[c];
          const i64 B = config.batch, N = config.seq, H = config.heads, Hkv = config.kv_heads, D = config.head_dim;
          gpu::NcclRing ring(config, dtype, comms[static_cast<std::size_t>(r)]);  // makes GPU r current
          gpu::DeviceBuffer dq(q[c].size()), dk(k[c].size()), dv(v[c].size());
          dq.upload(q[c].data(), q[c].size());
          dk.upload(k[c].data(), k[c].size());
          dv.upload(v[c].data(), v[c].size());
          ring.poison();
          ring.load_whole({dq.data(), dtype, B, N, H, D}, {dk.data(), dtype, B, N, Hkv, D}, {dv.data(), dtype, B, N, Hkv, D});
          ring.forward();
          gpu::DeviceBuffer out(q[c].size()), lse(static_cast<std::size_t>(B * H * N) * 4);
          ring.gather_output({out.data(), dtype, B, N, H, D}, lse.as<float>());
          std::vector<unsigned char> host(out.bytes());
          out.download(host.data(), host.size());
          const auto rows = ring.positions().expand();
          const std::size_t row_bytes = static_cast<std::size_t>(H * D) * gpu::size_of(dtype);
          for (i64 b = 0; b < B; ++b)
            for (const i64 t : rows) {
              const std::size_t at = static_cast<std::size_t>(b * N + t) * row_bytes;
              std::copy_n(host.begin() + static_cast<std::ptrdiff_t>(at), row_bytes,
                          got_out[c].begin() + static_cast<std::ptrdiff_t>(at));
            }
        }
      } catch (const std::exception& error) {
        errors[static_cast<std::size_t>(r)] = error.what();
        for (auto& comm : comms) comm.request_abort();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < 2; ++r) {
    INFO("rank " << r << ": " << errors[static_cast<std::size_t>(r)]);
    REQUIRE(errors[static_cast<std::size_t>(r)].empty());
  }
  for (std::size_t c = 0; c < configs.size(); ++c) {
    INFO("N = " << configs[c].seq);
    CHECK(got_out[c] == expected_out[c]);
  }
}
