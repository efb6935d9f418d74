#include "memory_panel.hpp"

#include <fmt/format.h>
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "widgets.hpp"

namespace ringlab::viz {
namespace {

using Bytes = std::array<std::int64_t, sim::kCategoryCount>;

std::int64_t stacked(const Bytes& bytes) {
  std::int64_t total = 0;
  for (auto b : bytes) total += b;
  return total;
}

// A one-device reference, or a stand-in when its bytes pass 2^62 (dense scores near N = 2^30).
constexpr std::int64_t kBeyond = std::numeric_limits<std::int64_t>::max();
sim::MemoryBar reference(const std::optional<sim::MemoryBar>& bar, const char* label) {
  if (bar) return *bar;
  sim::MemoryBar beyond;
  beyond.label = label;
  beyond.total = kBeyond;
  return beyond;
}
std::string bytes_text(std::int64_t bytes) { return bytes == kBeyond ? "> 4 EiB" : format_bytes(bytes); }

// "1 KiB", "1 MiB", … for powers of 1024.
std::string power_label(int log2_bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  return fmt::format("{} {}", 1 << (log2_bytes % 10), units[std::clamp(log2_bytes / 10, 0, 6)]);
}

void break_mark(ImDrawList* draw, float x0, float x1, float y, float s) {
  const float h = 3.0f * s;
  draw->AddQuadFilled({x0 - 2, y - h}, {x1 + 2, y - h - 3 * s}, {x1 + 2, y + h - 3 * s}, {x0 - 2, y + h},
                      ImGui::GetColorU32(ImGuiCol_WindowBg));
}

}  // namespace

void MemoryPanel::draw(Context& ctx) {
  Model& model = ctx.model;
  const auto& report = model.report();
  std::int64_t ring_max = 0;
  for (const auto& d : report.devices) ring_max = std::max(ring_max, d.peak_bytes);
  const auto& device = model.settings().options.device;
  ImGui::PushFont(ctx.fonts.bold);
  ImGui::Text("%s per device", format_bytes(ring_max).c_str());
  ImGui::PopFont();
  ImGui::SameLine();
  ImGui::Text("(%s)  ·  one device: flash-style %s, dense with scores %s  ·  %s holds %s",
              to_string(scheme_choice(model.settings())).c_str(), bytes_text(reference(model.flash_memory(), "").total).c_str(),
              bytes_text(reference(model.dense_memory(), "").total).c_str(), device.name.c_str(),
              format_bytes(device.memory_bytes).c_str());
  help_marker("Peak bytes from the simulator's memory ledger: every buffer a device holds, by category. The "
              "one-device references run the same attention on one GPU: flash-style holds Q, K, V, O and LSE; "
              "dense also materialises the N x N score matrix of every head.");
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float gap = 18.0f * ctx.scale;
  const float left = std::floor((avail.x - gap) * 0.47f);
  draw_bars(ctx, origin, {left, avail.y});
  draw_scaling(ctx, {origin.x + left + gap, origin.y}, {avail.x - left - gap, avail.y});
  ImGui::SetCursorScreenPos(origin);
  ImGui::Dummy(avail);
}

void MemoryPanel::draw_bars(Context& ctx, ImVec2 origin, ImVec2 size) {
  Model& model = ctx.model;
  const float s = ctx.scale, line = ImGui::GetTextLineHeight();
  const auto& report = model.report();
  const int P = static_cast<int>(report.devices.size());
  const sim::MemoryBar flash = reference(model.flash_memory(), "dense, flash-style (1 device)");
  const sim::MemoryBar dense = reference(model.dense_memory(), "dense, scores materialised (1 device)");
  const std::int64_t capacity = model.settings().options.device.memory_bytes;
  ImDrawList* draw = ImGui::GetWindowDrawList();

  draw->AddText(ctx.fonts.bold, ImGui::GetFontSize(), origin, to_u32(colors::text), "Peak memory per device");
  const float axis = ImGui::CalcTextSize("1023.9 MiB").x + 8 * s;
  const float legend = line * 2.8f;
  const ImVec2 p0{origin.x + axis, origin.y + line * 1.6f};
  const ImVec2 p1{origin.x + size.x - 4 * s, origin.y + size.y - legend - line * 1.3f};
  if (p1.y - p0.y < 30 || p1.x - p0.x < 30) return;

  std::int64_t ring_max = 1;
  for (const auto& d : report.devices) ring_max = std::max(ring_max, stacked(d.peak_bytes_by_category));
  double top = static_cast<double>(ring_max) * 1.22;
  if (static_cast<double>(flash.total) <= 3.0 * static_cast<double>(ring_max)) top = std::max(top, static_cast<double>(flash.total) * 1.08);
  bool capacity_drawn = static_cast<double>(capacity) <= top * 2.5;
  if (capacity_drawn) top = std::max(top, static_cast<double>(capacity) * 1.06);
  auto to_y = [&](double bytes) { return p1.y - static_cast<float>(bytes / top) * (p1.y - p0.y); };

  // Axis ticks.
  const double raw = top / 4;
  const double magnitude = std::pow(1024.0, std::floor(std::log(raw) / std::log(1024.0)));
  double tick = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0})
    if (raw <= m * magnitude) {
      tick = m * magnitude;
      break;
    }
  for (double b = 0; b <= top; b += tick) {
    const float y = to_y(b);
    draw->AddLine({p0.x, y}, {p1.x, y}, to_u32(colors::grid, 0.35f));
    const std::string text = format_bytes(static_cast<std::int64_t>(b));
    draw->AddText({p0.x - ImGui::CalcTextSize(text.c_str()).x - 5 * s, y - line * 0.5f}, to_u32(colors::text_muted), text.c_str());
  }

  // Bars: the P ring devices, then the two one-device references.
  const float plot = p1.x - p0.x;
  constexpr float kRingShare = 0.62f;  // of the plot width; the two references share the rest
  const float slot = plot * kRingShare / static_cast<float>(P);
  const float bar = slot >= 8 * s ? slot * 0.72f : slot >= 4 ? slot * 0.8f : slot + 1.0f;  // + 1: no seams
  const float ref_slot = plot * (1.0f - kRingShare) * 0.5f, ref_bar = std::min(ref_slot * 0.5f, 40 * s);
  auto slot_center = [&](int index) {  // 0 … P−1 devices, P flash, P + 1 dense
    if (index < P) return p0.x + slot * (static_cast<float>(index) + 0.5f);
    return p0.x + plot * kRingShare + ref_slot * (static_cast<float>(index - P) + 0.5f);
  };
  int off_scale = 0;
  auto draw_stack = [&](int index, const Bytes& bytes, std::int64_t total, float width) {
    const float x0 = slot_center(index) - width * 0.5f, x1 = x0 + width;
    double below = 0;
    for (std::size_t c = 0; c < bytes.size(); ++c) {
      if (bytes[c] == 0) continue;
      const float y0 = to_y(std::min(below + static_cast<double>(bytes[c]), top)), y1 = to_y(std::min(below, top));
      if (y1 > y0) draw->AddRectFilled({x0, y0}, {x1, y1}, to_u32(category_color(static_cast<int>(c))));
      below += static_cast<double>(bytes[c]);
    }
    if (static_cast<double>(total) > top) {  // off the scale: break the bar and print its size
      break_mark(draw, x0, x1, p0.y + 14 * s, s);
      const std::string text = bytes_text(total);
      const float w = ImGui::CalcTextSize(text.c_str()).x;
      const float cx = std::clamp((x0 + x1) * 0.5f - w * 0.5f, p0.x, p1.x - w);
      const float ty = p0.y + 18 * s + line * static_cast<float>(off_scale++);
      draw->AddRectFilled({cx - 3, ty - 1}, {cx + w + 3, ty + line + 1}, IM_COL32(255, 255, 255, 235), 3.0f);
      draw->AddText({cx, ty}, to_u32(colors::exposed), text.c_str());
    }
  };
  for (int p = 0; p < P; ++p)
    draw_stack(p, report.devices[static_cast<std::size_t>(p)].peak_bytes_by_category,
               report.devices[static_cast<std::size_t>(p)].peak_bytes, bar);
  draw_stack(P, flash.bytes, flash.total, ref_bar);
  draw_stack(P + 1, dense.bytes, dense.total, ref_bar);
  draw->AddLine({p0.x, p1.y}, {p1.x, p1.y}, to_u32(colors::grid));
  draw->AddLine({p0.x + plot * kRingShare + 2 * s, p0.y}, {p0.x + plot * kRingShare + 2 * s, p1.y}, to_u32(colors::grid, 0.6f));
  if (capacity_drawn) {
    const float y = to_y(static_cast<double>(capacity));
    for (float x = p0.x; x < p1.x; x += 10 * s) draw->AddLine({x, y}, {std::min(x + 6 * s, p1.x), y}, to_u32(colors::capacity), 2.0f * s);
    const std::string text = fmt::format("{} capacity", model.settings().options.device.name);
    draw->AddText({p0.x + 4 * s, y - line - 1}, to_u32(colors::capacity), text.c_str());
  }

  // Labels under the bars.
  const float ly = p1.y + 3 * s;
  if (P <= 16) {
    for (int p = 0; p < P; ++p) {
      const std::string text = std::to_string(p);
      draw->AddText({slot_center(p) - ImGui::CalcTextSize(text.c_str()).x * 0.5f, ly}, to_u32(device_color(p, P)), text.c_str());
    }
  } else {
    const std::string text = fmt::format("devices 0 … {}", P - 1);
    draw->AddText({p0.x + plot * 0.35f - ImGui::CalcTextSize(text.c_str()).x * 0.5f, ly}, to_u32(colors::text_muted), text.c_str());
  }
  for (auto [index, text] : {std::pair{P, "flash"}, std::pair{P + 1, "dense"}})
    draw->AddText({slot_center(index) - ImGui::CalcTextSize(text).x * 0.5f, ly}, to_u32(colors::text_muted), text);

  // Hover.
  ImGui::SetCursorScreenPos(p0);
  ImGui::InvisibleButton("bars", {p1.x - p0.x, p1.y - p0.y});
  if (ImGui::IsItemHovered()) {
    const float mx = ImGui::GetIO().MousePos.x - p0.x;
    const int index = mx < plot * kRingShare ? static_cast<int>(mx / slot)
                                        : P + 1 + static_cast<int>((mx - plot * kRingShare) / ref_slot);
    const Bytes* bytes = nullptr;
    std::string title;
    std::int64_t total = 0;
    if (index < P) {
      bytes = &report.devices[static_cast<std::size_t>(index)].peak_bytes_by_category;
      total = report.devices[static_cast<std::size_t>(index)].peak_bytes;
      title = fmt::format("device {}", index);
    } else if (index == P + 1) {
      bytes = &flash.bytes, total = flash.total, title = flash.label;
    } else if (index == P + 2) {
      bytes = &dense.bytes, total = dense.total, title = dense.label;
    }
    if (bytes) {
      ImGui::BeginTooltip();
      ImGui::PushFont(ctx.fonts.bold);
      ImGui::Text("%s: peak %s", title.c_str(), bytes_text(total).c_str());
      ImGui::PopFont();
      for (std::size_t c = 0; c < bytes->size(); ++c)
        if ((*bytes)[c] > 0) {
          swatch(category_color(static_cast<int>(c)), fmt::format("{:8}  {}", sim::to_string(sim::kAllCategories[c]),
                                                                   format_bytes((*bytes)[c])).c_str());
        }
      ImGui::TextDisabled("categories peak at different times in a forward + backward run");
      ImGui::EndTooltip();
    }
  }

  // Category legend.
  ImGui::SetCursorScreenPos({origin.x, ly + line + 4 * s});
  const char* names[] = {"Q", "K, V", "K, V receive", "O acc.", "LSE", "scratch", "gradients"};
  float x = origin.x, y = ly + line + 4 * s;
  for (int c = 0; c < static_cast<int>(sim::kCategoryCount); ++c) {
    const float w = ImGui::CalcTextSize(names[c]).x + line * 1.4f;
    if (x + w > origin.x + size.x) x = origin.x, y += line * 1.25f;
    ImGui::SetCursorScreenPos({x, y});
    swatch(category_color(c), names[c]);
    x += w + 8 * s;
  }
  if (!capacity_drawn) {
    ImGui::SetCursorScreenPos({p0.x + 6 * s, p0.y + 2 * s});
    ImGui::TextDisabled("capacity %s: off the scale", format_bytes(capacity).c_str());
  }
}

