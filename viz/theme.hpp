// Look and feel: a light theme that projects well in a classroom, DejaVu Sans when the system has it, and
// every size multiplied by the UI scale (the monitor's content scale × the user's choice in View).
#pragma once

#include <imgui.h>

#include "palette.hpp"

namespace ringlab::viz {

struct Fonts {
  ImFont* regular = nullptr;
  ImFont* bold = nullptr;
  ImFont* large = nullptr;  // headings and the ring's centre text
  bool system_font = false;  // false: DejaVu Sans not found, ImGui's built-in font is used
};

// Rebuilds the font atlas at `scale` (call before the renderer uploads it) and the style.
Fonts load_fonts(float scale);
void apply_style(float scale);

inline ImU32 to_u32(Rgb c, float alpha = 1.0f) {
  return IM_COL32(c.r, c.g, c.b, static_cast<int>(alpha * 255.0f + 0.5f));
}
inline ImVec4 to_vec4(Rgb c, float alpha = 1.0f) { return {c.r / 255.0f, c.g / 255.0f, c.b / 255.0f, alpha}; }
// Black or white, whichever reads better on `background`.
Rgb text_on(Rgb background);

}  // namespace ringlab::viz
