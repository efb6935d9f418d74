// Ring attention over NCCL (issue 6): one rank per GPU, the same driver and per-rank buffers as
// gpu::VirtualRing (ring.hpp), K/V (and in backward dK/dV) moved by grouped ncclSend/ncclRecv on a
// communication stream ordered with the compute stream by events.
//
// Launch (docs/gpu-rings.md):
//   - one process per GPU: NcclCommunicator::from_environment() reads RANK, WORLD_SIZE and LOCAL_RANK (the
//     torchrun / srun / mpirun convention; the GPU is LOCAL_RANK) and bootstraps through NCCL_COMM_ID
//     ("host:port" of rank 0, read by NCCL itself) or, without it, RINGLAB_NCCL_ID_FILE (a path on a shared
//     filesystem: rank 0 writes the unique id there, the others wait for it);
//   - one process driving all local GPUs, a thread per GPU: NcclCommunicator::for_local_gpus(P).
// With NcclOptions::copy_engine_transfers (either launch, all ranks on one node) the hops go by the GPUs' copy
// engines instead of NCCL's send/recv kernels, which take SMs from the attention kernels.
//
// Faults. Nothing may hang: every wait polls (never cudaStreamSynchronize on NCCL work) for
// ncclCommGetAsyncError and for progress — a pass whose next step has not finished for `stall_timeout`
// seconds is stalled. Then the communicator is aborted (ncclCommAbort) and RingFault is thrown, naming this
// rank, the pass and step, and what the progress board says about the others (which rank stopped
// heartbeating or exited). Communicator creation times out the same way (a rank that never joins).
// Copy engines between processes: aborting also lets the rank's own flag waits pass (its streams drain), and a
// pass counts as finished only when every rank finished it (a barrier with a deadline), because a neighbour of
// a failed rank may have been fed stale data. Making a ring runs one pass without transfers, so that no kernel
// is loaded for the first time (which waits for the device) while a transfer waits for a dead peer.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "ringlab/config.hpp"
#include "ringlab/errors.hpp"
#include "ringlab/gpu/dtype.hpp"
#include "ringlab/gpu/memory.hpp"
#include "ringlab/gpu/ring.hpp"
#include "ringlab/gpu/tensor.hpp"
#include "ringlab/positions.hpp"

namespace ringlab::gpu {

// A ring that failed at run time (a peer died or stalled, an NCCL error): the communicator was aborted.
class RingFault : public Error {
 public:
  using Error::Error;
};

bool nccl_ring_available();  // built with NCCL

struct NcclOptions {
  double stall_timeout_s = 30;     // no step finished for this long → abort (issue 6: everyone out within 60 s)
  double init_timeout_s = 60;      // communicator creation
  std::string progress_dir;        // heartbeat files for naming a dead peer (one process per GPU); empty: none
  int max_ctas = 0;                // NCCL's ncclConfig_t::maxCTAs (SMs its kernels may take); 0: NCCL's default
  // ncclConfig_t::CTAPolicy (NCCL ≥ 2.27; ignored before): NCCL's default, the fewest CTAs that perform
  // decently (efficiency), or none wherever it can (zero, NCCL ≥ 2.28).
  enum class CtaPolicy { nccl_default, efficiency, zero };
  CtaPolicy cta_policy = CtaPolicy::nccl_default;
  // ncclCommRegister the ring's send/receive buffers (K/V, dK/dV), so that NCCL may copy between them directly
  // (user buffer registration) instead of through its own staging buffers.
  bool register_buffers = false;
  bool high_priority_transfers = true;  // the communication stream at the highest priority: NCCL's kernels get
                                        // SMs as soon as the attention kernel's blocks free them
  // The ring's hops (K/V, dK/dV) by the GPUs' copy engines, each rank pulling from rank − 1, instead of NCCL's
  // send/recv kernels, which take SMs from the attention kernels they overlap (NCCL 2.28 has no copy-engine
  // send/recv). A thread per GPU (for_local_gpus): cudaMemcpyPeerAsync, the threads meeting once per round on
  // the host (peer_exchange.hpp). A process per GPU (from_environment): rank − 1's buffers mapped by CUDA IPC,
  // the rounds ordered by flag words in GPU memory (ipc_transport.cuh); every rank must run on one node
  // (ConfigError otherwise). The communicators still exist (set-up, and the watchdog polls them).
  bool copy_engine_transfers = false;
};

// One rank's NCCL communicator (owned; aborted or destroyed with it). Its GPU becomes current on the calling
// thread when it is created and whenever a ring uses it.
class NcclCommunicator {
 public:
  // RANK, WORLD_SIZE, LOCAL_RANK from the environment (see above). Throws ConfigError naming the variable
  // when one is missing or invalid, RingFault when the others do not join within options.init_timeout_s.
  static NcclCommunicator from_environment(const NcclOptions& options = {});
  // P communicators for GPUs 0..P−1 of this process (use each from its own thread).
  static std::vector<NcclCommunicator> for_local_gpus(int count, const NcclOptions& options = {});

