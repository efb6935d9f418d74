// The one ring driver (issue 6), shared by gpu::VirtualRing (P ranks on one GPU, CopyTransport) and
// gpu::NcclRing (one rank per GPU, NcclTransport or PeerCopyTransport: nccl_ring.cu). Internal to gpu/src.
//
// A RingRank is what one device holds (docs/gpu-rings.md): its Q shard, home K/V, two K/V rotation buffers,
// the fp32 running O, O, LSE, partial (O, LSE), dO, δ, fp32 dQ, two travelling fp32 dK/dV buffers and the home
// dK/dV, plus its compute stream. ring_forward / ring_backward run one pass over any set of ranks this host
// thread drives (all P for the virtual ring, one for an NCCL rank), every decision read from the shared
// RingSchedule:
//
//   step s, rank p holds the K/V chunk of owner (p − s) mod P: step 0 its home chunk, step s ≥ 1 rotation
//   buffer s mod 2. Before step s's kernels every rank posts step s + 1's hop (its chunk to rank p + 1 into
//   buffer (s + 1) mod 2, ready once its own step s − 1 finished — the last reader of that buffer), so the
//   transfer overlaps step s's compute. Skipped steps launch nothing.
//   Backward: step s computes the held chunk's partial dK/dV into dk_step (step 0: straight into the
//   accumulator; the kernel overwrites, GradientWrite::overwrite, so nothing is zeroed per step), then adds
//   it to the chunk's accumulator received from rank p − 1 (its sum over the ranks that held the chunk
//   before) and sends the sum on to rank p + 1 — after the last step home to the owner. That hop overlaps
//   step s + 1's kernels; only the add waits for it. (RingProblem::gradients_added_by_kernel: the virtual
//   ring from P = 4 waits for the accumulator instead and lets the kernel add into it.) The hop home follows
//   the last step and overlaps nothing: under GradientPrecision::input the finished total is rounded to the
//   dtype first (what the caller's framework would do to it anyway), halving that hop.
//   RingProblem::hops_by_kernels: the same hops, done by the step's kernels instead of the transport.
//   A local_only schedule (every step after 0 skipped everywhere: LongNet segments inside the chunks) moves
//   nothing at all: each rank attends within its own chunk and keeps its dK/dV.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "ringlab/gpu/block_attention.hpp"
#include "ringlab/gpu/ring.hpp"
#include "ringlab/schedule.hpp"

namespace ringlab::gpu::detail {

using i64 = std::int64_t;

// What every rank of one ring shares.
struct RingProblem {
  AttentionConfig config;
  DType dtype = DType::bf16;
  DType gradient_dtype = DType::f32;  // of the dK/dV that come home: dtype (GradientPrecision::input) or fp32
  RingSchedule schedule;
  std::vector<HeadMasks> masks;  // head_mask_sets(config): one kernel call per set and step, ⊕-merged
  float scale = 1.0f;          // τ
  float output_factor = 1.0f;  // gpu::output_scale(config): 1/k under combine group_mean
  i64 max_rows = 0;            // the largest chunk: the rotation buffers' size
  // Backward steps s ≥ 1: false (NcclRing; VirtualRing below P = 4), the kernel writes the held chunk's
  // partial dK/dV into dk_step and an add kernel sums it into the travelling accumulator once that has arrived,
  // so the hop overlaps the kernel; true (VirtualRing with P ≥ 4), the kernel waits for the accumulator and adds
  // into it itself, saving the add's pass over memory, which on one GPU is SM time. dk_step/dv_step stay
  // allocated, as a real rank's are.
  bool gradients_added_by_kernel = false;
  // The virtual ring with RingHops::kernels: rank p's step-s kernel copies its held K/V (and, backward, the received
  // dK/dV accumulator with its share added) into rank p + 1's buffers (s + 1) mod 2 itself (gpu::KernelSends), after
  // ranks p − 1 (which sent it its chunk) and p + 1 (the last reader of the buffers it writes) finished step s − 1.
  // No transport round but the backward's hop home. Needs every rank in one driver call, in rank order, one mask
  // set, chunks that travel (not local_only) and dK/dV that travel (not q_replicated): VirtualRing checks.
  bool hops_by_kernels = false;

  // Validates what the ring supports (throws ConfigError naming `who` before anything is allocated).
  RingProblem(const AttentionConfig& config, DType dtype, GradientPrecision gradients, const char* who);

  // Whether `rank`'s O, LSE and dQ are the answer for its query rows. Under q_replicated every rank holds all of
  // them, equal up to rounding, and device 0's copy is the answer, as in the reference and the simulator.
  bool reports_queries(int rank) const { return !config.q_replicated || rank == 0; }
};

// A non-blocking stream for a transport's copies, at the device's highest priority or its lowest.
cudaStream_t create_transfer_stream(bool high_priority);

// cudaEvent_t's created on demand and reused pass after pass (reset() at the start of each pass).
class EventPool {
 public:
  EventPool() = default;
  ~EventPool();
  EventPool(const EventPool&) = delete;
  EventPool& operator=(const EventPool&) = delete;
  cudaEvent_t record(cudaStream_t stream);  // a fresh (for this pass) event recorded on `stream`
  void reset() { next_ = 0; }

