// `ringlab simulate --backend gpu` (simulate_gpu.hpp): P virtual devices on one GPU (gpu::VirtualRing)
// against the single-GPU kernel on the whole sequence, beside the simulator's analytic twin.
//
//   1. inputs: q, k, v (and dO when the pass has a backward) drawn N(0,1) by ringlab's NormalGenerator, in
//      the order compute mode draws them, uploaded as fp32 and rounded to bf16/fp16 on the device;
//   2. the checked run, which is also the warm-up: the single kernel (gpu::block_attention_forward /
//      backward, positions 0..N−1 as one run, the config's mask sets) and the ring (forward, backward),
//      then max |ring − single| / max(max |single|, 1) for O, LSE, dQ, dK, dV;
//   3. `iters` timed runs of each (CUDA events on the ring's compute stream), the median;
//   4. the twin: sim::Simulation in analytic mode with the same config, ring, layout and --device-preset,
//      bytes_per_element 2: its ledger peaks and times, printed beside the measurements.
#include "simulate_gpu.hpp"

#include "ringlab/errors.hpp"

#if RINGLAB_WITH_GPU
#include <cuda_runtime.h>
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <vector>

#include "commands.hpp"
#include "ringlab/golden.hpp"
#include "ringlab/gpu/block_attention.hpp"
#include "ringlab/gpu/compare.hpp"
#include "ringlab/gpu/device.hpp"
#include "ringlab/gpu/memory.hpp"
#include "ringlab/gpu/ring.hpp"
#include "ringlab/random.hpp"
#include "ringlab/sim/output.hpp"
#endif

