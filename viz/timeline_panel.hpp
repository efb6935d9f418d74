// Timeline: per device, compute (its colour) and sends (grey) over simulated time, from
// Simulation::slices(); waits on communication that compute did not hide in red. The current step is a
// yellow band. Wheel zooms, drag pans, double-click resets, a click on a compute bar jumps to its step.
#pragma once

#include <cstdint>
#include <vector>

#include "context.hpp"

namespace ringlab::viz {

struct TimelinePanel {
  void draw(Context& ctx);

 private:
  struct Bar {
    std::int64_t begin, end;
    int pass, step;
    std::size_t slice;
  };
  void rebuild(const Model& model);
  std::uint64_t generation_ = 0;
  std::vector<std::vector<Bar>> compute_, sends_;  // [device], sorted by begin
  double view_begin_ = 0, view_end_ = 0;          // ns; empty = the whole run
  bool dragged_ = false;
};

}  // namespace ringlab::viz
