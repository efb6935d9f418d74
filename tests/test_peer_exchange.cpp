// The copy-engine ring's host protocol (gpu/src/peer_exchange.hpp) with more ranks than any GPU machine here
// has: P threads run many rounds through PeerExchange::run_round with random delays, and every rank checks that
// it pulled rank − 1's buffers of the same round and waited for rank + 1's pull of the same round. Fake pointers
// stand for buffers and events (the protocol only passes them on). No GPU needed.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "catch_compat.hpp"
#include "peer_exchange.hpp"

using ringlab::gpu::Event;
using ringlab::gpu::Hop;
using ringlab::gpu::detail::PeerExchange;
using ringlab::gpu::detail::PeerWaitFault;

namespace {

// A fake pointer that says who made it, in which round, and what it is (0: send buffer, 1: sendable, 2: pulled).
std::uintptr_t tag(int rank, long long round, int kind) {
  return (static_cast<std::uintptr_t>(round) << 16) | (static_cast<std::uintptr_t>(rank) << 4) |
         static_cast<std::uintptr_t>(kind + 1);
}
Event event_tag(int rank, long long round, int kind) { return reinterpret_cast<Event>(tag(rank, round, kind)); }

}  // namespace

TEST_CASE("PeerExchange pairs each round with the neighbours' same round, for P = 2 ... 8", "[peer_exchange]") {
  for (const int P : {2, 3, 5, 8}) {
    constexpr int kRounds = 300;
    PeerExchange exchange(P);
    std::atomic<int> mismatches{0};
    std::vector<std::string> errors(static_cast<std::size_t>(P));
    std::vector<std::thread> threads;
    for (int r = 0; r < P; ++r)
      threads.emplace_back([&, r] {
        std::mt19937 random(static_cast<unsigned>(1000 * P + r));
        std::uniform_int_distribution<int> pause(0, 40);
        const int previous = (r + P - 1) % P, next = (r + 1) % P;
        try {
          for (long long round = 1; round <= kRounds; ++round) {
            std::this_thread::sleep_for(std::chrono::microseconds(pause(random)));
            Hop hop;
            hop.send = reinterpret_cast<const void*>(tag(r, round, 0));
            hop.send_bytes = static_cast<std::size_t>(round);
            hop.recv_bytes = static_cast<std::size_t>(round);
            auto pull = [&](const PeerExchange::Slot& from) {
              if (from.hops.size() != 1 || from.hops[0].send != reinterpret_cast<const void*>(tag(previous, round, 0)) ||
                  from.ready != event_tag(previous, round, 1))
                ++mismatches;
              std::this_thread::sleep_for(std::chrono::microseconds(pause(random)));
              return event_tag(r, round, 2);
            };
            auto use_next = [&](const PeerExchange::Slot& to) {
              if (to.pulled != event_tag(next, round, 2)) ++mismatches;
            };
            const Hop hops[1] = {hop};
            exchange.run_round(r, hops, event_tag(r, round, 1), 20.0, pull, use_next);
          }
        } catch (const std::exception& error) {
          errors[static_cast<std::size_t>(r)] = error.what();
          exchange.abort();
        }
      });
    for (auto& t : threads) t.join();
    INFO("P = " << P);
    for (const std::string& error : errors) CHECK(error.empty());
    CHECK(mismatches.load() == 0);
  }
}

TEST_CASE("PeerExchange: a rank that stops makes the others stop waiting, naming the neighbour", "[peer_exchange]") {
  constexpr int P = 4;
  PeerExchange exchange(P);
  std::vector<std::string> errors(P);
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < P; ++r)
    threads.emplace_back([&, r] {
      try {
        for (long long round = 1; round <= 50; ++round) {
          if (r == 2 && round == 10) throw std::runtime_error("rank 2 failed");
          exchange.run_round(r, {}, nullptr, 20.0, [](const PeerExchange::Slot&) { return Event{}; },
                             [](const PeerExchange::Slot&) {});
        }
      } catch (const PeerWaitFault& fault) {
        errors[static_cast<std::size_t>(r)] = fault.what();
      } catch (const std::exception& error) {
        errors[static_cast<std::size_t>(r)] = error.what();
        exchange.abort();  // as NcclCommunicator::request_abort does
      }
    });
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(seconds < 5.0);  // far inside the 20 s timeout: abort() woke the waiters
  CHECK(errors[2] == "rank 2 failed");
  for (const int r : {0, 1, 3}) {
    INFO("rank " << r << ": " << errors[static_cast<std::size_t>(r)]);
    CHECK(errors[static_cast<std::size_t>(r)].find("a rank of this process failed") != std::string::npos);
  }
}

TEST_CASE("PeerExchange: a neighbour that never comes is a timeout naming it and the round", "[peer_exchange]") {
  PeerExchange exchange(2);
  std::string message;
  try {
    exchange.run_round(0, {}, nullptr, 0.2, [](const PeerExchange::Slot&) { return Event{}; },
                       [](const PeerExchange::Slot&) {});
  } catch (const PeerWaitFault& fault) {
    message = fault.what();
  }
  CHECK(message.find("rank 1 did not post round 1 of copies within 0 s") != std::string::npos);
}

TEST_CASE("locate finds the buffer and offset of a pointer, and refuses spans that leave a buffer", "[peer_exchange]") {
  using ringlab::gpu::detail::BufferSpan;
  using ringlab::gpu::detail::locate;
  // Three buffers with a gap, and an empty one (which holds nothing, even at its base).
  const std::vector<BufferSpan> table = {{0x1000, 0x100}, {0x2000, 0}, {0x3000, 0x80}, {0x1100, 0x40}};
  auto at = [](std::uintptr_t address) { return reinterpret_cast<const void*>(address); };
  const auto first = locate(table, at(0x1000), 0x100);
  REQUIRE(first.has_value());
  CHECK(first->index == 0);
  CHECK(first->offset == 0);
  const auto inside = locate(table, at(0x3010), 0x70);
  REQUIRE(inside.has_value());
  CHECK(inside->index == 2);
  CHECK(inside->offset == 0x10);
  const auto adjacent = locate(table, at(0x1100), 0x40);  // the next buffer starts where the first ends
  REQUIRE(adjacent.has_value());
  CHECK(adjacent->index == 3);
  CHECK_FALSE(locate(table, at(0x3010), 0x71).has_value());  // one byte past the end
  CHECK_FALSE(locate(table, at(0x2000), 1).has_value());     // the empty buffer
  CHECK_FALSE(locate(table, at(0x0fff), 1).has_value());     // before every buffer
  CHECK_FALSE(locate(table, at(0x1140), 1).has_value());     // in the gap after the fourth
}
