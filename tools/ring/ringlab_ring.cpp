// ringlab-ring: ring attention on real GPUs over NCCL (gpu::NcclRing, issue 6) — check, benchmark, faults.
//
//   one process per GPU (torchrun / srun / mpirun style; docs/gpu-rings.md):
//     scripts/launch_local.sh 4 build/release/tools/ring/ringlab-ring --mode bench
//       (sets RANK, WORLD_SIZE, LOCAL_RANK, NCCL_COMM_ID, RINGLAB_PROGRESS_DIR for each process)
//   one process, a thread per local GPU:
//     ringlab-ring --threads --gpus 4 --mode check
//
// --mode check (default): every rank builds the same random inputs (seed), runs forward + backward on the
//   ring and compares its own rows with the single-GPU kernel on the whole sequence (the same kernels, no
//   ring), on its own GPU. Exit 1 when a rank's error is over the bound.
// --mode bench: per (layout, causal, tokens per GPU) one table row: ring time, TFLOP/s per GPU, efficiency
//   against the single-GPU kernel doing the same total work divided by P, exposed communication per step,
//   achieved link bandwidth, the ring's memory per GPU beside the simulator's prediction (rank 0's view).
// --inject kill@RANK:STEP | stall@RANK:STEP: that rank exits (or sleeps 10 minutes) before forward step STEP;
//   every other rank must abort within --timeout-s (+ polling) and exit 3 naming what happened.
// Exit codes: 0 ok, 1 check failed, 2 bad input, 3 ring fault (communicator aborted), 4 internal error.
#include <cuda_runtime.h>
#include <fmt/core.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../config_flags.hpp"
#include "ringlab/errors.hpp"
#include "ringlab/gpu/block_attention.hpp"
#include "ringlab/gpu/compare.hpp"
#include "ringlab/gpu/device.hpp"
#include "ringlab/gpu/lse_merge.hpp"
#include "ringlab/gpu/memory.hpp"
#include "ringlab/gpu/nccl_ring.hpp"
#include "ringlab/random.hpp"
#include "ringlab/schedule.hpp"
#include "ringlab/sim/hardware.hpp"
#include "ringlab/sim/simulation.hpp"

using namespace ringlab;
using i64 = std::int64_t;

namespace {

constexpr int kExitCheckFailed = 1, kExitBadInput = 2, kExitRingFault = 3, kExitInternal = 4;

struct Options {
  std::string mode = "check";
  std::string dtype_name = "bf16";
  gpu::DType dtype = gpu::DType::bf16;
  bool threads = false;
  int gpus = 0;
  int iters = 10;
  std::uint64_t seed = 1;
  double timeout_s = 30;
  std::string inject;
  std::vector<i64> tokens_per_gpu{4096, 8192, 16384};
  std::vector<std::string> layouts{"contiguous", "zigzag"};
  std::vector<std::string> masks{"full", "causal"};
  std::string device_preset;  // simulator preset for the predictions; default from the GPU's name
  int nccl_max_ctas = 0;
  std::string nccl_cta_policy = "default";
  bool nccl_register = false;
  std::string transfer_priority = "high";
  std::string transport = "nccl";
  std::string grad_precision = "input";  // input | fp32: the dK/dV the ring returns (gpu::GradientPrecision)
  gpu::GradientPrecision gradients() const {
    return grad_precision == "fp32" ? gpu::GradientPrecision::fp32 : gpu::GradientPrecision::input;
  }
};

struct Injection {
  std::string kind;  // kill | stall
  int rank = -1, step = -1;
};

// A whole non-negative integer (std::stoi would accept "1x").
int parse_count(const std::string& text, const std::string& flag, const std::string& whole) {
  if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != std::string::npos)
    throw ConfigError(flag, whole, "KIND@RANK:STEP with non-negative integers RANK and STEP, e.g. kill@1:2");
  return std::stoi(text);
}

Injection parse_injection(const std::string& text) {
  Injection injection;
  const auto at = text.find('@'), colon = text.find(':');
  if (at == std::string::npos || colon == std::string::npos || colon < at)
    throw ConfigError("--inject", text, "KIND@RANK:STEP with KIND kill or stall, e.g. kill@1:2");
  injection.kind = text.substr(0, at);
  if (injection.kind != "kill" && injection.kind != "stall")
    throw ConfigError("--inject", text, "KIND kill or stall (KIND@RANK:STEP)");
  injection.rank = parse_count(text.substr(at + 1, colon - at - 1), "--inject", text);
  injection.step = parse_count(text.substr(colon + 1), "--inject", text);
  return injection;
}

