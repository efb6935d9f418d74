#include "ringlab/sim/simulation.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <future>
#include <thread>
#include <limits>
#include <map>
#include <queue>
#include <set>
#include <unordered_map>

#include "ringlab/attention.hpp"
#include "ringlab/choices.hpp"
#include "ringlab/dilation.hpp"
#include "ringlab/random.hpp"

namespace ringlab::sim {
namespace {

using i64 = std::int64_t;
constexpr int kComputeStream = 0, kSendStream = 1, kReceiveStream = 2;
constexpr i64 kFp32 = 4;  // accumulators (O, LSE, dQ, partial results) are fp32 on real devices

enum class MessageKind { kv, dkv };

// A K/V chunk with the gradients it carries in backward; real tensors only in compute mode.
struct ChunkData {
  int owner = -1;
  std::vector<i64> positions;
  Tensor<double> k, v, dk, dv;  // [B, m, Hkv, D]
};

struct Message {
  i64 id = 0;
  int from = 0, to = 0, pass = 0;
  int needed_at_step = 0;  // the receiver's step that needs it (P for the final dK/dV hop home)
  int sender_step = 0;
  MessageKind kind = MessageKind::kv;
  i64 sequence = 0;
  int owner = 0;  // whose chunk
  i64 bytes = 0;
  std::uint64_t checksum = 0;
  std::vector<double> payload;  // compute mode: the tensors; analytic mode: empty
  std::uint64_t token = 0;      // analytic mode stands-in for the payload
  i64 posted_ns = 0, transfer_begin_ns = -1, arrival_ns = -1;
  bool drop = false, duplicate = false;
  i64 extra_delay_ns = 0;
};

// FNV-1a over 64-bit words, in four interleaved lanes so the multiplies do not form one long dependency
// chain (byte-wise FNV-1a took a third of compute mode's simulation thread). Each lane step
// h ← (h ⊕ w)·prime is a bijection of h for a fixed word w, so changing any one word changes its lane and
// the result: a flipped payload bit is always detected.
constexpr std::uint64_t fnv_offset = 0xcbf29ce484222325ULL, fnv_prime = 0x100000001b3ULL;

std::uint64_t fnv1a_words(std::uint64_t hash, const void* data, std::size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::uint64_t lanes[4] = {hash, hash ^ 1, hash ^ 2, hash ^ 3};
  std::size_t i = 0;
  for (; i + 32 <= size; i += 32)
    for (int lane = 0; lane < 4; ++lane) {
      std::uint64_t word;
      std::memcpy(&word, bytes + i + 8 * lane, sizeof(word));
      lanes[lane] = (lanes[lane] ^ word) * fnv_prime;
    }
  for (; i < size; ++i) lanes[0] = (lanes[0] ^ bytes[i]) * fnv_prime;  // the tail, byte by byte
  std::uint64_t combined = fnv_offset;
  for (const std::uint64_t lane : lanes) combined = (combined ^ lane) * fnv_prime;
  return combined;
}

std::uint64_t message_checksum(const Message& m) {
  const i64 header[] = {m.from, m.to, m.pass, m.needed_at_step, static_cast<i64>(m.kind), m.sequence, m.owner};
  std::uint64_t hash = fnv1a_words(fnv_offset, header, sizeof(header));
  hash = fnv1a_words(hash, &m.token, sizeof(m.token));
  return fnv1a_words(hash, m.payload.data(), m.payload.size() * sizeof(double));
}

struct Event {
  enum Type { compute_done, arrival, timeout, start_step };
  i64 time = 0;
  i64 order = 0;  // insertion order: ties resolve deterministically
  Type type = compute_done;
  int device = 0, pass = 0, step = 0;
  i64 message = -1;
  bool operator>(const Event& other) const {
    return time != other.time ? time > other.time : order > other.order;
  }
};

// Per device, per pass.
struct DeviceRun {
  int step = -1;  // the step computing or last computed
  bool computing = false, finished = false, dead = false;
  i64 compute_end_ns = 0;
  int sends_in_flight = 0;
  int dkv_sends_in_flight = 0;      // of sends_in_flight
  int gradient_posted_for = -1;     // overlapped backward: the last step whose dK/dV accumulator went on
  std::vector<i64> receive_posted_ns;  // [step] when the device posted its receive for that step, −1 if not yet
  std::vector<char> kv_received, dkv_received;  // [step]
  i64 expected_sequence = 0;
  i64 waiting_since_ns = -1;
  std::vector<i64> pending_messages;
  // [step] earliest transfer start of a message this device needs for that step / of its own sends after it
  std::vector<i64> first_incoming_transfer_ns, first_outgoing_transfer_ns;
  // The same split by kind, for overlapped backward (a step waits for the K/V of its own step but for the
  // dK/dV accumulator tagged with the step before, which it adds after computing that one).
  std::vector<i64> first_incoming_kv_ns, first_incoming_dkv_ns, first_outgoing_kv_ns;  // posted by the upstream device before this one posted its receive
};

struct DeviceStats {
  i64 compute_ns = 0, comm_ns = 0, exposed_ns = 0, bytes_sent = 0, pairs = 0;
};

// Compute-mode tensors of one device.
struct DeviceData {
  std::vector<i64> q_positions;
  Tensor<double> q, out, lse, dout, dq;
  Tensor<double> own_dk, own_dv;  // replicated queries: the owner's dK, dV, computed at step 0, never sent
  ChunkData held, incoming;
  // Overlapped backward: the dK/dV accumulators from upstream by the step they are added at (the next one can
  // arrive while the previous waits for its add, as the GPU ring's two accumulator buffers allow).
  std::map<int, ChunkData> incoming_gradients;
};

}  // namespace

struct Simulation::State {
  SimulationOptions options;
  AttentionConfig config;
  RingSchedule schedule;
  std::vector<HeadPlan> plans;
  std::vector<WeightedMask> weighted_masks;  // the plans' distinct masks, each with its (head, pattern) count
  Network network;
  ComputeModel compute_model;
  int P = 1;
  std::vector<int> passes;  // 0 forward, 1 backward
  std::size_t pass_index = 0;
  bool finished = false;

  std::vector<MemoryLedger> ledgers;
  std::vector<std::vector<BufferId>> pass_buffers;  // [device] persistent buffers of the current pass
  std::vector<BufferId> scratch;                    // [device] the step's scratch, −1 when none
  std::vector<DeviceRun> runs;
  std::vector<DeviceStats> stats;
  std::unordered_map<i64, Message> messages;  // in flight only: erased once delivered (P² of them over a run)
  i64 next_message_id = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  i64 event_order = 0;
  i64 now = 0, pass_start_ns = 0, makespan_ns = 0;
  std::vector<int> steps_done_count;  // [step] devices that finished computing it (current pass)

  std::vector<Slice> slices;
  std::vector<MemorySample> memory_samples;
  std::vector<StepSnapshot> snapshots;
  std::size_t snapshot_count = 0;
  int dead_devices = 0;
  // The watchdog: a waiting device declares a timeout only after the whole ring has made no progress (no
  // compute running, no transfer moving) for timeout_ns. A device may wait far longer than that behind a
  // slow neighbour in a healthy run; a lost message or a dead device stalls everything, and that is caught.
  i64 busy_until_ns = 0;
  bool record_timeline = true;

