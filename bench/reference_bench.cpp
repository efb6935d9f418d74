// ringlab_bench_reference — the reference benchmark of issue 2 §5, in one run:
//
//   1. tile sweep: blockwise forward at one N over a few (Br, Bc) tile sizes; the fastest is "best".
//   2. rates:      forward GFLOP/s of dense and blockwise (default and best tiles) at N = 1024…8192, H=8, D=64,
//                  non-causal, fp32 and fp64, beside the Eigen GEMM rate of the same two products per head
//                  (S = Q·Kᵀ, O = P·V) on the same row-major layouts, in the same thread count.
//   3. memory:     blockwise forward at B=1, N=M=65536, H=1, D=64 (fp32 and fp64): the heap the call adds
//                  beyond its inputs (operator new/delete and malloc/free are replaced by counting versions,
//                  heap_counter.cpp), split into outputs (O, LSE) and working memory, plus getrusage max RSS.
//                  Last, because it measures no time: the timed parts get the quiet machine the script waited for.
//
// FLOPs = 4·N·M·D·H (two GEMMs of 2·N·M·D per head; the softmax is not counted). Time = median of k calls
// after a warm-up; every result is checked outside the timed call against the fp64 dense output (the oracle)
// with the scaled error of docs/semantics.md; exit 1 when any check fails.
//
// Build: cmake -S . -B build/release -G Ninja -DRINGLAB_BUILD_BENCH=ON
//        cmake --build build/release --target ringlab_bench_reference
// Run:   build/release/bench/ringlab_bench_reference [--help]   (scripts/bench_reference.sh records a run)
#include <CLI/CLI.hpp>
#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "heap_counter.hpp"
#include "ringlab/attention.hpp"
#include "ringlab/random.hpp"

namespace {

using ringlab::Algorithm;
using ringlab::AttentionConfig;
using ringlab::AttentionOptions;
using ringlab::AttentionOutput;
using ringlab::Tensor;
using ringlab::TileSizes;
using i64 = std::int64_t;

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstMap = Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using MutableMap = Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>>;

constexpr double kMiB = 1024.0 * 1024.0;

template <class T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "fp32" : "fp64";
}
// docs/semantics.md: tolerance on the scaled error, per dtype.
template <class T>
double tolerance() {
  return sizeof(T) == 4 ? 1e-5 : 1e-10;
}

std::string tiles_text(TileSizes tiles) { return std::to_string(tiles.query_rows) + "x" + std::to_string(tiles.key_rows); }

double flops_of(const AttentionConfig& config) {
  return 4.0 * static_cast<double>(config.seq) * static_cast<double>(config.kv_seq) *
         static_cast<double>(config.head_dim) * static_cast<double>(config.heads * config.batch);
}

AttentionConfig make_config(i64 seq, i64 heads, i64 head_dim) {
  AttentionConfig config;
  config.batch = 1;
  config.seq = config.kv_seq = seq;
  config.heads = config.kv_heads = heads;
  config.head_dim = head_dim;
  config.causal = false;
  config.validate();
  return config;
}

// N(0,1) inputs, generated straight into the tensor (no double-precision temporary, so the memory
// measurement's RSS is not inflated by the generator).
template <class T>
Tensor<T> random_tensor(std::vector<i64> shape, std::uint64_t seed) {
  Tensor<T> tensor(std::move(shape));
  ringlab::NormalGenerator generator(seed);
  for (T& value : tensor.data) value = static_cast<T>(generator.next());
  return tensor;
}

template <class T>
struct Inputs {
  Tensor<T> q, k, v;  // q [B, N, H, D]; k, v [B, M, Hkv, D]
};

template <class T>
Inputs<T> make_inputs(const AttentionConfig& config, std::uint64_t seed) {
  return {random_tensor<T>(ringlab::query_shape(config), seed), random_tensor<T>(ringlab::kv_shape(config), seed + 1),
          random_tensor<T>(ringlab::kv_shape(config), seed + 2)};
}

template <class To, class From>
Inputs<To> cast_inputs(const Inputs<From>& from) {
  return {ringlab::tensor_cast<To>(from.q), ringlab::tensor_cast<To>(from.k), ringlab::tensor_cast<To>(from.v)};
}

// ---- timing ------------------------------------------------------------------------------------------------

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double thread_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

// CPU seconds every process on the machine has used (all CPUs; /proc/stat, in clock ticks). Minus this
// process's own CPU time it is what other processes used: on a shared 2-core machine a compile on the other
// core competes for the L3 and memory bandwidth even when this process is never descheduled.
double machine_busy_seconds() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  if (!stat) return 0;
  return static_cast<double>(user + nice + system + irq + softirq + steal) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Wall and CPU time of one call, and the CPU other processes used meanwhile. The benchmark is
// single-threaded, so CPU ÷ wall well below 1 means it was descheduled during the call.
struct CallTime {
  double wall_s = 0, cpu_s = 0, others_cpu_s = 0;
};