void kill_now() {
  std::fprintf(stderr, "ringlab-ring: injected fault: this rank exits now (kill)\n");
  std::fflush(stderr);
  std::_Exit(9);
}
void stall_now() {
  std::fprintf(stderr, "ringlab-ring: injected fault: this rank stalls for 10 minutes (stall)\n");
  std::fflush(stderr);
  std::this_thread::sleep_for(std::chrono::minutes(10));
}

// Median milliseconds of `iters` calls after one warm-up.
double median_ms(int iters, const std::function<double()>& once) {
  once();
  std::vector<double> times;
  for (int i = 0; i < iters; ++i) times.push_back(once());
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Inputs every rank builds identically: N(0,1) from `seed`, in the dtype, on this GPU.
struct WholeInputs {
  gpu::DeviceBuffer q, k, v, dout;
  WholeInputs(const AttentionConfig& c, gpu::DType dtype, std::uint64_t seed) {
    const i64 q_count = c.batch * c.seq * c.heads * c.head_dim, kv_count = c.batch * c.seq * c.kv_heads * c.head_dim;
    NormalGenerator generator(seed);
    auto make = [&](i64 count) {
      std::vector<float> values(count);
      for (float& x : values) x = static_cast<float>(generator.next());
      std::vector<unsigned char> bytes(count * gpu::size_of(dtype));
      gpu::encode(dtype, values, bytes.data());
      gpu::DeviceBuffer buffer(bytes.size());
      buffer.upload(bytes.data(), bytes.size());
      return buffer;
    };
    q = make(q_count);
    k = make(kv_count);
    v = make(kv_count);
    dout = make(q_count);
  }
};

gpu::ConstDeviceTensor view(const gpu::DeviceBuffer& b, gpu::DType dtype, const AttentionConfig& c, i64 heads) {
  return {b.data(), dtype, c.batch, c.seq, heads, c.head_dim};
}

// The single-GPU kernel on the whole sequence: forward (O, LSE) and backward (dQ, dK, dV), the baseline of
// both the check and the benchmark.
struct SingleGpu {
  const AttentionConfig& c;
  gpu::DType dtype;
  gpu::DeviceBuffer out, lse, delta, dq, dk, dv, partial_out, partial_lse;  // partial_*: dilation's ⊕ scratch
  cudaStream_t stream = nullptr;

  SingleGpu(const AttentionConfig& config, gpu::DType dtype_)
      : c(config), dtype(dtype_) {
    const i64 q_count = c.batch * c.seq * c.heads * c.head_dim, kv_count = c.batch * c.seq * c.kv_heads * c.head_dim;
    out = gpu::DeviceBuffer(q_count * gpu::size_of(dtype));
    lse = gpu::DeviceBuffer(c.batch * c.heads * c.seq * 4);
    delta = gpu::DeviceBuffer(c.batch * c.heads * c.seq * 4);
    dq = gpu::DeviceBuffer(q_count * 4);
    dk = gpu::DeviceBuffer(kv_count * 4);
    dv = gpu::DeviceBuffer(kv_count * 4);
    if (gpu::head_mask_sets(c).size() > 1) {
      partial_out = gpu::DeviceBuffer(q_count * gpu::size_of(dtype));
      partial_lse = gpu::DeviceBuffer(c.batch * c.heads * c.seq * 4);
    }
    if (cudaStreamCreate(&stream) != cudaSuccess) throw gpu::CudaError("cudaStreamCreate failed");
  }
  ~SingleGpu() { cudaStreamDestroy(stream); }
  void forward(const WholeInputs& in) {
    gpu::attention_forward(c, view(in.q, dtype, c, c.heads), view(in.k, dtype, c, c.kv_heads),
                           view(in.v, dtype, c, c.kv_heads), {out.data(), dtype, c.batch, c.seq, c.heads, c.head_dim},
                           lse.as<float>(), {partial_out.data(), dtype, c.batch, c.seq, c.heads, c.head_dim},
                           partial_lse.as<float>(), stream);
  }
  void backward(const WholeInputs& in) {
    gpu::attention_backward(c, view(in.q, dtype, c, c.heads), view(in.k, dtype, c, c.kv_heads),
                            view(in.v, dtype, c, c.kv_heads), view(out, dtype, c, c.heads), lse.as<float>(),
                            view(in.dout, dtype, c, c.heads), delta.as<float>(),
                            {dq.data(), gpu::DType::f32, c.batch, c.seq, c.heads, c.head_dim},
                            {dk.data(), gpu::DType::f32, c.batch, c.seq, c.kv_heads, c.head_dim},
                            {dv.data(), gpu::DType::f32, c.batch, c.seq, c.kv_heads, c.head_dim}, stream);
  }
  double time_ms(const std::function<void()>& work) {
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    cudaEventRecord(start, stream);
    work();
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    gpu::synchronize();
    return ms;
  }
};

// max |got − want| / max(max |want|, 1) over the rows `rows` (positions) of [B, N, width] tensors; a
// non-finite `got` where `want` is finite (or the reverse) counts as infinite error.
double rows_error(const std::vector<float>& got, const std::vector<float>& want, const std::vector<i64>& rows, i64 batch,
                  i64 seq, i64 width) {
  double error = 0, scale = 1;
  for (i64 b = 0; b < batch; ++b)
    for (const i64 t : rows)
      for (i64 j = 0; j < width; ++j) {
        const std::size_t at = static_cast<std::size_t>((b * seq + t) * width + j);
        const double a = got[at], w = want[at];
        if (std::isinf(w) && a == w) continue;
        if (!std::isfinite(a) || !std::isfinite(w)) return INFINITY;
        error = std::max(error, std::abs(a - w));
        scale = std::max(scale, std::abs(w));
      }
  return error / scale;
}

std::mutex print_mutex;

// --mode check on one rank. Returns whether it passed.
bool check_rank(gpu::NcclCommunicator& comm, const AttentionConfig& c, const Options& options, const Injection& injection) {
  const WholeInputs in(c, options.dtype, options.seed);
  SingleGpu single(c, options.dtype);
  single.forward(in);
  single.backward(in);
  gpu::synchronize();
  gpu::NcclRing ring(c, options.dtype, comm, options.gradients());
  if (injection.rank == comm.rank()) ring.inject_before_step(injection.step, injection.kind == "kill" ? kill_now : stall_now);
  ring.poison();
  ring.load_whole(view(in.q, options.dtype, c, c.heads), view(in.k, options.dtype, c, c.kv_heads),
                  view(in.v, options.dtype, c, c.kv_heads));
  ring.load_output_gradient_whole(view(in.dout, options.dtype, c, c.heads));
  ring.forward();
  ring.backward();
  const i64 q_count = c.batch * c.seq * c.heads * c.head_dim, kv_count = c.batch * c.seq * c.kv_heads * c.head_dim;
  gpu::DeviceBuffer out(q_count * gpu::size_of(options.dtype)), lse(c.batch * c.heads * c.seq * 4), dq(q_count * 4),
      dk(kv_count * 4), dv(kv_count * 4);
  for (gpu::DeviceBuffer* b : {&out, &lse, &dq, &dk, &dv}) b->fill(0xFF);
  ring.gather_output({out.data(), options.dtype, c.batch, c.seq, c.heads, c.head_dim}, lse.as<float>());
  ring.gather_gradients({dq.data(), gpu::DType::f32, c.batch, c.seq, c.heads, c.head_dim},
                        {dk.data(), gpu::DType::f32, c.batch, c.seq, c.kv_heads, c.head_dim},
                        {dv.data(), gpu::DType::f32, c.batch, c.seq, c.kv_heads, c.head_dim});
  // Query rows (O, LSE, dQ) and key rows (dK, dV): the same except under --q-replicated (all queries on every rank).
  const auto rows = ring.positions().expand(), key_rows = ring.key_positions().expand();
  const i64 HD = c.heads * c.head_dim, KD = c.kv_heads * c.head_dim;
  // LSE [B, H, N] read as [B·H, N, 1]: rows are positions within each (b, h).
  const double e_out = rows_error(gpu::download_floats(out.data(), options.dtype, q_count),
                                  gpu::download_floats(single.out.data(), options.dtype, q_count), rows, c.batch, c.seq, HD);
  const double e_lse = rows_error(gpu::download_floats(lse.data(), gpu::DType::f32, c.batch * c.heads * c.seq),
                                  gpu::download_floats(single.lse.data(), gpu::DType::f32, c.batch * c.heads * c.seq), rows,
                                  c.batch * c.heads, c.seq, 1);
  const double e_dq = rows_error(gpu::download_floats(dq.data(), gpu::DType::f32, q_count),
                                 gpu::download_floats(single.dq.data(), gpu::DType::f32, q_count), rows, c.batch, c.seq, HD);
  const double e_dk = rows_error(gpu::download_floats(dk.data(), gpu::DType::f32, kv_count),
                                 gpu::download_floats(single.dk.data(), gpu::DType::f32, kv_count), key_rows, c.batch, c.seq,
                                 KD);
  const double e_dv = rows_error(gpu::download_floats(dv.data(), gpu::DType::f32, kv_count),
                                 gpu::download_floats(single.dv.data(), gpu::DType::f32, kv_count), key_rows, c.batch, c.seq,
                                 KD);
  const gpu::RingCheckBounds bounds = gpu::ring_check_bounds(options.dtype);  // (why these: compare.hpp)
  const double out_bound = bounds.out, grad_bound = bounds.gradients, lse_bound = bounds.lse;
  const bool ok = e_out <= out_bound && e_lse <= lse_bound && e_dq <= grad_bound && e_dk <= grad_bound &&
                  e_dv <= grad_bound;
  std::lock_guard<std::mutex> lock(print_mutex);
  fmt::print("rank {} (GPU {}, {} rows): vs single-GPU kernel: O {:.2e}  LSE {:.2e}  dQ {:.2e}  dK {:.2e}  dV {:.2e}  "
             "(bounds {:.0e}/{:.0e}/{:.0e})  {}\n",
             comm.rank(), comm.device(), rows.size(), e_out, e_lse, e_dq, e_dk, e_dv, out_bound, lse_bound, grad_bound,
             ok ? "ok" : "FAIL");
  std::fflush(stdout);
  return ok;
}

std::string preset_for_device(const std::string& requested) {
  if (!requested.empty()) return requested;
  const std::string name = gpu::describe_device(0);
  if (name.find("H200") != std::string::npos) return "H200";
  if (name.find("A100") != std::string::npos) return "A100-80GB";
  return "H100-SXM";
}

struct BenchRow {
  std::string label;
  double fwd_ms = 0, bwd_ms = 0, fwd_compute_ms = 0, bwd_compute_ms = 0, fwd_transfer_ms = 0;
  double single_fwd_ms = 0, single_bwd_ms = 0;
  double tflops_fwd = 0, tflops_bwd = 0;
  double kv_bytes_per_hop = 0;
  std::size_t ring_bytes = 0;
  double used_bytes = 0;
  double predicted_bytes = 0, predicted_fwd_ms = 0, predicted_bwd_ms = 0;
};

// Device memory in use on this GPU (all processes: each GPU has one ring rank here).
double used_device_bytes() {
  std::size_t free = 0, total = 0;
  if (cudaMemGetInfo(&free, &total) != cudaSuccess) return 0;
  return static_cast<double>(total - free);
}

BenchRow bench_one(gpu::NcclCommunicator& comm, const AttentionConfig& c, const Options& options) {
  BenchRow row;
  const int P = comm.size();
  // 4·D FLOPs per unmasked score entry (the schedule's pairs, over heads and patterns): 4·N²·D·H unmasked,
  // about half of that causal, only the selected pairs under dilation.
  const RingSchedule schedule = make_ring_schedule(c);
  const double flops = 4.0 * c.batch * c.head_dim *
                       static_cast<double>(schedule.total_pairs());
  const WholeInputs in(c, options.dtype, options.seed);
  {
    // The single-GPU kernel on the whole problem (every rank measures it on its own GPU at the same time).
    SingleGpu single(c, options.dtype);
    row.single_fwd_ms = median_ms(options.iters, [&] { return single.time_ms([&] { single.forward(in); }); });
    row.single_bwd_ms = median_ms(options.iters, [&] { return single.time_ms([&] { single.backward(in); }); });
  }
  gpu::synchronize();
  const double before = used_device_bytes();
  {
    gpu::NcclRing ring(c, options.dtype, comm, options.gradients());
    ring.load_whole(view(in.q, options.dtype, c, c.heads), view(in.k, options.dtype, c, c.kv_heads),
                    view(in.v, options.dtype, c, c.kv_heads));
    ring.load_output_gradient_whole(view(in.dout, options.dtype, c, c.heads));
    // Each measurement: `iters` passes enqueued back to back (no host gaps between them), after a warm-up.
    auto timed = [&](bool forward, bool compute, bool transfer) {
      const gpu::RingPassOptions warm{compute, transfer, 1}, measured{compute, transfer, options.iters};
      if (forward) {
        ring.forward(warm);
        return ring.forward(measured).milliseconds;
      }
      ring.backward(warm);
      return ring.backward(measured).milliseconds;
    };
    row.fwd_ms = timed(true, true, true);
    row.bwd_ms = timed(false, true, true);
    row.used_bytes = used_device_bytes() - before;  // the ring's buffers, NCCL's, allocator rounding
    row.fwd_compute_ms = timed(true, true, false);
    ring.forward();  // restore O, LSE for the backward split
    row.bwd_compute_ms = timed(false, true, false);
    row.fwd_transfer_ms = timed(true, false, true);
    row.ring_bytes = ring.bytes_per_device();
    row.kv_bytes_per_hop = 2.0 * c.batch * static_cast<double>(ring.key_positions().size()) * c.kv_heads * c.head_dim *
                           gpu::size_of(options.dtype);
    if (schedule.local_only) row.kv_bytes_per_hop = 0;  // nothing travels: no link figure
  }
  row.tflops_fwd = flops / P / (row.fwd_ms * 1e-3) / 1e12;
  row.tflops_bwd = 2.5 * flops / P / (row.bwd_ms * 1e-3) / 1e12;
  // The simulator's prediction for this ring on the device preset (analytic mode: same schedule).
  sim::SimulationOptions sim_options;
  sim_options.config = c;
  sim_options.mode = sim::Mode::analytic;
  sim_options.pass = sim::Pass::both;
  sim_options.bytes_per_element = static_cast<std::int64_t>(gpu::size_of(options.dtype));
  sim_options.returned_gradient_bytes_per_element = options.grad_precision == "fp32" ? 4 : 0;
  sim_options.device = sim::find_device(sim::builtin_devices(), preset_for_device(options.device_preset));
  sim::Simulation simulation(sim_options);
  simulation.run();
  row.predicted_bytes = static_cast<double>(simulation.report().devices.at(comm.rank()).peak_bytes);
  sim_options.pass = sim::Pass::forward;
  sim::Simulation forward_only(sim_options);
  forward_only.run();
  row.predicted_fwd_ms = forward_only.report().makespan_ns * 1e-6;
  sim_options.pass = sim::Pass::backward;
  sim::Simulation backward_only(sim_options);
  backward_only.run();
  row.predicted_bwd_ms = backward_only.report().makespan_ns * 1e-6;
  return row;
}

void print_bench_header(const Options& options, int P) {
  fmt::print("# ringlab-ring bench: {} ranks, {}, dK/dV returned in {}, GPU: {}, transport {}, NCCL maxCTAs {}, "
             "CTA policy {}, transfer stream priority {}, simulator preset {}\n",
             P, options.dtype_name, options.grad_precision == "fp32" ? "fp32" : options.dtype_name,
             gpu::describe_device(0),
             options.transport != "copy-engine" ? "NCCL send/recv"
             : options.threads ? "copy engines (threads; the NCCL settings below are unused)"
                               : "copy engines (process per GPU, CUDA IPC; the NCCL settings below are unused)",
             options.nccl_max_ctas > 0 ? std::to_string(options.nccl_max_ctas) : "default",
             options.nccl_cta_policy + (options.nccl_register ? ", buffers registered" : ""),
             options.transfer_priority,
             preset_for_device(options.device_preset));
  fmt::print("# fwd/bwd: mean of {} ring passes enqueued back to back (ms, rank 0's CUDA events); TFLOP/s per GPU counts 4·D per unmasked\n"
             "#   score entry per forward (4·N²·D·H unmasked, about half causal, the selected pairs under dilation), 2.5× for backward; eff = (single-GPU kernel on all N) / P / ring time;\n"
             "#   exposed = (ring − ring without transfers) / P per step; link = K+V bytes per hop × (P−1) / time of\n"
             "#   the forward's transfers alone; mem = the ring's buffers on rank 0 beside the simulator's ledger peak\n"
             "#   (fwd+bwd, same dtype) and the GPU memory the ring added (cudaMemGetInfo); pred = the simulator's\n"
             "#   analytic forward / backward makespan for this config on the preset.\n",
             options.iters);
  fmt::print("| {:<26} | {:>8} | {:>8} | {:>7} | {:>7} | {:>6} | {:>6} | {:>10} | {:>10} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} |\n",
             "layout, mask, tokens/GPU", "fwd ms", "bwd ms", "TF/s f", "TF/s b", "eff f", "eff b", "exp f ms/st",
             "exp b ms/st", "link GB/s", "ring MiB", "sim MiB", "used MiB", "pred f ms", "pred b ms");
  fmt::print("|{:-<28}|{:->10}|{:->10}|{:->9}|{:->9}|{:->8}|{:->8}|{:->12}|{:->12}|{:->11}|{:->11}|{:->11}|{:->11}|{:->11}|{:->11}|\n",
             "", "", "", "", "", "", "", "", "", "", "", "", "", "", "");
}

void print_bench_row(const BenchRow& r, int P) {
  const double eff_f = r.single_fwd_ms / P / r.fwd_ms, eff_b = r.single_bwd_ms / P / r.bwd_ms;
  const double exposed_f = std::max(0.0, r.fwd_ms - r.fwd_compute_ms) / P, exposed_b = std::max(0.0, r.bwd_ms - r.bwd_compute_ms) / P;
  const double link = P > 1 ? r.kv_bytes_per_hop * (P - 1) / (r.fwd_transfer_ms * 1e-3) / 1e9 : 0.0;
  const std::string link_text = link > 0 ? fmt::format("{:.0f}", link) : "-";  // "-": the ring sends nothing
  fmt::print("| {:<26} | {:>8.2f} | {:>8.2f} | {:>7.0f} | {:>7.0f} | {:>5.0f}% | {:>5.0f}% | {:>11.3f} | {:>11.3f} | {:>9} | {:>9.1f} | {:>9.1f} | {:>9.1f} | {:>9.2f} | {:>9.2f} |\n",
             r.label, r.fwd_ms, r.bwd_ms, r.tflops_fwd, r.tflops_bwd, 100 * eff_f, 100 * eff_b, exposed_f, exposed_b, link_text,
             r.ring_bytes / 1048576.0, r.predicted_bytes / 1048576.0, r.used_bytes / 1048576.0, r.predicted_fwd_ms,
             r.predicted_bwd_ms);
  std::fflush(stdout);
}

// One rank's whole job. Throws RingFault (communicator aborted) or other errors.
bool run_rank(gpu::NcclCommunicator& comm, const AttentionConfig& base, const Options& options, const Injection& injection) {
  if (injection.rank >= comm.size() || injection.step >= comm.size())
    throw ConfigError("--inject", options.inject,
                      "RANK and STEP in 0 .. " + std::to_string(comm.size() - 1) + " (the ring has " +
                          std::to_string(comm.size()) + " ranks and steps)");
  if (options.mode == "check") {
    AttentionConfig c = base;
    c.ring = comm.size();
    return check_rank(comm, c, options, injection);
  }
  const int P = comm.size();
  if (comm.rank() == 0) print_bench_header(options, P);
  for (const std::string& layout : options.layouts)
    for (const std::string& mask : options.masks)
      for (const i64 tokens : options.tokens_per_gpu) {
        AttentionConfig c = base;
        c.ring = P;
        c.seq = c.kv_seq = tokens * P;
        c.causal = mask == "causal";
        c.layout = parse_layout(layout);
        c.validate();
        BenchRow row = bench_one(comm, c, options);
        row.label = fmt::format("{}, {}, {}", layout, mask, tokens);
        if (comm.rank() == 0) print_bench_row(row, P);
      }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ringlab-ring: ring attention over NCCL on real GPUs (check, bench, fault injection)"};
  AttentionConfig defaults;
  defaults.seq = defaults.kv_seq = 4099;
  defaults.heads = 4;
  defaults.kv_heads = 2;
  defaults.head_dim = 128;
  defaults.causal = true;
  defaults.layout = Layout::zigzag;
  cli::ConfigFlags config_flags(app, defaults);
  Options options;
  app.add_option("--mode", options.mode,
                 "check | bench (bench sweeps --tokens-per-gpu × --layouts × --masks; its --seq, --causal, --layout and "
                 "--ring come from the sweep and the number of ranks)")
      ->check(CLI::IsMember({"check", "bench"}));
  app.add_option("--dtype", options.dtype_name, "bf16 | fp16")->check(CLI::IsMember({"bf16", "fp16"}));
  app.add_flag("--threads", options.threads, "one process, a thread per local GPU (else one process per GPU from RANK/WORLD_SIZE)");
  app.add_option("--gpus", options.gpus, "with --threads: how many local GPUs (default all)")->check(CLI::Range(1, 1024));
  app.add_option("--iters", options.iters, "bench: timed passes per measurement (median)")->check(CLI::Range(1, 1000));
  app.add_option("--seed", options.seed, "inputs: N(0,1) from this seed, the same on every rank");
  app.add_option("--timeout-s", options.timeout_s, "abort when no ring step finishes for this long (s)")->check(CLI::Range(1.0, 3600.0));
  app.add_option("--inject", options.inject, "kill@RANK:STEP or stall@RANK:STEP (before forward step STEP)");
  app.add_option("--tokens-per-gpu", options.tokens_per_gpu, "bench: tokens per GPU (list)")->delimiter(',');
  app.add_option("--layouts", options.layouts, "bench: layouts (list)")->delimiter(',');
  app.add_option("--masks", options.masks, "bench: full and/or causal (list)")->delimiter(',');
  app.add_option("--nccl-cta-policy", options.nccl_cta_policy,
                 "NCCL's CTA policy (NCCL >= 2.27): default | efficiency (fewest CTAs that perform decently) | zero")
      ->check(CLI::IsMember({"default", "efficiency", "zero"}));
  app.add_flag("--nccl-register", options.nccl_register,
               "register the ring's K/V and dK/dV buffers with NCCL (ncclCommRegister): zero-copy send/recv where "
               "NCCL supports it");
  app.add_option("--nccl-max-ctas", options.nccl_max_ctas, "NCCL's maxCTAs (SMs its send/recv kernels may use); 0: NCCL's default")
      ->check(CLI::Range(0, 64));
  app.add_option("--transfer-priority", options.transfer_priority, "the NCCL stream's priority: high | normal")
      ->check(CLI::IsMember({"high", "normal"}));
  app.add_option("--transport", options.transport,
                 "how the ring's hops travel: nccl (send/recv kernels) | copy-engine (the GPUs' copy engines, no SMs; "
                 "every rank on one node)")
      ->check(CLI::IsMember({"nccl", "copy-engine"}));
  app.add_option("--device-preset", options.device_preset, "simulator preset for the predictions (default: from the GPU)");
  app.add_option("--grad-precision", options.grad_precision,
                 "dK, dV returned in the input dtype (rounded before the final hop home: half its bytes) or fp32")
      ->check(CLI::IsMember({"input", "fp32"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : kExitBadInput;
  }
  std::string who = "ringlab-ring";
  try {
    options.dtype = options.dtype_name == "bf16" ? gpu::DType::bf16 : gpu::DType::f16;
    // bench takes --seq from the sweep (tokens per GPU × ranks) and validates each point there: the default
    // --seq need not suit --dilation.
    AttentionConfig config = config_flags.config(/*validate=*/options.mode != "bench");
    for (const std::string& mask : options.masks)
      if (mask != "full" && mask != "causal") throw ConfigError("--masks", mask, "full or causal");
    for (const std::string& layout : options.layouts) (void)parse_layout(layout, "--layouts");
    for (const i64 tokens : options.tokens_per_gpu)
      if (tokens < 1) throw ConfigError("--tokens-per-gpu", std::to_string(tokens), "positive token counts per GPU");
    if (options.gpus > 0 && !options.threads)
      throw ConfigError("--gpus", std::to_string(options.gpus),
                        "only with --threads (one process per GPU takes WORLD_SIZE from the launcher)");
    if (!options.inject.empty() && options.mode != "check")
      throw ConfigError("--inject", options.inject, "only with --mode check (the benchmark runs no injected faults)");
    const Injection injection = options.inject.empty() ? Injection{} : parse_injection(options.inject);
    gpu::NcclOptions nccl;
    nccl.stall_timeout_s = options.timeout_s;
    nccl.max_ctas = options.nccl_max_ctas;
    nccl.register_buffers = options.nccl_register;
    nccl.cta_policy = options.nccl_cta_policy == "efficiency" ? gpu::NcclOptions::CtaPolicy::efficiency
                      : options.nccl_cta_policy == "zero"     ? gpu::NcclOptions::CtaPolicy::zero
                                                              : gpu::NcclOptions::CtaPolicy::nccl_default;
    nccl.high_priority_transfers = options.transfer_priority == "high";
    nccl.copy_engine_transfers = options.transport == "copy-engine";
    if (options.threads && !options.inject.empty())
      throw ConfigError("--inject", options.inject,
                        "one process per GPU (without --threads): a killed or stalled thread cannot be isolated");
    if (!gpu::nccl_ring_available()) throw ConfigError("ringlab-ring", "this build", "a build with NCCL");
    if (gpu::device_count() == 0) throw ConfigError("GPU", "none", "at least one CUDA device (" + gpu::unavailable_reason() + ")");
    if (options.threads) {
      const int P = options.gpus > 0 ? options.gpus : gpu::device_count();
      auto comms = gpu::NcclCommunicator::for_local_gpus(P, nccl);
      std::vector<std::string> errors(P);
      std::vector<int> codes(P, 0);
      std::vector<std::thread> threads;
      for (int r = 0; r < P; ++r)
        threads.emplace_back([&, r] {
          try {
            if (cudaSetDevice(r) != cudaSuccess) throw gpu::CudaError("cudaSetDevice failed");
            codes[r] = run_rank(comms[r], config, options, injection) ? 0 : kExitCheckFailed;
          } catch (const gpu::RingFault& fault) {
            errors[r] = fault.what();
            codes[r] = kExitRingFault;
            for (auto& comm : comms) comm.request_abort();
          } catch (const ConfigError& error) {
            errors[r] = error.what();
            codes[r] = kExitBadInput;
            for (auto& comm : comms) comm.request_abort();
          } catch (const std::exception& error) {
            errors[r] = error.what();
            codes[r] = kExitInternal;
            comms[r].abort();
            for (auto& comm : comms) comm.request_abort();
          }
        });
      for (auto& t : threads) t.join();
      int code = 0;
      for (int r = 0; r < P; ++r) {
        if (!errors[r].empty()) fmt::print(stderr, "ringlab-ring: rank {}: {}\n", r, errors[r]);
        code = std::max(code, codes[r]);
      }
      std::fflush(stderr);
      // Bad input anywhere is the answer (the other ranks then stop with faults because of it).
      if (std::find(codes.begin(), codes.end(), kExitBadInput) != codes.end()) code = kExitBadInput;
      if (code == kExitRingFault || code == kExitInternal || code == kExitBadInput)
        std::_Exit(code);  // communicators aborted: no destructors waiting on their work at exit
      return code;
    }
    auto comm = gpu::NcclCommunicator::from_environment(nccl);
    who = fmt::format("ringlab-ring: rank {}", comm.rank());
    const bool ok = run_rank(comm, config, options, injection);
    return ok ? 0 : kExitCheckFailed;
  } catch (const ConfigError& error) {
    fmt::print(stderr, "{}: error: {}\n", who, error.what());
    return kExitBadInput;
  } catch (const gpu::RingFault& fault) {
    fmt::print(stderr, "{}: RING FAULT: {}\n", who, fault.what());
    std::fflush(stderr);
    std::_Exit(kExitRingFault);  // the communicator is aborted; do not wait on its work in destructors
  } catch (const std::exception& error) {
    fmt::print(stderr, "{}: error: {}\n", who, error.what());
    std::fflush(stderr);
    std::_Exit(kExitInternal);
  }
}
