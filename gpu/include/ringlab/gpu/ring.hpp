// Ring attention on GPUs (issue 6): one ring driver over the shared RingSchedule (gpu/src/ring_driver.cuh)
// and a Transport that moves chunks one hop around the ring.
//
//   Transport     a round of hops: every rank sends to rank + 1 and receives from rank − 1, asynchronously on
//                 the transport's stream, ordered after events (as ncclGroupStart / ncclGroupEnd).
//   CopyTransport P virtual devices on one GPU: device-to-device cudaMemcpyAsync, a copy stream per link.
//   VirtualRing   P virtual devices on one GPU, each with its own buffers (Q shard, own K/V, two K/V rotation
//                 buffers, fp32 O accumulator reused as dQ, travelling fp32 dK/dV accumulators and a step
//                 partial): the per-device memory of a real ring (docs/simulator.md §Memory).
//   NcclRing      one rank per GPU over NCCL (ringlab/gpu/nccl_ring.hpp), the same driver and buffers; its hops by
//                 NCCL send/recv, or (one process driving all GPUs) by the copy engines (PeerCopyTransport).
//
// Forward, step s (RingSchedule::at(p, s)): device p holds the K/V chunk of owner (p − s) mod P in buffer
// s mod 2 (step 0: its own chunk); the transport moves every chunk to buffer (s + 1) mod 2 of the next
// device while the device's own compute stream runs gpu::block_attention_forward_accumulate on the held chunk
// (global positions from the schedule): the kernel ⊕-merges into the device's fp32 (O, LSE) in its epilogue.
// Dense rings stage it (gpu::AccumulateStep): the first computing step writes (O, LSE), the last writes O in the
// dtype; dilated rings start at (0, −∞) and convert O at the end. Skipped steps launch nothing. The virtual
// devices' streams run concurrently, as separate GPUs would.
//
// Backward: δ = rowsum(dO ∘ O) once, then per step gpu::block_attention_backward into the device's dQ and a
// step partial dK/dV of the held chunk, added into the chunk's accumulator received from the previous device
// and sent on (after the last step, home to the owner: by default rounded to the dtype first, half the bytes of
// that hop, which nothing overlaps; GradientPrecision::fp32 keeps it fp32); K/V for step s + 1 are prefetched
// during step s.
//
// Dilation (LongNet) runs one kernel call per pattern (gpu::head_mask_sets); combine group_mean multiplies
// the final O by 1/k, and the backward runs with δ·k and multiplies the gradients by 1/k (gpu::output_scale).
// Not supported (ConfigError before anything is allocated): q_replicated, cross-attention (kv_seq ≠ seq or q_start ≠ 0),
// head dims and dtypes the kernels lack (bf16/fp16: 64, 128; fp32 on the teaching kernels for checking).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "ringlab/config.hpp"
#include "ringlab/gpu/block_attention.hpp"
#include "ringlab/gpu/memory.hpp"
#include "ringlab/gpu/tensor.hpp"
#include "ringlab/schedule.hpp"

struct CUevent_st;

namespace ringlab::gpu {

using Event = CUevent_st*;  // cudaEvent_t

// One rank's part of a hop: `send` goes to rank + 1, `recv` is filled from rank − 1 (byte counts may differ:
// chunks have different sizes; the receiver's recv_bytes equal the sender's send_bytes).
struct Hop {
  const void* send = nullptr;
  std::size_t send_bytes = 0;
  void* recv = nullptr;
  std::size_t recv_bytes = 0;
};

// Moves chunks one hop around the ring, in rounds. In a round every rank the calling thread drives posts its
// hops; flush() issues them; arrived(rank) then is an event that completes when that rank's sends have left
// and its receives have landed. Rounds run in order.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual int size() const = 0;  // P
  // `ready`: an event after which the rank's send buffers hold the data and its receive buffers are free
  // (null: no wait).
  virtual void post(int rank, std::span<const Hop> hops, Event ready) = 0;
  virtual void flush() = 0;
  virtual Event arrived(int rank) = 0;
  virtual void begin_pass() {}  // a pass starts: event pools may be reused
};

namespace detail {
class EventPool;
struct RingProblem;
struct RingRank;
}  // namespace detail

// What one call of VirtualRing or NcclRing forward / backward runs.
struct RingPassOptions {
  bool compute = true;   // false: no kernels (the benchmark's transfers-only pass)
  bool transfer = true;  // false: no transfers (compute only; the results are wrong)
  int repeat = 1;        // passes enqueued back to back and waited for once (benchmarks: no host gaps)
};

// Timing the ring measured with CUDA events on the rank's stream: the mean of the `repeat` passes.
struct RingPassTiming {
  double milliseconds = 0;
};

