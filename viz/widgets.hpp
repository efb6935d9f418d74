// Small shared pieces: the HelpMarker of the ImGui demo, legend swatches, hatching, number formatting.
#pragma once

#include <imgui.h>

#include <cstdint>
#include <string>

#include "palette.hpp"

namespace ringlab::viz {

// A greyed "(?)" on the same line that explains the control before it when hovered.
void help_marker(const char* text);
// A tooltip on the item just drawn (for buttons and plots, where a "(?)" would be in the way).
void item_tooltip(const char* text);
// A coloured square and a label, on one line.
void swatch(Rgb color, const char* label, bool hatched = false);
// Diagonal lines over [a, b], clipped to it.
void hatch(ImDrawList* draw, ImVec2 a, ImVec2 b, ImU32 color, float spacing, float thickness);
// Text centred on `center`.
void centered_text(ImDrawList* draw, ImFont* font, float size, ImVec2 center, ImU32 color, const char* text);

// 1234567 → "1.23 M"; 1536 bytes → "1.50 KiB" (the simulator's format_bytes); 1500000 ns → "1.50 ms".
std::string format_count(std::int64_t value);
std::string format_bytes(std::int64_t bytes);
std::string format_ns(std::int64_t ns);
std::string format_tokens(std::int64_t tokens);  // 1048576 → "2^20 = 1,048,576"

}  // namespace ringlab::viz