void MemoryPanel::draw_scaling(Context& ctx, ImVec2 origin, ImVec2 size) {
  Model& model = ctx.model;
  const float s = ctx.scale, line = ImGui::GetTextLineHeight();
  ImDrawList* draw = ImGui::GetWindowDrawList();
  draw->AddText(ctx.fonts.bold, ImGui::GetFontSize(), origin, to_u32(colors::text), "Per-device memory vs N tokens (forward, log-log)");
  const auto& series = model.memory_scaling();
  const std::int64_t capacity = model.settings().options.device.memory_bytes;
  const float axis = ImGui::CalcTextSize("1 MiB ").x + 6 * s;
  const ImVec2 p0{origin.x + axis, origin.y + line * 1.6f};
  const ImVec2 p1{origin.x + size.x - 4 * s, origin.y + size.y - line * 1.5f};
  if (p1.y - p0.y < 40 || p1.x - p0.x < 60) return;

  double lo = 1e300, hi = 1;
  for (const auto& serie : series)
    for (auto b : serie.bytes) lo = std::min(lo, static_cast<double>(b)), hi = std::max(hi, static_cast<double>(b));
  const int y_min = std::max(10, static_cast<int>(std::floor(std::log2(lo) / 10)) * 10);
  const int y_max = std::min(62, static_cast<int>(std::ceil(std::log2(std::max(hi, static_cast<double>(capacity))) / 10)) * 10);
  const int x_min = 10, x_max = 30;
  auto to_x = [&](double log2_n) { return p0.x + static_cast<float>((log2_n - x_min) / (x_max - x_min)) * (p1.x - p0.x); };
  auto to_y = [&](double bytes) {
    const double l = std::clamp(std::log2(std::max(bytes, 1.0)), static_cast<double>(y_min), static_cast<double>(y_max));
    return p1.y - static_cast<float>((l - y_min) / (y_max - y_min)) * (p1.y - p0.y);
  };
  for (int k = y_min; k <= y_max; k += 10) {
    const float y = to_y(std::ldexp(1.0, k));
    draw->AddLine({p0.x, y}, {p1.x, y}, to_u32(colors::grid, 0.45f));
    const std::string text = power_label(k);
    draw->AddText({p0.x - ImGui::CalcTextSize(text.c_str()).x - 4 * s, y - line * 0.5f}, to_u32(colors::text_muted), text.c_str());
  }
  for (int k = x_min; k <= x_max; k += 4) {
    const float x = to_x(k);
    draw->AddLine({x, p0.y}, {x, p1.y}, to_u32(colors::grid, 0.45f));
    const std::string text = fmt::format("2^{}", k);
    const float w = ImGui::CalcTextSize(text.c_str()).x;
    draw->AddText({std::clamp(x - w * 0.5f, p0.x, p1.x - w), p1.y + 2 * s}, to_u32(colors::text_muted), text.c_str());
  }

  // Capacity.
  const float cap_y = to_y(static_cast<double>(capacity));
  for (float x = p0.x; x < p1.x; x += 10 * s) draw->AddLine({x, cap_y}, {std::min(x + 6 * s, p1.x), cap_y}, to_u32(colors::capacity), 2.0f * s);
  const std::string cap_text = fmt::format("{} capacity", model.settings().options.device.name);
  draw->AddText({p1.x - ImGui::CalcTextSize(cap_text.c_str()).x - 4 * s, cap_y - line - 1}, to_u32(colors::capacity), cap_text.c_str());

  // Series: ring P (light → dark blue), flash (green), dense (red).
  const int current_ring = model.config().ring;
  int rings = 0;
  for (const auto& serie : series) rings += serie.ring > 0 ? 1 : 0;
  int ring_index = 0;
  std::vector<std::pair<std::string, ImU32>> legend;
  for (const auto& serie : series) {
    Rgb color{46, 125, 50};
    float thickness = 2.0f * s;
    if (serie.scheme == sim::Scheme::dense) color = {198, 40, 40};
    if (serie.ring > 0) {
      color = mix({144, 190, 230}, {13, 50, 110}, rings > 1 ? static_cast<float>(ring_index) / static_cast<float>(rings - 1) : 1.0f);
      ++ring_index;
      if (serie.ring == current_ring && model.settings().options.scheme == sim::Scheme::ring) thickness = 3.5f * s;
    }
    std::vector<ImVec2> points;
    for (std::size_t i = 0; i < serie.tokens.size(); ++i)
      points.push_back({to_x(std::log2(static_cast<double>(serie.tokens[i]))), to_y(static_cast<double>(serie.bytes[i]))});
    draw->PushClipRect(p0, p1, true);
    draw->AddPolyline(points.data(), static_cast<int>(points.size()), to_u32(color), 0, thickness);
    draw->PopClipRect();
    legend.push_back({serie.ring > 0 ? fmt::format("ring P = {}", serie.ring)
                                     : serie.scheme == sim::Scheme::flash ? "flash, 1 GPU" : "dense + scores, 1 GPU",
                      to_u32(color)});
  }
  // This run.
  std::int64_t here = 0;
  for (const auto& d : model.report().devices) here = std::max(here, d.peak_bytes);
  if (model.settings().options.scheme == sim::Scheme::ring && model.settings().options.pass != sim::Pass::forward)
    here = sim::ring_peak_bytes(model.config(), model.settings().options.bytes_per_element, sim::Pass::forward);
  const ImVec2 dot{to_x(std::log2(static_cast<double>(model.config().seq))), to_y(static_cast<double>(here))};
  draw->AddCircleFilled(dot, 6 * s, to_u32(colors::highlight));
  draw->AddCircle(dot, 6 * s, to_u32(colors::text), 0, 1.5f * s);
  const float label_w = ImGui::CalcTextSize("this run").x;
  const float label_x = dot.x + 8 * s + label_w < p1.x ? dot.x + 8 * s : dot.x - 8 * s - label_w;
  draw->AddRectFilled({label_x - 2, dot.y + 6 * s}, {label_x + label_w + 2, dot.y + 6 * s + line}, IM_COL32(255, 255, 255, 220), 3.0f);
  draw->AddText({label_x, dot.y + 6 * s}, to_u32(colors::text), "this run");
  draw->AddRect(p0, p1, to_u32(colors::grid));

  // Legend, bottom right inside the plot (the empty corner of a log-log plot of growing lines).
  float legend_width = 0;
  for (const auto& entry : legend) legend_width = std::max(legend_width, ImGui::CalcTextSize(entry.first.c_str()).x);
  legend_width += 34 * s;
  const float lx = p0.x + 4 * s;
  float ly = p0.y + 6 * s;
  const float legend_bottom = ly + line * 1.05f * static_cast<float>(legend.size()) + 2 * s;
  draw->AddRectFilled({lx, ly - 3 * s}, {lx + legend_width, legend_bottom}, IM_COL32(255, 255, 255, 225), 4.0f);
  draw->AddRect({lx, ly - 3 * s}, {lx + legend_width, legend_bottom}, to_u32(colors::grid, 0.6f), 4.0f);
  for (const auto& [text, color] : legend) {
    draw->AddLine({lx + 6 * s, ly + line * 0.5f}, {lx + 22 * s, ly + line * 0.5f}, color, 3.0f * s);
    draw->AddText({lx + 27 * s, ly}, to_u32(colors::text), text.c_str());
    ly += line * 1.05f;
  }

  // Hover: the values at the nearest N.
  ImGui::SetCursorScreenPos(p0);
  ImGui::InvisibleButton("scaling", {p1.x - p0.x, p1.y - p0.y});
  if (ImGui::IsItemHovered()) {
    const float mx = ImGui::GetIO().MousePos.x;
    const int k = std::clamp(static_cast<int>(std::lround(x_min + (mx - p0.x) / (p1.x - p0.x) * (x_max - x_min))), x_min, x_max);
    draw->AddLine({to_x(k), p0.y}, {to_x(k), p1.y}, to_u32(colors::text, 0.5f), 1.0f);
    ImGui::BeginTooltip();
    ImGui::PushFont(ctx.fonts.bold);
    ImGui::Text("N = %s", format_tokens(std::int64_t{1} << k).c_str());
    ImGui::PopFont();
    for (std::size_t i = 0; i < series.size(); ++i)
      for (std::size_t j = 0; j < series[i].tokens.size(); ++j)
        if (series[i].tokens[j] == (std::int64_t{1} << k))
          ImGui::Text("%-24s %s", legend[i].first.c_str(), format_bytes(series[i].bytes[j]).c_str());
    ImGui::EndTooltip();
  }
}

}  // namespace ringlab::viz