  // Compute mode.
  std::vector<DeviceData> data;
  Tensor<double> q, k, v, dout, out, lse;        // global inputs and the gathered forward result
  Tensor<double> dq, dk, dv;                     // gathered gradients
  std::optional<double> max_error;
  // The single-device reference the gathered result is checked against; computed on another thread while
  // the simulation runs (it reads only the inputs), so checking costs little wall time on two cores.
  // Forward and backward are published separately, so the simulated forward pass waits only for the
  // reference forward while the reference backward runs beside the simulated backward pass.
  std::promise<AttentionOutput<double>> reference_forward_promise;
  std::promise<AttentionGradients<double>> reference_backward_promise;
  std::shared_future<AttentionOutput<double>> reference_forward;
  std::shared_future<AttentionGradients<double>> reference_backward;
  std::thread reference_thread;

  explicit State(SimulationOptions opts) : options(std::move(opts)), config(options.config) {}

  // ---- setup ---------------------------------------------------------------------------------------------

  void initialise() {
    config.validate();
    if (options.scheme != Scheme::ring) {  // one device computes everything
      config.ring = 1;
      config.q_replicated = false;
    }
    if (options.bytes_per_element < 1 || options.bytes_per_element > 8)
      throw ConfigError("--bytes-per-element", std::to_string(options.bytes_per_element), "must be in [1, 8]");
    if (options.devices_per_node < 1)
      throw ConfigError("--devices-per-node", std::to_string(options.devices_per_node), "must be >= 1");
    if (options.timeout_ns < 1) throw ConfigError("--timeout-ms", std::to_string(options.timeout_ns), "must be > 0");
    if (options.scheme == Scheme::dense) {
      const long double scores = static_cast<long double>(config.batch) * config.heads * config.seq * config.kv_seq *
                                 options.bytes_per_element * 2;  // S and, in backward, dS
      if (scores > static_cast<long double>(std::int64_t{1} << 62))
        throw ConfigError("--scheme", "dense",
                          "materialised scores of this size exceed 2^62 bytes; use --scheme flash or ring");
    }
    P = config.ring;
    ScheduleOptions schedule_options;
    schedule_options.bytes_per_element = options.bytes_per_element;
    schedule_options.returned_gradient_bytes_per_element = options.returned_gradient_bytes_per_element;
    schedule = make_ring_schedule(config, schedule_options);
    for (const Fault& fault : options.faults) {
      const std::string given =  // as the user wrote it: kind@device:step
          to_string(fault.kind) + "@" + std::to_string(fault.device) + ":" + std::to_string(fault.step);
      if (fault.device < 0 || fault.device >= P)
        throw ConfigError("--inject", given, "device must be in [0, " + std::to_string(P - 1) + "]");
      if (fault.kind != FaultKind::kill && schedule.local_only && P > 1)
        throw ConfigError("--inject", given,
                          "a kill: this ring sends no messages (every step after 0 is skipped on every device, so "
                          "each device keeps its own chunk)");
      const int last_step = fault.kind == FaultKind::kill ? P - 1 : P - 2;
      if (fault.step < 0 || fault.step > last_step)
        throw ConfigError("--inject", given,
                          last_step < 0 ? "a ring of one device sends no messages"
                                        : "step must be in [0, " + std::to_string(last_step) + "] (" +
                                              (fault.kind == FaultKind::kill ? "the ring's steps"
                                                                             : "steps after which a device sends") +
                                              ")");
    }
    plans = plan_heads(config);
    weighted_masks = distinct_masks(plans);
    network = Network{P, options.devices_per_node, options.device.intra_node_link, options.device.inter_node_link};
    compute_model = ComputeModel{options.device};
    if (options.pass != Pass::backward) passes.push_back(0);
    if (options.pass != Pass::forward) passes.push_back(1);
    record_timeline = static_cast<i64>(P) * P <= 65536;
    for (int p = 0; p < P; ++p) ledgers.emplace_back(p, options.memory_budget);
    stats.assign(P, {});
    scratch.assign(P, -1);
    if (options.mode == Mode::compute) prepare_tensors();
    start_pass();
  }

  void prepare_tensors() {
    const i64 elements = config.batch * config.seq * config.heads * config.head_dim;
    if (elements > (i64{1} << 28))
      throw ConfigError("--mode", "compute",
                        "compute mode holds real fp64 tensors; " + std::to_string(elements) +
                            " elements per tensor is too many for this machine — use --mode analytic");
    NormalGenerator generator(options.seed);
    auto fill = [&](std::vector<i64> shape) {
      Tensor<double> tensor(std::move(shape));
      tensor.data = standard_normal(generator, tensor.data.size());
      return tensor;
    };
    q = fill(query_shape(config));
    k = fill(kv_shape(config));
    v = fill(kv_shape(config));
    dout = fill(query_shape(config));
    data.resize(P);
    for (int p = 0; p < P; ++p) data[p].q_positions = schedule.devices[p].query_positions.expand();
    AttentionConfig single = config;
    single.ring = 1;
    single.q_replicated = false;
    const bool with_backward = options.pass != Pass::forward;
    reference_forward = reference_forward_promise.get_future().share();
    reference_backward = reference_backward_promise.get_future().share();
    reference_thread = std::thread([this, single, with_backward] {
      try {
        const AttentionOptions<double> reference_options{Algorithm::blockwise, options.tiles};
        const auto forward = attention_forward(single, q, k, v, reference_options);
        reference_forward_promise.set_value(forward);
        reference_backward_promise.set_value(
            with_backward ? attention_backward(single, q, k, v, forward.out, forward.lse, dout, reference_options)
                          : AttentionGradients<double>{});
      } catch (...) {  // surfaces in the simulation thread at get()
        try {
          reference_forward_promise.set_exception(std::current_exception());
        } catch (...) {
        }
        try {
          reference_backward_promise.set_exception(std::current_exception());
        } catch (...) {
        }
      }
    });
  }

  ~State() {
    if (reference_thread.joinable()) reference_thread.join();  // it reads q, k, v, dout: finish before they go
  }

  // ---- memory --------------------------------------------------------------------------------------------

  i64 max_chunk_rows() const {
    i64 rows = 0;
    for (int owner = 0; owner < P; ++owner) {
      const i64 chunk = options.send_selected_rows ? schedule.at(owner, 0).selected_rows
                                                   : schedule.chunk_positions[owner].size();
      rows = std::max(rows, chunk);
    }
    return rows;
  }

  void allocate(int device, const std::string& name, Category category, i64 bytes) {
    pass_buffers[device].push_back(ledgers[device].allocate(name, category, bytes));
    sample_memory(device);
  }

  void sample_memory(int device) {
    if (record_timeline) memory_samples.push_back({device, now, ledgers[device].current_bytes()});
  }

