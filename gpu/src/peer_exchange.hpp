// The host side of the copy-engine ring transports: how the threads of one process, one per GPU, tell each other
// each round where their send buffers are and which events order the copies (nccl_ring.cu, PeerCopyTransport), and
// how a process per GPU finds rank − 1's send buffer among those it mapped (ipc_transport.cu, locate).
// Plain C++ (no CUDA calls: the transport passes them in), so that the protocol itself is tested on any machine
// with more ranks than GPUs (tests/test_peer_exchange.cpp).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ringlab/gpu/nccl_ring.hpp"
#include "ringlab/gpu/ring.hpp"

namespace ringlab::gpu::detail {

// A copy-engine rank stopped waiting for a neighbour: it timed out, or another rank of the process failed. The
// rank reports it as a peer's fault (the progress board marks it aborted, not failed).
class PeerWaitFault : public RingFault {
 public:
  using RingFault::RingFault;
};

// Where a pointer lies among one rank's buffers: (index, offset). The process-per-GPU copy-engine transport
// (ipc_transport.cu) maps rank − 1's buffers once and finds the one to pull from by asking where this rank's own
// send pointer lies: every rank runs the same driver, so at a given round both send from the same buffer (the
// same index in RingRank::buffers()) at the same offset.
struct BufferSpan {
  std::uintptr_t base = 0;
  std::size_t bytes = 0;
};
struct BufferPlace {
  std::size_t index = 0, offset = 0;
};
// The buffer of `table` holding [pointer, pointer + bytes); nullopt when none does (an empty buffer holds nothing).
inline std::optional<BufferPlace> locate(std::span<const BufferSpan> table, const void* pointer, std::size_t bytes) {
  const auto address = reinterpret_cast<std::uintptr_t>(pointer);
  for (std::size_t i = 0; i < table.size(); ++i) {
    const BufferSpan& span = table[i];
    if (span.bytes == 0 || address < span.base || address - span.base >= span.bytes) continue;
    if (bytes > span.bytes - (address - span.base)) return std::nullopt;  // runs past the end
    return BufferPlace{i, static_cast<std::size_t>(address - span.base)};
  }
  return std::nullopt;
}

// What the ranks of a copy-engine ring tell each other each round: the buffers a rank sends and the event after
// which rank + 1 may read them (posted), the event after which its own pull from rank − 1 has landed (pulled), and
// that it has made its stream wait for rank + 1's pulled event (waited). One slot per rank suffices: a rank leaves
// round n only after rank + 1 has pulled round n (so it read the slot) and rank − 1 has waited (so it used the
// pulled event), and only then may it reuse or destroy the events. Rounds are numbered per rank over the
// exchange's life (every ring its communicators run, in the same order on every rank), so that a new ring never
// reads an earlier ring's slot.
class PeerExchange {
 public:
  explicit PeerExchange(int size) : slots_(static_cast<std::size_t>(size)), rounds_(static_cast<std::size_t>(size), 0) {}

  struct Slot {
    std::vector<Hop> hops;
    Event ready = nullptr, pulled = nullptr;
    long long posted_round = -1, pulled_round = -1, waited_round = -1;
  };

  int size() const { return static_cast<int>(slots_.size()); }

  // One round of `rank` (called by that rank's thread only, every rank the same number of times):
  //   1. posts `hops` (its send buffers) and `sendable` (an event after which rank + 1 may read them);
  //   2. waits for rank − 1's post and calls pull(rank − 1's slot), which issues the copies into this rank's
  //      receive buffers and returns an event after which they have landed;
  //   3. posts that event, waits until rank + 1 has pulled and calls use_next(rank + 1's slot), which makes this
  //      rank's stream wait for rank + 1's pull from it;
  //   4. says so, and waits until rank − 1 has done the same with this rank's pulled event.
  // Throws PeerWaitFault when a neighbour does not get there within `timeout_s`, or on abort().
  template <class Pull, class UseNext>
  void run_round(int rank, std::span<const Hop> hops, Event sendable, double timeout_s, Pull pull, UseNext use_next) {
    const long long round = ++rounds_[static_cast<std::size_t>(rank)];
    const int previous = (rank + size() - 1) % size(), next = (rank + 1) % size();
    const std::string numbered = " round " + std::to_string(round) + " of copies";
    publish(rank, [&](Slot& slot) {
      slot.hops.assign(hops.begin(), hops.end());
      slot.ready = sendable;
      slot.posted_round = round;
    });
    const Slot from = await(previous, [round](const Slot& s) { return s.posted_round >= round; }, timeout_s,
                            "post" + numbered);
    const Event pulled = pull(from);
    publish(rank, [&](Slot& slot) {
      slot.pulled = pulled;
      slot.pulled_round = round;
    });
    const Slot to = await(next, [round](const Slot& s) { return s.pulled_round >= round; }, timeout_s,
                          "pull" + numbered);
    use_next(to);
    publish(rank, [&](Slot& slot) { slot.waited_round = round; });
    (void)await(previous, [round](const Slot& s) { return s.waited_round >= round; }, timeout_s,
                "finish" + numbered);
  }

  // Every waiting rank stops with PeerWaitFault (a rank of this process failed).
  void abort() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      aborted_ = true;
    }
    changed_.notify_all();
  }

 private:
  // Sets rank's slot with `update` under the lock, then wakes the waiters.
  template <class Update>
  void publish(int rank, Update update) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      update(slots_[static_cast<std::size_t>(rank)]);
    }
    changed_.notify_all();
  }
  // Waits until `ready(slot of rank)` holds and returns a copy of the slot; throws PeerWaitFault after
  // `timeout_s` (saying that rank had not done `what` yet) or when the exchange is aborted.
  template <class Ready>
  Slot await(int rank, Ready ready, double timeout_s, const std::string& what) {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    const Slot& slot = slots_[static_cast<std::size_t>(rank)];
    while (!aborted_ && !ready(slot))
      if (changed_.wait_until(lock, deadline) == std::cv_status::timeout && !ready(slot))
        throw PeerWaitFault("copy engines: rank " + std::to_string(rank) + " did not " + what + " within " +
                            std::to_string(static_cast<int>(timeout_s)) + " s");
    if (aborted_)
      throw PeerWaitFault("copy engines: stopped waiting for rank " + std::to_string(rank) + " to " + what +
                          ": a rank of this process failed");
    return slot;
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Slot> slots_;
  std::vector<long long> rounds_;  // [rank]: written by that rank's thread only
  bool aborted_ = false;
};

}  // namespace ringlab::gpu::detail
