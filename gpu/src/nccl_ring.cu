// gpu::NcclRing (issue 6): one rank per GPU over NCCL, the shared ring driver (ring_driver.cuh) with an
// NCCL transport; communicators from the environment (one process per GPU) or for all local GPUs (a thread
// each); a polling watchdog that aborts the communicator on an NCCL error or a stall. See
// include/ringlab/gpu/nccl_ring.hpp and docs/gpu-rings.md.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <initializer_list>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "cuda_check.cuh"
#include "ipc_transport.cuh"
#include "peer_exchange.hpp"
#include "ring_driver.cuh"
#include "ringlab/gpu/device.hpp"
#include "ringlab/gpu/nccl_ring.hpp"

#if RINGLAB_HAVE_NCCL
#include <nccl.h>
#include <unistd.h>

#define RINGLAB_NCCL_CHECK(call)                                                                              \
  do {                                                                                                        \
    const ncclResult_t ringlab_nccl_status = (call);                                                          \
    if (ringlab_nccl_status != ncclSuccess && ringlab_nccl_status != ncclInProgress)                          \
      throw ::ringlab::gpu::RingFault(std::string(#call) + " failed at " + __FILE__ + ":" +                   \
                                      std::to_string(__LINE__) + ": " + ncclGetErrorString(ringlab_nccl_status)); \
  } while (false)

namespace ringlab::gpu {

using detail::PeerExchange;
using detail::PeerWaitFault;

using Clock = std::chrono::steady_clock;
using i64 = std::int64_t;

namespace {

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Nonblocking communicators return ncclInProgress while NCCL finishes a call in the background; wait for it
// (polling, with a deadline) before the next call.
// Every grouped send/recv of a nonblocking communicator returns ncclInProgress and is enqueued within tens of
// microseconds, on the host path of every ring step: poll without sleeping for the first millisecond (a 1 ms
// sleep here held each step's enqueue back by 1 ms and made small steps look transfer-bound), then back off.
void settle(ncclComm_t comm, double timeout_s, const std::string& what) {
  const auto start = Clock::now();
  for (;;) {
    ncclResult_t state = ncclSuccess;
    RINGLAB_NCCL_CHECK(ncclCommGetAsyncError(comm, &state));
    if (state == ncclSuccess) return;
    if (state != ncclInProgress)
      throw RingFault(what + ": " + ncclGetErrorString(state) + " (" + ncclGetLastError(comm) + ")");
    const double waited = seconds_since(start);
    if (waited > timeout_s)
      throw RingFault(what + ": not finished after " + std::to_string(static_cast<int>(timeout_s)) + " s");
    if (waited < 1e-3) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

// The first of `names` that is set (RANK, then what mpirun / srun / PMI export), parsed as an integer.
std::optional<int> launcher_int(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    const char* text = std::getenv(name);
    if (!text || !*text) continue;
    char* end = nullptr;
    const long value = std::strtol(text, &end, 10);
    if (*end != '\0' || value < 0 || value > 1 << 20) throw ConfigError(name, text, "a non-negative integer");
    return static_cast<int>(value);
  }
  return std::nullopt;
}

// ---- progress board: heartbeat files, for naming a dead or stalled peer ------------------------------------
// progress_dir/rank-R holds "pid host pass step unix_seconds", rewritten (write + rename) at least every
// half second while rank R's host thread waits on the ring, and at every finished step.
class ProgressBoard {
 public:
  ProgressBoard(std::string dir, int rank, int size)
      : dir_(std::move(dir)), rank_(rank), size_(size), started_(unix_seconds()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    host_ = host;
  }
  bool enabled() const { return !dir_.empty(); }

  // At most every half second unless `force`d: a file write between passes would delay this rank's next pass
  // and so every peer's (the benchmark times passes).
  void beat(const std::string& pass, int step, bool force = false) {
    if (!enabled()) return;
    const auto now = Clock::now();
    if (!force && now - last_beat_ < std::chrono::milliseconds(500)) return;
    last_beat_ = now;
    const std::string path = dir_ + "/rank-" + std::to_string(rank_);
    {
      std::ofstream file(path + ".tmp", std::ios::trunc);
      file << getpid() << ' ' << host_ << ' ' << pass << ' ' << step << ' ' << std::fixed << std::setprecision(3)
           << unix_seconds() << '\n';  // fixed: the default 6 significant digits would round to ~1000 s
    }
    std::rename((path + ".tmp").c_str(), path.c_str());
  }

  // The pass a rank beats when it aborts: "aborted:forward" after a fault of another rank (a stall, a peer's
  // NCCL error, a thread of its process), "failed:forward" after an error of its own (a CUDA error, a failed
  // call while enqueueing) — then it may well be the cause.
  static inline const std::string kAborted = "aborted:", kFailed = "failed:";
  // A heartbeat older than this before this rank started is a file left by an earlier run in a reused directory.
  static constexpr double kStaleSeconds = 600;

  // What the board says about every other rank, one line each.
  std::string peers() const {
    if (!enabled()) return "  (no progress board: set RINGLAB_PROGRESS_DIR to name dead peers)\n";
    std::ostringstream text;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      std::ifstream file(dir_ + "/rank-" + std::to_string(r));
      long pid = 0;
      std::string host, pass;
      int step = 0;
      double at = 0;
      if (!(file >> pid >> host >> pass >> step >> at)) {
        text << "  rank " << r << ": no heartbeat at all (never started, or " << dir_ << " is not shared)\n";
        continue;
      }
      const double age = unix_seconds() - at;
      text << "  rank " << r << ": ";
      if (at < started_ - kStaleSeconds)
        text << "no heartbeat from this run (" << dir_ << "/rank-" << r << " is " << static_cast<int>(age)
             << " s old: an earlier run's)\n";
      else if (pass.rfind(kAborted, 0) == 0)  // it saw another rank's fault: a consequence, not the cause
        text << "aborted after a fault it saw at " << pass.substr(kAborted.size()) << " step " << step << "\n";
      else if (pass.rfind(kFailed, 0) == 0)
        text << "FAILED with an error of its own at " << pass.substr(kFailed.size()) << " step " << step << "\n";
      else if (host == host_ && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
        text << "EXITED (pid " << pid << " is gone); last seen at " << pass << " step " << step << "\n";
      else if (age > 2.0)
        text << "NOT RESPONDING: last heartbeat " << static_cast<int>(age) << " s ago at " << pass << " step " << step
             << " (pid " << pid << " on " << host << ")\n";
      else
        text << "alive, waiting at " << pass << " step " << step << "\n";
    }
    return text.str();
  }

 private:
  static double unix_seconds() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
  std::string dir_, host_;
  int rank_, size_;
  double started_;  // unix seconds when this rank's board was made
  Clock::time_point last_beat_{};
};

// The transport of one rank: grouped ncclSend to rank + 1 / ncclRecv from rank − 1 on the communication
// stream, after the rank's `ready` event.
class NcclTransport final : public Transport {
 public:
  NcclTransport(ncclComm_t comm, int rank, int size, double timeout_s, bool high_priority)
      : comm_(comm), rank_(rank), size_(size), timeout_s_(timeout_s),
        stream_(detail::create_transfer_stream(high_priority)) {}
  ~NcclTransport() override { cudaStreamDestroy(stream_); }
  int size() const override { return size_; }
  void begin_pass() override { events_.reset(); }
  void post(int rank, std::span<const Hop> hops, Event ready) override {
    if (rank != rank_) throw Error("internal error: NcclTransport of rank " + std::to_string(rank_) + " posted for " + std::to_string(rank));
    if (ready) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready, 0));
    const int next = (rank_ + 1) % size_, previous = (rank_ + size_ - 1) % size_;
    RINGLAB_NCCL_CHECK(ncclGroupStart());
    for (const Hop& hop : hops) {
      if (hop.send_bytes > 0) RINGLAB_NCCL_CHECK(ncclSend(hop.send, hop.send_bytes, ncclUint8, next, comm_, stream_));
      if (hop.recv_bytes > 0) RINGLAB_NCCL_CHECK(ncclRecv(hop.recv, hop.recv_bytes, ncclUint8, previous, comm_, stream_));
    }
    const ncclResult_t result = ncclGroupEnd();
    if (result == ncclInProgress) settle(comm_, timeout_s_, "rank " + std::to_string(rank_) + ": ncclGroupEnd");
    else RINGLAB_NCCL_CHECK(result);
    last_ = events_.record(stream_);
  }
  void flush() override {}
  Event arrived(int) override { return last_; }

 private:
  ncclComm_t comm_;
  int rank_, size_;
  double timeout_s_;
  cudaStream_t stream_ = nullptr;
  detail::EventPool events_;
  Event last_ = nullptr;
};

// The copy-engine transport of one rank (a thread per GPU): in each round it pulls every hop from rank − 1's
// send buffer into its own receive buffer with cudaMemcpyPeerAsync on its copy stream. What rank + 1 may read from
// this rank is an event on the same copy stream after the driver's `ready`: it also covers this rank's own earlier
// pulls, because the driver posts round n + 1 (forwarding the chunk that arrived in round n) before waiting for
// round n to arrive — with P ≥ 3 rank + 1 would otherwise read that buffer before it landed (NCCL orders a rank's
// rounds on its one stream). arrived() is an event after its pull landed and rank + 1's pull from it did (so that
// its send buffers may be reused). No SM takes part in the copies.
class PeerCopyTransport final : public Transport {
 public:
  PeerCopyTransport(std::shared_ptr<PeerExchange> exchange, int rank, int size, double timeout_s)
      : exchange_(std::move(exchange)), rank_(rank), size_(size), timeout_s_(timeout_s) {
    RINGLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~PeerCopyTransport() override { cudaStreamDestroy(stream_); }
  int size() const override { return size_; }
  void begin_pass() override { events_.reset(); }
  void post(int rank, std::span<const Hop> hops, Event ready) override {
    if (rank != rank_) throw Error("internal error: PeerCopyTransport of rank " + std::to_string(rank_) + " posted for " + std::to_string(rank));
    const int previous = (rank_ + size_ - 1) % size_;
    // The driver's `ready` (send buffers hold the data, receive buffers are free), after this stream's earlier pulls.
    if (ready) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready, 0));
    const Event sendable = events_.record(stream_);
    auto pull = [&](const PeerExchange::Slot& from) {
      if (from.hops.size() != hops.size())
        throw Error("internal error: PeerCopyTransport: ranks " + std::to_string(previous) + " and " +
                    std::to_string(rank_) + " posted different numbers of hops");
      if (from.ready) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(stream_, from.ready, 0));
      for (std::size_t h = 0; h < hops.size(); ++h) {
        if (from.hops[h].send_bytes != hops[h].recv_bytes)
          throw Error("internal error: PeerCopyTransport: rank " + std::to_string(previous) + " sends " +
                      std::to_string(from.hops[h].send_bytes) + " bytes, rank " + std::to_string(rank_) + " expects " +
                      std::to_string(hops[h].recv_bytes));
        if (hops[h].recv_bytes > 0)
          RINGLAB_CUDA_CHECK(cudaMemcpyPeerAsync(hops[h].recv, rank_, from.hops[h].send, previous, hops[h].recv_bytes,
                                                 stream_));
      }
      return events_.record(stream_);
    };
    // After rank + 1's pull from this rank: its send buffers may be reused.
    auto use_next = [&](const PeerExchange::Slot& to) {
      if (to.pulled) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(stream_, to.pulled, 0));
    };
    exchange_->run_round(rank_, hops, sendable, timeout_s_, pull, use_next);
    last_ = events_.record(stream_);
  }
  void flush() override {}
  Event arrived(int) override { return last_; }

 private:
  std::shared_ptr<PeerExchange> exchange_;
  int rank_, size_;
  double timeout_s_;
  cudaStream_t stream_ = nullptr;
  detail::EventPool events_;
  Event last_ = nullptr;
};

}  // namespace

