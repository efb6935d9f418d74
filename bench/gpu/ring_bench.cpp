// Virtual ring on one GPU (gpu::VirtualRing, P virtual devices) against the single-GPU kernel on the same
// total problem (issue 6's target: ≤ 10% slower when N/P ≥ 4096). Prints a markdown table.
//
//   ringlab_gpu_ring_bench [--commit TEXT] [--heads H] [--rounds R] [--iters I] [--per-device N1,N2,...]
//                          [--rings P1,P2,...] [--hops copies,kernels] [--contention] [--soak SECONDS]
//
// Dense: gpu::block_attention_forward on the whole sequence, then output_gradient_dot + block_attention_backward
// writing what the ring returns (dQ fp32, dK and dV in the dtype: GradientWrite::overwrite). Ring:
// VirtualRing::forward(), then VirtualRing::backward() (which includes its own δ). Both bf16, D = 128, B = 1,
// H = Hkv, inputs uniform in [−1, 1].
//
// --hops: how the ring's chunks move between the virtual devices (gpu::RingHops), a row for each: copies
// (cudaMemcpyAsync on a copy stream per link) or kernels (each step's attention kernel copies what it holds on);
// default: both.
//
// Timing: the H100s run at their power cap, and the same kernel's rate drifts by up to 20 % over seconds
// (bench/results/gpu-persistent-2026-11-23-H100.md). Timing the dense kernel once and the ring afterwards put
// that drift into the ratio. So each row runs R rounds; a round times the dense pass, the ring and the ring
// without copies back to back (each the median of I calls, CUDA events), and the row reports the median over
// rounds of each time and of each round's ratio, with the ratios' lowest and highest round.
//
// --soak S: after each row, the dense forward, the ring forward and the ring forward without copies each run
// back to back for S seconds; one CSV line per phase goes to stderr (soak,P,layout,mask,N/P,phase,first and
// last time as nvidia-smi prints them (local time),passes,mean ms), so that clocks and power sampled meanwhile
// (nvidia-smi --query-gpu=timestamp,... -lms 100) can be told apart by phase (bench/gpu/soak_clocks.py).
//
// --contention prints, instead of the main table, one that asks whether the ring's copies slow the kernels
// beside them (rather than delay them through the ring's waits): the dense forward alone, and with the bytes a
// ring forward moves (P·(P − 1) K/V chunks, on P streams of device-to-device copies, all queued at the kernel's
// start) beside it.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "ringlab/gpu/block_attention.hpp"
#include "ringlab/gpu/compare.hpp"
#include "ringlab/gpu/device.hpp"
#include "ringlab/gpu/memory.hpp"
#include "ringlab/gpu/ring.hpp"
#include "ringlab/positions.hpp"
#include "ringlab/schedule.hpp"

using namespace ringlab;
using i64 = std::int64_t;

namespace {

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

// Median milliseconds of `iters` runs of f, timed with events on `stream`; `host_ms`, when given, receives the
// median time the host spent in f itself (enqueueing it): a pass whose enqueueing takes as long as its GPU work
// is bound by the host, not the GPU.
double time_ms(cudaStream_t stream, int iters, const std::function<void()>& f, double* host_ms = nullptr) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  std::vector<double> times, host_times;
  for (int i = 0; i < iters; ++i) {
    check(cudaEventRecord(start, stream), "record");
    const auto host_start = std::chrono::steady_clock::now();
    f();
    host_times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - host_start).count());
    check(cudaEventRecord(stop, stream), "record");
    check(cudaEventSynchronize(stop), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (host_ms) *host_ms = median(host_times);
  return median(times);
}

// Each pass of one table row (dense, ring, ring without copies), timed in `rounds` interleaved rounds.
struct RoundTimes {
  std::vector<double> dense, ring, ring_alone;
  std::vector<double> ring_host;  // the host's time enqueueing the ring pass (with copies)
};

