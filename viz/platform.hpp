// The window, the OpenGL context and the ImGui backends. Interactive: a visible, resizable GLFW window that
// follows the monitor's content scale (DPI). Headless: a hidden window whose context renders into an
// offscreen framebuffer of the requested size, read back for PNG screenshots (Xvfb + Mesa in CI).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "theme.hpp"

struct GLFWwindow;

namespace ringlab::viz {

struct PlatformOptions {
  bool headless = false;
  int width = 1280, height = 800;  // window size in screen coordinates (headless: the image in pixels)
  float scale = 0;                 // UI scale; 0 = the monitor's content scale (headless: 1)
};

class Platform {
 public:
  Platform() = default;
  ~Platform();
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

  // Throws ringlab::Error with a message naming what failed (no display, no OpenGL 3.x).
  void init(const PlatformOptions& options);
  bool should_close() const;
  // Waits for input when nothing animates (saves the laptop's battery), then starts an ImGui frame.
  void begin_frame(bool animating);
  void end_frame();  // renders; swaps (interactive) or finishes (headless)

  float scale() const { return scale_ * user_scale_; }
  float user_scale() const { return user_scale_; }
  void set_user_scale(float scale);  // View → UI scale; applied before the next frame
  const Fonts& fonts() const { return fonts_; }

  // Headless: where the mouse is (to exercise hover tooltips in tests); nullopt = no mouse.
  void set_headless_mouse(std::optional<ImVec2> position, bool pressed = false) {
    headless_mouse_ = position;
    headless_pressed_ = pressed;
  }

  // Headless: the last frame as tightly packed RGBA rows, top row first.
  std::vector<std::uint8_t> read_pixels() const;
  void write_png(const std::filesystem::path& path) const;  // throws ringlab::Error

 private:
  void rebuild_fonts();
  PlatformOptions options_;
  GLFWwindow* window_ = nullptr;
  bool imgui_ready_ = false;
  float scale_ = 1, user_scale_ = 1, applied_scale_ = 0;
  Fonts fonts_;
  unsigned framebuffer_ = 0, colorbuffer_ = 0;
  std::optional<ImVec2> headless_mouse_;
  bool headless_pressed_ = false;
};

}  // namespace ringlab::viz