class Stopwatch {
 public:
  CallTime stop() const {
    const double wall = seconds_since(wall_start_), cpu = thread_cpu_seconds() - cpu_start_;
    // Not clamped at 0: the 10 ms tick rounding then averages out over a row's calls.
    return {wall, cpu, machine_busy_seconds() - busy_start_ - cpu};
  }

 private:
  double busy_start_ = machine_busy_seconds();
  std::chrono::steady_clock::time_point wall_start_ = std::chrono::steady_clock::now();
  double cpu_start_ = thread_cpu_seconds();
};

// Waits (up to max_s, and up to what is left of the run's allowance `left_s`) until other processes use under
// 10% of one core over half a second.
void wait_for_quiet(double max_s, double& left_s) {
  const auto start = std::chrono::steady_clock::now();
  while (seconds_since(start) < std::min(max_s, left_s)) {
    const double busy = machine_busy_seconds();
    usleep(500000);
    if (machine_busy_seconds() - busy < 0.05) break;
  }
  left_s = std::max(0.0, left_s - seconds_since(start));
}

struct TimingPolicy {
  int min_reps = 3;              // timed calls kept, at least
  int max_reps = 10;             // timed calls kept, at most
  double budget_s = 0.6;         // keep timing while the kept calls so far took less than this
  double warmup_limit_s = 1.0;   // warm up when a call is expected to take less than this (see measure)
  int max_dropped = 4;           // disturbed calls retaken per row, at most
  double quiet_wait_s = 30;      // before a retake, wait up to this long for the machine to go quiet
  double quiet_wait_total_s = 180;  // ... and up to this long over the whole run
};

// A call of 0.25 s or more is disturbed when this process was descheduled during it (CPU < 95% of wall) or
// other processes used over 10% of a core meanwhile (/proc/stat counts 10 ms ticks: too coarse below that).
// Shorter calls are never retaken: their rows have more calls, and the median absorbs a disturbed one.
bool disturbed(const CallTime& time) {
  return time.wall_s >= 0.25 &&
         (time.cpu_s < 0.95 * time.wall_s || time.others_cpu_s > 0.10 * time.wall_s);
}

struct Samples {
  std::vector<double> seconds;  // wall time of each kept call
  double cpu_s = 0, wall_s = 0, others_cpu_s = 0;  // totals over the kept calls
  int dropped = 0;              // disturbed calls that were retaken
  bool warmed_up = false;
  double cpu_share() const { return cpu_s / wall_s; }
  double others_share() const { return std::max(0.0, others_cpu_s / wall_s); }  // other processes' CPU, in cores
  double median() const {
    std::vector<double> sorted = seconds;
    std::sort(sorted.begin(), sorted.end());
    const std::size_t n = sorted.size();
    return n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  }
  double spread() const {  // (max − min) / median
    const auto [lo, hi] = std::minmax_element(seconds.begin(), seconds.end());
    return (*hi - *lo) / median();
  }
};

// `call` runs the routine once and returns its CallTime (it times only the call, not the release of the
// previous result). One untimed warm-up call first, unless one call is expected to take longer than
// policy.warmup_limit_s: a multi-second call is its own warm-up, and that routine was already warmed up at
// the smaller sizes before it. `expected_s` < 0 means unknown (then it warms up). A disturbed call is
// dropped and retaken once the machine is quiet, up to policy.max_dropped times per row; after that,
// disturbed calls are kept, and the cpu and other columns show it.
double quiet_wait_left_s = -1;  // the run's remaining allowance for wait_for_quiet (set in main)

template <class Call>
Samples measure(Call&& call, const TimingPolicy& policy, double expected_s) {
  Samples samples;
  if (expected_s < 0 || expected_s < policy.warmup_limit_s) {
    call();
    samples.warmed_up = true;
  }
  double total = 0;
  while (static_cast<int>(samples.seconds.size()) < policy.min_reps ||
         (total < policy.budget_s && static_cast<int>(samples.seconds.size()) < policy.max_reps)) {
    const CallTime time = call();
    if (disturbed(time) && samples.dropped < policy.max_dropped) {
      ++samples.dropped;
      wait_for_quiet(policy.quiet_wait_s, quiet_wait_left_s);
      continue;
    }
    samples.seconds.push_back(time.wall_s);
    samples.cpu_s += time.cpu_s;
    samples.wall_s += time.wall_s;
    samples.others_cpu_s += time.others_cpu_s;
    total += time.wall_s;
  }
  return samples;
}

// ---- correctness: scaled error of docs/semantics.md against the fp64 oracle ------------------------------