RoundTimes time_rounds(int rounds, int iters, const std::function<void()>& dense, cudaStream_t dense_stream,
                       const std::function<void(const gpu::RingPassOptions&)>& ring, cudaStream_t ring_stream) {
  gpu::RingPassOptions no_copies;
  no_copies.transfer = false;
  dense();  // warm-up: first launches, descriptors, caches
  ring({});
  ring(no_copies);
  check(cudaDeviceSynchronize(), "warm-up");
  RoundTimes times;
  for (int round = 0; round < rounds; ++round) {
    times.dense.push_back(time_ms(dense_stream, iters, dense));
    double host = 0;
    times.ring.push_back(time_ms(ring_stream, iters, [&] { ring({}); }, &host));
    times.ring_host.push_back(host);
    times.ring_alone.push_back(time_ms(ring_stream, iters, [&] { ring(no_copies); }));
  }
  return times;
}

// "median (lowest–highest)" of the rounds' ratios a[i] / b[i].
struct Ratio {
  double median, low, high;
};
Ratio ratio(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r;
  for (std::size_t i = 0; i < a.size(); ++i) r.push_back(a[i] / b[i]);
  return {median(r), *std::min_element(r.begin(), r.end()), *std::max_element(r.begin(), r.end())};
}

std::vector<i64> parse_list(const std::string& text) {
  std::vector<i64> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) values.push_back(std::stoll(item));
  return values;
}

gpu::DeviceBuffer random_buffer(i64 count, std::uint64_t seed) {
  std::vector<float> values(static_cast<std::size_t>(count));
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& v : values) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v = static_cast<float>(static_cast<double>(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  }
  std::vector<unsigned char> bytes(values.size() * 2);
  gpu::encode(gpu::DType::bf16, values, bytes.data());
  gpu::DeviceBuffer buffer(bytes.size());
  buffer.upload(bytes.data(), bytes.size());
  return buffer;
}

// The single-GPU kernel on all N tokens (B = 1, H = Hkv, bf16): the inputs a ring loads, and the dense forward and
// backward it is measured against, writing what the ring returns (dQ fp32; dK, dV bf16 by GradientWrite::overwrite).
struct DensePass {
  i64 N, heads, head_dim, count;
  gpu::DeviceBuffer q, k, v, dout, out, lse, delta, dq, dk, dv;
  PositionSet all;
  float scale;

  DensePass(i64 tokens, i64 heads_in, i64 head_dim_in)
      : N(tokens), heads(heads_in), head_dim(head_dim_in), count(N * heads * head_dim), q(random_buffer(count, 1)),
        k(random_buffer(count, 2)), v(random_buffer(count, 3)), dout(random_buffer(count, 4)), out(count * 2),
        lse(N * heads * 4), delta(N * heads * 4), dq(count * 4), dk(count * 2), dv(count * 2),
        all(contiguous_positions(0, N)), scale(1.0f / std::sqrt(static_cast<float>(head_dim))) {}
  gpu::DeviceTensor tensor(const gpu::DeviceBuffer& buffer, gpu::DType dtype) const {
    return {buffer.data(), dtype, 1, N, heads, head_dim};
  }
  gpu::ConstDeviceTensor input(const gpu::DeviceBuffer& buffer) const { return tensor(buffer, gpu::DType::bf16); }
  void forward(const gpu::HeadMasks& mask, cudaStream_t stream) const {
    gpu::block_attention_forward(input(q), all, input(k), input(v), all, mask, scale, tensor(out, gpu::DType::bf16),
                                 lse.as<float>(), stream);
  }
  void backward(const gpu::HeadMasks& mask, cudaStream_t stream) const {
    check(cudaMemsetAsync(dq.data(), 0, dq.bytes(), stream), "memset");
    gpu::output_gradient_dot(input(dout), input(out), delta.as<float>(), stream);
    gpu::block_attention_backward(input(q), all, input(k), input(v), all, mask, scale, input(dout), lse.as<float>(),
                                  delta.as<float>(), tensor(dq, gpu::DType::f32), tensor(dk, gpu::DType::bf16),
                                  tensor(dv, gpu::DType::bf16), stream, gpu::GradientWrite::overwrite);
  }
};

// Now as nvidia-smi's timestamp prints it, in local time: 2026/11/23 08:40:01.123.
std::string smi_time_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  char text[40];
  std::strftime(text, sizeof text, "%Y/%m/%d %H:%M:%S", std::localtime(&seconds));
  char full[48];
  std::snprintf(full, sizeof full, "%s.%03d", text, ms);
  return full;
}

