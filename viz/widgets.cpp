#include "widgets.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>

#include "ringlab/sim/output.hpp"
#include "theme.hpp"

namespace ringlab::viz {

void help_marker(const char* text) {
  ImGui::SameLine();
  ImGui::TextDisabled("(?)");
  if (ImGui::IsItemHovered()) {
    ImGui::BeginTooltip();
    ImGui::PushTextWrapPos(ImGui::GetFontSize() * 30.0f);
    ImGui::TextUnformatted(text);
    ImGui::PopTextWrapPos();
    ImGui::EndTooltip();
  }
}

void item_tooltip(const char* text) {
  if (ImGui::IsItemHovered()) {
    ImGui::BeginTooltip();
    ImGui::PushTextWrapPos(ImGui::GetFontSize() * 30.0f);
    ImGui::TextUnformatted(text);
    ImGui::PopTextWrapPos();
    ImGui::EndTooltip();
  }
}

void swatch(Rgb color, const char* label, bool hatched) {
  const float size = ImGui::GetTextLineHeight() * 0.8f;
  const ImVec2 p = ImGui::GetCursorScreenPos();
  const float y = p.y + (ImGui::GetTextLineHeight() - size) * 0.5f;
  ImDrawList* draw = ImGui::GetWindowDrawList();
  draw->AddRectFilled({p.x, y}, {p.x + size, y + size}, to_u32(hatched ? colors::masked : color), 2.0f);
  if (hatched) hatch(draw, {p.x, y}, {p.x + size, y + size}, to_u32(color), size / 3.0f, 1.5f);
  draw->AddRect({p.x, y}, {p.x + size, y + size}, to_u32(colors::grid), 2.0f);
  ImGui::Dummy({size, ImGui::GetTextLineHeight()});
  ImGui::SameLine(0, ImGui::GetStyle().ItemInnerSpacing.x);
  ImGui::TextUnformatted(label);
}

void hatch(ImDrawList* draw, ImVec2 a, ImVec2 b, ImU32 color, float spacing, float thickness) {
  if (b.x <= a.x || b.y <= a.y || spacing <= 0) return;
  // Lines x + y = c for c on a global grid, so neighbouring hatched rectangles line up; each is clipped to
  // the rectangle here rather than with a clip rectangle (every clip rectangle is a draw call, and draw calls
  // are what software rendering pays most for).
  for (float c = std::ceil((a.x + a.y) / spacing) * spacing; c < b.x + b.y; c += spacing) {
    const float x0 = std::max(a.x, c - b.y), x1 = std::min(b.x, c - a.y);
    if (x1 > x0) draw->AddLine({x0, c - x0}, {x1, c - x1}, color, thickness);
  }
}

void centered_text(ImDrawList* draw, ImFont* font, float size, ImVec2 center, ImU32 color, const char* text) {
  const ImVec2 extent = font->CalcTextSizeA(size, 1e9f, 0.0f, text);
  draw->AddText(font, size, {center.x - extent.x * 0.5f, center.y - extent.y * 0.5f}, color, text);
}

std::string format_count(std::int64_t value) {
  const double v = static_cast<double>(value), a = std::fabs(v);
  if (a < 1e4) return fmt::format("{}", value);
  if (a < 1e6) return fmt::format("{:.1f} k", v / 1e3);
  if (a < 1e9) return fmt::format("{:.2f} M", v / 1e6);
  if (a < 1e12) return fmt::format("{:.2f} G", v / 1e9);
  if (a < 1e15) return fmt::format("{:.2f} T", v / 1e12);
  return fmt::format("{:.2e}", v);
}

std::string format_bytes(std::int64_t bytes) { return sim::format_bytes(bytes); }

std::string format_ns(std::int64_t ns) {
  const double v = static_cast<double>(ns);
  if (ns < 1000) return fmt::format("{} ns", ns);
  if (ns < 1'000'000) return fmt::format("{:.1f} µs", v / 1e3);
  if (ns < 1'000'000'000) return fmt::format("{:.2f} ms", v / 1e6);
  return fmt::format("{:.3f} s", v / 1e9);
}

std::string format_tokens(std::int64_t tokens) {
  const std::string grouped = std::to_string(tokens);
  std::string with_commas;
  for (std::size_t i = 0; i < grouped.size(); ++i) {
    if (i > 0 && (grouped.size() - i) % 3 == 0) with_commas += ',';
    with_commas += grouped[i];
  }
  if (tokens > 0 && std::has_single_bit(static_cast<std::uint64_t>(tokens)) && tokens >= 16)
    return fmt::format("2^{} = {}", std::countr_zero(static_cast<std::uint64_t>(tokens)), with_commas);
  return with_commas;
}

}  // namespace ringlab::viz
