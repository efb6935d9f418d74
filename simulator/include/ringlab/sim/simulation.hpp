// The simulator: P virtual devices in one process running the reference RingSchedule step by step on one
// discrete-event queue in integer nanoseconds. Each device computes on the K/V chunk it holds while sending
// it on (double-buffered receive), every buffer goes through its MemoryLedger, and messages carry sequence
// numbers and checksums so injected faults are detected, never silently computed through.
//
//   compute mode:  real tensors on the CPU through the reference block kernels and LSE merge; the gathered
//                  output (and gradients) are compared with single-device attention.
//   analytic mode: no tensors; the same schedule, ledgers and timeline (N up to 2^30, P up to 4096).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ringlab/block_attention.hpp"
#include "ringlab/config.hpp"
#include "ringlab/schedule.hpp"
#include "ringlab/sim/hardware.hpp"
#include "ringlab/sim/ledger.hpp"

namespace ringlab::sim {

enum class Mode { compute, analytic };
enum class Scheme { ring, flash, dense };  // ring (q-replicated via config.q_replicated); one-device flash; dense with scores
enum class Pass { forward, backward, both };
enum class FaultKind { drop, duplicate, corrupt, stale, delay, kill };

std::string to_string(Mode);
std::string to_string(Scheme);
std::string to_string(Pass);
std::string to_string(FaultKind);
Mode parse_mode(const std::string& text);
Scheme parse_scheme(const std::string& text);
Pass parse_pass(const std::string& text);

// KIND@DEVICE:STEP — the message DEVICE sends after ring step STEP (kill: DEVICE stops at STEP).
struct Fault {
  FaultKind kind = FaultKind::drop;
  int device = 0;
  int step = 0;
};
Fault parse_fault(const std::string& text);  // ConfigError naming --inject on bad text

// A fault the receiving side detected (timeout, duplicate, stale, corrupt). Names device and step.
class FaultDetected : public Error {
 public:
  FaultDetected(const std::string& message, int device, int step) : Error(message), device_(device), step_(step) {}
  int device() const { return device_; }
  int step() const { return step_; }

 private:
  int device_, step_;
};

struct SimulationOptions {
  AttentionConfig config;
  Scheme scheme = Scheme::ring;
  Mode mode = Mode::compute;
  Pass pass = Pass::forward;
  DeviceSpec device;                           // the preset or user device every virtual device is
  int devices_per_node = 8;                    // G: devices sharing the fast intra-node links
  bool overlap = true;                         // send the chunk while computing on it
  std::int64_t bytes_per_element = 2;          // dtype size of Q, K, V, O, dO (bf16 = 2); accumulators are fp32
  bool send_selected_rows = false;             // dilation: send only the K/V rows some pattern selects
  // Element size of the final dK/dV hop home (the returned gradients); 0: bytes_per_element, as the GPU ring
  // returns them by default (ScheduleOptions::returned_gradient_bytes_per_element).
  std::int64_t returned_gradient_bytes_per_element = 0;
  std::optional<std::int64_t> memory_budget;   // bytes per device; OutOfMemory when exceeded
  std::vector<Fault> faults;
  std::int64_t timeout_ns = 100'000'000;       // watchdog: no progress anywhere in the ring for this long = timeout
  std::int64_t delay_ns = 1'000'000;           // extra latency of a `delay` fault
  TileSizes tiles = {};
  std::uint64_t seed = 0;                      // compute mode inputs
};

// What happened on one device.
struct DeviceReport {
  int id = 0;
  std::int64_t peak_bytes = 0;
  std::array<std::int64_t, kCategoryCount> peak_bytes_by_category{};
  std::int64_t compute_ns = 0;        // busy computing
  std::int64_t comm_ns = 0;           // its send stream busy
  std::int64_t exposed_comm_ns = 0;   // waiting while a transfer it needs is in flight
  std::int64_t idle_ns = 0;           // neither: waiting for a slower neighbour, or done early
  std::int64_t bytes_sent = 0;
  std::int64_t pairs = 0;
};

// One timeline slice on a device's stream (tid 0 compute, 1 send, 2 receive).
struct Slice {
  int device = 0;
  int stream = 0;
  std::string name;
  std::int64_t begin_ns = 0, end_ns = 0;
  int pass = 0;  // 0 forward, 1 backward
  int step = 0;
  std::int64_t message = -1;  // for send/receive slices: the message id (flow events pair them)
};

struct MemorySample {
  int device = 0;
  std::int64_t time_ns = 0;
  std::int64_t bytes = 0;
};

// The state after a ring step, for the viz: who holds what, what was computed, memory.
struct StepSnapshot {
  int pass = 0;
  int step = 0;
  std::int64_t time_ns = 0;                  // when the last device finished this step's compute
  std::vector<int> kv_owner;                 // [device] chunk held during the step
  std::vector<std::int64_t> pairs;           // [device] score entries computed
  std::vector<bool> skipped;                 // [device]
  std::vector<std::int64_t> memory_bytes;    // [device] ledger current bytes after the step
};

struct Report {
  SimulationOptions options;
  std::vector<DeviceReport> devices;
  std::int64_t makespan_ns = 0;
  std::int64_t naive_dense_peak_bytes = 0;   // one device, materialised scores (forward)
  std::int64_t flash_dense_peak_bytes = 0;   // one device, flash-style (forward)
  std::optional<double> max_abs_error_vs_dense;  // compute mode only
  std::int64_t skipped_steps = 0;
  std::int64_t selected_rows_bytes_saved = 0;
};

class Simulation {
 public:
  explicit Simulation(SimulationOptions options);
  ~Simulation();
  Simulation(Simulation&&) noexcept;

  // Advances until every device has finished one more ring step; false once the run is complete.
  // Throws FaultDetected / OutOfMemory.
  bool step();
  void run();  // to the end
  bool finished() const;

  const std::vector<StepSnapshot>& snapshots() const;
  const std::vector<Slice>& slices() const;
  const std::vector<MemorySample>& memory_samples() const;
  const RingSchedule& schedule() const;
  Report report() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Closed-form peak bytes of one device under a scheme (docs/simulator.md §Memory); the ledger must agree.
std::int64_t naive_dense_peak_bytes(const AttentionConfig& config, std::int64_t bytes_per_element);
std::int64_t flash_dense_peak_bytes(const AttentionConfig& config, std::int64_t bytes_per_element);
// Saturate at 2^63 − 1 (N = 2^30 dense scores exceed it); the _real variant gives the value as a double.
double naive_dense_peak_bytes_real(const AttentionConfig& config, std::int64_t bytes_per_element);

// The query rows a kernel visits for one block pair: positions of `queries` with a key of `keys` inside their
// band (under dilation, the ones the pattern selects). The compute model charges each the per-block overhead
// (DeviceSpec::attention_overhead_keys). Exact for band masks when every key run's stride is at most the band's
// width (contiguous and zigzag chunks, causal striped ones); under dilation an upper bound.
std::int64_t rows_meeting_keys(const PositionSet& queries, const PositionSet& keys, const MaskPredicate& mask);

}  // namespace ringlab::sim