// Runs f back to back on `stream` for `seconds`; one CSV line to stderr (see --soak).
void soak(const std::string& row, const char* phase, double seconds, cudaStream_t stream, const std::function<void()>& f) {
  check(cudaDeviceSynchronize(), "sync");
  const std::string first = smi_time_now();
  const auto start = std::chrono::steady_clock::now();
  long passes = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
    for (int i = 0; i < 4; ++i, ++passes) f();
    check(cudaStreamSynchronize(stream), "sync");
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "soak,%s,%s,%s,%s,%ld,%.4f\n", row.c_str(), phase, first.c_str(), smi_time_now().c_str(), passes,
               ms / static_cast<double>(passes));
}

// The dense forward alone and with a ring forward's copies beside it (--contention): one table row.
void contention_row(i64 ring_size, i64 n_per, i64 heads, i64 head_dim, int rounds, int iters,
                    const std::function<void(cudaStream_t)>& dense_forward) {
  const std::size_t chunk_bytes = static_cast<std::size_t>(n_per * heads * head_dim * 2);  // one of K or V, bf16
  std::vector<gpu::DeviceBuffer> from, to;
  std::vector<cudaStream_t> links(static_cast<std::size_t>(ring_size));
  for (i64 p = 0; p < ring_size; ++p) {
    from.emplace_back(2 * chunk_bytes);
    to.emplace_back(2 * chunk_bytes);
    from.back().fill(0x3c);
    check(cudaStreamCreateWithFlags(&links[p], cudaStreamNonBlocking), "stream");
  }
  cudaStream_t compute;
  check(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking), "stream");
  cudaEvent_t start, kernel_done, copies_done;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&kernel_done), "event");
  check(cudaEventCreate(&copies_done), "event");
  // One run: returns (kernel ms, copies ms) from a common start; either part may be left out.
  auto run = [&](bool kernel, bool copies) {
    check(cudaEventRecord(start, compute), "record");
    if (copies)
      for (i64 p = 0; p < ring_size; ++p) {
        check(cudaStreamWaitEvent(links[p], start, 0), "wait");
        for (i64 hop = 0; hop + 1 < ring_size; ++hop)
          check(cudaMemcpyAsync(to[p].data(), from[p].data(), 2 * chunk_bytes, cudaMemcpyDeviceToDevice, links[p]),
                "copy");
      }
    if (kernel) dense_forward(compute);
    check(cudaEventRecord(kernel_done, compute), "record");
    for (i64 p = 0; p < ring_size; ++p) {
      cudaEvent_t link_done;
      check(cudaEventCreateWithFlags(&link_done, cudaEventDisableTiming), "event");
      check(cudaEventRecord(link_done, links[p]), "record");
      check(cudaStreamWaitEvent(compute, link_done, 0), "wait");
      cudaEventDestroy(link_done);
    }
    check(cudaEventRecord(copies_done, compute), "record");
    check(cudaEventSynchronize(copies_done), "sync");
    float kernel_ms = 0, all_ms = 0;
    check(cudaEventElapsedTime(&kernel_ms, start, kernel_done), "elapsed");
    check(cudaEventElapsedTime(&all_ms, start, copies_done), "elapsed");
    return std::pair<double, double>(kernel_ms, all_ms);
  };
  run(true, true);  // warm-up
  std::vector<double> alone, beside, copies_alone, both;
  for (int round = 0; round < rounds; ++round) {
    std::vector<double> a, b, c, d;
    for (int i = 0; i < iters; ++i) {
      a.push_back(run(true, false).first);
      const auto with = run(true, true);
      b.push_back(with.first);
      d.push_back(with.second);
      c.push_back(run(false, true).second);
    }
    alone.push_back(median(a)), beside.push_back(median(b)), copies_alone.push_back(median(c));
    both.push_back(median(d));
  }
  const double gib = static_cast<double>(ring_size * (ring_size - 1)) * 2 * chunk_bytes / (1 << 30);
  const Ratio slowdown = ratio(beside, alone);
  std::printf("| %lld | %lld | %.2f | %.3f | %.3f | %.2f (%.2f–%.2f) | %.3f | %.0f |\n", (long long)ring_size,
              (long long)n_per, gib, median(alone), median(beside), slowdown.median, slowdown.low, slowdown.high,
              median(copies_alone), gib * (1 << 30) * 2 / (median(copies_alone) * 1e6));
  std::fflush(stdout);
  for (cudaStream_t link : links) cudaStreamDestroy(link);
  cudaStreamDestroy(compute);
  cudaEventDestroy(start), cudaEventDestroy(kernel_done), cudaEventDestroy(copies_done);
}

}  // namespace