// ---- NcclCommunicator -------------------------------------------------------------------------------------

struct NcclCommunicator::State {
  ncclComm_t comm = nullptr;
  int rank = 0, size = 1, device = 0;
  NcclOptions options;
  bool aborted = false;
  std::atomic<bool> abort_requested{false};
  std::shared_ptr<PeerExchange> exchange;  // copy_engine_transfers: shared by the ranks of for_local_gpus
  std::unique_ptr<detail::IpcLinks> links;  // copy_engine_transfers with one process per GPU (from_environment)
  ~State() {
    if (!comm) return;
    if (aborted) return;
    links.reset();  // its last barrier needs the communicator
    ncclCommDestroy(comm);
  }
  // Aborts the communicator (idempotent): every wait of a copy-engine transport passes, NCCL's pending work ends.
  void abort() {
    if (exchange) exchange->abort();
    if (links) links->release_waits();  // its copy stream may wait for a dead peer
    if (comm && !aborted) {
      aborted = true;
      ncclCommAbort(comm);
    }
  }
};

NcclCommunicator::NcclCommunicator(std::unique_ptr<State> state) : state_(std::move(state)) {}
NcclCommunicator::NcclCommunicator(NcclCommunicator&&) noexcept = default;
NcclCommunicator& NcclCommunicator::operator=(NcclCommunicator&&) noexcept = default;
NcclCommunicator::~NcclCommunicator() = default;
int NcclCommunicator::rank() const { return state_->rank; }
int NcclCommunicator::size() const { return state_->size; }
int NcclCommunicator::device() const { return state_->device; }
const NcclOptions& NcclCommunicator::options() const { return state_->options; }