  // The buffers one device holds for the whole pass (docs/simulator.md §Memory states these as formulas).
  void allocate_pass_buffers(int pass) {
    pass_buffers.assign(P, {});
    const i64 B = config.batch, H = config.heads, Hkv = config.kv_heads, D = config.head_dim;
    const i64 e = options.bytes_per_element;
    for (int p = 0; p < P; ++p) {
      if (options.scheme != Scheme::ring) {
        const i64 N = config.seq, M = config.kv_seq;
        allocate(p, "Q", Category::q, B * N * H * D * e);
        allocate(p, "K, V", Category::kv, 2 * B * M * Hkv * D * e);
        allocate(p, "O", Category::out, B * N * H * D * e);
        allocate(p, "LSE (fp32)", Category::lse, B * H * N * kFp32);
        if (pass == 1) allocate(p, "dO, dQ, dK, dV", Category::grad, 2 * B * N * H * D * e + 2 * B * M * Hkv * D * e);
        continue;
      }
      // The buffers gpu::VirtualRing / gpu::NcclRing hold (gpu/src/ring_driver.cuh), per pass.
      const i64 n = schedule.devices[p].query_positions.size(), m = max_chunk_rows();
      const i64 own_rows = schedule.chunk_positions[p].size();
      allocate(p, "Q shard", Category::q, B * n * H * D * e);
      allocate(p, "K, V of the own chunk", Category::kv, 2 * B * own_rows * Hkv * D * e);
      if (P > 1) allocate(p, "K, V rotation buffers (2)", Category::kv_recv, 2 * 2 * B * m * Hkv * D * e);
      if (pass == 0) {
        allocate(p, "O accumulator (fp32)", Category::out, B * n * H * D * kFp32);
        allocate(p, "LSE accumulator (fp32)", Category::lse, B * H * n * kFp32);
      } else {
        allocate(p, "O shard", Category::out, B * n * H * D * e);
        allocate(p, "LSE shard (fp32)", Category::lse, B * H * n * kFp32);
        allocate(p, "dO shard", Category::grad, B * n * H * D * e);
        allocate(p, "dQ accumulator (fp32)", Category::grad, B * n * H * D * kFp32);
        if (config.q_replicated) {
          allocate(p, "dK, dV of the own chunk (fp32)", Category::grad, 2 * B * own_rows * Hkv * D * kFp32);
          // The kernels of steps ≥ 1 compute the held chunk's dK, dV as well (dQ needs those steps; nobody
          // reads their dK, dV).
          if (P > 1) allocate(p, "dK, dV of later steps, unread (fp32)", Category::grad, 2 * B * m * Hkv * D * kFp32);
        } else {
          // Two travelling accumulators (the one received and added to, the one leaving) and, when P > 1, one
          // step's partial that is added in: the hop then overlaps the next step's kernels.
          allocate(p, "dK, dV accumulators (fp32, 2)", Category::grad, 2 * 2 * B * m * Hkv * D * kFp32);
          if (P > 1) allocate(p, "dK, dV step partial (fp32)", Category::grad, 2 * B * m * Hkv * D * kFp32);
        }
      }
    }
  }

  i64 scratch_bytes(int device, int pass) const {
    const i64 B = config.batch, H = config.heads, e = options.bytes_per_element;
    if (options.scheme == Scheme::dense)  // materialised scores S (and P in place); backward also dS
      return (pass == 0 ? 1 : 2) * B * H * config.seq * config.kv_seq * e;
    if (options.scheme == Scheme::flash) return 0;
    const i64 n = schedule.devices[device].query_positions.size();
    if (pass == 0) return B * n * H * config.head_dim * e + B * H * n * kFp32;  // one step's partial (O, LSE)
    return B * H * n * kFp32;  // D = rowsum(dO ∘ O)
  }

  void release_pass_buffers() {
    for (int p = 0; p < P; ++p) {
      for (BufferId id : pass_buffers[p]) ledgers[p].release(id);
      sample_memory(p);
    }
  }

  // ---- events --------------------------------------------------------------------------------------------

  void push(Event event) {
    event.order = event_order++;
    events.push(event);
  }

  int current_pass() const { return passes[pass_index]; }

  const Fault* fault_for(FaultKind kind, int device, int step) const {
    for (const Fault& fault : options.faults)
      if (fault.kind == kind && fault.device == device && fault.step == step && pass_index == 0) return &fault;
    return nullptr;
  }

  void start_pass() {
    const int pass = current_pass();
    pass_start_ns = now;
    runs.assign(P, {});
    steps_done_count.assign(P, 0);
    for (auto& run : runs) {
      run.receive_posted_ns.assign(P + 1, -1);
      run.first_incoming_transfer_ns.assign(P + 1, std::numeric_limits<i64>::max());
      run.first_outgoing_transfer_ns.assign(P + 1, std::numeric_limits<i64>::max());
      run.first_incoming_kv_ns.assign(P + 1, std::numeric_limits<i64>::max());
      run.first_incoming_dkv_ns.assign(P + 1, std::numeric_limits<i64>::max());
      run.first_outgoing_kv_ns.assign(P + 1, std::numeric_limits<i64>::max());
      run.kv_received.assign(P + 1, 0);
      run.dkv_received.assign(P + 1, 0);
    }
    allocate_pass_buffers(pass);
    if (options.mode == Mode::compute) load_pass_tensors(pass);
    for (int p = 0; p < P; ++p) push({now, 0, Event::start_step, p, pass, 0, -1});
  }

  void load_pass_tensors(int pass) {
    for (int p = 0; p < P; ++p) {
      DeviceData& d = data[p];
      d.q = gather_rows(q, d.q_positions);
      ChunkData& chunk = d.held;
      chunk.owner = p;
      chunk.positions = schedule.chunk_positions[p].expand();
      chunk.k = gather_rows(k, chunk.positions);
      chunk.v = gather_rows(v, chunk.positions);
      if (pass == 0) {
        d.out = Tensor<double>(d.q.shape);
        d.lse = Tensor<double>({config.batch, config.heads, static_cast<i64>(d.q_positions.size())},
                               -std::numeric_limits<double>::infinity());
      } else {
        d.out = gather_rows(out, d.q_positions);
        d.lse = gather_columns(lse, d.q_positions);
        d.dout = gather_rows(dout, d.q_positions);
        d.dq = Tensor<double>(d.q.shape);
        chunk.dk = Tensor<double>(chunk.k.shape);
        chunk.dv = Tensor<double>(chunk.v.shape);
      }
    }
    if (pass == 1 && out.data.empty()) {  // backward alone: the saved forward output comes from the reference
      out = reference_forward.get().out;
      lse = reference_forward.get().lse;
      for (int p = 0; p < P; ++p) {
        data[p].out = gather_rows(out, data[p].q_positions);
        data[p].lse = gather_columns(lse, data[p].q_positions);
      }
    }
  }

  // (row, head, pattern) triples that a step's kernels visit, which the compute model charges L₀ each
  // (DeviceSpec): the forward's blocks hold query rows (rows with a key of the held chunk inside their band),
  // the backward's hold key rows (keys of the held chunk some query of the device reaches).
  double active_row_heads(int device, int step, int pass) const {
    const RingStep& ring_step = schedule.at(device, step);
    if (ring_step.skipped) return 0;
    const PositionSet& queries = schedule.devices[device].query_positions;
    const PositionSet& keys = schedule.chunk_positions[static_cast<std::size_t>(ring_step.kv_owner)];
    double total = 0;
    for (const WeightedMask& weighted : weighted_masks) {
      // A pattern whose segments never reach the held chunk launches blocks that return at once: no charge
      // (rows_meeting_keys alone would count every row the pattern selects).
      const i64 pairs = count_allowed_pairs(queries, keys, weighted.mask);
      if (pairs == 0) continue;
      MaskPredicate transposed = weighted.mask;  // allows (k, q) iff the mask allows (q, k)
      transposed.band = {-weighted.mask.band.hi, -weighted.mask.band.lo};
      const i64 rows = pass == 0 ? rows_meeting_keys(queries, keys, weighted.mask)
                                 : rows_meeting_keys(keys, queries, transposed);
      total += static_cast<double>(weighted.heads) * static_cast<double>(std::min(rows, pairs));  // a row has a pair
    }
    return total;
  }

