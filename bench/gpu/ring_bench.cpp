// Virtual ring on one GPU (gpu::VirtualRing, P virtual devices) against the single-GPU kernel on the same
// total problem (issue 6's target: ≤ 10% slower when N/P ≥ 4096). Prints a markdown table.
//
//   ringlab_gpu_ring_bench [--commit TEXT] [--heads H] [--iters I] [--per-device N1,N2,...] [--rings P1,P2,...]
//
// Dense: gpu::block_attention_forward on the whole sequence, then output_gradient_dot + block_attention_backward.
// Ring: VirtualRing::forward(), then VirtualRing::backward() (which includes its own δ). Both bf16, D = 128,
// B = 1, H = Hkv, inputs uniform in [−1, 1]; median of `iters` timed runs after one warm-up, CUDA events.
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
#include "ringlab/gpu/device.hpp"
#include "ringlab/gpu/memory.hpp"
#include "ringlab/gpu/ring.hpp"
#include "ringlab/positions.hpp"
#include "ringlab/schedule.hpp"

using namespace ringlab;
using i64 = std::int64_t;

namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

// Median milliseconds of `iters` runs of f (after one warm-up), timed with events on `stream`.
double time_ms(cudaStream_t stream, int iters, const std::function<void()>& f) {
  f();
  check(cudaDeviceSynchronize(), "warm-up");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  std::vector<double> times;
  for (int i = 0; i < iters; ++i) {
    check(cudaEventRecord(start, stream), "record");
    f();
    check(cudaEventRecord(stop, stream), "record");
    check(cudaEventSynchronize(stop), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
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

}  // namespace

int main(int argc, char** argv) {
  std::string commit = "unknown";
  i64 heads = 8, head_dim = 128;
  int iters = 5;
  std::vector<i64> per_device = {4096, 8192}, rings = {2, 4, 8};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--commit") commit = value;
    else if (flag == "--heads") heads = std::stoll(value);
    else if (flag == "--iters") iters = std::stoi(value);
    else if (flag == "--per-device") per_device = parse_list(value);
    else if (flag == "--rings") rings = parse_list(value);
  }
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
  std::printf("- dense = gpu::block_attention_forward / output_gradient_dot + block_attention_backward on all N;"
              " ring = gpu::VirtualRing::forward / backward (P virtual devices, K/V rotated by cudaMemcpyAsync on a"
              " copy stream per link, dK/dV travel and return home); median of %d runs after a warm-up\n", iters);
  std::printf("- ratio = ring time / dense time (target ≤ 1.10 when N/P ≥ 4096); TFLOP/s = 4·D·pairs (fwd),"
              " 10·D·pairs (bwd) over the ring time; mem = buffers of one virtual device\n");
  std::printf("- no copies: the ratio of the same ring without transfers (wrong results; what the copies and their"
              " waits cost)\n\n");
  std::printf("| P | layout | mask | N/P | N | dense fwd ms | ring fwd ms | fwd ratio | no copies |"
              " dense bwd ms | ring bwd ms | bwd ratio | no copies | ring fwd TFLOP/s | ring bwd TFLOP/s |"
              " mem/device MiB |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
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
      const i64 N = n_per * ring_size;
      const i64 count = N * heads * head_dim;
      gpu::DeviceBuffer q = random_buffer(count, 1), k = random_buffer(count, 2), v = random_buffer(count, 3);
      gpu::DeviceBuffer dout = random_buffer(count, 4);
      gpu::DeviceBuffer out(count * 2), lse(N * heads * 4), delta(N * heads * 4);
      gpu::DeviceBuffer dq(count * 4), dk(count * 4), dv(count * 4);
      const gpu::ConstDeviceTensor tq(q.data(), gpu::DType::bf16, 1, N, heads, head_dim);
      const gpu::ConstDeviceTensor tk(k.data(), gpu::DType::bf16, 1, N, heads, head_dim);
      const gpu::ConstDeviceTensor tv(v.data(), gpu::DType::bf16, 1, N, heads, head_dim);
      const gpu::ConstDeviceTensor tdout(dout.data(), gpu::DType::bf16, 1, N, heads, head_dim);
      const gpu::DeviceTensor tout{out.data(), gpu::DType::bf16, 1, N, heads, head_dim};
      const PositionSet all = contiguous_positions(0, N);
      double dense_fwd[2] = {0, 0}, dense_bwd[2] = {0, 0};
      for (int causal = 0; causal < 2; ++causal) {
        gpu::HeadMasks mask;
        mask.band = BandMask::from(causal != 0, -1, -1);
        const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
        dense_fwd[causal] = time_ms(stream, iters, [&] {
          gpu::block_attention_forward(tq, all, tk, tv, all, mask, scale, tout, lse.as<float>(), stream);
        });
        dense_bwd[causal] = time_ms(stream, iters, [&] {
          check(cudaMemsetAsync(dq.data(), 0, dq.bytes(), stream), "memset");
          check(cudaMemsetAsync(dk.data(), 0, dk.bytes(), stream), "memset");
          check(cudaMemsetAsync(dv.data(), 0, dv.bytes(), stream), "memset");
          gpu::output_gradient_dot(tdout, tout, delta.as<float>(), stream);
          gpu::block_attention_backward(tq, all, tk, tv, all, mask, scale, tdout, lse.as<float>(), delta.as<float>(),
                                        gpu::DeviceTensor{dq.data(), gpu::DType::f32, 1, N, heads, head_dim},
                                        gpu::DeviceTensor{dk.data(), gpu::DType::f32, 1, N, heads, head_dim},
                                        gpu::DeviceTensor{dv.data(), gpu::DType::f32, 1, N, heads, head_dim}, stream);
        });
      }
      for (const Variant& variant : variants) {
        AttentionConfig config;
        config.batch = 1;
        config.seq = config.kv_seq = N;
        config.heads = config.kv_heads = heads;
        config.head_dim = head_dim;
        config.causal = variant.causal;
        config.ring = static_cast<int>(ring_size);
        config.layout = variant.layout;
        gpu::VirtualRing ring(config, gpu::DType::bf16);
        ring.load(tq, tk, tv);
        ring.load_output_gradient(tdout);
        const double fwd = time_ms(ring.compute_stream(), iters, [&] { ring.forward(); });
        const double bwd = time_ms(ring.compute_stream(), iters, [&] { ring.backward(); });
        gpu::RingPassOptions no_copies;
        no_copies.transfer = false;
        const double fwd_alone = time_ms(ring.compute_stream(), iters, [&] { ring.forward(no_copies); });
        const double bwd_alone = time_ms(ring.compute_stream(), iters, [&] { ring.backward(no_copies); });
        const double pairs = static_cast<double>(ring.schedule().total_pairs());
        const double mib = static_cast<double>(ring.bytes_per_device()) / (1 << 20);
        const int c = variant.causal ? 1 : 0;
        std::printf("| %lld | %s | %s | %lld | %lld | %.2f | %.2f | %.3f | %.3f | %.2f | %.2f | %.3f | %.3f |"
                    " %.0f | %.0f | %.0f |\n",
                    (long long)ring_size, to_string(variant.layout).c_str(), variant.causal ? "causal" : "none",
                    (long long)n_per, (long long)N, dense_fwd[c], fwd, fwd / dense_fwd[c], fwd_alone / dense_fwd[c],
                    dense_bwd[c], bwd, bwd / dense_bwd[c], bwd_alone / dense_bwd[c], 4.0 * head_dim * pairs / (fwd * 1e9),
                    10.0 * head_dim * pairs / (bwd * 1e9), mib);
        std::fflush(stdout);
      }
    }
  cudaStreamDestroy(stream);
  return 0;
}
