// `ringlab simulate --backend gpu`: the ring on one GPU (gpu::VirtualRing, P virtual devices, each with the
// buffers a real rank holds) beside the single-GPU kernel on the whole sequence and the simulator's analytic
// twin of the same run. Measured: the ring's and the kernel's times (CUDA events, median), their difference
// (O, LSE, gradients) and the ring's allocated bytes per device. Predicted (simulator, --device-preset): the
// ledger's peak bytes per device and the times. docs/simulator.md, "GPU backend".
//
// This header needs no CUDA: simulate_gpu.cpp is compiled in every build and, without the GPU library
// (RINGLAB_WITH_GPU unset, tools/CMakeLists.txt), only says how to configure one.
#pragma once

#include <cstdint>
#include <string>

#include "ringlab/sim/simulation.hpp"

namespace ringlab::cli {

struct GpuSimulateRequest {
  // The analytic twin: config, pass, device preset, links, overlap. The backend sets scheme ring, mode
  // analytic and bytes_per_element to the dtype's size itself.
  sim::SimulationOptions twin;
  std::string dtype = "bf16";  // bf16 | fp16 (checked by the caller)
  std::string hops = "copies";  // copies | kernels: gpu::RingHops (checked by the caller)
  int iters = 10;              // timed repetitions after the warm-up (≥ 1)
  std::uint64_t seed = 0;      // of the N(0,1) inputs: q, k, v, dO drawn in that order, as compute mode does
  std::string report_json;     // empty: none
  bool force = false;          // overwrite report_json
  // --device-preset (or --device-file) given: predict for that device; otherwise for the preset matching
  // the GPU the ring runs on (H200, A100-80GB, else H100-SXM).
  bool device_chosen = true;
};

// Bytes of one element of `dtype` (bf16, fp16: 2), for the twin's ledger.
constexpr std::int64_t kGpuBackendElementBytes = 2;

// Runs the request; returns the exit code: 0, or 3 when the ring's result is outside the stated bound or a
// CUDA call failed. Throws ringlab::Error (exit 2) for no GPU support in this build, no CUDA device, or a
// config the GPU ring does not support (ConfigError from gpu::VirtualRing or the kernels).
int run_simulate_gpu(const GpuSimulateRequest& request);

}  // namespace ringlab::cli