  std::pair<double, double> step_work(int device, int step, int pass) const {
    const i64 B = config.batch, H = config.heads, Hkv = config.kv_heads, D = config.head_dim;
    const i64 e = options.bytes_per_element;
    const RingStep& ring_step = schedule.at(device, step);
    if (ring_step.skipped) return {0.0, 0.0};
    const double n = static_cast<double>(schedule.devices[device].query_positions.size());
    const double m = static_cast<double>(ring_step.kv_rows);
    double flops = 4.0 * D * static_cast<double>(ring_step.pairs) * B;  // Q·Kᵀ and P·V: 2 FLOPs per MAC each
    double bytes = B * (n * H * D * e + 2 * m * Hkv * D * e + 2 * n * H * D * kFp32);
    if (options.scheme == Scheme::dense) bytes += 4.0 * B * H * n * m * e;  // write/read S and P
    if (pass == 1) flops *= 2.5, bytes *= 2.5;  // backward: 5 GEMMs against 2 (the FlashAttention convention)
    return {flops, bytes};
  }

  void record_slice(int device, int stream, std::string name, i64 begin, i64 end, int pass, int step,
                    i64 message = -1) {
    if (record_timeline) slices.push_back({device, stream, std::move(name), begin, end, pass, step, message});
  }

  void start_step(int p, int step, int pass) {
    DeviceRun& run = runs[p];
    if (fault_for(FaultKind::kill, p, step)) {  // the device dies silently: nothing more is computed or sent
      run.dead = true;
      ++dead_devices;
      return;
    }
    if (run.waiting_since_ns >= 0) {  // account the wait that just ended
      stats[p].exposed_ns += exposed_part(p, run.waiting_since_ns, now, step);
      run.waiting_since_ns = -1;
    }
    run.step = step;
    run.computing = true;
    if (step + 1 <= P) {  // post the receive for the next step's chunk (or the final dK/dV hop home)
      run.receive_posted_ns[step + 1] = now;
      const auto pending = std::move(run.pending_messages);
      run.pending_messages.clear();
      for (i64 id : pending) try_begin_transfer(id);
    }
    const auto [flops, bytes] = step_work(p, step, pass);
    const auto pairs = static_cast<double>(schedule.at(p, step).pairs);
    const i64 duration =
        flops > 0 ? compute_model.time_ns(flops, bytes, pass == 1, pairs, active_row_heads(p, step, pass)) : 0;
    stats[p].compute_ns += duration;
    stats[p].pairs = saturating_add(stats[p].pairs, schedule.at(p, step).pairs);
    if (duration > 0) {
      scratch[p] = ledgers[p].allocate("step scratch", Category::scratch, scratch_bytes(p, pass));
      sample_memory(p);
      if (record_timeline)
        record_slice(p, kComputeStream,
                     std::string(pass == 0 ? "forward" : "backward") + " step " + std::to_string(step) + " (K/V of " +
                         std::to_string(schedule.at(p, step).kv_owner) + ")",
                     now, now + duration, pass, step);
    }
    push({now + duration, 0, Event::compute_done, p, pass, step, -1});
    busy_until_ns = std::max(busy_until_ns, now + duration);
    // Overlap: the chunk leaves while it is being computed on (in backward only K, V; dK, dV follow later).
    if (options.overlap && step + 1 < P && !schedule.local_only) post_message(p, step, pass, MessageKind::kv);
  }

  // The part of a wait [begin, end) before `step` during which a transfer this device needs, or its own send
  // of the previous step, was moving: exposed communication. The rest of the wait is idle (load imbalance).
  // Overlapped backward (see overlapped_gradients): before step s < P the device waits on the K/V of step s,
  // its own K/V send of step s − 1 and the dK/dV accumulator it adds after step s − 1; before finishing, on
  // that add, the own chunk's dK/dV coming home and its own last send.
  i64 exposed_part(int p, i64 begin, i64 end, int step) const {
    const DeviceRun& run = runs[p];
    i64 first_transfer = std::min(run.first_incoming_transfer_ns[step], run.first_outgoing_transfer_ns[step - 1]);
    if (overlapped_gradients())
      first_transfer = step < P ? std::min({run.first_incoming_kv_ns[step], run.first_outgoing_kv_ns[step - 1],
                                            run.first_incoming_dkv_ns[step - 1]})
                                : std::min({run.first_incoming_dkv_ns[step - 1], run.first_incoming_dkv_ns[step],
                                            run.first_outgoing_transfer_ns[step - 1]});
    return std::max<i64>(0, end - std::max(begin, std::min(first_transfer, end)));
  }

  void compute_done(int p, int step, int pass) {
    DeviceRun& run = runs[p];
    run.computing = false;
    run.compute_end_ns = now;
    if (scratch[p] >= 0) {
      ledgers[p].release(scratch[p]);
      scratch[p] = -1;
      sample_memory(p);
    }
    if (options.mode == Mode::compute) compute_tensors(p, step, pass);
    if (!options.overlap && step + 1 < P && !schedule.local_only) post_message(p, step, pass, MessageKind::kv);
    const bool gradients_travel = gradients_move(pass);
    // Without overlap the dK/dV of the step go on now and the next step waits for the upstream ones; with
    // overlap (the GPU ring's scheme) try_advance adds the arriving accumulator and sends it on.
    if (gradients_travel && !overlapped_gradients()) post_message(p, step, pass, MessageKind::dkv);  // P−1: home
    if (++steps_done_count[step] == live_devices()) take_snapshot(pass, step);
    try_advance(p);
  }

  int live_devices() const { return P - dead_devices; }

  void compute_tensors(int p, int step, int pass) {
    DeviceData& d = data[p];
    ChunkData& chunk = d.held;
    if (schedule.at(p, step).skipped) return;  // (a local_only ring keeps its own chunk through skipped steps)
    if (chunk.owner != schedule.at(p, step).kv_owner)
      throw Error("internal error: device " + std::to_string(p) + " holds chunk " + std::to_string(chunk.owner) +
                  " at step " + std::to_string(step) + ", the schedule says " +
                  std::to_string(schedule.at(p, step).kv_owner));
    if (pass == 0) {
      chunk_forward(config, plans, d.q, d.q_positions, chunk.k, chunk.v, chunk.positions, d.out, d.lse, options.tiles);
      return;
    }
    // Replicated queries: dK, dV come from the owner's step 0 only (into its own buffer); later steps add to
    // dQ alone.
    if (config.q_replicated) {
      Tensor<double> discard_dk(chunk.k.shape), discard_dv(chunk.v.shape);
      if (step == 0) d.own_dk = Tensor<double>(chunk.k.shape), d.own_dv = Tensor<double>(chunk.v.shape);
      chunk_backward(config, plans, d.q, d.q_positions, chunk.k, chunk.v, chunk.positions, d.out, d.lse, d.dout, d.dq,
                     step == 0 ? d.own_dk : discard_dk, step == 0 ? d.own_dv : discard_dv, options.tiles);
      return;
    }
    chunk_backward(config, plans, d.q, d.q_positions, chunk.k, chunk.v, chunk.positions, d.out, d.lse, d.dout, d.dq,
                   chunk.dk, chunk.dv, options.tiles);
  }

  // ---- messages ------------------------------------------------------------------------------------------

