// Dilation: which positions each (pattern, head) selects in its segments, the resulting mask of one head
// (with its multiplicity in lse mode: a pair two patterns select counts twice), and how heads are assigned
// to patterns and offsets under the offset rule.
#pragma once

#include <cstdint>

#include "context.hpp"

namespace ringlab::viz {

struct DilationPanel {
  int head = 0;                // whose mask is drawn
  std::int64_t window = 0;     // positions [0, window) shown; 0 = chosen from the patterns
  void draw(Context& ctx);

 private:
  void draw_selection(Context& ctx, ImVec2 origin, ImVec2 size, std::int64_t window);
  void draw_mask(Context& ctx, ImVec2 origin, ImVec2 size, std::int64_t window);
  void draw_assignment(Context& ctx, ImVec2 origin, ImVec2 size);
};

}  // namespace ringlab::viz
