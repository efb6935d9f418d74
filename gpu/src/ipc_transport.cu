// Copy-engine transfers with one process per GPU: see ipc_transport.cuh for the protocol.
#include "ipc_transport.cuh"

#include <cuda.h>  // types of the driver's stream memory operations (called through entry points: no libcuda link)
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "cuda_check.cuh"
#include "peer_exchange.hpp"
#include "ringlab/errors.hpp"

namespace ringlab::gpu::detail {
namespace {

// cuStreamWriteValue32 / cuStreamWaitValue32, looked up in the driver at run time like tma.cu's encoder, so that
// the library still loads on machines without a driver (CI). Null when the driver lacks them.
struct StreamMemoryOps {
  using Write = CUresult (*)(CUstream, CUdeviceptr, cuuint32_t, unsigned int);
  using Wait = CUresult (*)(CUstream, CUdeviceptr, cuuint32_t, unsigned int);
  Write write = nullptr;
  Wait wait = nullptr;
};

const StreamMemoryOps& stream_memory_ops() {
  static const StreamMemoryOps ops = [] {
    StreamMemoryOps found;
    auto lookup = [](const char* symbol) -> void* {
      void* function = nullptr;
      cudaDriverEntryPointQueryResult status{};
      if (cudaGetDriverEntryPointByVersion(symbol, &function, 12000, cudaEnableDefault, &status) != cudaSuccess ||
          status != cudaDriverEntryPointSuccess) {
        (void)cudaGetLastError();
        return nullptr;
      }
      return function;
    };
    found.write = reinterpret_cast<StreamMemoryOps::Write>(lookup("cuStreamWriteValue32"));
    found.wait = reinterpret_cast<StreamMemoryOps::Wait>(lookup("cuStreamWaitValue32"));
    return found;
  }();
  return ops;
}

void check_driver(CUresult result, const char* what) {
  if (result != CUDA_SUCCESS)
    throw CudaError(std::string(what) + " failed: CUresult " + std::to_string(static_cast<int>(result)));
}

// The words of one rank's flag buffer, a 128-byte line apart (each written by a different neighbour).
constexpr std::size_t kFlagStride = 128 / sizeof(std::uint32_t);
constexpr std::size_t kFlagBytes = 2 * 128;

// What every rank tells the others when the links are made.
struct Identity {
  std::array<char, 256> host{};
  cudaIpcMemHandle_t flags{};
};

// What a rank tells the others about one of its ring buffers.
struct SharedBuffer {
  cudaIpcMemHandle_t handle{};
  std::uint64_t bytes = 0;  // 0: an empty buffer (no handle)
};

}  // namespace

IpcMapping::IpcMapping(const cudaIpcMemHandle_t& handle) {
  RINGLAB_CUDA_CHECK(cudaIpcOpenMemHandle(&pointer_, handle, cudaIpcMemLazyEnablePeerAccess));
}

IpcMapping& IpcMapping::operator=(IpcMapping&& other) noexcept {
  if (this != &other) {
    reset();
    pointer_ = other.pointer_;
    other.pointer_ = nullptr;
  }
  return *this;
}

void IpcMapping::reset() noexcept {
  if (pointer_) cudaIpcCloseMemHandle(pointer_);
  pointer_ = nullptr;
}

IpcLinks::IpcLinks(int rank, int size, AllGather all_gather, double setup_timeout_s)
    : rank_(rank), size_(size), all_gather_(std::move(all_gather)), setup_timeout_s_(setup_timeout_s),
      flags_(kFlagBytes) {
  const StreamMemoryOps& ops = stream_memory_ops();
  if (!ops.write || !ops.wait)
    throw ConfigError("NcclOptions::copy_engine_transfers", "true",
                      "false: this CUDA driver has no stream memory operations (cuStreamWaitValue32), which order "
                      "copy-engine transfers between processes");
  RINGLAB_CUDA_CHECK(cudaMemset(flags_.data(), 0, kFlagBytes));
  Identity mine;
  gethostname(mine.host.data(), mine.host.size() - 1);
  RINGLAB_CUDA_CHECK(cudaIpcGetMemHandle(&mine.flags, flags_.data()));
  std::vector<Identity> all(static_cast<std::size_t>(size));
  this->all_gather(&mine, all.data(), sizeof(Identity), "sharing the copy engines' flag words");
  for (int r = 0; r < size; ++r)  // every rank sees the same table, so every rank throws together
    if (std::strncmp(all[r].host.data(), all[0].host.data(), all[0].host.size()) != 0)
      throw ConfigError("NcclOptions::copy_engine_transfers", "true",
                        "false when the ranks span several nodes (rank " + std::to_string(r) + " runs on " +
                            all[r].host.data() + ", rank 0 on " + all[0].host.data() +
                            "): copy engines reach the GPUs of one node only; use NCCL's transfers");
  mapped_.resize(static_cast<std::size_t>(size));
  for (const int neighbour : {(rank + size - 1) % size, (rank + 1) % size})
    if (neighbour != rank && !mapped_[neighbour].get())  // (P = 2: one neighbour on both sides)
      mapped_[neighbour] = IpcMapping(all[neighbour].flags);
  RINGLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&release_stream_, cudaStreamNonBlocking));
}