  void post_message(int p, int step, int pass, MessageKind kind) {
    Message m;
    m.id = next_message_id++;
    m.from = p;
    m.to = (p + 1) % P;
    m.pass = pass;
    m.sender_step = step;
    m.needed_at_step = step + 1;
    m.kind = kind;
    m.owner = schedule.at(p, step).kv_owner;
    const i64 rows = options.send_selected_rows ? schedule.at(p, step).selected_rows : schedule.at(p, step).kv_rows;
    const i64 gradient_row_bytes =
        step + 1 == P ? schedule.returned_gradient_bytes_per_row : schedule.gradient_bytes_per_row;  // final hop home
    m.bytes = rows * (kind == MessageKind::kv ? schedule.kv_bytes_per_row : gradient_row_bytes);
    m.sequence = link_sequence[pass][p]++;
    m.token = (static_cast<std::uint64_t>(m.owner) << 32) ^ static_cast<std::uint64_t>(m.sequence * 2654435761ULL);
    if (options.mode == Mode::compute) {
      const ChunkData& chunk = data[p].held;
      const Tensor<double>& first = kind == MessageKind::kv ? chunk.k : chunk.dk;
      const Tensor<double>& second = kind == MessageKind::kv ? chunk.v : chunk.dv;
      m.payload.reserve(first.data.size() + second.data.size());
      m.payload.insert(m.payload.end(), first.data.begin(), first.data.end());
      m.payload.insert(m.payload.end(), second.data.begin(), second.data.end());
    }
    m.checksum = message_checksum(m);
    // Injected faults change the message after its checksum was taken, as a fault on the wire would.
    if (fault_for(FaultKind::drop, p, step)) m.drop = true;
    if (fault_for(FaultKind::duplicate, p, step)) m.duplicate = true;
    if (fault_for(FaultKind::delay, p, step)) m.extra_delay_ns = options.delay_ns;
    if (fault_for(FaultKind::corrupt, p, step)) {
      if (!m.payload.empty()) {
        std::uint64_t bits;
        std::memcpy(&bits, &m.payload[m.payload.size() / 2], sizeof(bits));
        bits ^= 1ULL << 17;
        std::memcpy(&m.payload[m.payload.size() / 2], &bits, sizeof(bits));
      } else {
        m.token ^= 1ULL << 17;
      }
    }
    if (fault_for(FaultKind::stale, p, step) && kind == MessageKind::kv) {
      // A stale buffer: the chunk this device held one step earlier ((p − s + 1) mod P) goes out again,
      // consistently checksummed, so only its owner tag gives it away.
      m.owner = (m.owner + 1) % P;
      m.token = (static_cast<std::uint64_t>(m.owner) << 32) ^ static_cast<std::uint64_t>(m.sequence * 2654435761ULL);
      m.checksum = message_checksum(m);
    }
    m.posted_ns = now;
    const i64 id = m.id;
    stats[p].bytes_sent += m.bytes;
    if (kind == MessageKind::dkv) ++runs[p].dkv_sends_in_flight;
    messages.emplace(id, std::move(m));
    ++runs[p].sends_in_flight;
    try_begin_transfer(id);
  }

  std::vector<std::vector<i64>> link_sequence;     // [pass][sender]
  std::vector<i64> send_stream_free_ns, receive_stream_free_ns;

  void try_begin_transfer(i64 id) {
    Message& m = messages.at(id);
    DeviceRun& receiver = runs[m.to];
    if (receiver.receive_posted_ns[m.needed_at_step] < 0) {  // the receiver has not posted its receive yet
      receiver.pending_messages.push_back(id);
      return;
    }
    const i64 begin = std::max({m.posted_ns, now, send_stream_free_ns[m.from], receive_stream_free_ns[m.to],
                                receiver.receive_posted_ns[m.needed_at_step]});
    const i64 duration = network.transfer_ns(m.from, m.to, m.bytes) + m.extra_delay_ns;
    m.transfer_begin_ns = begin;
    m.arrival_ns = begin + duration;
    i64& incoming = receiver.first_incoming_transfer_ns[m.needed_at_step];
    incoming = std::min(incoming, begin);
    i64& outgoing = runs[m.from].first_outgoing_transfer_ns[m.sender_step];
    outgoing = std::min(outgoing, begin);
    i64& incoming_kind = m.kind == MessageKind::kv ? receiver.first_incoming_kv_ns[m.needed_at_step]
                                                   : receiver.first_incoming_dkv_ns[m.needed_at_step];
    incoming_kind = std::min(incoming_kind, begin);
    if (m.kind == MessageKind::kv) {
      i64& outgoing_kv = runs[m.from].first_outgoing_kv_ns[m.sender_step];
      outgoing_kv = std::min(outgoing_kv, begin);
    }
    send_stream_free_ns[m.from] = m.arrival_ns;
    receive_stream_free_ns[m.to] = m.arrival_ns;
    stats[m.from].comm_ns += duration;
    if (record_timeline) {
      const std::string what = m.kind == MessageKind::kv ? "K/V of " : "dK/dV of ";
      record_slice(m.from, kSendStream, "send " + what + std::to_string(m.owner) + " → " + std::to_string(m.to), begin,
                   m.arrival_ns, m.pass, m.sender_step, m.id);
      record_slice(m.to, kReceiveStream, "receive " + what + std::to_string(m.owner) + " ← " + std::to_string(m.from),
                   begin, m.arrival_ns, m.pass, m.needed_at_step, m.id);
    }
    push({m.arrival_ns, 0, Event::arrival, m.to, m.pass, m.needed_at_step, id});
    busy_until_ns = std::max(busy_until_ns, m.arrival_ns);
    if (m.duplicate) push({m.arrival_ns + 1, 0, Event::arrival, m.to, m.pass, m.needed_at_step, id});
  }

  void arrival(const Event& event) {
    Message& m = messages.at(event.message);
    DeviceRun& sender = runs[m.from];
    DeviceRun& receiver = runs[m.to];
    // Sequences are accepted strictly in order, so one below the expected one was delivered before.
    const bool first_delivery = m.sequence >= receiver.expected_sequence;
    if (first_delivery || !m.duplicate) {
      if (m.kind == MessageKind::dkv) --sender.dkv_sends_in_flight;
      --sender.sends_in_flight;
      // Overlapped backward: the K/V send may be all a step waits for while dK/dV are still moving.
      if ((sender.sends_in_flight == 0 || overlapped_gradients()) && !sender.dead) try_advance(m.from);
    }
    if (m.drop || receiver.dead) {
      messages.erase(event.message);
      return;
    }
    const std::string where = "device " + std::to_string(m.to) + " at step " + std::to_string(m.needed_at_step) +
                              " (" + (m.pass == 0 ? "forward" : "backward") + ")";
    const std::string from = "from device " + std::to_string(m.from);
    if (!first_delivery)
      throw FaultDetected(where + ": duplicate message " + from + ": sequence " + std::to_string(m.sequence) +
                              " was already delivered",
                          m.to, m.needed_at_step);
    if (m.sequence != receiver.expected_sequence)
      throw FaultDetected(where + ": out-of-order message " + from + ": sequence " + std::to_string(m.sequence) +
                              ", expected " + std::to_string(receiver.expected_sequence),
                          m.to, m.needed_at_step);
    const std::uint64_t checksum = message_checksum(m);
    if (checksum != m.checksum)
      throw FaultDetected(where + ": corrupt message " + from + " (sequence " + std::to_string(m.sequence) +
                              "): checksum " + hex(checksum) + " does not match the sender's " + hex(m.checksum),
                          m.to, m.needed_at_step);
    const int expected_owner = m.needed_at_step < P ? schedule.at(m.to, m.needed_at_step).kv_owner : m.to;
    if (m.owner != expected_owner)
      throw FaultDetected(where + ": stale message " + from + " (sequence " + std::to_string(m.sequence) +
                              "): it carries the chunk of device " + std::to_string(m.owner) +
                              ", the schedule says device " + std::to_string(expected_owner) + "'s",
                          m.to, m.needed_at_step);
    ++receiver.expected_sequence;
    if (m.kind == MessageKind::kv)
      receiver.kv_received[m.needed_at_step] = 1;
    else
      receiver.dkv_received[m.needed_at_step] = 1;
    if (options.mode == Mode::compute) unpack(m);
    const int to = m.to;
    if (!m.duplicate) messages.erase(event.message);  // a duplicate's second copy is still on its way
    try_advance(to);
  }

