// Configuration: every knob of the problem (N, P, H, Hkv, D, layout, mask, dilation, scheme, dtype,
// hardware, overlap, mode). Any change re-runs the simulation; compute mode (small problems) also shows the
// error of the gathered ring result against dense attention.
#pragma once

#include "context.hpp"

namespace ringlab::viz {

struct ConfigPanel {
  void draw(Context& ctx);

 private:
  void draw_problem(Context& ctx);
  void draw_mask(Context& ctx);
  void draw_ring(Context& ctx);
  void draw_dilation(Context& ctx);
  void draw_run(Context& ctx);
};

}  // namespace ringlab::viz