template <class T>
double scaled_error(const Tensor<T>& out, const Tensor<double>& ref) {
  double largest = 0, worst = 0;
  for (double r : ref.data)
    if (std::isfinite(r)) largest = std::max(largest, std::abs(r));
  for (std::size_t i = 0; i < ref.data.size(); ++i) {
    const double o = static_cast<double>(out.data[i]), r = ref.data[i];
    if (std::isnan(o)) return std::numeric_limits<double>::infinity();
    if (!std::isfinite(r) || !std::isfinite(o)) {
      if (o != r) return std::numeric_limits<double>::infinity();
      continue;
    }
    worst = std::max(worst, std::abs(o - r));
  }
  return worst / std::max(largest, 1.0);
}

template <class T>
double output_error(const AttentionOutput<T>& out, const AttentionOutput<double>& oracle) {
  return std::max(scaled_error(out.out, oracle.out), scaled_error(out.lse, oracle.lse));
}

// ---- the Eigen GEMM baseline -------------------------------------------------------------------------------

// The two GEMMs of attention, per head, on the row-major layouts the reference reads:
//   S [N, M]   = Q_h [N, D] · K_hᵀ [D, M]     Q_h, K_h: head views of BNHD tensors, row stride H·D
//   O_h [N, D] = S [N, M] · V_h [M, D]        S stands in for P (the values do not change the rate)
// `scores` is allocated once, outside the timed call.
template <class T>
CallTime time_gemm_pair(const AttentionConfig& config, const Inputs<T>& in, Matrix<T>& scores, Tensor<T>& out) {
  const Stopwatch stopwatch;
  for (i64 h = 0; h < config.heads; ++h) {
    const auto view = [](ringlab::MatrixView<const T> head) {
      return ConstMap<T>(head.data, head.rows, head.cols, Eigen::OuterStride<>(head.row_stride));
    };
    const auto o = out.head(0, h);
    MutableMap<T> o_h(o.data, o.rows, o.cols, Eigen::OuterStride<>(o.row_stride));
    scores.noalias() = view(in.q.head(0, h)) * view(in.k.head(0, h)).transpose();
    o_h.noalias() = scores * view(in.v.head(0, h));
  }
  return stopwatch.stop();
}

// ---- rates -------------------------------------------------------------------------------------------------

struct Row {
  i64 seq = 0;
  std::string dtype, algorithm, tiles;
  Samples samples;
  double flops = 0, gemm_gflops = 0;
  std::optional<double> error;  // none: the GEMM row; NaN: the oracle itself
  double tolerance = 0;
  double gflops() const { return flops / samples.median() / 1e9; }
  bool wrong() const { return error && !std::isnan(*error) && !(*error <= tolerance); }
};

Row make_row(i64 seq, std::string dtype, std::string algorithm, std::string tiles) {
  Row row;
  row.seq = seq;
  row.dtype = std::move(dtype);
  row.algorithm = std::move(algorithm);
  row.tiles = std::move(tiles);
  return row;
}

const char* kRuleLine =
    "#-------------------------------------------------------------------------------------------------------------"
    "----";

void print_rate_header() {
  std::printf("%s\n", kRuleLine);
  std::printf("# %6s %5s %-10s %8s %4s %4s %11s %7s %5s %5s %8s %9s %6s %9s %6s\n", "N", "dtype", "algorithm",
              "tiles", "reps", "drop", "time(ms)", "spread", "cpu", "other", "GFLOP/s", "GEMM", "ratio", "max err",
              "check");
  std::printf("# %6s %5s %-10s %8s %4s %4s %11s %7s %5s %5s %8s %9s %6s %9s %6s\n", "", "", "", "BrxBc", "", "",
              "median", "", "", "", "", "GFLOP/s", "", "vs fp64", "");
  std::printf("%s\n", kRuleLine);
}

void print_row(const Row& row) {
  char error_text[32], check_text[16];
  if (!row.error) {
    std::snprintf(error_text, sizeof error_text, "%s", "-");
    std::snprintf(check_text, sizeof check_text, "%s", "-");
  } else if (std::isnan(*row.error)) {
    std::snprintf(error_text, sizeof error_text, "%s", "oracle");
    std::snprintf(check_text, sizeof check_text, "%s", "-");
  } else {
    std::snprintf(error_text, sizeof error_text, "%.2e", *row.error);
    std::snprintf(check_text, sizeof check_text, "%s", row.wrong() ? "FAIL" : "ok");
  }
  std::printf("  %6lld %5s %-10s %8s %4zu %4d %11.2f %6.1f%% %4.0f%% %4.0f%% %8.2f %9.2f %6.3f %9s %6s\n",
              static_cast<long long>(row.seq), row.dtype.c_str(), row.algorithm.c_str(), row.tiles.c_str(),
              row.samples.seconds.size(), row.samples.dropped, row.samples.median() * 1e3,
              row.samples.spread() * 100.0, row.samples.cpu_share() * 100.0, row.samples.others_share() * 100.0,
              row.gflops(), row.gemm_gflops,
              row.gflops() / row.gemm_gflops, error_text, check_text);
  std::fflush(stdout);
}

