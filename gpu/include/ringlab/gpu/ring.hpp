// Ring attention on GPUs (issue 6): one ring driver over the shared RingSchedule and a Transport that moves
// chunks one hop around the ring.
//
//   Transport     "every device d sends bytes[d] from send[d] to recv[(d + 1) mod P]", asynchronous on the
//                 transport's own stream, ordered after an event and followed by one.
//   CopyTransport P virtual devices on one GPU: cudaMemcpyAsync device-to-device on one copy stream.
//   VirtualRing   P virtual devices on one GPU, each with its own buffers (Q shard, double-buffered K/V,
//                 O/LSE accumulator, dQ, travelling dK/dV, home dK/dV): the per-device memory of a real ring.
//
// Forward, step s (RingSchedule::at(p, s)): device p holds the K/V chunk of owner (p − s) mod P in buffer
// s mod 2 (step 0: its home chunk); the copy stream moves every chunk to buffer (s + 1) mod 2 of the next
// device while the device's own compute stream runs gpu::block_attention_forward on the held chunk (global
// positions from the schedule) and an LSE merge into the device's fp32 (O, LSE) accumulator, started at
// (0, −∞) (fp32, so that P merges do not round O to bf16 P times; O is converted to the dtype at the end).
// Skipped steps launch nothing. The virtual devices' streams run concurrently, as separate GPUs would.
//
// Backward: δ = rowsum(dO ∘ O) once, then per step gpu::block_attention_backward into the device's dQ and
// the travelling fp32 dK/dV of the held chunk; K/V for step s + 1 are prefetched during step s, dK/dV go
// on after step s (they are its output), and after the last step they take one more hop home to the owner.
//
// Only what the GPU kernels and this slice support: no dilation, no q_replicated, self-attention
// (kv_seq = seq, q_start = 0); bf16/fp16 with head_dim 64/128 (fp32 on the teaching kernels for checking).
// Anything else throws ConfigError before allocating.
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

// Moves one chunk per device one hop around the ring.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual int size() const = 0;
  // The stream the transfers run on (work ordered on it runs after them).
  virtual Stream stream() const = 0;
  // Device d sends bytes[d] from send[d] to recv[(d + 1) mod P]. Runs after the events `after` (recorded
  // on other streams; null entries ignored) and in order with earlier shifts.
  virtual void shift(std::span<void* const> send, std::span<void* const> recv, std::span<const std::size_t> bytes,
                     std::span<const Event> after) = 0;
};

// P virtual devices on one GPU: device-to-device cudaMemcpyAsync on one copy stream.
class CopyTransport final : public Transport {
 public:
  explicit CopyTransport(int ring_size);
  ~CopyTransport() override;
  CopyTransport(const CopyTransport&) = delete;
  CopyTransport& operator=(const CopyTransport&) = delete;
  int size() const override { return ring_size_; }
  Stream stream() const override { return stream_; }
  void shift(std::span<void* const> send, std::span<void* const> recv, std::span<const std::size_t> bytes,
             std::span<const Event> after) override;

 private:
  int ring_size_;
  Stream stream_ = nullptr;
};

// A ring of config.ring virtual devices on the current GPU.
class VirtualRing {
 public:
  // config: validated AttentionConfig (ring, layout, causal/window, GQA); dtype of Q, K, V, O, dO.
  VirtualRing(const AttentionConfig& config, DType dtype);
  ~VirtualRing();
  VirtualRing(const VirtualRing&) = delete;
  VirtualRing& operator=(const VirtualRing&) = delete;

  const RingSchedule& schedule() const { return schedule_; }
  int size() const { return schedule_.ring_size; }
  Stream compute_stream() const { return compute_; }

  // Whole tensors on the device: q [B, N, H, D], k, v [B, N, Hkv, D] in `dtype`; each virtual device gets
  // the rows its layout owns (strided copies, no kernels).
  void load(ConstDeviceTensor q, ConstDeviceTensor k, ConstDeviceTensor v);
  // Fills every per-device buffer with 0xFF bytes (NaN in every dtype), for tests: a result that reads
  // anything the ring did not write shows up as NaN. Call before load().
  void poison();
  void load_output_gradient(ConstDeviceTensor dout);  // [B, N, H, D]

  void forward();   // every device's (O, LSE) over all P steps
  void backward();  // every device's dQ and its own chunk's dK, dV (fp32), after forward()

  // Gathered back into whole tensors: out [B, N, H, D] (dtype), lse [B, H, N] fp32;
  // dq [B, N, H, D], dk, dv [B, N, Hkv, D] fp32. Asynchronous on the compute stream, a blocking
  // stream: ordered with the legacy default stream (synchronous DeviceBuffer copies see its results).
  void gather_output(DeviceTensor out, float* lse);
  void gather_gradients(DeviceTensor dq, DeviceTensor dk, DeviceTensor dv);

  // Bytes of device memory one virtual device holds (what a real rank would need for these buffers).
  std::size_t bytes_per_device() const;

 private:
  struct Device;
  AttentionConfig config_;
  DType dtype_;
  RingSchedule schedule_;
  HeadMasks mask_;
  std::vector<std::unique_ptr<Device>> devices_;
  std::unique_ptr<CopyTransport> transport_;
  Stream compute_ = nullptr;
  std::vector<Event> events_;  // pooled, reused each pass
  std::size_t next_event_ = 0;

  Event event(std::size_t index);
  void begin_pass();
  void end_pass();
};

// ---- NCCL ring (first slice): one GPU per rank, one process driving GPUs 0..P−1 with a thread per GPU ----
// Each rank holds only its own buffers (as VirtualRing's devices), a compute and a communication stream
// ordered by events, double-buffered K/V: step s + 1's grouped ncclSend/ncclRecv overlaps step s's
// compute; dK/dV travel and take a last hop home. Communicators from ncclCommInitAll. A rank that throws
// aborts its own communicator and the error names it; peers already blocked in NCCL kernels may still
// wait (no asynchronous error polling or timeout watchdog yet).
// Whole tensors in host memory, for tests: q, dout [B, N, H, D], k, v [B, N, Hkv, D] as `dtype` bytes.
struct NcclRingInputs {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* dout = nullptr;
};
struct NcclRingOutputs {
  std::vector<unsigned char> out;  // [B, N, H, D] in dtype
  std::vector<float> lse;          // [B, H, N]
  std::vector<float> dq, dk, dv;   // fp32
};
bool nccl_ring_available();  // built with NCCL
// config.ring GPUs; forward then backward. Throws ConfigError (unsupported, too few GPUs, no NCCL) or
// CudaError naming the failing rank(s).
NcclRingOutputs run_nccl_ring(const AttentionConfig& config, DType dtype, const NcclRingInputs& inputs);

}  // namespace ringlab::gpu
