// ringlab-viz: the interactive teaching front-end of ringlab (docs/viz.md).
//
//   ringlab-viz                                   open the window on the first scene
//   ringlab-viz --scene zigzag-balances           open on a scene
//   ringlab-viz --list-scenes                     one scene name per line
//   ringlab-viz --scene NAME --step S --screenshot out.png --size 1280x800
//                                                 render offscreen (needs an X display: xvfb-run in CI)
//   ringlab-viz --all-scenes DIR                  every scene to DIR/NAME.png (+ NAME.json panel regions)
//   ringlab-viz --scene NAME --benchmark-frames 300   frame time while playing
//   ringlab-viz --exercise                        self-test: edge-case configurations, hovering, clicking
// Exit status: 0 done, 1 no window or OpenGL (message says why), 2 bad flags.
#include <CLI/CLI.hpp>
#include <GLFW/glfw3.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sys/resource.h>

#include <imgui.h>

#include "app.hpp"
#include "ringlab/errors.hpp"

using namespace ringlab;
using namespace ringlab::viz;

namespace {

struct Flags {
  std::string scene;
  std::optional<int> step;
  std::string screenshot;
  std::string size = "1280x800";
  float scale = 0;
  bool list_scenes = false;
  std::string regions;
  std::string all_scenes;
  int benchmark_frames = 0;
  std::string tab;
  bool exercise = false;
  std::string exercise_out;
};

// A bad flag value: the message, then exit 2.
struct UsageError {
  std::string message;
};

std::pair<int, int> parse_size(const std::string& text) {
  const auto x = text.find('x');
  auto number = [](const std::string& digits) {
    const bool ok = !digits.empty() && digits.size() <= 5 &&
                    std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    return ok ? std::stoi(digits) : -1;
  };
  const int w = x == std::string::npos ? -1 : number(text.substr(0, x));
  const int h = x == std::string::npos ? -1 : number(text.substr(x + 1));
  if (w < 0 || h < 0) throw UsageError{"--size " + text + ": expected WIDTHxHEIGHT, for example 1280x800"};
  if (w < 320 || h < 240 || w > 8192 || h > 8192)
    throw UsageError{"--size " + text + ": width in [320, 8192] and height in [240, 8192]"};
  return {w, h};
}

std::string scene_names() {
  std::string names;
  for (const Scene& scene : scenes()) names += (names.empty() ? "" : ", ") + scene.name;
  return names;
}

const Scene& parse_scene(const std::string& name) {
  if (name.empty()) return scenes().front();
  const Scene* scene = find_scene(name);
  if (!scene) throw UsageError{"--scene " + name + ": no such scene; the scenes are: " + scene_names()};
  return *scene;
}

std::optional<Tab> parse_tab(const std::string& text) {
  if (text.empty()) return std::nullopt;
  if (text == "timeline") return Tab::timeline;
  if (text == "memory") return Tab::memory;
  if (text == "dilation") return Tab::dilation;
  throw UsageError{"--tab " + text + ": expected timeline, memory or dilation"};
}

// The steps a scene's run has, checked before any window opens.
int scene_steps(const Scene& scene) {
  Model probe;
  Settings settings = scene_settings(scene);
  settings.mode = ModeChoice::analytic;
  if (!probe.apply(settings)) throw Error("scene " + scene.name + " is invalid: " + probe.error());
  return probe.total_steps();
}

void write_regions(const std::filesystem::path& path, const Scene& scene, App& app, int width, int height) {
  nlohmann::json json;
  json["scene"] = scene.name;
  json["step"] = app.playback().step();
  json["devices"] = app.model().devices();
  json["width"] = width;
  json["height"] = height;
  for (const Region& r : app.regions()) json["panels"][r.name] = {r.x, r.y, r.width, r.height};
  std::ofstream out(path);
  out << json.dump(2) << "\n";
  if (!out) throw Error("cannot write " + path.string());
}

// Renders a few frames so the layout settles (ImGui sizes some items from the previous frame), then reads
// the last one back.
void render_still(Platform& platform, App& app) {
  app.model().wait_for_check();
  for (int i = 0; i < 4; ++i) {
    platform.begin_frame(false);
    app.frame(0.0);
    platform.end_frame();
  }
}

// Edge cases a classroom will hit sooner or later: each is applied as if edited, and every bottom tab is
// drawn with the mouse hovering a grid of points (tooltips included). Crashes and ImGui assertions fail it.
int exercise(Platform& platform, App& app, int width, int height, const std::string& out) {
  using Edit = std::function<void(Settings&)>;
  auto shape = [](Settings& s, std::int64_t n, int ring) {
    s.options.config.seq = s.options.config.kv_seq = n;
    s.options.config.ring = ring;
  };
  const std::vector<std::pair<const char*, Edit>> edits = {
      {"one device in the ring", [&](Settings& s) { shape(s, 4096, 1); }},
      {"256 devices, causal", [&](Settings& s) { shape(s, 4096, 256), s.options.config.causal = true; }},
      {"more devices than tokens", [&](Settings& s) { shape(s, 16, 32), s.options.config.causal = true; }},
      {"uneven chunks", [&](Settings& s) { shape(s, 1000, 7), s.options.config.causal = true; }},
      {"flash on one device", [&](Settings& s) { set_scheme_choice(s, SchemeChoice::flash); }},
      {"dense on one device", [&](Settings& s) { set_scheme_choice(s, SchemeChoice::dense); }},
      {"backward, zigzag", [&](Settings& s) {
         shape(s, 1 << 14, 8), s.options.config.causal = true, s.options.config.layout = Layout::zigzag;
         s.options.pass = sim::Pass::backward;
       }},
      {"both passes, replicated, striped", [&](Settings& s) {
         shape(s, 1 << 14, 8), s.options.config.layout = Layout::striped, s.options.pass = sim::Pass::both;
         set_scheme_choice(s, SchemeChoice::ring_replicated);
       }},
      {"window, striped", [&](Settings& s) {
         shape(s, 8192, 8), s.options.config.layout = Layout::striped;
         s.options.config.window_left = 100, s.options.config.window_right = 0;
       }},
      {"dilation, group rule", [&](Settings& s) {
         shape(s, 4096, 4), s.options.config.heads = 6, s.options.config.kv_heads = 2;
         s.options.config.dilation = {{1024, 1}, {4096, 4}};
         s.options.config.offset_rule = OffsetRule::group, s.options.config.combine = Combine::group_mean;
       }},
      {"dilation, ragged, selected rows", [&](Settings& s) {
         shape(s, 1000, 4), s.options.config.dilation = {{300, 1}, {700, 3}};
         s.options.config.segments = SegmentMode::ragged, s.options.send_selected_rows = true;
       }},
      {"MQA, fp32, batch 4, two per node, no overlap", [&](Settings& s) {
         shape(s, 1 << 15, 8), s.options.config.kv_heads = 1, s.options.bytes_per_element = 4;
         s.options.config.batch = 4, s.options.devices_per_node = 2, s.options.overlap = false;
       }},
      {"compute mode", [&](Settings& s) { shape(s, 256, 4), s.mode = ModeChoice::compute; }},
      {"N = 2^30 on 128 devices", [&](Settings& s) { shape(s, std::int64_t{1} << 30, 128), s.options.config.causal = true; }},
      {"invalid: Hkv does not divide H", [&](Settings& s) { s.options.config.heads = 6, s.options.config.kv_heads = 4; }},
  };
  int frames = 0, index = 0;
  if (!out.empty()) std::filesystem::create_directories(out);
  for (const auto& [name, edit] : edits) {
    Settings settings = default_settings();
    edit(settings);
    const bool valid = app.apply_settings(settings);
    std::cout << (valid ? "ok      " : "invalid ") << name << (valid ? "" : ": " + app.model().error()) << "\n";
    for (const Tab tab : {Tab::timeline, Tab::dilation, Tab::memory}) {
      app.set_tab(tab);
      app.playback().jump_to(frames % std::max(app.model().total_steps(), 1));
      for (int i = 0; i < 12; ++i) {
        platform.set_headless_mouse(ImVec2{width * (0.1f + 0.8f * static_cast<float>(i % 4) / 3.0f),
                                           height * (0.15f + 0.7f * static_cast<float>(i / 4) / 2.0f)});
        platform.begin_frame(false);
        app.frame(0.05);
        platform.end_frame();
        ++frames;
      }
    }
    if (!out.empty()) platform.write_png(std::filesystem::path(out) / fmt::format("exercise-{:02}.png", index));
    ++index;
  }
  // Then click around a scene: buttons, checkboxes, combos, sliders, tabs, the timeline (a crude fuzz of the
  // real input path; each click is a press frame, a release frame and a frame to settle).
  app.apply_scene(scenes().front());
  int clicks = 0;
  const std::uint64_t generation = app.model().generation();
  for (int i = 0; i < 48; ++i) {
    const ImVec2 at{width * (0.03f + 0.94f * static_cast<float>((i * 7) % 16) / 15.0f),
                    height * (0.04f + 0.92f * static_cast<float>((i * 5) % 12) / 11.0f)};
    for (const bool pressed : {true, false, false}) {
      platform.set_headless_mouse(at, pressed);
      platform.begin_frame(false);
      app.frame(0.05);
      platform.end_frame();
      ++frames;
    }
    ++clicks;
  }
  if (!out.empty()) platform.write_png(std::filesystem::path(out) / "exercise-clicks.png");
  platform.set_headless_mouse(std::nullopt);
  std::cout << "clicked " << clicks << " points; the settings changed "
            << (app.model().generation() - generation) << " times\n";
  std::cout << "exercised " << edits.size() << " configurations in " << frames << " frames\n";
  return 0;
}

int run_headless(const Flags& flags, int width, int height, std::optional<Tab> tab) {
  Platform platform;
  platform.init({true, width, height, flags.scale});
  App app(platform);
  auto load = [&](const Scene& scene, std::optional<int> step) {
    if (!app.apply_scene(scene, step))
      throw Error("cannot load scene " + scene.name + ": " + app.model().error());
    if (tab) app.set_tab(*tab);
  };

  if (flags.exercise) return exercise(platform, app, width, height, flags.exercise_out);
  if (!flags.all_scenes.empty()) {
    const std::filesystem::path dir = flags.all_scenes;
    std::filesystem::create_directories(dir);
    for (const Scene& scene : scenes()) {
      load(scene, std::nullopt);
      render_still(platform, app);
      platform.write_png(dir / (scene.name + ".png"));
      write_regions(dir / (scene.name + ".json"), scene, app, width, height);
      std::cout << (dir / (scene.name + ".png")).string() << "\n";
    }
    return 0;
  }

  const Scene& scene = parse_scene(flags.scene);
  load(scene, flags.step);
  if (flags.benchmark_frames > 0) {
    render_still(platform, app);
    app.playback().playing = true;
    app.playback().speed = 1.0f;
    std::vector<double> ms;
    double ui_ms = 0;  // building the frame (our code and ImGui), the rest is OpenGL rendering
    double vertices = 0;
    // CPU time of this process (all threads: llvmpipe rasterises in ours) tells the cost apart from the wait
    // for a busy machine's cores.
    auto cpu_ms = [] {
      rusage usage{};
      getrusage(RUSAGE_SELF, &usage);
      return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3;
    };
    const double cpu_begin = cpu_ms();
    auto last = std::chrono::steady_clock::now();
    for (int i = 0; i < flags.benchmark_frames; ++i) {
      const auto begin = std::chrono::steady_clock::now();
      platform.begin_frame(true);
      app.frame(std::chrono::duration<double>(begin - last).count());
      ui_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count();
      platform.end_frame();  // includes glFinish: the frame is rendered
      vertices += ImGui::GetDrawData()->TotalVtxCount;
      last = begin;
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count());
    }
    const double cpu_per_frame = (cpu_ms() - cpu_begin) / static_cast<double>(ms.size());
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
    std::cout << fmt::format(
        "frame time: {} frames at {}x{}, scene {} (P = {}, N = {}), mean {:.2f} ms, median {:.2f} ms, p95 {:.2f} ms, "
        "max {:.2f} ms (of which building the UI {:.2f} ms; {:.0f} vertices); CPU time {:.2f} ms per frame; renderer {}\n",
        ms.size(), width, height, scene.name, app.model().devices(), app.model().config().seq, mean,
        sorted[sorted.size() / 2], sorted[std::min(sorted.size() - 1, sorted.size() * 95 / 100)], sorted.back(),
        ui_ms / static_cast<double>(ms.size()), vertices / static_cast<double>(ms.size()), cpu_per_frame,
        reinterpret_cast<const char*>(glGetString(GL_RENDERER)));
  }
  if (!flags.screenshot.empty()) {
    if (flags.benchmark_frames > 0) load(scene, flags.step);
    render_still(platform, app);
    platform.write_png(flags.screenshot);
    if (!flags.regions.empty()) write_regions(flags.regions, scene, app, width, height);
  }
  return 0;
}