// Last median per routine (algorithm, dtype, tiles) and its N, to predict the next size's call time (∝ N²).
struct CallTimes {
  std::map<std::string, std::pair<i64, double>> last;
  double expected(const std::string& key, i64 seq) const {
    const auto found = last.find(key);
    if (found == last.end()) return -1;
    const double ratio = static_cast<double>(seq) / static_cast<double>(found->second.first);
    return found->second.second * ratio * ratio;
  }
  void record(const std::string& key, i64 seq, double seconds) { last[key] = {seq, seconds}; }
};

// The rows of one (N, dtype): GEMM baseline, dense, blockwise at each tile size of `tile_choices`.
// `oracle` (fp64 dense) is filled by the fp64 dense run when empty, and checks everything else.
template <class T>
std::vector<Row> rate_rows(const AttentionConfig& config, const Inputs<T>& in, const std::vector<TileSizes>& tile_choices,
                           const TimingPolicy& policy, CallTimes& times,
                           std::optional<AttentionOutput<double>>& oracle) {
  std::vector<Row> rows;
  const std::string dtype = dtype_name<T>();
  const double flops = flops_of(config);

  {  // Eigen GEMM baseline
    Matrix<T> scores(config.seq, config.kv_seq);
    Tensor<T> out(ringlab::query_shape(config));
    const std::string key = "gemm/" + dtype;
    Row row = make_row(config.seq, dtype, "eigen-gemm", "-");
    row.samples = measure([&] { return time_gemm_pair(config, in, scores, out); }, policy, times.expected(key, config.seq));
    times.record(key, config.seq, row.samples.median());
    row.flops = flops;
    rows.push_back(row);
  }
  const double gemm_gflops = rows.front().gflops();
  rows.front().gemm_gflops = gemm_gflops;

  auto attention_row = [&](Algorithm algorithm, TileSizes tiles) {
    AttentionOptions<T> options;
    options.algorithm = algorithm;
    options.tiles = tiles;
    const bool dense = algorithm == Algorithm::dense;
    const std::string key = (dense ? "dense/" : "blockwise/" + tiles_text(tiles) + "/") + dtype;
    std::optional<AttentionOutput<T>> result;
    Row row = make_row(config.seq, dtype, dense ? "dense" : "blockwise", dense ? "-" : tiles_text(tiles));
    row.samples = measure(
        [&] {
          const Stopwatch stopwatch;
          AttentionOutput<T> out = ringlab::attention_forward(config, in.q, in.k, in.v, options);
          const CallTime time = stopwatch.stop();
          result = std::move(out);
          return time;
        },
        policy, times.expected(key, config.seq));
    times.record(key, config.seq, row.samples.median());
    row.flops = flops;
    row.gemm_gflops = gemm_gflops;
    row.tolerance = tolerance<T>();
    if constexpr (sizeof(T) == sizeof(double)) {
      if (dense && !oracle) {
        oracle = AttentionOutput<double>{result->out, result->lse};
        row.error = std::numeric_limits<double>::quiet_NaN();
      }
    }
    if (!row.error) row.error = output_error(*result, *oracle);
    rows.push_back(row);
  };
  attention_row(Algorithm::dense, {});
  for (const TileSizes& tiles : tile_choices) attention_row(Algorithm::blockwise, tiles);
  return rows;
}

// ---- tile sweep --------------------------------------------------------------------------------------------

template <class T>
TileSizes sweep_tiles(const AttentionConfig& config, const Inputs<T>& in, const std::vector<TileSizes>& candidates,
                      const TimingPolicy& policy) {
  const TileSizes defaults{};
  double default_seconds = 0, best_seconds = std::numeric_limits<double>::infinity();
  TileSizes best = defaults;
  std::vector<std::pair<TileSizes, Samples>> results;
  for (const TileSizes& tiles : candidates) {
    AttentionOptions<T> options;
    options.algorithm = Algorithm::blockwise;
    options.tiles = tiles;
    Samples samples = measure(
        [&] {
          const Stopwatch stopwatch;
          const auto out = ringlab::attention_forward(config, in.q, in.k, in.v, options);
          return stopwatch.stop();
        },
        policy, -1);
    if (tiles.query_rows == defaults.query_rows && tiles.key_rows == defaults.key_rows) default_seconds = samples.median();
    if (samples.median() < best_seconds) best_seconds = samples.median(), best = tiles;
    results.emplace_back(tiles, samples);
  }
  for (const auto& [tiles, samples] : results) {
    const bool is_default = tiles.query_rows == defaults.query_rows && tiles.key_rows == defaults.key_rows;
    const bool is_best = tiles.query_rows == best.query_rows && tiles.key_rows == best.key_rows;
    std::printf("  %6lld %5s %8s %4zu %4d %11.2f %6.1f%% %4.0f%% %4.0f%% %8.2f %10.3fx %s\n",
                static_cast<long long>(config.seq), dtype_name<T>(), tiles_text(tiles).c_str(), samples.seconds.size(),
                samples.dropped, samples.median() * 1e3, samples.spread() * 100.0, samples.cpu_share() * 100.0,
                samples.others_share() * 100.0, flops_of(config) / samples.median() / 1e9,
                default_seconds / samples.median(),
                is_best ? (is_default ? "<- default, best" : "<- best") : (is_default ? "<- default" : ""));
  }
  std::fflush(stdout);
  return best;
}