  static std::string fmt_ms(i64 ns) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.2f ms", static_cast<double>(ns) / 1e6);
    return text;
  }

  static std::string hex(std::uint64_t value) {
    char text[32];
    std::snprintf(text, sizeof(text), "0x%016llx", static_cast<unsigned long long>(value));
    return text;
  }

  void unpack(const Message& m) {
    ChunkData& incoming = m.kind == MessageKind::dkv && overlapped_gradients()
                              ? data[m.to].incoming_gradients[m.needed_at_step]
                              : data[m.to].incoming;
    const std::vector<i64> shape = {config.batch, schedule.chunk_positions[m.owner].size(), config.kv_heads,
                                    config.head_dim};
    Tensor<double> first(shape), second(shape);
    std::copy_n(m.payload.begin(), first.data.size(), first.data.begin());
    std::copy(m.payload.begin() + static_cast<std::ptrdiff_t>(first.data.size()), m.payload.end(), second.data.begin());
    incoming.owner = m.owner;
    incoming.positions = schedule.chunk_positions[m.owner].expand();
    if (m.kind == MessageKind::kv) {
      incoming.k = std::move(first);
      incoming.v = std::move(second);
    } else {
      incoming.dk = std::move(first);
      incoming.dv = std::move(second);
    }
  }

  // Backward with overlap on and travelling dK/dV (the GPU ring's scheme, gpu/src/ring_driver.cuh): a step
  // computes a partial dK/dV of the held chunk; after it, the chunk's accumulator from upstream is added and
  // the sum goes on while the next step computes. The next step waits for that add, not for the hop.
  bool overlapped_gradients() const { return options.overlap && gradients_move(current_pass()); }

  // Backward moves dK/dV accumulators: queries are sharded and some step after 0 computes (local_only rings
  // move nothing: each chunk's dK, dV are complete at home after step 0).
  bool gradients_move(int pass) const { return pass == 1 && !config.q_replicated && P > 1 && !schedule.local_only; }

  bool ready_for(int p, int next_step) const {
    const DeviceRun& run = runs[p];
    const int pass = current_pass();
    if (run.computing) return false;
    if (overlapped_gradients()) {
      if (run.gradient_posted_for < run.step) return false;  // the add waits for the upstream accumulator
      if (next_step < P) return run.sends_in_flight == run.dkv_sends_in_flight && run.kv_received[next_step];
      return run.sends_in_flight == 0 && run.dkv_received[P];  // own chunk's dK/dV home, every send delivered
    }
    if (run.sends_in_flight > 0) return false;
    const bool gradients_travel = gradients_move(pass);
    if (next_step < P && !schedule.local_only && !run.kv_received[next_step]) return false;
    if (gradients_travel && !run.dkv_received[next_step]) return false;
    return true;
  }

  // Overlapped backward, after step run.step: add the upstream accumulator (step ≥ 1) and send the sum on.
  void post_gradient_if_ready(int p) {
    DeviceRun& run = runs[p];
    if (!overlapped_gradients() || run.computing || run.step < 0 || run.gradient_posted_for >= run.step) return;
    const int step = run.step;
    if (step > 0 && !run.dkv_received[step]) return;
    if (options.mode == Mode::compute && step > 0) {
      DeviceData& d = data[p];
      const auto found = d.incoming_gradients.find(step);
      if (found == d.incoming_gradients.end() || found->second.owner != d.held.owner)
        throw Error("internal error: device " + std::to_string(p) + " has no dK/dV accumulator of chunk " +
                    std::to_string(d.held.owner) + " to add at step " + std::to_string(step));
      const ChunkData& upstream = found->second;
      for (std::size_t i = 0; i < d.held.dk.data.size(); ++i) d.held.dk.data[i] += upstream.dk.data[i];
      for (std::size_t i = 0; i < d.held.dv.data.size(); ++i) d.held.dv.data[i] += upstream.dv.data[i];
      d.incoming_gradients.erase(found);
    }
    run.gradient_posted_for = step;
    post_message(p, step, current_pass(), MessageKind::dkv);  // at step P−1: the final hop home
  }

  void try_advance(int p) {
    DeviceRun& run = runs[p];
    if (run.dead || run.finished || run.computing || run.step < 0) return;
    post_gradient_if_ready(p);
    const int next = run.step + 1;
    if (!ready_for(p, next)) {
      if (run.waiting_since_ns < 0) {
        run.waiting_since_ns = now;
        push({now + options.timeout_ns, 0, Event::timeout, p, current_pass(), next, -1});
      }
      return;
    }
    if (options.mode == Mode::compute && next <= P) swap_in_received(p, next);
    if (next == P) {  // this device's pass is over
      if (run.waiting_since_ns >= 0) stats[p].exposed_ns += exposed_part(p, run.waiting_since_ns, now, next);
      run.waiting_since_ns = -1;
      run.finished = true;
      makespan_ns = std::max(makespan_ns, now);
      if (all_finished()) finish_pass();
      return;
    }
    start_step(p, next, current_pass());
  }

  void swap_in_received(int p, int next_step) {
    if (schedule.local_only) return;  // nothing arrives: the own chunk (and its dK, dV) stay held
    DeviceData& d = data[p];
    const int pass = current_pass();
    const bool gradients_travel = gradients_move(pass);
    if (next_step < P) {
      d.held.owner = d.incoming.owner;
      d.held.positions = std::move(d.incoming.positions);
      d.held.k = std::move(d.incoming.k);
      d.held.v = std::move(d.incoming.v);
      if (gradients_travel && overlapped_gradients()) {  // a fresh partial; the accumulator is added after
        d.held.dk = Tensor<double>(d.held.k.shape);
        d.held.dv = Tensor<double>(d.held.v.shape);
      } else if (gradients_travel) {
        d.held.dk = std::move(d.incoming.dk);
        d.held.dv = std::move(d.incoming.dv);
      } else if (pass == 1) {
        d.held.dk = Tensor<double>();  // replicated queries: only the owner's step 0 accumulates dK, dV
        d.held.dv = Tensor<double>();
      }
    } else if (gradients_travel) {  // the final hop: my own chunk's dK, dV come home
      ChunkData& home = overlapped_gradients() ? d.incoming_gradients[P] : d.incoming;
      d.held.owner = home.owner;
      d.held.positions = std::move(home.positions);
      d.held.dk = std::move(home.dk);
      d.held.dv = std::move(home.dv);
      d.incoming_gradients.clear();
    }
    d.incoming = ChunkData();
  }

