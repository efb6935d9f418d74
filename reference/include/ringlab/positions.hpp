// Global token positions and how a ring layout distributes them over devices.
// A device's tokens are a few arithmetic runs (start, stride, count): contiguous = 1 run of stride 1,
// zigzag = 2 runs of stride 1, striped = 1 run of stride P. Runs keep counting exact and O(1) even at
// N = 2^30, and GPU kernels can address them without gather copies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ringlab/config.hpp"

namespace ringlab {

struct PositionRun {
  std::int64_t start = 0;
  std::int64_t stride = 1;
  std::int64_t count = 0;
  std::int64_t at(std::int64_t i) const { return start + i * stride; }
  std::int64_t last() const { return start + (count - 1) * stride; }
  bool operator==(const PositionRun&) const = default;
};

struct PositionSet {
  std::vector<PositionRun> runs;  // in increasing position order, none empty
  std::int64_t size() const;
  bool empty() const { return runs.empty(); }
  std::vector<std::int64_t> expand() const;  // every position, in order
  std::string describe() const;              // "[0,64) ∪ [192,256)" or "{3, 3+8, …} (16)"
  bool operator==(const PositionSet&) const = default;
};

// Positions [begin, end) as one run; empty set when end <= begin.
PositionSet contiguous_positions(std::int64_t begin, std::int64_t end);

// The tokens device `device` of `ring_size` owns under `layout` for a sequence of n tokens.
//   contiguous: [⌊p·n/P⌋, ⌊(p+1)·n/P⌋)
//   zigzag:     chunks c = [⌊c·n/2P⌋, ⌊(c+1)·n/2P⌋), device p owns chunks p and 2P−1−p
//   striped:    positions ≡ p (mod P)
PositionSet layout_positions(Layout layout, std::int64_t n, int ring_size, int device);

}  // namespace ringlab
