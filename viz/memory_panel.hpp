// Memory: each device's peak bytes stacked by ledger category, next to one device running the whole
// attention flash-style and dense with materialised scores; and the scaling of per-device memory over N
// (log axes) for several P, against the capacity of the chosen GPU.
#pragma once

#include "context.hpp"

namespace ringlab::viz {

struct MemoryPanel {
  void draw(Context& ctx);

 private:
  void draw_bars(Context& ctx, ImVec2 origin, ImVec2 size);
  void draw_scaling(Context& ctx, ImVec2 origin, ImVec2 size);
};

}  // namespace ringlab::viz