 private:
  std::vector<cudaEvent_t> events_;
  std::size_t next_ = 0;
};

// One rank's buffers and stream.
struct RingRank {
  int rank = 0;
  // Its queries (the rows of Q, O, LSE, dO, δ, dQ) and the K/V chunk it owns. The same rows, except under
  // q_replicated (the seed documents' variant, docs/semantics.md §7.5), where every rank holds all N queries.
  i64 rows = 0;
  PositionSet positions;
  i64 kv_rows = 0;
  PositionSet kv_positions;
  DeviceBuffer q, k_home, v_home, k[2], v[2];            // K/V: home chunk and the two rotation buffers
  // acc_dq: the running O in fp32 during forward, dQ (fp32) during backward — one buffer, because forward
  // no longer needs it once O is in the dtype (the simulator's ledger counts it once per pass).
  DeviceBuffer acc_dq, out, lse, partial_out, partial_lse;  // partial_*: fp32 rings only (teaching kernels)
  DeviceBuffer dout, delta;
  // fp32 dK/dV. dk/dv[2]: the accumulators that travel with the chunks (received, added to, sent on); the last
  // hop brings the rank's own chunk's total home into dk/dv[P mod 2] (home_index), in problem.gradient_dtype
  // (under GradientPrecision::input the total is rounded into the free K/V buffer k/v[P mod 2] and sent from
  // there). dk_step/dv_step (P > 1):
  // one step's partial dK/dV of the held chunk, added into the received accumulator (so that the
  // accumulator's hop overlaps the next step's kernels instead of delaying them).
  // q_replicated: dK/dV never travel. Step 0 computes the own chunk's from all queries into dk/dv[0]
  // (home_index 0, fp32); the kernels of later steps, which only dQ needs, write theirs into dk_step/dv_step,
  // which nobody reads; dk/dv[1] are empty.
  DeviceBuffer dk[2], dv[2], dk_step, dv_step;
  int home_index = 0;
  cudaStream_t stream = nullptr;                // owned; non-blocking
  EventPool events;
  // The pass this rank runs now and, per step, the event recorded after it (the watchdog's progress marks).
  std::vector<cudaEvent_t> step_done;

  RingRank(const RingProblem& problem, int rank);
  ~RingRank();
  RingRank(const RingRank&) = delete;
  RingRank& operator=(const RingRank&) = delete;

  std::vector<const DeviceBuffer*> buffers() const;
  std::size_t bytes() const;
  void poison(cudaStream_t on);  // 0xFF bytes (NaN in every dtype) into every buffer
  void poison_in_transit(cudaStream_t on);  // the same into the buffers a pass only passes on: k/v[2], dk/dv[2], dk/dv_step
  // Whole [B, N, heads, D] tensors → this rank's rows (strided copies on `on`).
  void load(const RingProblem& problem, ConstDeviceTensor q, ConstDeviceTensor k, ConstDeviceTensor v, cudaStream_t on);
  void load_output_gradient(const RingProblem& problem, ConstDeviceTensor dout, cudaStream_t on);
  // This rank's rows → whole tensors: O (dtype) and LSE [B, H, N]; dQ, dK, dV fp32 (dK, dV widened from the
  // dtype under GradientPrecision::input, through the free accumulator dk/dv[1 − home_index]); dK, dV by the
  // rows of the own chunk. `with_dq` false: not dQ (q_replicated: another rank's copy is the answer).
  void gather_output(const RingProblem& problem, DeviceTensor out, float* lse, cudaStream_t on) const;
  void gather_gradients(const RingProblem& problem, DeviceTensor dq, DeviceTensor dk, DeviceTensor dv,
                        cudaStream_t on, bool with_dq = true);
  // The own chunk's dK, dV after backward: [B, rows, Hkv, D] in problem.gradient_dtype.
  ConstDeviceTensor home_gradient(const RingProblem& problem, bool value_side) const;
};

// What a pass does: both (the real thing), or one half, for the benchmark's split of compute and transfer
// time (compute only: no transfers, kernels read whatever the buffers hold; transfers only: no kernels).
struct PassOptions {
  bool compute = true;
  bool transfer = true;
  std::function<void(int step)> before_step;  // called on the host before step s is enqueued (fault injection)
  bool continues = false;  // a repeat of the previous pass: keep the rank's events and step_done (watchdog progress)
};

// The driver's options for a caller's RingPassOptions (VirtualRing and NcclRing); throws ConfigError when
// options.repeat < 1.
PassOptions pass_options(const RingPassOptions& options);

// One pass over `ranks` (the ranks this host thread drives). Each starts after `start[i]` (an event, or
// null) and leaves its work on ranks[i]->stream; transfers run on the transport's stream(s).
void ring_forward(const RingProblem& problem, std::span<RingRank* const> ranks, Transport& transport,
                  std::span<const cudaEvent_t> start, PassOptions options = {});
void ring_backward(const RingProblem& problem, std::span<RingRank* const> ranks, Transport& transport,
                   std::span<const cudaEvent_t> start, PassOptions options = {});

// Rows of a [B, rows, heads, D] tensor: whole tensor (positions 0..whole_rows−1) ↔ a shard holding the rows
// at `positions` (in order). One strided 2-D copy per (batch, run).
void copy_rows(const PositionSet& positions, i64 batch, i64 whole_rows, i64 row_bytes, const void* from, void* to,
               bool to_shard, cudaStream_t stream);

}  // namespace ringlab::gpu::detail
