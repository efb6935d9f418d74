// Simulator benchmark (issue 3, "Performance"): prints one table.
//   1. compute mode: wall time of `Simulation` (its single-device check runs on the second core) against one
//      reference blockwise forward call of the same problem, same inputs, same tiles;
//   2. peak RSS of a compute-mode run (in a freshly exec'ed process) against the sum of the ledgers' peaks
//      (counting fp64 elements, --bytes-per-element 8, as the CPU holds them) plus the whole-problem tensors;
//   3. analytic mode: wall time at N = 2^30 on 1024 devices.
// Usage: ringlab_bench_simulator [--quick]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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

sim::SimulationOptions rss_options(std::int64_t n, int ring) {
  auto options = options_for(scenario(n, ring), sim::Mode::compute, sim::Pass::forward);
  options.bytes_per_element = 8;  // count fp64 elements, as the CPU holds them
  return options;
}

// `--rss-run N P`: one compute-mode forward run in this fresh process; prints its peak RSS in bytes. A fresh
// exec (not a fork) so that the parent's pages do not count.
int rss_run(std::int64_t n, int ring) {
  sim::Simulation simulation(rss_options(n, ring));
  simulation.run();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("%ld\n", usage.ru_maxrss * 1024L);
  return 0;
}

long peak_rss_of_fresh_run(std::int64_t n, int ring) {
  char self[4096] = {};  // resolved here: inside popen's shell, /proc/self/exe is the shell
  if (readlink("/proc/self/exe", self, sizeof(self) - 1) <= 0) return -1;
  const std::string command = std::string("'") + self + "' --rss-run " + std::to_string(n) + " " + std::to_string(ring);
  FILE* pipe = popen(command.c_str(), "r");
  long rss = -1;
  if (pipe) {
    if (std::fscanf(pipe, "%ld", &rss) != 1) rss = -1;
    pclose(pipe);
  }
  return rss;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--rss-run") == 0) return rss_run(std::atoll(argv[2]), std::atoi(argv[3]));
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

  // Compute mode keeps, beside the devices' buffers, the whole-problem tensors: q, k, v, dO (inputs), the
  // gathered O and the single-device reference O — 6·B·N·H·D fp64 values (H = Hkv here). What remains is
  // the binary, the allocator's slack (two threads, two malloc arenas) and small per-run state.
  std::printf("#\n# %-24s %13s %13s %13s %13s\n", "RSS (compute, forward)", "ledgers (MiB)", "global (MiB)",
              "peak RSS (MiB)", "rest (MiB)");
  for (const auto& [n, ring] : std::vector<std::pair<std::int64_t, int>>{{1024, 8}, {8192, 8}, {16384, 8}}) {
    auto twin_options = rss_options(n, ring);
    twin_options.mode = sim::Mode::analytic;
    sim::Simulation analytic_twin(twin_options);
    analytic_twin.run();
    long ledgers = 0;
    for (const auto& device : analytic_twin.report().devices) ledgers += device.peak_bytes;
    const AttentionConfig& c = twin_options.config;
    const long global = 6L * c.batch * c.seq * c.heads * c.head_dim * 8;
    const long rss = peak_rss_of_fresh_run(n, ring);
    if (rss < 0) {
      std::printf("ERROR: the --rss-run child printed no peak RSS\n");
      return 1;
    }
    std::printf("  %-24s %13.1f %13.1f %13.1f %13.1f\n", ("N=" + std::to_string(n) + " P=" + std::to_string(ring)).c_str(),
                ledgers / 1048576.0, global / 1048576.0, rss / 1048576.0, (rss - ledgers - global) / 1048576.0);
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