// P virtual devices on one GPU: device-to-device copies, those into rank p's buffers on copy stream p, after the
// sender's and rank p's `ready` and the sender's previous arrival; rank p's arrival event covers the copies into
// and out of p. Each link waits for its own two ends, as the links of real GPUs do (one stream and one event for
// all made every round wait for the slowest device). Every rank must post in every round.
class CopyTransport final : public Transport {
 public:
  explicit CopyTransport(int ring_size);
  ~CopyTransport() override;
  CopyTransport(const CopyTransport&) = delete;
  CopyTransport& operator=(const CopyTransport&) = delete;
  int size() const override { return ring_size_; }
  std::span<const Stream> streams() const { return streams_; }  // [receiving rank]
  void post(int rank, std::span<const Hop> hops, Event ready) override;
  void flush() override;
  Event arrived(int rank) override;
  // A pass starts after the previous one's copies (VirtualRing orders them): the event pool is reused.
  void begin_pass() override;

 private:
  int ring_size_;
  std::vector<Stream> streams_;           // [receiving rank]
  std::vector<std::vector<Hop>> posted_;  // [rank]
  std::vector<Event> ready_;              // [rank]
  std::vector<bool> has_posted_;
  std::unique_ptr<detail::EventPool> events_;  // reused each pass
  std::vector<Event> arrived_;                  // [rank]: the last round's copies into and out of the rank
};

// How VirtualRing moves a chunk (and, backward, its dK/dV accumulator) from one virtual device to the next.
// kernels is not yet timed (docs/gpu-rings.md, "Hops by the kernels"; tests/test_gpu_ring.cpp holds it to the
// bits of copies), so automatic means copies until it has been measured.
enum class RingHops {
  automatic,  // copies (see above)
  copies,     // CopyTransport: cudaMemcpyAsync on a copy stream per link, overlapping the step's kernels
  kernels,    // the step's attention kernel copies what it holds on (gpu::KernelSends): on one GPU a copy is an SM
              // kernel of its own; device p's step s then waits for devices p ± 1 to finish step s − 1.
              // Bf16/fp16 on sm_90a, Hkv = H, no dilation (gpu::kernel_sends_available), else ConfigError.
};

// A ring of config.ring virtual devices on the current GPU.
class VirtualRing {
 public:
  // config: validated AttentionConfig (ring, layout, causal/window, GQA); dtype of Q, K, V, O, dO;
  // gradients: the precision dK, dV come home in (ringlab/gpu/dtype.hpp).
  // hops: how chunks move between the virtual devices (RingHops; hops() tells which was chosen).
  VirtualRing(const AttentionConfig& config, DType dtype, GradientPrecision gradients = GradientPrecision::input,
              RingHops hops = RingHops::automatic);
  ~VirtualRing();
  VirtualRing(const VirtualRing&) = delete;
  VirtualRing& operator=(const VirtualRing&) = delete;

  const RingSchedule& schedule() const;
  int size() const;
  RingHops hops() const;  // copies or kernels
  Stream compute_stream() const { return compute_; }

  // Whole tensors on the device: q [B, N, H, D], k, v [B, N, Hkv, D] in `dtype`; each virtual device gets
  // the rows its layout owns (strided copies, no kernels).
  void load(ConstDeviceTensor q, ConstDeviceTensor k, ConstDeviceTensor v);
  // Fills every per-device buffer with 0xFF bytes (NaN in every dtype), for tests: a result that reads
  // anything the ring did not write shows up as NaN. Call before load().
  void poison();
  // The same for the buffers a pass only passes chunks through (K/V rotation buffers, travelling dK/dV), for
  // tests between forward and backward: the backward must not find the forward's chunks still there.
  void poison_in_transit();
  void load_output_gradient(ConstDeviceTensor dout);  // [B, N, H, D]

  // options: as NcclRing's (compute-only and transfers-only passes for benchmarks, repeats); time them with
  // events on compute_stream().
  void forward(RingPassOptions options = {});   // every device's (O, LSE) over all P steps
  void backward(RingPassOptions options = {});  // every device's dQ (fp32) and its own chunk's dK, dV, after forward()

  // Gathered back into whole tensors: out [B, N, H, D] (dtype), lse [B, H, N] fp32;
  // dq [B, N, H, D], dk, dv [B, N, Hkv, D] fp32 (dK, dV widened from the dtype under
  // GradientPrecision::input). Asynchronous on the compute stream, a blocking
  // stream: ordered with the legacy default stream (synchronous DeviceBuffer copies see its results).
  void gather_output(DeviceTensor out, float* lse);
  void gather_gradients(DeviceTensor dq, DeviceTensor dk, DeviceTensor dv);

  // Bytes of device memory one virtual device holds (what a real rank would need for these buffers).
  std::size_t bytes_per_device() const;

 private:
  std::unique_ptr<detail::RingProblem> problem_;
  std::vector<std::unique_ptr<detail::RingRank>> ranks_;
  std::unique_ptr<CopyTransport> transport_;
  Stream compute_ = nullptr;
  std::unique_ptr<detail::EventPool> events_;  // pass start / end, reused each pass

  void run(bool forward, const RingPassOptions& options);
  std::vector<Event> begin_pass();
  void end_pass();
};

}  // namespace ringlab::gpu
