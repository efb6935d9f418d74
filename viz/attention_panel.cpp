#include "attention_panel.hpp"

#include <fmt/format.h>
#include <imgui.h>

#include <algorithm>
#include <cmath>

#include "widgets.hpp"

namespace ringlab::viz {
namespace {

constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kDone{120, 138, 160};  // coverage of cells whose devices differ (replicated queries, striped bins)

// Pixel edges of the bins: proportional to their token counts.
std::vector<float> edges(const std::vector<sim::MapBin>& bins, std::int64_t tokens, float origin, float length) {
  std::vector<float> result;
  for (const auto& bin : bins) result.push_back(origin + length * static_cast<float>(bin.begin) / static_cast<float>(tokens));
  result.push_back(origin + length);
  return result;
}

int find_bin(const std::vector<float>& edge, float x) {
  if (x < edge.front() || x >= edge.back()) return -1;
  const auto it = std::upper_bound(edge.begin(), edge.end(), x);
  return static_cast<int>(it - edge.begin()) - 1;
}

std::string bin_text(const sim::MapBin& bin, const char* who) {
  if (bin.device >= 0) return fmt::format("{}  ({} {})", bin.positions.describe(), who, bin.device);
  return fmt::format("{}  (several devices)", bin.positions.describe());
}

}  // namespace

void AttentionPanel::draw(Context& ctx) {
  Model& model = ctx.model;
  const float s = ctx.scale;
  const int P = model.devices();
  const int global = ctx.playback.step();
  const StepRef ref = model.step_ref(global);

  // Controls.
  int choice = order == sim::MapOrder::positions ? 0 : 1;
  ImGui::AlignTextToFramePadding();
  ImGui::TextUnformatted("order");
  ImGui::SameLine();
  bool changed = ImGui::RadioButton("positions", &choice, 0);
  ImGui::SameLine();
  changed |= ImGui::RadioButton("devices", &choice, 1);
  if (changed) order = choice == 0 ? sim::MapOrder::positions : sim::MapOrder::devices;
  help_marker("positions: rows and columns in token order, so the causal mask is a triangle.\ndevices: each "
              "device's queries (rows) and each owner's keys (columns) side by side, so one ring step is one block "
              "per device. Striped layouts mix every device in every position range: use device order.");
  ImGui::SameLine(0, 16 * s);
  ImGui::Checkbox("coverage so far", &coverage);
  help_marker("On: tiles computed at earlier steps stay, faded; the rest still to come is grey. Off: only the "
              "current step.");

  const sim::AttentionMap& map = model.attention_map(order);
  const auto& schedule = model.schedule();
  const std::size_t cells = map.cells();
  if (cached_generation_ != model.generation() || cached_order_ != order || cached_step_ != global ||
      cached_coverage_ != coverage || colors_.size() != cells) {
    cached_generation_ = model.generation();
    cached_order_ = order;
    cached_step_ = global;
    cached_coverage_ = coverage;
    colors_.assign(cells, colors::masked);
    skipped_.assign(cells, false);
    covered_pairs_ = 0;
    for (std::size_t r = 0; r < map.rows.size(); ++r)
      for (std::size_t c = 0; c < map.cols.size(); ++c) {
        const std::size_t cell = map.cell(r, c);
        const sim::CellState state = sim::cell_state(map, schedule, cell, ref.step);
        skipped_[cell] = state.skipped_now;
        covered_pairs_ += state.pairs_before + state.pairs_now;
        const std::int64_t pairs = map.pairs[cell];
        if (pairs == 0) continue;
        const double density = std::min(1.0, static_cast<double>(pairs) / static_cast<double>(std::max<std::int64_t>(map.area[cell], 1)));
        const float strength = static_cast<float>(0.35 + 0.65 * std::sqrt(density));
        if (state.pairs_now > 0) {
          colors_[cell] = mix(kWhite, device_color(state.device_now, P), strength);
        } else if (coverage && state.pairs_before > 0) {
          const int device = map.q_replicated ? -1 : map.rows[r].device;
          const Rgb base = device >= 0 ? device_color(device, P) : kDone;
          colors_[cell] = mix(kWhite, base, 0.12f + 0.3f * strength);
        } else {
          colors_[cell] = mix(kWhite, colors::pending, 0.4f + 0.6f * strength);
        }
      }
  }

  // Layout: the matrix, device strips along the axes, a legend at the right (or below when narrow).
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float line = ImGui::GetTextLineHeight();
  const float strip = 7.0f * s, label = line + 4.0f * s;
  const float legend_width = ImGui::GetFontSize() * 13.0f;
  const bool legend_right = avail.x - legend_width > avail.y * 0.8f;
  const float side = std::max(40.0f, std::min(avail.x - (legend_right ? legend_width : 0) - strip - label,
                                              avail.y - strip - label - (legend_right ? 0 : line * 4.5f)));
  const ImVec2 m0{origin.x + label + strip, origin.y + label + strip};
  const ImVec2 m1{m0.x + side, m0.y + side};
  ImDrawList* draw = ImGui::GetWindowDrawList();
  const auto xs = edges(map.cols, map.tokens, m0.x, side);
  const auto ys = edges(map.rows, map.tokens, m0.y, side);

  draw->AddText({m0.x, origin.y}, to_u32(colors::text_muted), "rows: queries   columns: keys (K/V) →");
  // Axis strips: the device owning each bin (grey where several do).
  for (std::size_t c = 0; c < map.cols.size(); ++c) {
    const int d = map.cols[c].device;
    draw->AddRectFilled({xs[c], m0.y - strip}, {xs[c + 1], m0.y - 1}, to_u32(d >= 0 ? device_color(d, P) : colors::pending));
  }
  for (std::size_t r = 0; r < map.rows.size(); ++r) {
    const int d = map.q_replicated ? -1 : map.rows[r].device;
    draw->AddRectFilled({m0.x - strip, ys[r]}, {m0.x - 1, ys[r + 1]}, to_u32(d >= 0 ? device_color(d, P) : colors::pending));
  }
  // Cells, merged along each row where the colour repeats.
  draw->AddRectFilled(m0, m1, to_u32(colors::masked));
  for (std::size_t r = 0; r < map.rows.size(); ++r) {
    std::size_t c = 0;
    while (c < map.cols.size()) {
      const Rgb color = colors_[map.cell(r, c)];
      std::size_t end = c + 1;
      while (end < map.cols.size() && colors_[map.cell(r, end)] == color) ++end;
      if (!(color == colors::masked)) draw->AddRectFilled({xs[c], ys[r]}, {xs[end], ys[r + 1]}, to_u32(color));
      c = end;
    }
  }
  // Skipped steps: hatch the blocks whose device holds these keys now but has nothing to compute.
  for (std::size_t r = 0; r < map.rows.size(); ++r) {
    std::size_t c = 0;
    while (c < map.cols.size()) {
      if (!skipped_[map.cell(r, c)]) {
        ++c;
        continue;
      }
      std::size_t end = c + 1;
      while (end < map.cols.size() && skipped_[map.cell(r, end)]) ++end;
      hatch(draw, {xs[c], ys[r]}, {xs[end], ys[r + 1]}, to_u32(colors::skipped, 0.7f), 7.0f * s, 1.2f * s);
      c = end;
    }
  }
  // Device boundaries: thin white rules, where they are few enough to read (with many devices the axis strips
  // carry that information, and 250 rules would cost more than the matrix under software rendering).
  std::vector<float> col_rules, row_rules;
  for (std::size_t c = 1; c < map.cols.size(); ++c)
    if (map.cols[c].device != map.cols[c - 1].device && map.cols[c].device >= 0 && map.cols[c - 1].device >= 0)
      col_rules.push_back(std::floor(xs[c]));
  if (!map.q_replicated)
    for (std::size_t r = 1; r < map.rows.size(); ++r)
      if (map.rows[r].device != map.rows[r - 1].device && map.rows[r].device >= 0 && map.rows[r - 1].device >= 0)
        row_rules.push_back(std::floor(ys[r]));
  if (col_rules.size() + row_rules.size() <= 64) {
    for (float x : col_rules) draw->AddRectFilled({x, m0.y}, {x + 1, m1.y}, IM_COL32(255, 255, 255, 200));
    for (float y : row_rules) draw->AddRectFilled({m0.x, y}, {m1.x, y + 1}, IM_COL32(255, 255, 255, 200));
  }
  draw->AddRect({m0.x - 1, m0.y - 1}, {m1.x + 1, m1.y + 1}, to_u32(colors::grid));

  // Hover.
  ImGui::SetCursorScreenPos(m0);
  ImGui::InvisibleButton("matrix", {side, side});
  if (ImGui::IsItemHovered()) {
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    const int c = find_bin(xs, mouse.x), r = find_bin(ys, mouse.y);
    if (r >= 0 && c >= 0) {
      const std::size_t cell = map.cell(static_cast<std::size_t>(r), static_cast<std::size_t>(c));
      const sim::CellState state = sim::cell_state(map, schedule, cell, ref.step);
      draw->AddRect({xs[static_cast<std::size_t>(c)], ys[static_cast<std::size_t>(r)]},
                    {xs[static_cast<std::size_t>(c) + 1], ys[static_cast<std::size_t>(r) + 1]}, to_u32(colors::text), 0, 0, 2.0f);
      ImGui::BeginTooltip();
      ImGui::Text("queries %s", bin_text(map.rows[static_cast<std::size_t>(r)], map.q_replicated ? "every device" : "device").c_str());
      ImGui::Text("keys    %s", bin_text(map.cols[static_cast<std::size_t>(c)], "owner").c_str());
      ImGui::Text("allowed pairs: %s of %s (heads x patterns)", format_count(map.pairs[cell]).c_str(),
                  format_count(map.area[cell]).c_str());
      const char* pass = ref.pass == 0 ? "forward" : "backward";
      if (state.skipped_now)
        ImGui::TextColored(to_vec4(colors::skipped), "%s step %d: device %d holds these keys but skips the step", pass,
                           ref.step + 1, state.device_now);
      else if (state.pairs_now > 0)
        ImGui::Text("%s step %d: device %d computes %s pairs here%s", pass, ref.step + 1, state.device_now,
                    format_count(state.pairs_now).c_str(),
                    state.devices_now > 1 ? fmt::format(" (with {} other devices)", state.devices_now - 1).c_str() : "");
      else if (map.pairs[cell] == 0)
        ImGui::TextUnformatted("masked: no pair to compute");
      else
        ImGui::Text("%s step %d: not computed at this step", pass, ref.step + 1);
      if (map.pairs[cell] > 0)
        ImGui::Text("computed so far: %.0f%%", 100.0 * static_cast<double>(state.pairs_before + state.pairs_now) /
                                                   static_cast<double>(map.pairs[cell]));
      ImGui::EndTooltip();
    }
  }

  // Legend and numbers.
  const float lx = legend_right ? m1.x + 14.0f * s : origin.x;
  const float ly = legend_right ? m0.y : m1.y + 8.0f * s;
  ImGui::SetCursorScreenPos({lx, ly});
  ImGui::BeginGroup();
  ImGui::PushTextWrapPos(legend_right ? lx - ImGui::GetWindowPos().x + legend_width - 8.0f * s : 0.0f);
  ImGui::PushFont(ctx.fonts.bold);
  ImGui::Text("%s step %d of %d", ref.pass == 0 ? "forward" : "backward", ref.step + 1, P);
  ImGui::PopFont();
  const double now_share = model.total_pairs() > 0 ? 100.0 * static_cast<double>(model.pairs_at(global)) /
                                                         static_cast<double>(model.total_pairs())
                                                   : 0.0;
  ImGui::Text("this step: %.0f%% of the work", now_share);
  // Work so far: every (device, step) pair count up to now, over the run's total (P x the matrix with
  // replicated queries).
  ImGui::Text("work done so far: %.0f%%", model.total_pairs() > 0 ? 100.0 * static_cast<double>(covered_pairs_) /
                                                                          static_cast<double>(model.total_pairs())
                                                                    : 0.0);
  ImGui::Spacing();
  const Rgb now_color = device_color(ctx.playback.step() % std::max(P, 1), P);
  swatch(now_color, "now (device colour)");
  swatch(mix(kWhite, now_color, 0.42f), "at an earlier step");
  swatch(colors::pending, "at a later step");
  swatch(colors::masked, "masked: no pair");
  swatch(colors::skipped, "skipped step", true);
  ImGui::TextDisabled("paler tile = fewer allowed pairs");
  if (map.coarsened) ImGui::TextDisabled("grid coarsened: every position range mixes many devices");
  ImGui::PopTextWrapPos();
  ImGui::EndGroup();
}

}  // namespace ringlab::viz