  NcclCommunicator(NcclCommunicator&&) noexcept;
  NcclCommunicator& operator=(NcclCommunicator&&) noexcept;
  ~NcclCommunicator();

  int rank() const;
  int size() const;
  int device() const;
  const NcclOptions& options() const;
  // ncclCommAbort, from the thread that uses the communicator: its pending NCCL work ends; with copy engines
  // every wait of its transfers passes too (so that its streams drain).
  void abort();
  // From any thread: the ring using this communicator aborts it at its next poll and throws RingFault
  // (a rank of the same process failed; run_nccl_ring's threads).
  void request_abort();

  struct State;

 private:
  explicit NcclCommunicator(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
  friend class NcclRing;
};

// One rank of a ring of comm.size() GPUs for `config` (config.ring must equal comm.size()).
class NcclRing {
 public:
  // gradients: the precision dK, dV come home in (ringlab/gpu/dtype.hpp).
  NcclRing(const AttentionConfig& config, DType dtype, NcclCommunicator& comm,
           GradientPrecision gradients = GradientPrecision::input);
  ~NcclRing();
  NcclRing(const NcclRing&) = delete;
  NcclRing& operator=(const NcclRing&) = delete;

  int rank() const;
  // The global token positions of this rank's queries: row i of its Q, O, LSE, dO, dQ shards is position
  // positions().expand()[i]; and of the K/V chunk it owns (its K, V, dK, dV shards). The same positions, except
  // under q_replicated (the seed documents' variant), where every rank holds all N queries.
  const PositionSet& positions() const;
  const PositionSet& key_positions() const;
  Stream stream() const;  // this rank's compute stream (non-blocking)

  // Whole [B, N, heads, D] tensors on this GPU → this rank's rows (tests, benchmarks; a training step would
  // load its shard directly with load_shard).
  void load_whole(ConstDeviceTensor q, ConstDeviceTensor k, ConstDeviceTensor v);
  void load_output_gradient_whole(ConstDeviceTensor dout);
  // This rank's rows only: q [B, n, H, D] in the positions() order, k, v [B, n_k, Hkv, D] in the key_positions()
  // order.
  void load_shard(ConstDeviceTensor q, ConstDeviceTensor k, ConstDeviceTensor v);
  void load_output_gradient_shard(ConstDeviceTensor dout);

  // One pass (or options.repeat), waited for with the watchdog (see above); throws RingFault (communicator
  // aborted) on a fault.
  RingPassTiming forward(RingPassOptions options = {});
  RingPassTiming backward(RingPassOptions options = {});

  // This rank's results (device memory, valid until the next pass): O [B, n, H, D] (dtype), LSE [B, H, n];
  // dQ [B, n, H, D] fp32; dK, dV [B, n_k, Hkv, D] (the rank's own chunk after its last hop home: in the dtype
  // under GradientPrecision::input, fp32 otherwise — the tensor says which; always fp32 under q_replicated,
  // where they never travel).
  ConstDeviceTensor out() const;
  const float* lse() const;
  ConstDeviceTensor dq() const;
  ConstDeviceTensor dk() const;
  ConstDeviceTensor dv() const;
  // The rows into whole tensors on this GPU (tests): out [B, N, H, D], lse [B, H, N]; dq, dk, dv fp32 (dK, dV
  // widened from the dtype under GradientPrecision::input).
  void gather_output(DeviceTensor out, float* lse);
  void gather_gradients(DeviceTensor dq, DeviceTensor dk, DeviceTensor dv);

  std::size_t bytes_per_device() const;  // the ring's buffers on this GPU
  void poison();                          // NaN into every buffer (tests)

  // Fault injection for tests: before step `step` of the next forward pass this rank calls `action`
  // (e.g. std::_Exit, or a long sleep) from the host thread that drives it.
  void inject_before_step(int step, void (*action)());

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

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
  std::vector<float> dq, dk, dv;   // fp32 (dK, dV: the dtype's values under GradientPrecision::input)
};
// config.ring local GPUs, a thread each (NcclCommunicator::for_local_gpus(options) + NcclRing); forward then
// backward; gathered to the host. Throws ConfigError (unsupported, too few GPUs, no NCCL) or RingFault
// naming the failing rank(s).
NcclRingOutputs run_nccl_ring(const AttentionConfig& config, DType dtype, const NcclRingInputs& inputs,
                              GradientPrecision gradients = GradientPrecision::input, const NcclOptions& options = {});

}  // namespace ringlab::gpu