  bool all_finished() const {
    for (const auto& run : runs)
      if (!run.finished) return false;
    return true;
  }

  void timeout(const Event& event) {
    const DeviceRun& run = runs[event.device];
    if (run.dead || run.finished || event.pass != current_pass() || run.step + 1 != event.step ||
        run.waiting_since_ns < 0 || ready_for(event.device, event.step))
      return;
    if (now < busy_until_ns + options.timeout_ns) {  // the ring is (or was recently) making progress: wait on
      push({busy_until_ns + options.timeout_ns, 0, Event::timeout, event.device, event.pass, event.step, -1});
      return;
    }
    const int p = event.device, upstream = (p + P - 1) % P, downstream = (p + 1) % P;
    const std::string waited = fmt_ms(now - run.waiting_since_ns) + " (the ring made no progress for " +
                               fmt_ms(options.timeout_ns) + ")";
    std::string what;
    if (overlapped_gradients() && run.gradient_posted_for < run.step && run.step > 0 && !run.dkv_received[run.step])
      what = "the dK/dV accumulator of chunk " + std::to_string(schedule.at(p, run.step).kv_owner) +
             " (to add after step " + std::to_string(run.step) + ") from device " + std::to_string(upstream) +
             " never arrived";
    else if (run.sends_in_flight > 0)
      what = "its send to device " + std::to_string(downstream) + " was never received";
    else if (event.step < P && !run.kv_received[event.step])
      what = "the K/V chunk of device " + std::to_string(schedule.at(p, event.step).kv_owner) + " from device " +
             std::to_string(upstream) + " (sequence " + std::to_string(run.expected_sequence) + ") never arrived";
    else
      what = "the dK/dV " + std::string(event.step == P ? "of its own chunk" : "travelling with its next chunk") +
             " from device " + std::to_string(upstream) + " never arrived";
    throw FaultDetected("timeout: device " + std::to_string(p) + " waited " + waited + " before step " +
                            std::to_string(event.step) + " (" + (event.pass == 0 ? "forward" : "backward") +
                            "): " + what,
                        p, event.step);
  }

  void take_snapshot(int pass, int step) {
    ++snapshot_count;
    if (!record_timeline) return;  // P > 256: keep the per-step state small
    StepSnapshot snapshot;
    snapshot.pass = pass;
    snapshot.step = step;
    snapshot.time_ns = now;
    for (int p = 0; p < P; ++p) {
      snapshot.kv_owner.push_back(schedule.at(p, step).kv_owner);
      snapshot.pairs.push_back(schedule.at(p, step).pairs);
      snapshot.skipped.push_back(schedule.at(p, step).skipped);
      snapshot.memory_bytes.push_back(ledgers[p].current_bytes());
    }
    snapshots.push_back(std::move(snapshot));
  }

  void finish_pass() {
    const int pass = current_pass();
    if (options.mode == Mode::compute) gather_results(pass);
    release_pass_buffers();
    ++pass_index;
    if (pass_index < passes.size()) {
      now = makespan_ns;
      start_pass();
    } else {
      finished = true;
    }
  }

  void gather_results(int pass) {
    const double infinity = std::numeric_limits<double>::infinity();
    auto max_abs = [&](const Tensor<double>& a, const Tensor<double>& b) {
      double worst = 0;
      for (std::size_t i = 0; i < a.data.size(); ++i) {
        if (std::isinf(a.data[i]) || std::isinf(b.data[i])) {
          if (a.data[i] != b.data[i]) return infinity;
          continue;
        }
        worst = std::max(worst, std::abs(a.data[i] - b.data[i]));
      }
      return worst;
    };
    const int computing = config.q_replicated ? 1 : P;  // replicated: device 0's copy is the answer
    if (pass == 0) {
      out = Tensor<double>(query_shape(config));
      lse = Tensor<double>(lse_shape(config));
      for (int p = 0; p < computing; ++p) {
        apply_output_scale(plans, data[p].out);
        scatter_rows(data[p].out, data[p].q_positions, out);
        scatter_columns(data[p].lse, data[p].q_positions, lse);
      }
      const auto& expected = reference_forward.get();
      max_error = std::max({max_error.value_or(0.0), max_abs(out, expected.out), max_abs(lse, expected.lse)});
      return;
    }
    dq = Tensor<double>(query_shape(config));
    dk = Tensor<double>(kv_shape(config));
    dv = Tensor<double>(kv_shape(config));
    for (int p = 0; p < P; ++p) {
      if (p < computing) scatter_rows(data[p].dq, data[p].q_positions, dq);
      // After the final hop every device holds its own chunk's dK, dV (replicated queries: never left home).
      const ChunkData& home = data[p].held;
      if (!config.q_replicated && home.owner != p)
        throw Error("internal error: device " + std::to_string(p) + " ended backward holding chunk " +
                    std::to_string(home.owner));
      const Tensor<double>& own_dk = config.q_replicated ? data[p].own_dk : home.dk;
      const Tensor<double>& own_dv = config.q_replicated ? data[p].own_dv : home.dv;
      if (!own_dk.data.empty()) {
        scatter_rows(own_dk, schedule.chunk_positions[p].expand(), dk);
        scatter_rows(own_dv, schedule.chunk_positions[p].expand(), dv);
      }
    }
    const auto& expected = reference_backward.get();
    max_error = std::max({max_error.value_or(0.0), max_abs(dq, expected.dq), max_abs(dk, expected.dk),
                          max_abs(dv, expected.dv)});
  }

  // ---- driving -------------------------------------------------------------------------------------------

  void process(const Event& event) {
    now = event.time;
    switch (event.type) {
      case Event::start_step: start_step(event.device, event.step, event.pass); break;
      case Event::compute_done: compute_done(event.device, event.step, event.pass); break;
      case Event::arrival: arrival(event); break;
      case Event::timeout: timeout(event); break;
    }
  }

  bool advance_one_step() {
    const std::size_t before = snapshot_count;
    while (!finished && !events.empty() && snapshot_count == before) {
      const Event event = events.top();
      events.pop();
      process(event);
    }
    if (!finished && events.empty()) {
      // Nothing in flight and someone unfinished: name the devices that are dead or stuck (a killed device of a
      // local_only ring sends nothing, so no timeout fires for it: this is where it is noticed).
      std::string stuck;
      int first = -1, first_step = 0;
      for (int p = 0; p < P; ++p) {
        if (runs[p].finished) continue;
        stuck += (stuck.empty() ? "" : ", ") + std::string("device ") + std::to_string(p) + " (" +
                 (runs[p].dead ? "dead" : "waiting") + " at step " + std::to_string(runs[p].step + 1) + ")";
        if (first < 0) first = p, first_step = runs[p].step + 1;
      }
      throw FaultDetected("deadlock: no device can make progress and nothing is in flight; unfinished: " + stuck,
                          std::max(first, 0), first_step);
    }
    if (finished) {  // drain what remains (timeouts that no longer apply)
      while (!events.empty()) events.pop();
    }
    return !finished;
  }
};

Simulation::Simulation(SimulationOptions options) : state_(std::make_unique<State>(std::move(options))) {
  state_->link_sequence.assign(2, std::vector<i64>(static_cast<std::size_t>(std::max(1, state_->options.config.ring)), 0));
  state_->send_stream_free_ns.assign(static_cast<std::size_t>(std::max(1, state_->options.config.ring)), 0);
  state_->receive_stream_free_ns = state_->send_stream_free_ns;
  state_->initialise();
}
Simulation::~Simulation() = default;
Simulation::Simulation(Simulation&&) noexcept = default;

