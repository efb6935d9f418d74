// Ring: the P devices on a circle, each keeping its queries, and the K/V chunks — coloured by their owner —
// moving one hop per step. Play / pause / step / scrub / speed (the shared playhead); skipped steps are drawn
// hollow; inter-node links dashed. Hover a device or a chunk for what it holds.
#pragma once

#include "context.hpp"

namespace ringlab::viz {

struct RingPanel {
  void draw(Context& ctx);
};

}  // namespace ringlab::viz
