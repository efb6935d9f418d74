// Simulator benchmark (issue 3, "Performance"): prints one table.
//   1. compute mode: wall time of `Simulation` (its single-device check runs on the second core) against one
//      reference blockwise forward call of the same problem, same inputs, same tiles;
//   2. peak RSS of a compute-mode run (in a child process) against the sum of the ledgers' peaks, with the
//      ledger counting fp64 elements (--bytes-per-element 8) so both count the same bytes;
//   3. analytic mode: wall time at N = 2^30 on 1024 devices.
// Usage: ringlab_bench_simulator [--quick]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ringlab/attention.hpp"
#include "ringlab/random.hpp"
#include "ringlab/sim/simulation.hpp"

using namespace ringlab;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

AttentionConfig scenario(std::int64_t n, int ring) {
  AttentionConfig config;
  config.seq = config.kv_seq = n;
  config.heads = config.kv_heads = 8;
  config.head_dim = 64;
  config.causal = true;
  config.ring = ring;
  config.layout = Layout::zigzag;
  return config;
}

sim::SimulationOptions options_for(const AttentionConfig& config, sim::Mode mode, sim::Pass pass) {
  sim::SimulationOptions options;
  options.config = config;
  options.mode = mode;
  options.pass = pass;
  options.device = sim::find_device(sim::builtin_devices(), "H100-SXM");
  return options;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Runs `work` in a child process; returns its peak RSS in bytes (ru_maxrss of the child).
template <class Work>
long child_peak_rss(Work work) {
  const pid_t pid = fork();
  if (pid == 0) {
    work();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  rusage usage{};
  getrusage(RUSAGE_CHILDREN, &usage);
  return usage.ru_maxrss * 1024L;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int repeats = quick ? 1 : 3;
  std::printf("# ringlab_bench_simulator: compute mode vs one reference call; RSS vs ledgers; analytic scale\n");
  std::printf("# time: median of %d runs; machine threads: 2 (the simulator checks its result on a second thread)\n#\n",
              repeats);
  std::printf("# %-34s %9s %9s %11s %11s %7s\n", "case", "P", "N", "sim (s)", "ref call (s)", "ratio");
  for (const auto& [n, ring, pass] : std::vector<std::tuple<std::int64_t, int, sim::Pass>>{
           {8192, 8, sim::Pass::forward}, {4096, 8, sim::Pass::both}, {8192, 2, sim::Pass::forward}}) {
    const AttentionConfig config = scenario(n, ring);
    AttentionConfig single = config;
    single.ring = 1;
    NormalGenerator generator(0);  // the simulator's own inputs come from seed 0 the same way
    Tensor<double> q(query_shape(config)), k(kv_shape(config)), v(kv_shape(config)), dout(query_shape(config));
    for (auto* tensor : {&q, &k, &v, &dout}) tensor->data = standard_normal(generator, tensor->data.size());
    std::vector<double> reference_times, simulation_times;
    for (int r = 0; r < repeats; ++r) {
      auto start = std::chrono::steady_clock::now();
      const auto forward = attention_forward(single, q, k, v, AttentionOptions<double>{Algorithm::blockwise});
      if (pass == sim::Pass::both)
        attention_backward(single, q, k, v, forward.out, forward.lse, dout, AttentionOptions<double>{Algorithm::blockwise});
      reference_times.push_back(seconds_since(start));
      start = std::chrono::steady_clock::now();
      sim::Simulation simulation(options_for(config, sim::Mode::compute, pass));
      simulation.run();
      simulation_times.push_back(seconds_since(start));
      if (!simulation.report().max_abs_error_vs_dense || *simulation.report().max_abs_error_vs_dense > 1e-12) {
        std::printf("ERROR: the simulated ring does not equal the reference\n");
        return 1;
      }
    }
    const double sim_s = median(simulation_times), ref_s = median(reference_times);
    std::printf("  %-34s %9d %9lld %11.3f %11.3f %7.2f\n",
                (std::string("compute, causal zigzag, ") + sim::to_string(pass)).c_str(), ring,
                static_cast<long long>(n), sim_s, ref_s, sim_s / ref_s);
  }

  std::printf("#\n# %-34s %14s %14s %14s\n", "RSS (compute mode, forward)", "ledgers (MiB)", "peak RSS (MiB)",
              "overhead (MiB)");
  for (const auto& [n, ring] : std::vector<std::pair<std::int64_t, int>>{{8192, 8}, {16384, 8}}) {
    auto options = options_for(scenario(n, ring), sim::Mode::compute, sim::Pass::forward);
    options.bytes_per_element = 8;  // count fp64 elements, as the CPU holds them
    sim::Simulation analytic_twin([&] {
      auto twin = options;
      twin.mode = sim::Mode::analytic;
      return twin;
    }());
    analytic_twin.run();
    long ledgers = 0;
    for (const auto& device : analytic_twin.report().devices) ledgers += device.peak_bytes;
    const long rss = child_peak_rss([&] {
      sim::Simulation simulation(options);
      simulation.run();
    });
    std::printf("  %-34s %14.1f %14.1f %14.1f\n", ("N=" + std::to_string(n) + " P=" + std::to_string(ring)).c_str(),
                ledgers / 1048576.0, rss / 1048576.0, (rss - ledgers) / 1048576.0);
  }

  std::printf("#\n# %-34s %11s\n", "analytic mode", "wall (s)");
  for (const auto& [n, ring] : std::vector<std::pair<std::int64_t, int>>{{1LL << 30, 1024}, {1LL << 30, 256}}) {
    auto options = options_for(scenario(n, ring), sim::Mode::analytic, sim::Pass::forward);
    options.config.head_dim = 128;
    std::vector<double> times;
    for (int r = 0; r < repeats; ++r) {
      const auto start = std::chrono::steady_clock::now();
      sim::Simulation simulation(options);
      simulation.run();
      times.push_back(seconds_since(start));
    }
    std::printf("  %-34s %11.3f\n", ("N=2^30 P=" + std::to_string(ring) + " causal zigzag").c_str(), median(times));
  }
  return 0;
}
