// Preset teaching scenes: a configuration, the step to show, the panel to bring forward, and the lesson —
// what it shows and where to look. `ringlab-viz --list-scenes` prints their names; the Scenes menu lists
// their titles; the screenshot tests render every one.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "model.hpp"
#include "ringlab/sim/views.hpp"

namespace ringlab::viz {

enum class Tab { timeline, memory, dilation };

struct Scene {
  std::string name;     // for --scene
  std::string title;    // for the menu and the lesson box
  std::string lesson;   // two or three sentences
  std::string look_at;  // where to look
  std::function<void(Settings&)> configure;  // from default_settings()
  int step = 0;         // global step shown first
  Tab tab = Tab::timeline;
  sim::MapOrder order = sim::MapOrder::positions;
};

const std::vector<Scene>& scenes();
const Scene* find_scene(const std::string& name);
Settings scene_settings(const Scene& scene);

}  // namespace ringlab::viz