// ---- memory ------------------------------------------------------------------------------------------------

long max_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;  // KiB on Linux
}

long current_rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long value = -1;
  while (status >> key) {
    if (key == "VmRSS:") {
      status >> value;
      return value;
    }
    status.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return -1;
}

struct MemoryResult {  // plain data: written by a child process into shared memory
  bool done = false;
  i64 inputs_bytes = 0;     // Q, K, V as counted when they were allocated
  i64 outputs_bytes = 0;    // what the call returns and keeps (O, LSE): current after − current before
  i64 call_peak_bytes = 0;  // peak during the call − current before: outputs + working
  i64 working_bytes = 0;    // call_peak − outputs: transient memory of the call
  i64 allocations = 0;      // heap allocations the call made
  long rss_before_kib = 0, max_rss_before_kib = 0, max_rss_after_kib = 0;
  double seconds = 0;
  double spot_error = 0;    // scaled error of a few rows against a direct fp64 computation
};

// O and LSE of query row i computed directly in fp64: LSE = log Σ_j e^{τ q·k_j}, O = Σ_j softmax_j v_j.
template <class T>
double spot_check(const AttentionConfig& config, const Inputs<T>& in, const AttentionOutput<T>& out) {
  const i64 n = config.seq, m = config.kv_seq, d = config.head_dim;
  const double tau = config.tau();
  double worst = 0, largest = 1;
  for (const i64 i : {i64{0}, i64{1}, n / 3, n / 2, n - 1}) {
    std::vector<double> scores(static_cast<std::size_t>(m));
    const T* q = in.q.head(0, 0).row(i);
    double row_max = -std::numeric_limits<double>::infinity();
    for (i64 j = 0; j < m; ++j) {
      const T* k = in.k.head(0, 0).row(j);
      double dot = 0;
      for (i64 c = 0; c < d; ++c) dot += static_cast<double>(q[c]) * static_cast<double>(k[c]);
      scores[j] = tau * dot;
      row_max = std::max(row_max, scores[j]);
    }
    double sum = 0;
    std::vector<double> o(static_cast<std::size_t>(d), 0.0);
    for (i64 j = 0; j < m; ++j) {
      const double p = std::exp(scores[j] - row_max);
      sum += p;
      const T* v = in.v.head(0, 0).row(j);
      for (i64 c = 0; c < d; ++c) o[c] += p * static_cast<double>(v[c]);
    }
    const double lse = row_max + std::log(sum);
    largest = std::max(largest, std::abs(lse));
    worst = std::max(worst, std::abs(static_cast<double>(out.lse.data[i]) - lse));
    for (i64 c = 0; c < d; ++c) {
      largest = std::max(largest, std::abs(o[c] / sum));
      worst = std::max(worst, std::abs(static_cast<double>(out.out.head(0, 0).row(i)[c]) - o[c] / sum));
    }
  }
  return worst / largest;
}

template <class T>
void measure_memory(i64 seq, i64 head_dim, MemoryResult& result) {
  const AttentionConfig config = make_config(seq, 1, head_dim);
  const auto before_inputs = ringlab::bench::heap_counts();
  const Inputs<T> in = make_inputs<T>(config, 7);
  const auto before = ringlab::bench::heap_counts();
  result.inputs_bytes = before.current_bytes - before_inputs.current_bytes;
  result.rss_before_kib = current_rss_kib();
  result.max_rss_before_kib = max_rss_kib();

  AttentionOptions<T> options;
  options.algorithm = Algorithm::blockwise;  // default tiles
  ringlab::bench::reset_heap_peak();
  const auto start = std::chrono::steady_clock::now();
  const AttentionOutput<T> out = ringlab::attention_forward(config, in.q, in.k, in.v, options);
  result.seconds = seconds_since(start);
  const auto after = ringlab::bench::heap_counts();

  result.max_rss_after_kib = max_rss_kib();
  result.outputs_bytes = after.current_bytes - before.current_bytes;
  result.call_peak_bytes = after.peak_bytes - before.current_bytes;
  result.working_bytes = result.call_peak_bytes - result.outputs_bytes;
  result.allocations = after.allocations - before.allocations;
  result.spot_error = spot_check(config, in, out);
  result.done = true;
}

