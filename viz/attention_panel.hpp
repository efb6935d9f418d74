// Attention matrix: the N×N score matrix, downsampled to bins, at the current ring step. Tiles each device
// computes now are in its colour, earlier steps faded (cumulative coverage), later steps grey, masked pairs
// white, skipped steps hatched. Hover a cell for its query range, key range, device and step.
#pragma once

#include <cstdint>
#include <vector>

#include "context.hpp"

namespace ringlab::viz {

struct AttentionPanel {
  sim::MapOrder order = sim::MapOrder::positions;
  bool coverage = true;
  void draw(Context& ctx);

 private:
  // Cell colours of the current (generation, order, step), rebuilt when one changes.
  std::uint64_t cached_generation_ = 0;
  sim::MapOrder cached_order_ = sim::MapOrder::positions;
  int cached_step_ = -1;
  bool cached_coverage_ = true;
  std::vector<Rgb> colors_;
  std::vector<bool> skipped_;
  std::int64_t covered_pairs_ = 0;
};

}  // namespace ringlab::viz