int run_interactive(const Flags& flags, int width, int height, std::optional<Tab> tab) {
  Platform platform;
  platform.init({false, width, height, flags.scale});
  App app(platform);
  if (!flags.scene.empty() || flags.step) app.apply_scene(parse_scene(flags.scene), flags.step);
  if (tab) app.set_tab(*tab);
  auto last = std::chrono::steady_clock::now();
  while (!platform.should_close()) {
    platform.begin_frame(app.animating());
    const auto now = std::chrono::steady_clock::now();
    app.frame(std::min(std::chrono::duration<double>(now - last).count(), 0.1));
    last = now;
    platform.end_frame();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"ringlab-viz: ring attention and dilated attention, interactive (docs/viz.md)"};
  Flags flags;
  int step = -1;
  cli.add_option("--scene", flags.scene, "Teaching scene to open (see --list-scenes)");
  cli.add_option("--step", step, "Ring step to show: 0 … P−1 forward, then backward when the scene runs it")
      ->check(CLI::NonNegativeNumber);
  cli.add_option("--screenshot", flags.screenshot, "Render offscreen and write this PNG (needs an X display, e.g. xvfb-run)");
  cli.add_option("--size", flags.size, "Window or image size WIDTHxHEIGHT")->capture_default_str();
  cli.add_option("--scale", flags.scale, "UI scale (default: the monitor's content scale; 1 headless)")
      ->check(CLI::Range(0.5f, 3.0f));
  cli.add_flag("--list-scenes", flags.list_scenes, "Print one scene name per line and exit");
  cli.add_option("--regions", flags.regions, "With --screenshot: write the panels' pixel rectangles as JSON");
  cli.add_option("--all-scenes", flags.all_scenes, "Render every scene into this directory (NAME.png, NAME.json)");
  cli.add_option("--benchmark-frames", flags.benchmark_frames, "Headless: play the scene for this many frames and print the frame time")
      ->check(CLI::PositiveNumber);
  cli.add_flag("--exercise", flags.exercise, "Headless self-test: edge-case configurations, every tab, hovering the panels");
  cli.add_option("--exercise-out", flags.exercise_out, "With --exercise: write each configuration's last frame here");
  cli.add_option("--tab", flags.tab, "Bottom panel to show: timeline, memory or dilation (default: the scene's)");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return cli.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "ringlab-viz: " << e.what() << "\n(run ringlab-viz --help)\n";
    return 2;
  }
  if (step >= 0) flags.step = step;

  if (flags.list_scenes) {
    for (const Scene& scene : scenes()) std::cout << scene.name << "\n";
    return 0;
  }
  try {
    const auto [width, height] = parse_size(flags.size);
    const std::optional<Tab> tab = parse_tab(flags.tab);
    const Scene& scene = parse_scene(flags.scene);
    if (flags.step) {
      const int steps = scene_steps(scene);
      if (*flags.step >= steps)
        throw UsageError{fmt::format("--step {}: scene {} has steps 0 … {}", *flags.step, scene.name, steps - 1)};
    }
    if (!flags.regions.empty() && flags.screenshot.empty()) throw UsageError{"--regions needs --screenshot"};
    const bool headless = !flags.screenshot.empty() || !flags.all_scenes.empty() || flags.benchmark_frames > 0 || flags.exercise;
    return headless ? run_headless(flags, width, height, tab) : run_interactive(flags, width, height, tab);
  } catch (const UsageError& e) {
    std::cerr << "ringlab-viz: " << e.message << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ringlab-viz: " << e.what() << "\n";
    return 1;
  }
}