// Each dtype runs in its own child process: fork() resets the child's getrusage counters, so its max RSS is
// its own. The two run at once (memory, not time, is measured here).
bool run_memory_section(i64 seq, i64 head_dim) {
  auto* results = static_cast<MemoryResult*>(
      mmap(nullptr, 2 * sizeof(MemoryResult), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (results == MAP_FAILED) {
    std::perror("mmap");
    return false;
  }
  new (&results[0]) MemoryResult{};
  new (&results[1]) MemoryResult{};
  std::fflush(stdout);
  pid_t children[2];
  for (int which = 0; which < 2; ++which) {
    children[which] = fork();
    if (children[which] == 0) {
      try {
        if (which == 0)
          measure_memory<float>(seq, head_dim, results[0]);
        else
          measure_memory<double>(seq, head_dim, results[1]);
      } catch (const std::exception& error) {
        std::fprintf(stderr, "memory benchmark failed: %s\n", error.what());
      }
      _exit(0);
    }
  }
  for (pid_t child : children) waitpid(child, nullptr, 0);

  const double input_exact[2] = {3.0 * seq * head_dim * 4 / kMiB, 3.0 * seq * head_dim * 8 / kMiB};
  bool ok = true;
  std::printf("%s\n", kRuleLine);
  std::printf("# %5s %9s %9s %9s %9s %10s %8s %8s %8s %9s %7s %9s %6s\n", "dtype", "inputs", "outputs", "working",
              "call", "footprint", "RSS", "maxRSS", "maxRSS", "maxRSS", "time", "spot err", "check");
  std::printf("# %5s %9s %9s %9s %9s %10s %8s %8s %8s %9s %7s %9s %6s\n", "", "Q,K,V", "O,LSE", "", "peak", "in+peak",
              "before", "before", "after", "added", "(s)", "vs fp64", "");
  std::printf("# %5s %9s %9s %9s %9s %10s %8s %8s %8s %9s %7s %9s %6s\n", "", "(MiB)", "(MiB)", "(MiB)", "(MiB)", "(MiB)",
              "(MiB)", "(MiB)", "(MiB)", "(MiB)", "", "", "");
  std::printf("%s\n", kRuleLine);
  for (int which = 0; which < 2; ++which) {
    const MemoryResult& r = results[which];
    const char* dtype = which == 0 ? "fp32" : "fp64";
    if (!r.done) {
      std::printf("  %5s  (failed; see stderr)\n", dtype);
      ok = false;
      continue;
    }
    const double tol = which == 0 ? 1e-5 : 1e-10;
    const bool wrong = !(r.spot_error <= tol);
    ok = ok && !wrong;
    std::printf("  %5s %9.3f %9.3f %9.3f %9.3f %10.3f %8.1f %8.1f %8.1f %9.1f %7.1f %9.2e %6s\n", dtype,
                r.inputs_bytes / kMiB, r.outputs_bytes / kMiB, r.working_bytes / kMiB, r.call_peak_bytes / kMiB,
                (r.inputs_bytes + r.call_peak_bytes) / kMiB, r.rss_before_kib / 1024.0, r.max_rss_before_kib / 1024.0,
                r.max_rss_after_kib / 1024.0, (r.max_rss_after_kib - r.max_rss_before_kib) / 1024.0, r.seconds,
                r.spot_error, wrong ? "FAIL" : "ok");
  }
  std::printf("#\n");
  for (int which = 0; which < 2; ++which) {
    const MemoryResult& r = results[which];
    if (!r.done) continue;
    const auto verdict = [](double mib) { return mib < 64.0 ? "under" : "NOT under"; };
    std::printf("# %s: exact Q,K,V = %.3f MiB; working %.3f MiB (%lld allocations) is %s 64 MiB; "
                "call peak (O, LSE + working) %.3f MiB is %s; footprint %.3f MiB is %s 64 MiB\n",
                which == 0 ? "fp32" : "fp64", input_exact[which], r.working_bytes / kMiB,
                static_cast<long long>(r.allocations), verdict(r.working_bytes / kMiB), r.call_peak_bytes / kMiB,
                verdict(r.call_peak_bytes / kMiB), (r.inputs_bytes + r.call_peak_bytes) / kMiB,
                verdict((r.inputs_bytes + r.call_peak_bytes) / kMiB));
  }
  munmap(results, 2 * sizeof(MemoryResult));
  return ok;
}

std::vector<TileSizes> parse_tiles(const std::vector<std::string>& texts) {
  std::vector<TileSizes> tiles;
  for (const std::string& text : texts) {
    const auto x = text.find('x');
    if (x == std::string::npos) throw CLI::ValidationError("--tiles", "expected BrxBc, e.g. 64x128, got " + text);
    tiles.push_back({std::stoll(text.substr(0, x)), std::stoll(text.substr(x + 1))});
    if (tiles.back().query_rows < 1 || tiles.back().key_rows < 1)
      throw CLI::ValidationError("--tiles", "tile sizes must be positive, got " + text);
  }
  return tiles;
}

bool same_tiles(TileSizes a, TileSizes b) { return a.query_rows == b.query_rows && a.key_rows == b.key_rows; }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ringlab reference benchmark (issue 2 §5): forward GFLOP/s beside the Eigen GEMM rate, and the "
               "blockwise forward's memory"};
  std::vector<i64> sizes{1024, 2048, 4096, 8192};
  i64 heads = 8, head_dim = 64, sweep_seq = 1024, memory_seq = 65536;
  std::vector<std::string> tile_texts{"32x64", "64x64", "64x128", "128x128", "128x256", "256x256", "256x512"};
  TimingPolicy policy;
  bool skip_memory = false, skip_rates = false, fp64_best = false;
  app.add_option("--sizes", sizes, "sequence lengths N (= M) of the rate table")->delimiter(',');
  app.add_option("--heads", heads, "heads H of the rate table")->check(CLI::PositiveNumber);
  app.add_option("--head-dim", head_dim, "head dimension D")->check(CLI::PositiveNumber);
  app.add_option("--tiles", tile_texts, "blockwise tile sizes BrxBc to sweep")->delimiter(',');
  app.add_option("--sweep-seq", sweep_seq, "N of the tile sweep")->check(CLI::PositiveNumber);
  app.add_option("--memory-seq", memory_seq, "N (= M) of the memory measurement (H = 1)")->check(CLI::PositiveNumber);
  app.add_option("--min-reps", policy.min_reps, "timed calls per row, at least")->check(CLI::PositiveNumber);
  app.add_option("--max-reps", policy.max_reps, "timed calls per row, at most")->check(CLI::PositiveNumber);
  app.add_option("--budget", policy.budget_s, "seconds of timed calls per row before stopping at min-reps");
  app.add_option("--warmup-limit", policy.warmup_limit_s,
                 "warm up (one untimed call) when a call is expected to take less than this many seconds");
  app.add_option("--max-dropped", policy.max_dropped, "disturbed calls retaken per row, at most");
  app.add_option("--quiet-wait", policy.quiet_wait_s, "before a retake, seconds to wait for the machine to go quiet");
  app.add_option("--quiet-wait-total", policy.quiet_wait_total_s, "seconds of such waiting over the whole run, at most");
  app.add_flag("--fp64-best", fp64_best,
               "also time fp64 blockwise at the sweep's best tiles at every N (fp32 always is; costs ~30 s)");
  app.add_flag("--skip-memory", skip_memory, "skip the memory measurement");
  app.add_flag("--skip-rates", skip_rates, "skip the tile sweep and the rate table");
  CLI11_PARSE(app, argc, argv);
  policy.max_reps = std::max(policy.max_reps, policy.min_reps);
  quiet_wait_left_s = policy.quiet_wait_total_s;
  std::vector<TileSizes> candidates;
  try {
    candidates = parse_tiles(tile_texts);
  } catch (const CLI::Error& error) {
    return app.exit(error);
  }
  if (std::none_of(candidates.begin(), candidates.end(), [](TileSizes t) { return same_tiles(t, TileSizes{}); }))
    candidates.insert(candidates.begin(), TileSizes{});

  const auto run_start = std::chrono::steady_clock::now();
  std::printf("# ringlab_bench_reference: forward attention of the exact CPU reference (B=1, non-causal)\n");
  std::printf("# build: %s, flags \"%s\"; Eigen %d.%d.%d, SIMD %s\n", __VERSION__, RINGLAB_BENCH_CXX_FLAGS,
              EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION, Eigen::SimdInstructionSetsInUse());
#ifdef _OPENMP
  std::printf("# threads: Eigen %d (OpenMP on); the reference and the GEMM baseline run in the same thread count\n",
              Eigen::nbThreads());
#else
  std::printf("# threads: 1 (no OpenMP: the reference and the Eigen GEMM baseline are both single-threaded)\n");
#endif
  std::printf("# time: median of k timed calls (reps) after one untimed warm-up call (skipped when a call is expected "
              "to take over %.1f s: it was warmed up at the smaller N); spread = (max - min) / median\n",
              policy.warmup_limit_s);
  std::printf("# clean calls: cpu = this process's CPU / wall time, other = CPU other processes used meanwhile (%% of "
              "one core, 10 ms ticks: meaningful for rows of >= 0.5 s); a call of >= 0.25 s with cpu < 95%% or other "
              "> 10%% is dropped and retaken once the machine is quiet (drop; at most %d per row and %.0f s of waiting "
              "per run)\n",
              policy.max_dropped, policy.quiet_wait_total_s);
  std::printf("# GFLOP/s = 4*N*M*D*H / time (the two GEMMs, 2*N*M*D each per head; softmax not counted); "
              "ratio = GFLOP/s / GEMM GFLOP/s\n");
  std::printf("# max err = max(scaled error of O, of LSE) vs the fp64 dense output on the same inputs "
              "(docs/semantics.md; tolerance fp32 1e-5, fp64 1e-10)\n");

  bool all_ok = true;
  if (!skip_rates) {
    std::printf("#\n# [tile sweep] blockwise forward, N=M=%lld H=%lld D=%lld; speedup vs the default tiles %s\n",
                static_cast<long long>(sweep_seq), static_cast<long long>(heads), static_cast<long long>(head_dim),
                tiles_text({}).c_str());
    std::printf("%s\n", kRuleLine);
    std::printf("# %6s %5s %8s %4s %4s %11s %7s %5s %5s %8s %11s\n", "N", "dtype", "BrxBc", "reps", "drop", "time(ms)",
                "spread", "cpu", "other", "GFLOP/s", "vs default");
    std::printf("%s\n", kRuleLine);
    const AttentionConfig sweep_config = make_config(sweep_seq, heads, head_dim);
    const Inputs<float> sweep_float = make_inputs<float>(sweep_config, 1);
    const TileSizes best_float = sweep_tiles(sweep_config, sweep_float, candidates, policy);
    const TileSizes best_double = sweep_tiles(sweep_config, cast_inputs<double>(sweep_float), candidates, policy);

    std::printf("#\n# [rates] forward, B=1 H=%lld D=%lld, non-causal; blockwise at the default tiles and at the sweep's "
                "best (fp32 %s%s%s)\n",
                static_cast<long long>(heads), static_cast<long long>(head_dim), tiles_text(best_float).c_str(),
                fp64_best ? ", fp64 " : "", fp64_best ? tiles_text(best_double).c_str() : "");
    print_rate_header();
    CallTimes times;
    std::vector<Row> all_rows;
    for (const i64 seq : sizes) {
      const AttentionConfig config = make_config(seq, heads, head_dim);
      const Inputs<float> in_float = make_inputs<float>(config, 1000 + static_cast<std::uint64_t>(seq));
      std::optional<AttentionOutput<double>> oracle;
      std::vector<TileSizes> tiles_double{TileSizes{}}, tiles_float{TileSizes{}};
      if (fp64_best && !same_tiles(best_double, TileSizes{})) tiles_double.push_back(best_double);
      if (!same_tiles(best_float, TileSizes{})) tiles_float.push_back(best_float);
      // fp64 first: its dense output is the oracle of every row. Printed fp32 first.
      const auto rows_double = rate_rows(config, cast_inputs<double>(in_float), tiles_double, policy, times, oracle);
      const auto rows_float = rate_rows(config, in_float, tiles_float, policy, times, oracle);
      for (const auto* rows : {&rows_float, &rows_double})
        for (const Row& row : *rows) {
          print_row(row);
          all_rows.push_back(row);
        }
    }
    std::printf("%s\n", kRuleLine);
    int wrong = 0;
    for (const Row& row : all_rows) wrong += row.wrong();
    all_ok = all_ok && wrong == 0;
    std::printf("# wrong results: %d\n", wrong);
    int disturbed_rows = 0;
    for (const Row& row : all_rows) {
      const bool long_row = row.samples.wall_s >= 0.5;
      if (row.samples.cpu_share() < 0.95 || (long_row && row.samples.others_share() > 0.10)) {
        std::printf("# disturbed: N=%lld %s %s %s kept calls with cpu %.0f%%, other %.0f%%: rerun it on a quiet machine\n",
                    static_cast<long long>(row.seq), row.dtype.c_str(), row.algorithm.c_str(), row.tiles.c_str(),
                    row.samples.cpu_share() * 100.0, row.samples.others_share() * 100.0);
        ++disturbed_rows;
      }
    }
    std::printf("# disturbed rows: %d\n", disturbed_rows);
    std::printf("# target: blockwise fp32 forward >= 50%% of the Eigen GEMM rate\n");
    for (const Row& row : all_rows)
      if (row.dtype == "fp32" && row.algorithm == "blockwise")
        std::printf("#   N=%-6lld tiles %-8s ratio %.3f  %s\n", static_cast<long long>(row.seq), row.tiles.c_str(),
                    row.gflops() / row.gemm_gflops, row.gflops() / row.gemm_gflops >= 0.5 ? "met" : "MISSED");
  }
  if (!skip_memory) {
    std::printf("#\n# [memory] blockwise forward, B=1 N=M=%lld H=Hkv=1 D=%lld, default tiles %s; heap counted by replaced "
                "operator new/delete and malloc/free (Eigen allocates with malloc); fp32 and fp64 in two child "
                "processes\n",
                static_cast<long long>(memory_seq), static_cast<long long>(head_dim), tiles_text({}).c_str());
    all_ok = run_memory_section(memory_seq, head_dim) && all_ok;
  }

  std::printf("# total run time %.1f s; %s\n", seconds_since(run_start), all_ok ? "all checks passed" : "CHECKS FAILED");
  return all_ok ? 0 : 1;
}