void NcclCommunicator::request_abort() {
  if (!state_) return;
  state_->abort_requested = true;
  if (state_->exchange) state_->exchange->abort();  // ranks waiting for this round's copies stop waiting
}

void NcclCommunicator::abort() {
  if (state_) state_->abort();
}

namespace {

ncclConfig_t nonblocking_config(const NcclOptions& options) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // so that creation and every call can be waited for with a deadline
  // NCCL's send/recv kernels run on SMs beside the attention kernels; fewer CTAs leave more SMs to the
  // kernels of the step the transfer overlaps (a transfer that still hides behind the step costs nothing).
  if (options.max_ctas > 0) config.maxCTAs = options.max_ctas;
#ifdef NCCL_CTA_POLICY_EFFICIENCY  // NCCL ≥ 2.27: how many CTAs (SMs) NCCL may take, as a policy
  if (options.cta_policy == NcclOptions::CtaPolicy::efficiency) config.CTAPolicy = NCCL_CTA_POLICY_EFFICIENCY;
#endif
#ifdef NCCL_CTA_POLICY_ZERO
  if (options.cta_policy == NcclOptions::CtaPolicy::zero) config.CTAPolicy = NCCL_CTA_POLICY_ZERO;
#endif
  return config;
}

// Rank 0 writes the unique id to `path` (atomically: write + rename); the others wait for the file.
ncclUniqueId id_through_file(const std::string& path, int rank, double timeout_s) {
  ncclUniqueId id;
  if (rank == 0) {
    if (std::ifstream(path).good())  // another run's id would send the other ranks to a dead address
      throw ConfigError("RINGLAB_NCCL_ID_FILE", path,
                        "a path that does not exist yet: a fresh one per run (rank 0 creates it; remove the old one)");
    RINGLAB_NCCL_CHECK(ncclGetUniqueId(&id));
    {
      std::ofstream file(path + ".tmp", std::ios::binary | std::ios::trunc);
      file.write(id.internal, sizeof(id.internal));
      if (!file) throw ConfigError("RINGLAB_NCCL_ID_FILE", path, "a writable path (rank 0 writes the NCCL id there)");
    }
    if (std::rename((path + ".tmp").c_str(), path.c_str()) != 0)
      throw ConfigError("RINGLAB_NCCL_ID_FILE", path, "a writable path (rank 0 writes the NCCL id there)");
    return id;
  }
  const auto start = Clock::now();
  for (;;) {
    std::ifstream file(path, std::ios::binary);
    if (file.read(id.internal, sizeof(id.internal))) return id;
    if (seconds_since(start) > timeout_s)
      throw RingFault("rank " + std::to_string(rank) + ": rank 0 wrote no NCCL id to " + path + " within " +
                      std::to_string(static_cast<int>(timeout_s)) + " s");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// NCCL's all-gather of a few host bytes per rank (the copy-engine transport's mappings and barriers), waited
// for with a deadline. On a failure the communicator is aborted before the staging buffers are freed: freeing
// device memory waits for the device, and NCCL's kernel would wait for the missing rank forever.
detail::AllGather nccl_all_gather(NcclCommunicator::State* state) {
  return [state](const void* mine, void* all, std::size_t bytes, double timeout_s, const std::string& what) {
    const ncclComm_t comm = state->comm;
    const int rank = state->rank, size = state->size;
    DeviceBuffer send(bytes), receive(bytes * static_cast<std::size_t>(size));
    send.upload(mine, bytes);
    cudaStream_t stream = nullptr;
    RINGLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const std::string who = "rank " + std::to_string(rank) + ": ncclAllGather (" + what + ")";
    try {
      const ncclResult_t result = ncclAllGather(send.data(), receive.data(), bytes, ncclUint8, comm, stream);
      if (result == ncclInProgress) settle(comm, timeout_s, who);
      else RINGLAB_NCCL_CHECK(result);
      const auto start = Clock::now();
      for (cudaError_t done = cudaStreamQuery(stream); done != cudaSuccess; done = cudaStreamQuery(stream)) {
        if (done != cudaErrorNotReady) RINGLAB_CUDA_CHECK(done);
        settle(comm, timeout_s, who);  // (throws on an asynchronous NCCL error)
        if (seconds_since(start) > timeout_s)
          throw RingFault(who + ": not finished after " + std::to_string(static_cast<int>(timeout_s)) + " s");
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    } catch (...) {
      state->abort();
      cudaStreamDestroy(stream);
      throw;
    }
    cudaStreamDestroy(stream);
    receive.download(all, receive.bytes());
  };
}

}  // namespace

NcclCommunicator NcclCommunicator::from_environment(const NcclOptions& options_in) {
  NcclOptions options = options_in;
  const auto rank_set = launcher_int({"RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"});
  const auto size_set = launcher_int({"WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"});
  if (!rank_set || !size_set)
    throw ConfigError(rank_set ? "WORLD_SIZE" : "RANK", "(unset)",
                      "set by the launcher: RANK, WORLD_SIZE, LOCAL_RANK (torchrun style, scripts/launch_local.sh), "
                      "or OMPI_COMM_WORLD_* (mpirun) / SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (srun)");
  const int rank = *rank_set, size = *size_set;
  const auto local_set = launcher_int({"LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"});
  const int local_rank = local_set.value_or(rank);
  if (size < 1) throw ConfigError("WORLD_SIZE", std::to_string(size), "at least 1");
  if (rank >= size) throw ConfigError("RANK", std::to_string(rank), "0 .. WORLD_SIZE − 1 = " + std::to_string(size - 1));
  if (local_rank >= device_count())
    throw ConfigError(local_set ? "LOCAL_RANK" : "LOCAL_RANK (unset, so RANK)", std::to_string(local_rank),
                      "a GPU of this node: 0 .. " + std::to_string(device_count() - 1));
  if (options.progress_dir.empty())
    if (const char* dir = std::getenv("RINGLAB_PROGRESS_DIR")) options.progress_dir = dir;
  RINGLAB_CUDA_CHECK(cudaSetDevice(local_rank));
  ncclUniqueId id;
  if (const char* address = std::getenv("NCCL_COMM_ID")) {
    const std::string text = address;
    const auto colon = text.rfind(':');
    const std::string port = colon == std::string::npos ? "" : text.substr(colon + 1);
    if (colon == 0 || port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
        std::stoi(port) < 1 || std::stoi(port) > 65535)
      throw ConfigError("NCCL_COMM_ID", text, "host:port of rank 0, e.g. 10.0.0.1:29500 (port 1..65535)");
    RINGLAB_NCCL_CHECK(ncclGetUniqueId(&id));  // NCCL reads NCCL_COMM_ID: every rank gets rank 0's address
  } else if (const char* path = std::getenv("RINGLAB_NCCL_ID_FILE")) {
    id = id_through_file(path, rank, options.init_timeout_s);
  } else {
    throw ConfigError("NCCL_COMM_ID", "(unset)",
                      "host:port of rank 0 (or set RINGLAB_NCCL_ID_FILE to a fresh path on a shared filesystem)");
  }
  auto state = std::make_unique<State>();
  state->rank = rank;
  state->size = size;
  state->device = local_rank;
  state->options = options;
  ncclConfig_t config = nonblocking_config(options);
  const ncclResult_t created = ncclCommInitRankConfig(&state->comm, size, id, rank, &config);
  if (created != ncclSuccess && created != ncclInProgress) {
    if (state->comm) ncclCommAbort(state->comm);
    state->aborted = true;
    throw RingFault("rank " + std::to_string(rank) + ": ncclCommInitRankConfig: " + ncclGetErrorString(created));
  }
  try {
    settle(state->comm, options.init_timeout_s,
           "rank " + std::to_string(rank) + ": creating the communicator (did every rank of WORLD_SIZE = " +
               std::to_string(size) + " start?)");
    // Copy engines: map the neighbours' flag words (ipc_transport.cuh); refused when the ranks span nodes.
    if (options.copy_engine_transfers && size > 1)
      state->links =
          std::make_unique<detail::IpcLinks>(rank, size, nccl_all_gather(state.get()), options.init_timeout_s);
  } catch (...) {
    state->abort();
    throw;
  }
  return NcclCommunicator(std::move(state));
}

std::vector<NcclCommunicator> NcclCommunicator::for_local_gpus(int count, const NcclOptions& options) {
  if (count < 1 || count > device_count())
    throw ConfigError("ring", std::to_string(count), "1 .. the " + std::to_string(device_count()) + " local GPUs");
  ncclUniqueId id;
  RINGLAB_NCCL_CHECK(ncclGetUniqueId(&id));
  std::vector<std::unique_ptr<State>> states;
  ncclConfig_t config = nonblocking_config(options);
  // On any failure every communicator created so far is aborted (never destroyed while in progress).
  auto abort_all = [&states] {
    for (auto& state : states)
      if (state && state->comm && !state->aborted) {
        ncclCommAbort(state->comm);
        state->aborted = true;
      }
  };
  RINGLAB_NCCL_CHECK(ncclGroupStart());  // one thread creates all P (as ncclCommInitAll does)
  ncclResult_t created = ncclSuccess;
  for (int r = 0; r < count && (created == ncclSuccess || created == ncclInProgress); ++r) {
    auto state = std::make_unique<State>();
    state->rank = r;
    state->size = count;
    state->device = r;
    state->options = options;
    if (cudaSetDevice(r) != cudaSuccess) created = ncclInvalidUsage;
    else created = ncclCommInitRankConfig(&state->comm, count, id, r, &config);
    states.push_back(std::move(state));
  }
  const ncclResult_t grouped = ncclGroupEnd();  // the group is closed whatever happened inside it
  if ((created != ncclSuccess && created != ncclInProgress) || (grouped != ncclSuccess && grouped != ncclInProgress)) {
    abort_all();
    throw RingFault(std::string("creating the communicators of ") + std::to_string(count) + " local GPUs: " +
                    ncclGetErrorString(created != ncclSuccess && created != ncclInProgress ? created : grouped));
  }
  try {
    for (auto& state : states)
      settle(state->comm, options.init_timeout_s, "rank " + std::to_string(state->rank) + ": creating the communicator");
  } catch (...) {
    abort_all();
    throw;
  }
  if (options.copy_engine_transfers) {
    // Each rank pulls from rank − 1: let its GPU read the other's memory directly over NVLink.
    for (int r = 0; r < count && count > 1; ++r) {
      const int previous = (r + count - 1) % count;
      RINGLAB_CUDA_CHECK(cudaSetDevice(r));
      int possible = 0;
      RINGLAB_CUDA_CHECK(cudaDeviceCanAccessPeer(&possible, r, previous));
      if (!possible) continue;  // cudaMemcpyPeerAsync still works, staged by the driver
      const cudaError_t enabled = cudaDeviceEnablePeerAccess(previous, 0);
      if (enabled == cudaErrorPeerAccessAlreadyEnabled) (void)cudaGetLastError();
      else RINGLAB_CUDA_CHECK(enabled);
    }
    auto exchange = std::make_shared<PeerExchange>(count);
    for (auto& state : states) state->exchange = exchange;
  }
  std::vector<NcclCommunicator> result;
  for (auto& state : states) result.push_back(NcclCommunicator(std::move(state)));
  return result;
}

// ---- NcclRing ---------------------------------------------------------------------------------------------

struct NcclRing::Impl {
  NcclCommunicator& comm;
  detail::RingProblem problem;
  std::unique_ptr<detail::RingRank> rank;
  std::unique_ptr<Transport> transport;  // NcclTransport; copy_engine_transfers: PeerCopyTransport or IPC
  ProgressBoard board;
  cudaEvent_t pass_start = nullptr, pass_end = nullptr;  // timing events
  int inject_step = -1;
  void (*inject_action)() = nullptr;

  Impl(const AttentionConfig& config, DType dtype, GradientPrecision gradients, NcclCommunicator& comm_)
      : comm(comm_),
        problem(config, dtype, gradients, "gpu::NcclRing"),
        board(comm_.options().progress_dir, comm_.rank(), comm_.size()) {
    if (problem.schedule.ring_size != comm.size())
      throw ConfigError("ring", std::to_string(problem.schedule.ring_size),
                        "the communicator's size, " + std::to_string(comm.size()) + " (one rank per GPU)");
    if (comm.state_->aborted)
      throw RingFault("rank " + std::to_string(comm.rank()) + ": the communicator was aborted by an earlier fault");
    RINGLAB_CUDA_CHECK(cudaSetDevice(comm.device()));
    rank = std::make_unique<detail::RingRank>(problem, comm.rank());
    try {
      make_transport();
    } catch (...) {  // the other ranks must not wait for this one (they see the aborted communicator)
      comm.abort();
      throw;
    }
    RINGLAB_CUDA_CHECK(cudaEventCreate(&pass_start));
    RINGLAB_CUDA_CHECK(cudaEventCreate(&pass_end));
    try {
      load_kernels();
      if (comm.options().register_buffers) register_buffers();
    } catch (...) {  // no destructor runs for a half-made Impl: undo what was registered, free the events
      deregister_buffers();
      cudaEventDestroy(pass_start);
      cudaEventDestroy(pass_end);
      throw;
    }
    board.beat("init", 0, true);
  }
  ~Impl() {
    deregister_buffers();
    cudaEventDestroy(pass_start);
    cudaEventDestroy(pass_end);
  }

  // NCCL's send/recv, or the copy engines: the threads' PeerCopyTransport, or between processes the IPC
  // transport (a collective: every rank maps rank − 1's buffers).
  void make_transport() {
    if (comm.state_->exchange)
      transport = std::make_unique<PeerCopyTransport>(comm.state_->exchange, comm.rank(), comm.size(),
                                                      comm.options().stall_timeout_s);
    else if (comm.state_->links)
      transport = detail::make_ipc_copy_transport(*comm.state_->links, *rank, comm.options().high_priority_transfers);
    else
      transport = std::make_unique<NcclTransport>(comm.state_->comm, comm.rank(), comm.size(),
                                                  comm.options().stall_timeout_s, comm.options().high_priority_transfers);
  }

  // One forward and backward without transfers (their results are discarded; the buffers hold whatever they
  // held), so that every kernel a pass launches is loaded now. Under CUDA's lazy module loading (the default) a
  // kernel's first launch waits for the device, and an NCCL kernel or a copy stream waiting for a peer that died
  // never lets it: the host would hang inside that launch, where the watchdog cannot run. Seen on 2 × H200 with
  // both transports: the backward's first rounding of dK/dV (finish_gradient) after rank 1 was killed.
  void load_kernels() {
    rank->poison(rank->stream);  // defined values (NaN) for the kernels to read
    detail::PassOptions options;
    options.transfer = false;
    detail::RingRank* ranks[1] = {rank.get()};
    detail::ring_forward(problem, ranks, *transport, {}, options);
    detail::ring_backward(problem, ranks, *transport, {}, options);
    RINGLAB_CUDA_CHECK(cudaStreamSynchronize(rank->stream));
  }

  // Before the buffers go (registrations die with an aborted communicator). Never throws: a destructor calls it.
  void deregister_buffers() noexcept {
    if (!comm.state_->aborted)
      for (void* handle : registrations) {
        if (ncclCommDeregister(comm.state_->comm, handle) != ncclInProgress) continue;
        try {
          settle(comm.state_->comm, comm.options().init_timeout_s, "ncclCommDeregister");
        } catch (...) {  // the communicator is broken; its destruction or abort releases the rest
          break;
        }
      }
    registrations.clear();
  }

  // Every buffer a hop sends from or receives into, registered with NCCL (NcclOptions::register_buffers) so
  // that its send/recv may copy straight between them instead of through its own staging buffers.
  std::vector<void*> registrations;
  void register_buffers() {
    detail::RingRank& r = *rank;
    for (const DeviceBuffer* buffer : {&r.k_home, &r.v_home, &r.k[0], &r.k[1], &r.v[0], &r.v[1], &r.dk[0], &r.dk[1],
                                       &r.dv[0], &r.dv[1]}) {
      if (buffer->bytes() == 0) continue;
      void* handle = nullptr;
      const ncclResult_t result =
          ncclCommRegister(comm.state_->comm, buffer->data(), buffer->bytes(), &handle);
      if (result == ncclInProgress)
        settle(comm.state_->comm, comm.options().init_timeout_s,
               "rank " + std::to_string(comm.rank()) + ": ncclCommRegister");
      else
        RINGLAB_NCCL_CHECK(result);
      registrations.push_back(handle);
    }
  }

  bool failed = false;  // fail() ran: its RingFault carries the diagnosis

  // `peer_fault`: the fault is another rank's (this rank only noticed it), so peers list this one as a follower.
  [[noreturn]] void fail(const std::string& pass, int step, const std::string& why, bool peer_fault) {
    failed = true;
    board.beat((peer_fault ? ProgressBoard::kAborted : ProgressBoard::kFailed) + pass, step, true);
    comm.abort();
    throw RingFault("rank " + std::to_string(comm.rank()) + " (GPU " + std::to_string(comm.device()) + "): " + why +
                    " at " + pass + " step " + std::to_string(step) + " of " + std::to_string(comm.size()) +
                    "; communicator aborted. The other ranks:\n" + board.peers());
  }

  // Progress of the current call: how many of rank->step_done (every step of every repeated pass) finished.
  std::size_t finished = 0;
  Clock::time_point last_progress{};

  // Polls until `until` completes: the per-step events (progress), NCCL's asynchronous error, a stall.
  void wait_until(cudaEvent_t until, const std::string& pass) {
    const double timeout = comm.options().stall_timeout_s;
    for (;;) {
      const cudaError_t done = cudaEventQuery(until);
      if (done == cudaSuccess) return;
      if (done != cudaErrorNotReady)
        fail(pass, static_cast<int>(finished), std::string("CUDA error ") + cudaGetErrorString(done), false);
      while (finished < rank->step_done.size() && cudaEventQuery(rank->step_done[finished]) == cudaSuccess) {
        ++finished;
        last_progress = Clock::now();
      }
      board.beat(pass, static_cast<int>(finished));
      if (comm.state_->abort_requested)
        fail(pass, static_cast<int>(finished), "another rank of this process failed", true);
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(comm.state_->comm, &state);
      if (state != ncclSuccess && state != ncclInProgress)
        fail(pass, static_cast<int>(finished), std::string("NCCL error: ") + ncclGetErrorString(state), true);
      if (seconds_since(last_progress) > timeout)
        fail(pass, static_cast<int>(finished),
             "no progress for " + std::to_string(static_cast<int>(timeout)) + " s (waiting on rank " +
                 std::to_string((comm.rank() + comm.size() - 1) % comm.size()) + " → " + std::to_string(comm.rank()) +
                 " → " + std::to_string((comm.rank() + 1) % comm.size()) + ")", true);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  RingPassTiming run(bool forward, const RingPassOptions& pass_options) {
    if (comm.state_->aborted)  // ncclCommAbort freed it: nothing may touch it again
      throw RingFault("rank " + std::to_string(comm.rank()) +
                      ": the communicator was aborted by an earlier fault; create a new NcclCommunicator and ring");
    RINGLAB_CUDA_CHECK(cudaSetDevice(comm.device()));
    detail::PassOptions options = detail::pass_options(pass_options);  // (throws on a repeat below 1)
    const std::string pass = forward ? "forward" : "backward";
    board.beat(pass, 0, true);  // one write per call (not per pass of a repeat)
    if (forward && inject_action) {
      const int at = inject_step;
      auto* action = inject_action;
      options.before_step = [at, action](int s) {
        if (s == at) action();
      };
      inject_action = nullptr;
    }
    finished = 0;
    last_progress = Clock::now();
    try {
      RINGLAB_CUDA_CHECK(cudaEventRecord(pass_start, rank->stream));
      const cudaEvent_t start[1] = {pass_start};
      detail::RingRank* ranks[1] = {rank.get()};
      cudaEvent_t previous_end = nullptr;
      for (int i = 0; i < pass_options.repeat; ++i) {  // a pass waits for the previous one on the rank's stream
        options.continues = i > 0;
        if (forward) detail::ring_forward(problem, ranks, *transport, i == 0 ? start : std::span<const cudaEvent_t>(), options);
        else detail::ring_backward(problem, ranks, *transport, i == 0 ? start : std::span<const cudaEvent_t>(), options);
        options.before_step = nullptr;
        // At most two passes in flight: the GPU always has the next one queued, and the host never blocks in a
        // full launch queue (where no watchdog could run) if a peer dies.
        if (previous_end) wait_until(previous_end, pass);
        previous_end = rank->events.record(rank->stream);
      }
      // The driver orders every transfer of the pass (the last dK/dV hop too) into the rank's stream.
      RINGLAB_CUDA_CHECK(cudaEventRecord(pass_end, rank->stream));
      wait_until(pass_end, pass);
      // Copy engines between processes: a rank whose neighbour failed may have been released to run its copies
      // on stale data (IpcLinks::release_waits) and fed this rank rounds of it. Agree that every rank finished
      // the pass before calling it a success.
      if (comm.state_->links) {
        try {
          comm.state_->links->barrier("every rank finished the " + pass, comm.options().stall_timeout_s);
        } catch (const std::exception& error) {
          fail(pass, static_cast<int>(finished), std::string("not every rank finished the pass (") + error.what() + ")",
               true);
        }
      }
    } catch (const PeerWaitFault& fault) {  // a neighbour's fault, seen by the copy-engine transport
      if (failed) throw;
      fail(pass, static_cast<int>(finished), fault.what(), true);
    } catch (const std::exception& error) {
      if (failed) throw;  // fail() aborted and diagnosed already
      // A CUDA or NCCL call failed, or timed out, while enqueueing (e.g. a peer that never connects): abort
      // and say where, with the other ranks' heartbeats.
      fail(pass, static_cast<int>(finished), error.what(), false);
    }
    board.beat(pass + "-done", static_cast<int>(rank->step_done.size()));
    float ms = 0;
    RINGLAB_CUDA_CHECK(cudaEventElapsedTime(&ms, pass_start, pass_end));
    return {ms / pass_options.repeat};
  }
};

NcclRing::NcclRing(const AttentionConfig& config, DType dtype, NcclCommunicator& comm, GradientPrecision gradients)
    : impl_(std::make_unique<Impl>(config, dtype, gradients, comm)) {}
NcclRing::~NcclRing() = default;
int NcclRing::rank() const { return impl_->comm.rank(); }
const PositionSet& NcclRing::positions() const { return impl_->rank->positions; }
const PositionSet& NcclRing::key_positions() const { return impl_->rank->kv_positions; }
Stream NcclRing::stream() const { return impl_->rank->stream; }
std::size_t NcclRing::bytes_per_device() const { return impl_->rank->bytes(); }
void NcclRing::poison() {
  impl_->rank->poison(impl_->rank->stream);
  RINGLAB_CUDA_CHECK(cudaStreamSynchronize(impl_->rank->stream));
}
void NcclRing::inject_before_step(int step, void (*action)()) {
  impl_->inject_step = step;
  impl_->inject_action = action;
}

void NcclRing::load_whole(ConstDeviceTensor q, ConstDeviceTensor k, ConstDeviceTensor v) {
  impl_->rank->load(impl_->problem, q, k, v, impl_->rank->stream);
  RINGLAB_CUDA_CHECK(cudaStreamSynchronize(impl_->rank->stream));
}
void NcclRing::load_output_gradient_whole(ConstDeviceTensor dout) {
  impl_->rank->load_output_gradient(impl_->problem, dout, impl_->rank->stream);
  RINGLAB_CUDA_CHECK(cudaStreamSynchronize(impl_->rank->stream));
}

namespace {
void require_shard(const ConstDeviceTensor& t, DType dtype, const AttentionConfig& c, i64 rows, i64 heads,
                   const char* what) {
  if (t.dtype != dtype || t.batch != c.batch || t.rows != rows || t.heads != heads || t.head_dim != c.head_dim)
    throw InputError(std::string("gpu::NcclRing: ") + what + " must be this rank's shard [B, n, heads, D] = [" +
                     std::to_string(c.batch) + ", " + std::to_string(rows) + ", " + std::to_string(heads) + ", " +
                     std::to_string(c.head_dim) + "] in " + to_string(dtype));
}
}  // namespace

void NcclRing::load_shard(ConstDeviceTensor q, ConstDeviceTensor k, ConstDeviceTensor v) {
  const auto& c = impl_->problem.config;
  auto& r = *impl_->rank;
  require_shard(q, impl_->problem.dtype, c, r.rows, c.heads, "q");
  require_shard(k, impl_->problem.dtype, c, r.kv_rows, c.kv_heads, "k");
  require_shard(v, impl_->problem.dtype, c, r.kv_rows, c.kv_heads, "v");
  RINGLAB_CUDA_CHECK(cudaMemcpyAsync(r.q.data(), q.data, r.q.bytes(), cudaMemcpyDeviceToDevice, r.stream));
  RINGLAB_CUDA_CHECK(cudaMemcpyAsync(r.k_home.data(), k.data, r.k_home.bytes(), cudaMemcpyDeviceToDevice, r.stream));
  RINGLAB_CUDA_CHECK(cudaMemcpyAsync(r.v_home.data(), v.data, r.v_home.bytes(), cudaMemcpyDeviceToDevice, r.stream));
  RINGLAB_CUDA_CHECK(cudaStreamSynchronize(r.stream));
}
void NcclRing::load_output_gradient_shard(ConstDeviceTensor dout) {
  const auto& c = impl_->problem.config;
  auto& r = *impl_->rank;
  require_shard(dout, impl_->problem.dtype, c, r.rows, c.heads, "dout");
  RINGLAB_CUDA_CHECK(cudaMemcpyAsync(r.dout.data(), dout.data, r.dout.bytes(), cudaMemcpyDeviceToDevice, r.stream));
  RINGLAB_CUDA_CHECK(cudaStreamSynchronize(r.stream));
}

RingPassTiming NcclRing::forward(RingPassOptions options) { return impl_->run(true, options); }
RingPassTiming NcclRing::backward(RingPassOptions options) { return impl_->run(false, options); }

ConstDeviceTensor NcclRing::out() const {
  const auto& c = impl_->problem.config;
  return {impl_->rank->out.data(), impl_->problem.dtype, c.batch, impl_->rank->rows, c.heads, c.head_dim};
}
const float* NcclRing::lse() const { return impl_->rank->lse.as<float>(); }
ConstDeviceTensor NcclRing::dq() const {
  const auto& c = impl_->problem.config;
  return {impl_->rank->acc_dq.data(), DType::f32, c.batch, impl_->rank->rows, c.heads, c.head_dim};
}
ConstDeviceTensor NcclRing::dk() const { return impl_->rank->home_gradient(impl_->problem, false); }
ConstDeviceTensor NcclRing::dv() const { return impl_->rank->home_gradient(impl_->problem, true); }
void NcclRing::gather_output(DeviceTensor out, float* lse) {
  impl_->rank->gather_output(impl_->problem, out, lse, impl_->rank->stream);
  RINGLAB_CUDA_CHECK(cudaStreamSynchronize(impl_->rank->stream));
}
void NcclRing::gather_gradients(DeviceTensor dq, DeviceTensor dk, DeviceTensor dv) {
  impl_->rank->gather_gradients(impl_->problem, dq, dk, dv, impl_->rank->stream);
  RINGLAB_CUDA_CHECK(cudaStreamSynchronize(impl_->rank->stream));
}

bool nccl_ring_available() { return true; }

// ---- run_nccl_ring: a thread per local GPU, host tensors in and out (tests) -------------------------------

NcclRingOutputs run_nccl_ring(const AttentionConfig& config_in, DType dtype, const NcclRingInputs& inputs,
                              GradientPrecision gradients, const NcclOptions& options) {
  AttentionConfig config = config_in;
  config.validate();
  const int ring = config.ring;
  if (ring > device_count())
    throw ConfigError("ring", std::to_string(ring), "at most the " + std::to_string(device_count()) + " local GPUs");
  detail::RingProblem check(config, dtype, gradients, "gpu::NcclRing");  // unsupported configs fail here, before NCCL
  const i64 B = config.batch, N = config.seq, H = config.heads, Hkv = config.kv_heads, D = config.head_dim;
  const auto es = size_of(dtype);
  NcclRingOutputs result;
  result.out.resize(static_cast<std::size_t>(B * N * H * D) * es);
  result.lse.resize(B * H * N);
  result.dq.resize(B * N * H * D);
  result.dk.resize(B * N * Hkv * D);
  result.dv.resize(B * N * Hkv * D);
  auto comms = NcclCommunicator::for_local_gpus(ring, options);
  std::vector<std::string> errors(ring);
  std::vector<std::thread> threads;
  for (int r = 0; r < ring; ++r)
    threads.emplace_back([&, r] {
      try {
        RINGLAB_CUDA_CHECK(cudaSetDevice(r));
        NcclRing rank(config, dtype, comms[r], gradients);
        DeviceBuffer q(B * N * H * D * es), k(B * N * Hkv * D * es), v(B * N * Hkv * D * es), dout(B * N * H * D * es);
        q.upload(inputs.q, q.bytes());
        k.upload(inputs.k, k.bytes());
        v.upload(inputs.v, v.bytes());
        dout.upload(inputs.dout, dout.bytes());
        rank.poison();
        rank.load_whole({q.data(), dtype, B, N, H, D}, {k.data(), dtype, B, N, Hkv, D}, {v.data(), dtype, B, N, Hkv, D});
        rank.load_output_gradient_whole({dout.data(), dtype, B, N, H, D});
        rank.forward();
        rank.backward();
        // Each rank gathers its rows into whole tensors on its GPU; the host keeps only this rank's rows.
        DeviceBuffer out(B * N * H * D * es), lse(B * H * N * 4), dq(B * N * H * D * 4), dk(B * N * Hkv * D * 4),
            dv(B * N * Hkv * D * 4);
        rank.gather_output({out.data(), dtype, B, N, H, D}, lse.as<float>());
        rank.gather_gradients({dq.data(), DType::f32, B, N, H, D}, {dk.data(), DType::f32, B, N, Hkv, D},
                              {dv.data(), DType::f32, B, N, Hkv, D});
        std::vector<unsigned char> out_host(out.bytes());
        std::vector<float> lse_host(B * H * N), dq_host(B * N * H * D), dk_host(B * N * Hkv * D), dv_host(B * N * Hkv * D);
        out.download(out_host.data(), out_host.size());
        lse.download(lse_host.data(), lse_host.size() * 4);
        dq.download(dq_host.data(), dq_host.size() * 4);
        dk.download(dk_host.data(), dk_host.size() * 4);
        dv.download(dv_host.data(), dv_host.size() * 4);
        // Disjoint rows per rank (no lock needed): its query rows where it reports them, its own chunk's keys.
        for (i64 b = 0; b < B && check.reports_queries(r); ++b)
          for (const i64 t : rank.positions().expand()) {
            const i64 row = b * N + t;
            std::copy_n(out_host.begin() + row * H * D * es, H * D * es, result.out.begin() + row * H * D * es);
            std::copy_n(dq_host.begin() + row * H * D, H * D, result.dq.begin() + row * H * D);
            for (i64 h = 0; h < H; ++h) result.lse[(b * H + h) * N + t] = lse_host[(b * H + h) * N + t];
          }
        for (i64 b = 0; b < B; ++b)
          for (const i64 t : rank.key_positions().expand()) {
            const i64 row = b * N + t;
            std::copy_n(dk_host.begin() + row * Hkv * D, Hkv * D, result.dk.begin() + row * Hkv * D);
            std::copy_n(dv_host.begin() + row * Hkv * D, Hkv * D, result.dv.begin() + row * Hkv * D);
          }
      } catch (const std::exception& error) {
        errors[r] = error.what();
        comms[r].abort();
        for (auto& comm : comms) comm.request_abort();  // the other threads stop at their next poll
      }
    });
  for (auto& t : threads) t.join();
  std::string message;
  for (int r = 0; r < ring; ++r)
    if (!errors[r].empty()) message += "rank " + std::to_string(r) + ": " + errors[r] + "\n";
  if (!message.empty()) throw RingFault("NCCL ring failed:\n" + message);
  return result;
}

}  // namespace ringlab::gpu

#else  // no NCCL at build time

namespace ringlab::gpu {

namespace {
[[noreturn]] void no_nccl() {
  throw ConfigError("ring backend", "nccl", "a build with NCCL (libnccl was not found at configure time)");
}
}  // namespace

bool nccl_ring_available() { return false; }
struct NcclCommunicator::State {};
NcclCommunicator::NcclCommunicator(std::unique_ptr<State> state) : state_(std::move(state)) {}
NcclCommunicator::NcclCommunicator(NcclCommunicator&&) noexcept = default;
NcclCommunicator& NcclCommunicator::operator=(NcclCommunicator&&) noexcept = default;
NcclCommunicator::~NcclCommunicator() = default;
NcclCommunicator NcclCommunicator::from_environment(const NcclOptions&) { no_nccl(); }
std::vector<NcclCommunicator> NcclCommunicator::for_local_gpus(int, const NcclOptions&) { no_nccl(); }
int NcclCommunicator::rank() const { return 0; }
int NcclCommunicator::size() const { return 0; }
int NcclCommunicator::device() const { return 0; }
const NcclOptions& NcclCommunicator::options() const { no_nccl(); }
void NcclCommunicator::abort() {}
void NcclCommunicator::request_abort() {}
struct NcclRing::Impl {};
NcclRing::NcclRing(const AttentionConfig&, DType, NcclCommunicator&, GradientPrecision) { no_nccl(); }
NcclRing::~NcclRing() = default;
int NcclRing::rank() const { no_nccl(); }
const PositionSet& NcclRing::positions() const { no_nccl(); }
const PositionSet& NcclRing::key_positions() const { no_nccl(); }
Stream NcclRing::stream() const { no_nccl(); }
void NcclRing::load_whole(ConstDeviceTensor, ConstDeviceTensor, ConstDeviceTensor) { no_nccl(); }
void NcclRing::load_output_gradient_whole(ConstDeviceTensor) { no_nccl(); }
void NcclRing::load_shard(ConstDeviceTensor, ConstDeviceTensor, ConstDeviceTensor) { no_nccl(); }
void NcclRing::load_output_gradient_shard(ConstDeviceTensor) { no_nccl(); }
RingPassTiming NcclRing::forward(RingPassOptions) { no_nccl(); }
RingPassTiming NcclRing::backward(RingPassOptions) { no_nccl(); }
ConstDeviceTensor NcclRing::out() const { no_nccl(); }
const float* NcclRing::lse() const { no_nccl(); }
ConstDeviceTensor NcclRing::dq() const { no_nccl(); }
ConstDeviceTensor NcclRing::dk() const { no_nccl(); }
ConstDeviceTensor NcclRing::dv() const { no_nccl(); }
void NcclRing::gather_output(DeviceTensor, float*) { no_nccl(); }
void NcclRing::gather_gradients(DeviceTensor, DeviceTensor, DeviceTensor) { no_nccl(); }
std::size_t NcclRing::bytes_per_device() const { no_nccl(); }
void NcclRing::poison() { no_nccl(); }
void NcclRing::inject_before_step(int, void (*)()) { no_nccl(); }
NcclRingOutputs run_nccl_ring(const AttentionConfig&, DType, const NcclRingInputs&, GradientPrecision, const NcclOptions&) {
  no_nccl();
}

}  // namespace ringlab::gpu

#endif
