// The application: a menu of teaching scenes, a lesson box with the run's results, and the panels in a
// fixed layout that follows the window size — Configuration on the left, Ring and Attention matrix on top,
// Timeline / Memory / Dilation as tabs below. Each panel is a struct with its state and a draw().
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "attention_panel.hpp"
#include "config_panel.hpp"
#include "dilation_panel.hpp"
#include "memory_panel.hpp"
#include "platform.hpp"
#include "ring_panel.hpp"
#include "scenes.hpp"
#include "timeline_panel.hpp"

namespace ringlab::viz {

// Where a panel was drawn last frame, in pixels (for the screenshot tests).
struct Region {
  std::string name;
  float x = 0, y = 0, width = 0, height = 0;
};

class App {
 public:
  explicit App(Platform& platform);

  // Loads a scene: its settings, its panel, its attention order; the playhead at `step` (global) or the
  // scene's own step. Returns false when the step is out of range.
  bool apply_scene(const Scene& scene, std::optional<int> step = std::nullopt);
  void set_tab(Tab tab);
  // Any settings, as if edited in the Configuration panel. False (and the error shown) when invalid.
  bool apply_settings(const Settings& settings);
  // One UI frame, between Platform::begin_frame and end_frame; `seconds` since the last one.
  void frame(double seconds);

  Model& model() { return model_; }
  Playback& playback() { return playback_; }
  const std::vector<Region>& regions() const { return regions_; }
  bool animating() const { return playback_.playing || model_.check() == Model::Check::running; }

 private:
  float draw_menu_bar();
  void draw_lesson(Context& ctx);
  void handle_keys();

  Platform& platform_;
  Model model_;
  Playback playback_;
  Settings edit_;
  const Scene* scene_ = nullptr;
  bool scene_edited_ = false;
  Tab tab_ = Tab::timeline;
  bool tab_requested_ = false;
  bool about_open_ = false;
  std::vector<Region> regions_;

  ConfigPanel config_;
  RingPanel ring_;
  AttentionPanel attention_;
  TimelinePanel timeline_;
  MemoryPanel memory_;
  DilationPanel dilation_;
};

}  // namespace ringlab::viz
