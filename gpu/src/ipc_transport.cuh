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
// so a new ring never meets an old round's flags. This is the same three-step round as PeerExchange::run_round,
// with flags in GPU memory where the threads use a mutex.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "ring_driver.cuh"
#include "ringlab/gpu/ring.hpp"

namespace ringlab::gpu::detail {

// A collective over the ring's ranks: `all` (size × bytes) receives every rank's `bytes` bytes of `mine`, in rank
// order. nccl_ring.cu passes NCCL's all-gather.
using AllGather = std::function<void(const void* mine, void* all, std::size_t bytes)>;

// One rank's flags and its neighbours' (mapped), and the round count; one per communicator.
class IpcLinks {
 public:
  // A collective. Throws ConfigError unless every rank runs on this node (CUDA IPC maps memory of the same
  // machine only), or the driver lacks stream memory operations.
  IpcLinks(int rank, int size, const AllGather& all_gather);
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
  // wait forever for a peer that died (the copies behind the waits may then fail: the ring has failed anyway).
  void release_waits() noexcept;

 private:
  std::uint32_t* word(int owner, Flag flag) const;

  int rank_, size_;
  std::uint32_t round_ = 0;
  DeviceBuffer flags_;                 // this rank's words
  std::vector<void*> mapped_;          // [rank]: that rank's flags, mapped (neighbours only; null otherwise)
  cudaStream_t release_stream_ = nullptr;
};

// The transport of one rank of a ring (a collective: every rank maps rank − 1's buffers of `rank`).
std::unique_ptr<Transport> make_ipc_copy_transport(IpcLinks& links, const RingRank& rank, const AllGather& all_gather);

}  // namespace ringlab::gpu::detail