int main(int argc, char** argv) {
  std::string commit = "unknown";
  i64 heads = 8, head_dim = 128;
  int rounds = 7, iters = 3;
  std::vector<i64> per_device = {4096, 8192}, rings = {2, 4, 8};
  bool contention = false;
  double soak_seconds = 0;
  std::vector<gpu::RingHops> hops_list = {gpu::RingHops::copies, gpu::RingHops::kernels};
  // A flag the benchmark does not know, a missing or malformed value, or a count below 1: say which and stop.
  auto refuse = [](const std::string& flag, const std::string& value, const char* valid) {
    std::fprintf(stderr, "ringlab_gpu_ring_bench: %s '%s': expected %s\n", flag.c_str(), value.c_str(), valid);
    std::exit(2);
  };
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--contention") {
      contention = true;
      continue;
    }
    if (i + 1 >= argc) refuse(flag, "", "a flag of the usage line (at the top of bench/gpu/ring_bench.cpp) and its value");
    const std::string value = argv[++i];
    try {
      if (flag == "--commit") commit = value;
      else if (flag == "--heads") heads = std::stoll(value);
      else if (flag == "--iters") iters = std::stoi(value);
      else if (flag == "--soak") soak_seconds = std::stod(value);
      else if (flag == "--rounds") rounds = std::stoi(value);
      else if (flag == "--per-device") per_device = parse_list(value);
      else if (flag == "--rings") rings = parse_list(value);
      else if (flag == "--hops") {
        hops_list.clear();
        std::stringstream items(value);
        for (std::string item; std::getline(items, item, ',');) {
          if (item == "copies") hops_list.push_back(gpu::RingHops::copies);
          else if (item == "kernels") hops_list.push_back(gpu::RingHops::kernels);
          else refuse(flag, value, "a list of copies, kernels");
        }
        if (hops_list.empty()) refuse(flag, value, "a list of copies, kernels");
      } else refuse(flag, value, "a flag of the usage line (at the top of bench/gpu/ring_bench.cpp)");
    } catch (const std::exception&) {
      refuse(flag, value, "a number (a list of numbers for --per-device and --rings)");
    }
  }
  if (rounds < 1) refuse("--rounds", std::to_string(rounds), "at least 1");
  if (iters < 1) refuse("--iters", std::to_string(iters), "at least 1");
  if (gpu::device_count() == 0) {
    std::printf("no GPU: %s\n", gpu::unavailable_reason().c_str());
    return 0;
  }
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::printf("# Virtual ring on one GPU vs the single-GPU kernel\n\n");
  std::printf("- date: %s\n- GPU: %s\n- commit: %s\n", date, gpu::describe_device().c_str(), commit.c_str());
  std::printf("- problem: B = 1, H = Hkv = %lld, D = %lld, bf16; N = P × N/P tokens in total\n", (long long)heads,
              (long long)head_dim);
  if (contention) {
    std::printf("- the dense forward (non-causal, all N = P × N/P) alone, and with a ring forward's copies beside it:"
                " P streams, each with P − 1 device-to-device copies of one K/V chunk (2 × N/P × H × D bf16), all"
                " queued when the kernel starts\n");
    std::printf("- slowdown = kernel time with the copies / alone (median over %d rounds of %d calls each, lowest–"
                "highest round); copies alone: the copies' time without the kernel, and the rate (bytes read +"
                " written) they moved at\n\n", rounds, iters);
    std::printf("| P | N/P | GiB copied | dense fwd ms | with copies ms | slowdown | copies alone ms | copies GB/s |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    for (i64 n_per : per_device)
      for (i64 ring_size : rings) {
        const DensePass dense(n_per * ring_size, heads, head_dim);
        gpu::HeadMasks mask;
        mask.band = BandMask::from(false, -1, -1);
        contention_row(ring_size, n_per, heads, head_dim, rounds, iters,
                       [&](cudaStream_t on) { dense.forward(mask, on); });
      }
    return 0;
  }
  std::printf("- dense = gpu::block_attention_forward / output_gradient_dot + block_attention_backward on all N"
              " (dQ fp32, dK and dV bf16 as the ring returns them: GradientWrite::overwrite); ring ="
              " gpu::VirtualRing::forward / backward (P virtual devices; K/V, and backward dK/dV, travel from device to"
              " device and dK/dV return home)\n");
  std::printf("- hops (gpu::RingHops): copies = cudaMemcpyAsync on a copy stream per link; kernels = each step's"
              " attention kernel copies the chunk it holds (and the dK/dV it received, its share added) into the next"
              " device's buffers, the hop home by copies\n");
  std::printf("- timing: after a warm-up, %d rounds; each round times dense, ring and ring without copies back to"
              " back, each the median of %d calls (CUDA events); times are medians over the rounds\n", rounds, iters);
  std::printf("- ratio = ring time / dense time of the same round: the median over rounds (lowest–highest round);"
              " target ≤ 1.10 when N/P ≥ 4096. TFLOP/s = 4·D·pairs (fwd), 10·D·pairs (bwd) over the ring time;"
              " mem = buffers of one virtual device\n");
  std::printf("- no copies: the same ring without transfers (wrong results; what the copies and their waits cost)\n");
  std::printf("- enqueue: the host's time in VirtualRing::forward / backward (launching, posting copies); where it"
              " nears the ring's time, the host, not the GPU, sets the pace\n");
  std::printf("- check: before timing, the ring's O, LSE, dQ, dK, dV against the dense pass's on the same inputs, the"
              " largest max |ring − dense| / max(max |dense|, 1) (gpu::relative_error); bounds"
              " gpu::ring_check_bounds, as ringlab-ring's check (O 1.6e-2, LSE 1e-4, gradients 1e-2); a row beyond"
              " them ends the run with exit 3\n\n");
  std::printf("| P | layout | mask | hops | N/P | N | check | dense fwd ms | ring fwd ms | fwd ratio | no copies |"
              " fwd enqueue ms | dense bwd ms | ring bwd ms | bwd ratio | no copies | bwd enqueue ms |"
              " ring fwd TFLOP/s | ring bwd TFLOP/s | mem/device MiB |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  struct Variant {
    Layout layout;
    bool causal;
  };
  const std::vector<Variant> variants = {
      {Layout::contiguous, false}, {Layout::contiguous, true}, {Layout::zigzag, true}, {Layout::striped, true}};
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "stream");
  for (i64 n_per : per_device)
    for (i64 ring_size : rings) {
      const DensePass dense(n_per * ring_size, heads, head_dim);
      const i64 N = dense.N, count = dense.count;
      for (const Variant& variant : variants)
      for (const gpu::RingHops hops : hops_list) {
        gpu::HeadMasks mask;
        mask.band = BandMask::from(variant.causal, -1, -1);
        auto dense_forward = [&] { dense.forward(mask, stream); };
        auto dense_backward = [&] { dense.backward(mask, stream); };
        AttentionConfig config;
        config.batch = 1;
        config.seq = config.kv_seq = N;
        config.heads = config.kv_heads = heads;
        config.head_dim = head_dim;
        config.causal = variant.causal;
        config.ring = static_cast<int>(ring_size);
        config.layout = variant.layout;
        gpu::VirtualRing ring(config, gpu::DType::bf16, gpu::GradientPrecision::input, hops);
        ring.load(dense.input(dense.q), dense.input(dense.k), dense.input(dense.v));
        ring.load_output_gradient(dense.input(dense.dout));
        // Check first: one forward and backward of each, compared.
        double check_error = 0;
        bool check_ok = true;
        {
          dense_forward();
          dense_backward();
          ring.forward();
          ring.backward();
          gpu::DeviceBuffer ring_out(count * 2), ring_lse(N * heads * 4), ring_dq(count * 4), ring_dk(count * 4),
              ring_dv(count * 4);
          ring.gather_output(dense.tensor(ring_out, gpu::DType::bf16), ring_lse.as<float>());
          ring.gather_gradients(dense.tensor(ring_dq, gpu::DType::f32), dense.tensor(ring_dk, gpu::DType::f32),
                                dense.tensor(ring_dv, gpu::DType::f32));
          check(cudaDeviceSynchronize(), "check");
          using gpu::download_floats, gpu::relative_error;
          const gpu::RingCheckBounds bounds = gpu::ring_check_bounds(gpu::DType::bf16);
          const struct {
            double error, bound;
          } checks[] = {
              {relative_error(download_floats(ring_out.data(), gpu::DType::bf16, count),
                              download_floats(dense.out.data(), gpu::DType::bf16, count)), bounds.out},
              {relative_error(download_floats(ring_lse.data(), gpu::DType::f32, N * heads),
                              download_floats(dense.lse.data(), gpu::DType::f32, N * heads)), bounds.lse},
              {relative_error(download_floats(ring_dq.data(), gpu::DType::f32, count),
                              download_floats(dense.dq.data(), gpu::DType::f32, count)), bounds.gradients},
              {relative_error(download_floats(ring_dk.data(), gpu::DType::f32, count),
                              download_floats(dense.dk.data(), gpu::DType::bf16, count)), bounds.gradients},
              {relative_error(download_floats(ring_dv.data(), gpu::DType::f32, count),
                              download_floats(dense.dv.data(), gpu::DType::bf16, count)), bounds.gradients},
          };
          for (const auto& c : checks) {
            check_error = std::max(check_error, c.error);
            check_ok = check_ok && c.error <= c.bound;  // (false for NaN)
          }
        }
        // Forward first: the backward passes read the (O, LSE) the forward left, dense and ring alike.
        const RoundTimes fwd = time_rounds(rounds, iters, dense_forward, stream,
                                           [&](const gpu::RingPassOptions& o) { ring.forward(o); },
                                           ring.compute_stream());
        dense_forward();
        ring.forward();
        const RoundTimes bwd = time_rounds(rounds, iters, dense_backward, stream,
                                           [&](const gpu::RingPassOptions& o) { ring.backward(o); },
                                           ring.compute_stream());
        const double pairs = static_cast<double>(ring.schedule().total_pairs());
        const double mib = static_cast<double>(ring.bytes_per_device()) / (1 << 20);
        auto cell = [](const Ratio& r) {
          char text[64];
          std::snprintf(text, sizeof text, "%.3f (%.2f–%.2f)", r.median, r.low, r.high);
          return std::string(text);
        };
        const double fwd_ms = median(fwd.ring), bwd_ms = median(bwd.ring);
        std::printf("| %lld | %s | %s | %s | %lld | %lld | %.1e%s | %.2f | %.2f | %s | %s | %.2f | %.2f | %.2f | %s |"
                    " %s | %.2f | %.0f | %.0f | %.0f |\n",
                    (long long)ring_size, to_string(variant.layout).c_str(), variant.causal ? "causal" : "none",
                    ring.hops() == gpu::RingHops::kernels ? "kernels" : "copies", (long long)n_per, (long long)N, check_error, check_ok ? "" : " FAIL", median(fwd.dense), fwd_ms, cell(ratio(fwd.ring, fwd.dense)).c_str(),
                    cell(ratio(fwd.ring_alone, fwd.dense)).c_str(), median(fwd.ring_host), median(bwd.dense), bwd_ms,
                    cell(ratio(bwd.ring, bwd.dense)).c_str(), cell(ratio(bwd.ring_alone, bwd.dense)).c_str(),
                    median(bwd.ring_host),
                    4.0 * head_dim * pairs / (fwd_ms * 1e9), 10.0 * head_dim * pairs / (bwd_ms * 1e9), mib);
        std::fflush(stdout);
        if (!check_ok) {
          std::fprintf(stderr, "ringlab_gpu_ring_bench: the ring differs from the dense pass beyond the bounds (row above)\n");
          return 3;
        }
        if (soak_seconds > 0) {
          const std::string row = std::to_string(ring_size) + "," + to_string(variant.layout) + "," +
                                  (variant.causal ? "causal" : "none") +
                                  (ring.hops() == gpu::RingHops::kernels ? "+kernel hops" : "") + "," +
                                  std::to_string(n_per);
          gpu::RingPassOptions no_copies;
          no_copies.transfer = false;
          soak(row, "dense", soak_seconds, stream, dense_forward);
          soak(row, "ring", soak_seconds, ring.compute_stream(), [&] { ring.forward(); });
          soak(row, "no copies", soak_seconds, ring.compute_stream(), [&] { ring.forward(no_copies); });
        }
      }
    }
  cudaStreamDestroy(stream);
  return 0;
}
