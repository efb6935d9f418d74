// Copy-engine transfers with one process per GPU (NcclOptions::copy_engine_transfers with
// NcclCommunicator::from_environment): each rank maps rank − 1's ring buffers once (CUDA IPC) and pulls its hops
// with cudaMemcpyAsync on its copy stream — the copy engines, no SM — ordered across the processes by stream
// memory operations on flag words (cuStreamWriteValue32 / cuStreamWaitValue32). No host thread waits for a peer
// during a pass; the watchdog (nccl_ring.cu) still polls.
//
// Flags: each rank owns two 32-bit words in its GPU's memory, written by its neighbours, waited on by itself:
//   posted: rank − 1 reached round n (its send buffers of round n hold their data);
//   pulled: rank + 1 finished pulling round n from it (its send buffers may be reused).
// Round n of rank r, in order on r's copy stream:
//   wait for the driver's `ready`; write n into (r + 1).posted; wait until own posted ≥ n;
//   pull every hop from rank − 1's buffer (the one at the same place as r's own send buffer: peer_exchange.hpp,
//   locate); write n into (r − 1).pulled; wait until own pulled ≥ n; arrived(r) = an event recorded here.
// `posted` follows the stream's earlier pulls as well as `ready`: a chunk forwarded in round n + 1 arrived in
// round n (PeerCopyTransport, the thread-per-GPU version, says why that matters for P ≥ 3). Rounds are counted
// over the communicator's life, in the same order on every rank (every ring is built and run in the same order),
// so a new ring never meets an old round's flags. These are the post / pull / pulled steps of PeerExchange::run_round
// (the threads' version) with flags in GPU memory where the threads use a mutex; its fourth step, which lets a
// rank reuse its events, has nothing to do here.
// cuStreamWriteValue32 without flags fences earlier memory operations of its stream (system scope) before the
// write, which `posted` relies on. Every copy pulls into the puller's own memory, so no rank ever waits for
// another's remote writes to land, and the waits need no CU_STREAM_WAIT_VALUE_FLUSH.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ring_driver.cuh"
#include "ringlab/gpu/ring.hpp"

namespace ringlab::gpu::detail {

// A collective over the ring's ranks: `all` (size × bytes) receives every rank's `bytes` bytes of `mine`, in rank
// order. nccl_ring.cu passes NCCL's all-gather, which aborts the communicator and throws RingFault (saying `what`)
// when a rank has not joined within `timeout_s`.
using AllGather =
    std::function<void(const void* mine, void* all, std::size_t bytes, double timeout_s, const std::string& what)>;

// rank − 1's (or a neighbour's) memory mapped into this process by CUDA IPC; closed when it goes.
class IpcMapping {
 public:
  IpcMapping() = default;
  explicit IpcMapping(const cudaIpcMemHandle_t& handle);  // throws CudaError
  ~IpcMapping() { reset(); }
  IpcMapping(IpcMapping&& other) noexcept : pointer_(other.pointer_) { other.pointer_ = nullptr; }
  IpcMapping& operator=(IpcMapping&& other) noexcept;
  IpcMapping(const IpcMapping&) = delete;
  IpcMapping& operator=(const IpcMapping&) = delete;
  void* get() const { return pointer_; }
  void reset() noexcept;

 private:
  void* pointer_ = nullptr;
};

// One rank's flags and its neighbours' (mapped), and the round count; one per communicator.
class IpcLinks {
 public:
  // A collective. Throws ConfigError unless every rank runs on this node (CUDA IPC maps memory of the same
  // machine only), or the driver lacks stream memory operations. `all_gather` is kept for the barrier that ends
  // the links (and the rings' transports): memory another process still maps must not be freed. `setup_timeout_s`
  // bounds the collectives of set-up and teardown.
  IpcLinks(int rank, int size, AllGather all_gather, double setup_timeout_s);
  // Closes the neighbours' flags, waits (a barrier) until they closed this rank's, then frees them; after a
  // fault, without the barrier.
  ~IpcLinks();
  IpcLinks(const IpcLinks&) = delete;
  IpcLinks& operator=(const IpcLinks&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  std::uint32_t next_round() { return ++round_; }

  // Enqueues on `stream`: the value `round` into a flag word (own or a neighbour's), or a wait until it is ≥ round.
  enum class Flag { posted, pulled };
  void write(cudaStream_t stream, int owner, Flag flag, std::uint32_t round) const;
  void wait(cudaStream_t stream, Flag flag, std::uint32_t round) const;

  // After a fault: lets every pending and future wait of this rank pass, so that tearing the ring down does not
  // wait forever for a peer that died (the copies behind the waits may then read stale data: the ring has failed,
  // and NcclRing's end-of-pass agreement keeps the other ranks from reporting such a pass as a success). From then
  // on aborted() is true and nothing waits for the other ranks again.
  void release_waits() noexcept;
  bool aborted() const { return aborted_; }
  // Every rank of the communicator reaches this point within `timeout_s` (default: the set-up timeout); throws
  // RingFault otherwise (the communicator is then aborted).
  void barrier(const std::string& what, double timeout_s = 0) const;
  // `all_gather` with the set-up timeout.
  void all_gather(const void* mine, void* all, std::size_t bytes, const std::string& what) const {
    all_gather_(mine, all, bytes, setup_timeout_s_, what);
  }

 private:
  std::uint32_t* word(int owner, Flag flag) const;

  int rank_, size_;
  AllGather all_gather_;
  double setup_timeout_s_;
  std::uint32_t round_ = 0;
  std::atomic<bool> aborted_{false};
  DeviceBuffer flags_;                 // this rank's words
  std::vector<IpcMapping> mapped_;     // [rank]: that rank's flags (neighbours only; empty otherwise)
  cudaStream_t release_stream_ = nullptr;
};

// The transport of one rank of a ring (a collective: every rank maps rank − 1's buffers of `rank`). It must go
// before `rank`'s buffers do: its destructor closes the mappings and waits (links.barrier()) until rank + 1
// closed its mappings of this rank's buffers, except after a fault. `high_priority`: the copy stream's priority.
std::unique_ptr<Transport> make_ipc_copy_transport(IpcLinks& links, const RingRank& rank, bool high_priority);

}  // namespace ringlab::gpu::detail