namespace ringlab::cli {

#if !RINGLAB_WITH_GPU

int run_simulate_gpu(const GpuSimulateRequest&) {
  throw Error("ringlab was built without GPU support (configure with -DRINGLAB_BUILD_GPU=ON)");
}

#else

namespace {

using i64 = std::int64_t;

constexpr int kExitRunFailed = 3;

// The bound on max |ring − single| / max(max |single|, 1) for O, LSE, dQ, dK and dV. Both sides run the same
// tensor-core kernels on the same bf16/fp16 inputs with fp32 accumulation; they differ only in where the
// sequence is cut into blocks (tile boundaries, the order of the fp32 LSE merges and of the dK/dV sums) and
// in where O is rounded to the dtype once (the ring from its fp32 accumulator, the single kernel in its
// epilogue), which reaches the gradients through δ = rowsum(dO ∘ O). That is a few units of bf16 rounding
// (2^-8 ≈ 3.9e-3 relative) at worst; a wrong chunk, position, mask or merge is O(1).
constexpr double kErrorBound = 2e-2;

void check_cuda(cudaError_t status, const char* call) {
  if (status != cudaSuccess) throw gpu::CudaError(std::string(call) + " failed: " + cudaGetErrorString(status));
}

class CudaEvent {
 public:
  CudaEvent() { check_cuda(cudaEventCreate(&event_), "cudaEventCreate"); }
  ~CudaEvent() { cudaEventDestroy(event_); }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// Median milliseconds of `iters` runs of `work`, each between two events recorded on `stream`. Everything
// timed is ordered with `stream`, the ring's compute stream: the single kernel is launched on it, and a
// VirtualRing pass starts after the stream's earlier work and ends with the stream waiting for every
// virtual device's stream and the copy stream, so the stop event completes when the whole pass has.
double median_ms(cudaStream_t stream, int iters, const std::function<void()>& work) {
  CudaEvent start, stop;
  std::vector<double> times;
  for (int i = 0; i < iters; ++i) {
    check_cuda(cudaEventRecord(start.get(), stream), "cudaEventRecord");
    work();
    check_cuda(cudaEventRecord(stop.get(), stream), "cudaEventRecord");
    check_cuda(cudaEventSynchronize(stop.get()), "cudaEventSynchronize");
    float ms = 0;
    check_cuda(cudaEventElapsedTime(&ms, start.get(), stop.get()), "cudaEventElapsedTime");
    times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  const std::size_t middle = times.size() / 2;
  return times.size() % 2 == 1 ? times[middle] : (times[middle - 1] + times[middle]) / 2;
}

// A whole [B, rows, heads, D] tensor in device memory.
struct WholeTensor {
  gpu::DeviceBuffer buffer;
  gpu::DeviceTensor view;
};

WholeTensor make_tensor(gpu::DType dtype, i64 batch, i64 rows, i64 heads, i64 head_dim) {
  WholeTensor tensor;
  tensor.view = gpu::DeviceTensor{nullptr, dtype, batch, rows, heads, head_dim};
  tensor.buffer = gpu::DeviceBuffer(static_cast<std::size_t>(tensor.view.size()) * gpu::size_of(dtype));
  tensor.view.data = tensor.buffer.data();
  return tensor;
}

// The next N(0,1) values of `generator` (fp64, bit-reproducible: the inputs compute mode draws for the same
// seed) as a `dtype` tensor: uploaded as fp32, rounded on the device by gpu::convert.
WholeTensor random_tensor(NormalGenerator& generator, gpu::DType dtype, i64 batch, i64 rows, i64 heads, i64 head_dim,
                          cudaStream_t stream) {
  WholeTensor fp32 = make_tensor(gpu::DType::f32, batch, rows, heads, head_dim);
  std::vector<float> host(static_cast<std::size_t>(fp32.view.size()));
  constexpr std::size_t kChunk = std::size_t{1} << 20;  // bounds the fp64 temporary
  for (std::size_t begin = 0; begin < host.size(); begin += kChunk) {
    const std::vector<double> values = standard_normal(generator, std::min(kChunk, host.size() - begin));
    std::transform(values.begin(), values.end(), host.begin() + static_cast<std::ptrdiff_t>(begin),
                   [](double x) { return static_cast<float>(x); });
  }
  fp32.buffer.upload(host.data(), host.size() * sizeof(float));  // legacy stream; `stream` is a blocking one
  WholeTensor tensor = make_tensor(dtype, batch, rows, heads, head_dim);
  gpu::convert(fp32.view, tensor.view, stream);
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");  // before the fp32 copy is freed
  return tensor;
}

std::vector<float> download(const gpu::DeviceBuffer& buffer, gpu::DType dtype, std::size_t count) {
  return gpu::download_floats(buffer.data(), dtype, static_cast<i64>(count));
}

std::vector<float> download(const WholeTensor& tensor) {
  return download(tensor.buffer, tensor.view.dtype, static_cast<std::size_t>(tensor.view.size()));
}

struct Difference {
  std::string quantity;  // "O", "LSE", "dQ", "dK", "dV"
  double value = 0;
  bool within() const { return value <= kErrorBound; }  // false for NaN
};

// The simulator's analytic twin of one pass: the same config, schedule, preset, links and overlap; no tensors.
sim::Report twin_report(sim::SimulationOptions options, sim::Scheme scheme, sim::Pass pass) {
  options.mode = sim::Mode::analytic;
  options.scheme = scheme;
  options.pass = pass;
  options.bytes_per_element = kGpuBackendElementBytes;
  sim::Simulation simulation(std::move(options));
  simulation.run();
  return simulation.report();
}

// One timed pass: measured on the GPU, predicted by the twins.
struct PassTiming {
  std::string name;  // "forward", "backward"
  double dense_ms = 0, ring_ms = 0;
  sim::Report ring_twin;   // P devices, the ring
  sim::Report flash_twin;  // one device, flash-style: the single kernel's prediction
  i64 sum_compute_ns() const {
    i64 total = 0;
    for (const auto& device : ring_twin.devices) total += device.compute_ns;
    return total;
  }
  // The virtual ring's hops are copies within one GPU, which the driver runs as kernels on the SMs
  // (bench/gpu/copy_engine_probe.cu): an estimate of their time, every byte read and written at the preset's
  // memory bandwidth with nothing else running. In the H100's measurements a third to all of the copies' own time
  // showed in the ring's (bench/results/gpu-virtual-ring-copies-2026-11-23-H100.md).
  i64 copies_ns(const sim::DeviceSpec& device) const {
    i64 bytes = 0;
    for (const auto& d : ring_twin.devices) bytes += d.bytes_sent;
    return static_cast<i64>(2.0 * static_cast<double>(bytes) / device.memory_bandwidth * 1e9);
  }
};

// "12.345 ms", "45.6 us", "755 ns": the simulator's predictions of small runs are microseconds.
std::string ms(double milliseconds) {
  if (milliseconds >= 1) return fmt::format("{:.3f} ms", milliseconds);
  if (milliseconds >= 1e-3) return fmt::format("{:.1f} us", milliseconds * 1e3);
  return fmt::format("{:.0f} ns", milliseconds * 1e6);
}
std::string ms_from_ns(i64 ns) { return ms(static_cast<double>(ns) / 1e6); }

nlohmann::json finite_or_null(double value) { return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(); }

int run(const GpuSimulateRequest& request) {
  const AttentionConfig& config = request.twin.config;
  const gpu::DType dtype = request.dtype == "fp16" ? gpu::DType::f16 : gpu::DType::bf16;
  const bool with_backward = request.twin.pass != sim::Pass::forward;
  const bool forward_timed = request.twin.pass != sim::Pass::backward;

  // The ring first: its constructor rejects what the GPU ring does not support (ConfigError, exit 2) before
  // allocating. Its compute stream orders everything below.
  const auto gradients = request.twin.returned_gradient_bytes_per_element == 4 ? gpu::GradientPrecision::fp32
                                                                                : gpu::GradientPrecision::input;
  const gpu::RingHops hops = request.hops == "kernels" ? gpu::RingHops::kernels : gpu::RingHops::copies;
  gpu::VirtualRing ring(config, dtype, gradients, hops);
  const cudaStream_t stream = ring.compute_stream();
  const i64 B = config.batch, N = config.seq, H = config.heads, Hkv = config.kv_heads, D = config.head_dim;

  // Inputs. K, V have N rows: the GPU ring is self-attention (kv_seq = seq, checked by VirtualRing).
  NormalGenerator generator(request.seed);
  const WholeTensor q = random_tensor(generator, dtype, B, N, H, D, stream);  // [B, N, H, D]
  const WholeTensor k = random_tensor(generator, dtype, B, N, Hkv, D, stream);  // [B, N, Hkv, D]
  const WholeTensor v = random_tensor(generator, dtype, B, N, Hkv, D, stream);
  const std::optional<WholeTensor> dout =
      with_backward ? std::optional(random_tensor(generator, dtype, B, N, H, D, stream)) : std::nullopt;

  // The single-GPU kernels on the whole sequence (gpu::attention_forward / backward: the mask sets VirtualRing
  // gives its block calls, ⊕-merged), the "dense kernel" baseline.
  const bool merges = gpu::head_mask_sets(config).size() > 1;  // dilation: scratch for the ⊕ of the patterns
  const std::optional<WholeTensor> partial_out =
      merges ? std::optional(make_tensor(dtype, B, N, H, D)) : std::nullopt;
  const std::optional<gpu::DeviceBuffer> partial_lse =
      merges ? std::optional<gpu::DeviceBuffer>(static_cast<std::size_t>(B * H * N) * sizeof(float)) : std::nullopt;
  const WholeTensor single_out = make_tensor(dtype, B, N, H, D);
  const gpu::DeviceBuffer single_lse(static_cast<std::size_t>(B * H * N) * sizeof(float));  // [B, H, N]
  std::optional<gpu::DeviceBuffer> delta;                                                    // [B, H, N]
  std::optional<WholeTensor> single_dq, single_dk, single_dv;                                // fp32
  if (with_backward) {
    delta.emplace(static_cast<std::size_t>(B * H * N) * sizeof(float));
    single_dq = make_tensor(gpu::DType::f32, B, N, H, D);
    single_dk = make_tensor(gpu::DType::f32, B, N, Hkv, D);
    single_dv = make_tensor(gpu::DType::f32, B, N, Hkv, D);
  }
  auto dense_forward = [&] {
    gpu::attention_forward(config, q.view, k.view, v.view, single_out.view, single_lse.as<float>(),
                           merges ? partial_out->view : gpu::DeviceTensor{},
                           merges ? partial_lse->as<float>() : nullptr, stream);
  };
  auto dense_backward = [&] {  // as VirtualRing::backward: δ, then dQ, dK, dV accumulated from zero
    gpu::attention_backward(config, q.view, k.view, v.view, single_out.view, single_lse.as<float>(), dout->view,
                            delta->as<float>(), single_dq->view, single_dk->view, single_dv->view, stream);
  };

  // The checked run, which is also the warm-up of the timed runs. The single kernel goes first: it rejects
  // an unsupported head_dim/dtype with ConfigError before the ring launches anything.
  ring.load(q.view, k.view, v.view);
  if (with_backward) ring.load_output_gradient(dout->view);
  dense_forward();
  if (with_backward) dense_backward();
  ring.forward();
  if (with_backward) ring.backward();
  const WholeTensor ring_out = make_tensor(dtype, B, N, H, D);
  const gpu::DeviceBuffer ring_lse(static_cast<std::size_t>(B * H * N) * sizeof(float));
  ring.gather_output(ring_out.view, ring_lse.as<float>());
  std::optional<WholeTensor> ring_dq, ring_dk, ring_dv;
  if (with_backward) {
    ring_dq = make_tensor(gpu::DType::f32, B, N, H, D);
    ring_dk = make_tensor(gpu::DType::f32, B, N, Hkv, D);
    ring_dv = make_tensor(gpu::DType::f32, B, N, Hkv, D);
    ring.gather_gradients(ring_dq->view, ring_dk->view, ring_dv->view);
  }
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");  // surfaces any asynchronous error

  std::vector<Difference> differences;
  const auto lse_count = static_cast<std::size_t>(B * H * N);
  differences.push_back({"O", gpu::relative_error(download(ring_out), download(single_out))});
  differences.push_back({"LSE", gpu::relative_error(download(ring_lse, gpu::DType::f32, lse_count),
                                                    download(single_lse, gpu::DType::f32, lse_count))});
  if (with_backward) {
    differences.push_back({"dQ", gpu::relative_error(download(*ring_dq), download(*single_dq))});
    differences.push_back({"dK", gpu::relative_error(download(*ring_dk), download(*single_dk))});
    differences.push_back({"dV", gpu::relative_error(download(*ring_dv), download(*single_dv))});
  }

  // Timed runs, then the twins.
  std::vector<PassTiming> passes;
  if (forward_timed) {
    PassTiming timing;
    timing.name = "forward";
    timing.dense_ms = median_ms(stream, request.iters, dense_forward);
    timing.ring_ms = median_ms(stream, request.iters, [&] { ring.forward(); });
    timing.ring_twin = twin_report(request.twin, sim::Scheme::ring, sim::Pass::forward);
    timing.flash_twin = twin_report(request.twin, sim::Scheme::flash, sim::Pass::forward);
    passes.push_back(std::move(timing));
  }
  if (with_backward) {
    PassTiming timing;
    timing.name = "backward";
    timing.dense_ms = median_ms(stream, request.iters, dense_backward);
    timing.ring_ms = median_ms(stream, request.iters, [&] { ring.backward(); });
    timing.ring_twin = twin_report(request.twin, sim::Scheme::ring, sim::Pass::backward);
    timing.flash_twin = twin_report(request.twin, sim::Scheme::flash, sim::Pass::backward);
    passes.push_back(std::move(timing));
  }
  // The ledger holds one pass's buffers at a time; its peak over the passes run is the larger of the two.
  const int P = ring.size();
  std::vector<i64> ledger_peak(static_cast<std::size_t>(P), 0);
  for (const PassTiming& timing : passes)
    for (const sim::DeviceReport& device : timing.ring_twin.devices)
      ledger_peak[static_cast<std::size_t>(device.id)] =
          std::max(ledger_peak[static_cast<std::size_t>(device.id)], device.peak_bytes);
  const std::size_t allocated = ring.bytes_per_device();
  const sim::DeviceSpec& preset = request.twin.device;
  const std::string gpu_name = gpu::describe_device();

  // ---- the report ----
  fmt::print("ringlab simulate --backend gpu: {} | {} | pass {} | seed {}\n", describe(config), gpu::to_string(dtype),
             sim::to_string(request.twin.pass), request.seed);
  fmt::print("measured on {}: gpu::VirtualRing, {} virtual devices on this one GPU (each its own buffers and compute "
             "stream, K/V moved {}), and the single-GPU kernel on the whole sequence\n",
             gpu_name, P,
             hops == gpu::RingHops::kernels ? "by each step's attention kernel (--hops kernels)"
                                            : "by device-to-device copies");
  fmt::print("predicted: the simulator's analytic twin (same schedule; ledgers, roofline, links) for {} devices, "
             "{} per node, overlap {}, {} bytes per element\n",
             preset.name, request.twin.devices_per_node, request.twin.overlap ? "on" : "off", kGpuBackendElementBytes);

  fmt::print("\nCorrectness (measured): ring against the single-GPU kernel, same inputs and dtype\n");
  fmt::print("{:>9} {:>38} {:>8} {:>6}\n", "quantity", "max|ring - single| / max(max|single|,1)", "bound", "");
  bool all_within = true;
  for (const Difference& difference : differences) {
    fmt::print("{:>9} {:>38} {:>8} {:>6}\n", difference.quantity, format_error(difference.value),
               format_error(kErrorBound), difference.within() ? "ok" : "FAILED");
    all_within = all_within && difference.within();
  }

  fmt::print("\nMemory per virtual device: allocated by the ring (measured: gpu::VirtualRing::bytes_per_device, its "
             "buffers summed) vs the simulator ledger's peak (predicted)\n");
  fmt::print("{:>6} {:>8} {:>14} {:>14} {:>20}\n", "device", "tokens", "allocated", "ledger peak",
             "allocated / ledger");
  const int shown = std::min(P, 32);
  for (int p = 0; p < shown; ++p) {
    const i64 peak = ledger_peak[static_cast<std::size_t>(p)];
    fmt::print("{:>6} {:>8} {:>14} {:>14} {:>20}\n", p, ring.schedule().chunk_positions[static_cast<std::size_t>(p)].size(),
               sim::format_bytes(static_cast<i64>(allocated)), sim::format_bytes(peak),
               peak > 0 ? fmt::format("{:.2f}", static_cast<double>(allocated) / static_cast<double>(peak)) : "-");
  }
  if (P > shown) fmt::print("{:>6}\n", fmt::format("... {} more devices (see --report-json)", P - shown));
  fmt::print("The ring keeps both passes' buffers (its forward O accumulator is reused as dQ; docs/gpu-rings.md); the "
             "ledger holds one pass's at a time (docs/simulator.md, Memory), and its backward peak counts the same "
             "buffers: equal for bf16/fp16 when P > 1.\n");

  fmt::print("\nTime per pass: measured (median of {} runs after a warm-up, CUDA events) vs predicted (simulator, {})\n",
             request.iters, preset.name);
  fmt::print("{:>9} {:>14} {:>14} {:>11} {:>18} {:>18} {:>18} {:>22}\n", "pass", "dense kernel", "virtual ring",
             "ring/dense", "one device, flash", "sum of device", "+ its copies", "ring makespan on");
  fmt::print("{:>9} {:>14} {:>14} {:>11} {:>18} {:>18} {:>18} {:>22}\n", "", "(measured)", "(measured)", "(measured)",
             "(predicted)", "compute (pred.)", "(pred.)", fmt::format("{} devices (pred.)", P));
  for (const PassTiming& timing : passes)
    fmt::print("{:>9} {:>14} {:>14} {:>11} {:>18} {:>18} {:>18} {:>22}\n", timing.name, ms(timing.dense_ms),
               ms(timing.ring_ms), fmt::format("{:.3f}", timing.ring_ms / timing.dense_ms),
               ms_from_ns(timing.flash_twin.makespan_ns), ms_from_ns(timing.sum_compute_ns()),
               ms_from_ns(timing.sum_compute_ns() + timing.copies_ns(preset)), ms_from_ns(timing.ring_twin.makespan_ns));
  fmt::print("The virtual ring runs all {} devices' work on this one GPU: compare it with the dense kernel and with the "
             "predicted sum of device compute (the same work on one device, no transfers) and that sum plus the "
             "ring's copies, which within one GPU are kernels (every byte read and written at the memory bandwidth, "
             "{:.2f} TB/s); the makespan is what {} separate {} devices would take.\n",
             P, preset.memory_bandwidth / 1e12, P, preset.name);

  if (!request.report_json.empty()) {
    nlohmann::ordered_json json;
    json["backend"] = "gpu";
    json["gpu"] = gpu_name;
    json["config"] = config_to_json(config);
    json["dtype"] = gpu::to_string(dtype);
    json["hops"] = request.hops;
    json["pass"] = sim::to_string(request.twin.pass);
    json["seed"] = request.seed;
    json["iters"] = request.iters;
    nlohmann::ordered_json errors = nlohmann::ordered_json::object();
    for (const Difference& difference : differences) errors[difference.quantity] = finite_or_null(difference.value);
    nlohmann::ordered_json measured_passes = nlohmann::ordered_json::object(),
                           predicted_passes = nlohmann::ordered_json::object();
    for (const PassTiming& timing : passes) {
      measured_passes[timing.name] = {{"dense_kernel_ms", timing.dense_ms},
                                      {"virtual_ring_ms", timing.ring_ms},
                                      {"ring_over_dense", timing.ring_ms / timing.dense_ms}};
      predicted_passes[timing.name] = {{"flash_one_device_ns", timing.flash_twin.makespan_ns},
                                       {"sum_of_device_compute_ns", timing.sum_compute_ns()},
                                       {"copies_as_kernels_ns", timing.copies_ns(preset)},
                                       {"ring_makespan_ns", timing.ring_twin.makespan_ns},
                                       {"report", sim::report_json(timing.ring_twin)}};
    }
    json["measured"] = {{"time", measured_passes},
                        {"relative_difference_vs_single_kernel", errors},
                        {"error_bound", kErrorBound},
                        {"within_bound", all_within},
                        {"bytes_per_device", allocated}};
    json["predicted"] = {{"device", preset.name},
                         {"ledger_peak_bytes_per_device", ledger_peak},
                         {"time", predicted_passes}};
    sim::write_text_file(request.report_json, json.dump(2) + "\n", request.force, "--report-json");
    fmt::print("report written to {}\n", request.report_json);
  }
  std::fflush(stdout);
  if (!all_within) {
    for (const Difference& difference : differences)
      if (!difference.within())
        fmt::print(stderr, "ringlab simulate: the GPU ring's {} differs from the single-GPU kernel by {} (bound {})\n",
                   difference.quantity, format_error(difference.value), format_error(kErrorBound));
    return kExitRunFailed;
  }
  return 0;
}

}  // namespace

int run_simulate_gpu(const GpuSimulateRequest& request_in) {
  if (gpu::device_count() == 0)
    throw Error("no CUDA device: --backend gpu needs one; " + gpu::unavailable_reason());
  GpuSimulateRequest request = request_in;
  if (!request.device_chosen) {  // predict for the GPU that is measured
    const std::string name = gpu::describe_device();
    const char* preset = name.find("H200") != std::string::npos   ? "H200"
                         : name.find("A100") != std::string::npos ? "A100-80GB"
                                                                   : "H100-SXM";
    request.twin.device = sim::find_device(sim::builtin_devices(), preset);
  }
  try {
    return run(request);
  } catch (const gpu::CudaError& error) {  // a failed CUDA call (out of device memory included): not the flags
    std::fflush(stdout);
    fmt::print(stderr, "ringlab simulate: CUDA error: {}\n", error.what());
    return kExitRunFailed;
  }
}

#endif  // RINGLAB_WITH_GPU

}  // namespace ringlab::cli