bool Simulation::step() {
  if (state_->finished) return false;
  return state_->advance_one_step();
}
void Simulation::run() {
  while (step()) {
  }
}
bool Simulation::finished() const { return state_->finished; }
const std::vector<StepSnapshot>& Simulation::snapshots() const { return state_->snapshots; }
const std::vector<Slice>& Simulation::slices() const { return state_->slices; }
const std::vector<MemorySample>& Simulation::memory_samples() const { return state_->memory_samples; }
const RingSchedule& Simulation::schedule() const { return state_->schedule; }

Report Simulation::report() const {
  const State& s = *state_;
  Report report;
  report.options = s.options;
  report.options.config = s.config;
  report.makespan_ns = s.makespan_ns;
  for (int p = 0; p < s.P; ++p) {
    DeviceReport device;
    device.id = p;
    device.peak_bytes = s.ledgers[p].peak_bytes();
    device.peak_bytes_by_category = s.ledgers[p].peak_by_category();
    device.compute_ns = s.stats[p].compute_ns;
    device.comm_ns = s.stats[p].comm_ns;
    device.exposed_comm_ns = s.stats[p].exposed_ns;
    device.idle_ns = std::max<i64>(0, s.makespan_ns - device.compute_ns - device.exposed_comm_ns);
    device.bytes_sent = s.stats[p].bytes_sent;
    device.pairs = s.stats[p].pairs;
    report.devices.push_back(device);
  }
  report.naive_dense_peak_bytes = naive_dense_peak_bytes(s.config, s.options.bytes_per_element);
  report.flash_dense_peak_bytes = flash_dense_peak_bytes(s.config, s.options.bytes_per_element);
  report.max_abs_error_vs_dense = s.max_error;
  report.skipped_steps = s.options.scheme == Scheme::ring ? s.schedule.skipped_steps() : 0;
  report.selected_rows_bytes_saved = s.schedule.selected_rows_bytes_saved();
  return report;
}

namespace {
// Beyond 2^63 bytes (dense scores at N = 2^30) the value saturates; format_bytes shows it as "> 8 EiB".
std::int64_t saturate(long double bytes) {
  return bytes >= static_cast<long double>(std::numeric_limits<std::int64_t>::max())
             ? std::numeric_limits<std::int64_t>::max()
             : static_cast<std::int64_t>(bytes);
}
long double flash_bytes(const AttentionConfig& c, std::int64_t e) {
  const long double B = c.batch, N = c.seq, M = c.kv_seq, H = c.heads, Hkv = c.kv_heads, D = c.head_dim;
  return B * N * H * D * e          // Q
         + 2 * B * M * Hkv * D * e  // K, V
         + B * N * H * D * e        // O
         + B * H * N * kFp32;       // LSE
}
}  // namespace

std::int64_t flash_dense_peak_bytes(const AttentionConfig& c, std::int64_t e) { return saturate(flash_bytes(c, e)); }

std::int64_t naive_dense_peak_bytes(const AttentionConfig& c, std::int64_t e) {
  const long double scores = static_cast<long double>(c.batch) * c.heads * c.seq * c.kv_seq * e;  // S
  return saturate(flash_bytes(c, e) + scores);
}

double naive_dense_peak_bytes_real(const AttentionConfig& c, std::int64_t e) {
  return static_cast<double>(flash_bytes(c, e) + static_cast<long double>(c.batch) * c.heads * c.seq * c.kv_seq * e);
}

std::string to_string(Mode v) { return v == Mode::compute ? "compute" : "analytic"; }
std::string to_string(Scheme v) {
  switch (v) {
    case Scheme::ring: return "ring";
    case Scheme::flash: return "flash";
    case Scheme::dense: return "dense";
  }
  return "?";
}
std::string to_string(Pass v) {
  switch (v) {
    case Pass::forward: return "forward";
    case Pass::backward: return "backward";
    case Pass::both: return "both";
  }
  return "?";
}
std::string to_string(FaultKind v) {
  switch (v) {
    case FaultKind::drop: return "drop";
    case FaultKind::duplicate: return "duplicate";
    case FaultKind::corrupt: return "corrupt";
    case FaultKind::stale: return "stale";
    case FaultKind::delay: return "delay";
    case FaultKind::kill: return "kill";
  }
  return "?";
}

Mode parse_mode(const std::string& text) {
  static constexpr Mode values[] = {Mode::compute, Mode::analytic};
  return parse_choice(text, "--mode", values);
}
Scheme parse_scheme(const std::string& text) {
  static constexpr Scheme values[] = {Scheme::ring, Scheme::flash, Scheme::dense};
  return parse_choice(text, "--scheme", values);
}
Pass parse_pass(const std::string& text) {
  static constexpr Pass values[] = {Pass::forward, Pass::backward, Pass::both};
  return parse_choice(text, "--pass", values);
}

Fault parse_fault(const std::string& text) {
  const auto at = text.find('@'), colon = text.find(':', at == std::string::npos ? 0 : at);
  const std::string usage = "expected KIND@DEVICE:STEP with KIND one of drop, duplicate, corrupt, stale, delay, kill";
  if (at == std::string::npos || colon == std::string::npos) throw ConfigError("--inject", "'" + text + "'", usage);
  static constexpr FaultKind kinds[] = {FaultKind::drop,  FaultKind::duplicate, FaultKind::corrupt,
                                        FaultKind::stale, FaultKind::delay,     FaultKind::kill};
  Fault fault;
  fault.kind = parse_choice(text.substr(0, at), "--inject", kinds);
  try {
    std::size_t used_device = 0, used_step = 0;
    const std::string device = text.substr(at + 1, colon - at - 1), step = text.substr(colon + 1);
    fault.device = std::stoi(device, &used_device);
    fault.step = std::stoi(step, &used_step);
    if (used_device != device.size() || used_step != step.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw ConfigError("--inject", "'" + text + "'", usage);
  }
  return fault;
}

// A key run counts as its whole span [first, last] (see simulation.hpp).
std::int64_t rows_meeting_keys(const PositionSet& queries, const PositionSet& keys, const MaskPredicate& mask) {
  std::vector<std::pair<i64, i64>> spans;  // query positions [a, b] that see some key run
  for (const PositionRun& run : keys.runs) spans.push_back({run.start - mask.band.hi, run.last() - mask.band.lo});
  std::sort(spans.begin(), spans.end());
  std::vector<std::pair<i64, i64>> merged;
  for (const auto& span : spans)
    if (!merged.empty() && span.first <= merged.back().second + 1)
      merged.back().second = std::max(merged.back().second, span.second);
    else
      merged.push_back(span);
  i64 rows = 0;
  for (const PositionRun& run : queries.runs)
    for (const auto& [a, b] : merged) {  // indices i with a ≤ start + i·stride ≤ b
      const i64 first = a <= run.start ? 0 : (a - run.start + run.stride - 1) / run.stride;
      const i64 last = b >= run.last() ? run.count - 1 : (b - run.start) / run.stride - (b < run.start ? 1 : 0);
      if (last < first) continue;
      const PositionSet visited{{PositionRun{run.at(first), run.stride, last - first + 1}}};
      rows += mask.dilation ? count_selected(visited, *mask.dilation) : visited.size();
    }
  return rows;
}


}  // namespace ringlab::sim