IpcLinks::~IpcLinks() {
  mapped_.clear();
  if (!aborted_) {
    try {
      barrier("closing the copy engines' flag words");  // the neighbours closed their mappings of flags_ too
    } catch (...) {  // (a destructor: the communicator is failing anyway)
    }
  }
  if (release_stream_) cudaStreamDestroy(release_stream_);
}

void IpcLinks::barrier(const std::string& what, double timeout_s) const {
  const char mine = 1;
  std::vector<char> all(static_cast<std::size_t>(size_));
  all_gather_(&mine, all.data(), 1, timeout_s > 0 ? timeout_s : setup_timeout_s_, what);
}

std::uint32_t* IpcLinks::word(int owner, Flag flag) const {
  void* base = owner == rank_ ? flags_.data() : mapped_.at(static_cast<std::size_t>(owner)).get();
  if (!base) throw Error("internal error: IpcLinks: rank " + std::to_string(owner) + " is not a neighbour of " + std::to_string(rank_));
  return static_cast<std::uint32_t*>(base) + (flag == Flag::posted ? 0 : kFlagStride);
}

void IpcLinks::write(cudaStream_t stream, int owner, Flag flag, std::uint32_t round) const {
  check_driver(stream_memory_ops().write(stream, reinterpret_cast<CUdeviceptr>(word(owner, flag)), round, 0),
               "cuStreamWriteValue32");
}

void IpcLinks::wait(cudaStream_t stream, Flag flag, std::uint32_t round) const {
  check_driver(stream_memory_ops().wait(stream, reinterpret_cast<CUdeviceptr>(word(rank_, flag)), round,
                                        CU_STREAM_WAIT_VALUE_GEQ),
               "cuStreamWaitValue32");
}

void IpcLinks::release_waits() noexcept {
  aborted_ = true;
  // GEQ compares cyclically ((int32)(flag − round) ≥ 0): half the range ahead passes every round enqueued so far.
  // A stalled neighbour that wakes up may still write a smaller round over it: the transport's destructor
  // releases again while it waits for its stream.
  const std::uint32_t ahead = round_ + (1u << 30);
  for (const Flag flag : {Flag::posted, Flag::pulled})
    (void)stream_memory_ops().write(release_stream_, reinterpret_cast<CUdeviceptr>(word(rank_, flag)), ahead, 0);
}

