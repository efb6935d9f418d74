// What every panel's draw() receives: the model (read), the shared playhead, and the settings being
// edited (a panel that changes them sets `edited`; the app re-runs the simulation after the frame).
#pragma once

#include "model.hpp"
#include "playback.hpp"
#include "theme.hpp"

namespace ringlab::viz {

struct Context {
  Model& model;
  Playback& playback;
  Settings& edit;
  bool edited = false;
  const Fonts& fonts;
  float scale = 1;  // UI scale: multiply fixed pixel sizes by it
};

}  // namespace ringlab::viz