namespace {

class IpcCopyTransport final : public Transport {
 public:
  IpcCopyTransport(IpcLinks& links, const RingRank& rank, bool high_priority) : links_(links) {
    const int size = links.size(), previous = (links.rank() + size - 1) % size;
    // Every buffer of the rank, in RingRank::buffers() order (the same on every rank), shared by handle.
    std::vector<SharedBuffer> mine;
    for (const DeviceBuffer* buffer : rank.buffers()) {
      SharedBuffer shared;
      own_.push_back({reinterpret_cast<std::uintptr_t>(buffer->data()), buffer->bytes()});
      if (buffer->bytes() > 0) {
        RINGLAB_CUDA_CHECK(cudaIpcGetMemHandle(&shared.handle, buffer->data()));
        shared.bytes = buffer->bytes();
      }
      mine.push_back(shared);
    }
    std::vector<SharedBuffer> all(mine.size() * static_cast<std::size_t>(size));
    links.all_gather(mine.data(), all.data(), mine.size() * sizeof(SharedBuffer), "sharing the ring's buffers");
    for (std::size_t i = 0; i < mine.size(); ++i) {
      const SharedBuffer& theirs = all[static_cast<std::size_t>(previous) * mine.size() + i];
      IpcMapping mapping;
      if (theirs.bytes > 0 && previous != links.rank()) mapping = IpcMapping(theirs.handle);
      previous_.push_back({reinterpret_cast<std::uintptr_t>(mapping.get()), mapping.get() ? theirs.bytes : 0});
      mappings_.push_back(std::move(mapping));
    }
    stream_ = create_transfer_stream(high_priority);
  }
  ~IpcCopyTransport() override {
    if (stream_) {
      // After a fault the copy stream drains once IpcLinks::release_waits let its waits pass; a stalled neighbour
      // that wakes may write a smaller round over the release, so release again while waiting (with a deadline:
      // a destructor must not hang).
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (cudaStreamQuery(stream_) == cudaErrorNotReady && std::chrono::steady_clock::now() < deadline) {
        if (links_.aborted()) links_.release_waits();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      (void)cudaGetLastError();
      cudaStreamDestroy(stream_);
    }
    mappings_.clear();
    // rank + 1 must have closed its mappings of this rank's buffers before RingRank frees them.
    if (!links_.aborted()) {
      try {
        links_.barrier("closing the ring's buffers");
      } catch (...) {  // (a destructor; the communicator is failing anyway)
      }
    }
  }
  int size() const override { return links_.size(); }
  void begin_pass() override { events_.reset(); }

  void post(int rank, std::span<const Hop> hops, Event ready) override {
    if (rank != links_.rank())
      throw Error("internal error: IpcCopyTransport of rank " + std::to_string(links_.rank()) + " posted for " +
                  std::to_string(rank));
    const int size = links_.size(), next = (rank + 1) % size, previous = (rank + size - 1) % size;
    // Where rank − 1 sends from: its buffer at the place of this rank's own send buffer (checked before any wait,
    // so that a mismatch is an error here, not a hang).
    std::vector<const void*> sources;
    for (const Hop& hop : hops) {
      if (hop.recv_bytes == 0) {
        sources.push_back(nullptr);
        continue;
      }
      const auto place = locate(own_, hop.send, hop.send_bytes);
      if (!place || previous_[place->index].base == 0 ||
          place->offset + hop.recv_bytes > previous_[place->index].bytes)
        throw Error("internal error: IpcCopyTransport of rank " + std::to_string(rank) + ": no buffer of rank " +
                    std::to_string(previous) + " holds the " + std::to_string(hop.recv_bytes) +
                    " bytes it sends (the ranks' buffers differ)");
      sources.push_back(reinterpret_cast<const void*>(previous_[place->index].base + place->offset));
    }
    const std::uint32_t round = links_.next_round();
    if (ready) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready, 0));
    links_.write(stream_, next, IpcLinks::Flag::posted, round);
    links_.wait(stream_, IpcLinks::Flag::posted, round);
    for (std::size_t h = 0; h < hops.size(); ++h)
      if (hops[h].recv_bytes > 0)
        RINGLAB_CUDA_CHECK(cudaMemcpyAsync(hops[h].recv, sources[h], hops[h].recv_bytes, cudaMemcpyDefault, stream_));
    links_.write(stream_, previous, IpcLinks::Flag::pulled, round);
    links_.wait(stream_, IpcLinks::Flag::pulled, round);
    last_ = events_.record(stream_);
  }
  void flush() override {}
  Event arrived(int) override { return last_; }

 private:
  IpcLinks& links_;
  std::vector<BufferSpan> own_, previous_;  // [buffer]: this rank's, and rank − 1's as mapped here
  std::vector<IpcMapping> mappings_;        // [buffer]: rank − 1's (empty where it has none)
  cudaStream_t stream_ = nullptr;
  EventPool events_;
  Event last_ = nullptr;
};

}  // namespace

std::unique_ptr<Transport> make_ipc_copy_transport(IpcLinks& links, const RingRank& rank, bool high_priority) {
  return std::make_unique<IpcCopyTransport>(links, rank, high_priority);
}

}  // namespace ringlab::gpu::detail
