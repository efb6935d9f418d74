#include "dilation_panel.hpp"

#include <fmt/format.h>
#include <imgui.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <optional>

#include "widgets.hpp"

namespace ringlab::viz {
namespace {

constexpr Rgb kWhite{255, 255, 255};

std::string pattern_text(const DilationPattern& p) { return fmt::format("{}:{}", p.segment_length, p.rate); }

}  // namespace

void DilationPanel::draw(Context& ctx) {
  Model& model = ctx.model;
  const auto& config = model.config();
  if (!config.dilated()) {
    ImGui::TextWrapped("No dilation patterns: every head attends with the plain mask (causal / window). LongNet's "
                       "dilated attention splits the sequence into segments of w tokens and, inside each, keeps only "
                       "every r-th token, with several (w, r) patterns per head.");
    if (ImGui::Button("Try three LongNet patterns")) {
      auto& c = ctx.edit.options.config;
      const std::int64_t w = std::max<std::int64_t>(c.seq / 8, 1);
      c.dilation = {{w, 1}, {std::min(2 * w, c.seq), 2}, {std::min(4 * w, c.seq), 4}};
      c.segments = SegmentMode::ragged;
      ctx.edited = true;
    }
    item_tooltip("Adds patterns (N/8 : 1), (N/4 : 2), (N/2 : 4): dense nearby, sparser further away");
    return;
  }
  std::int64_t widest = 1;
  for (const auto& p : config.dilation) widest = std::max(widest, p.segment_length);
  const std::int64_t automatic = std::min<std::int64_t>(config.seq, std::clamp<std::int64_t>(2 * widest, 64, 256));
  std::int64_t shown = window > 0 ? std::min(window, config.seq) : automatic;

  // Header: the work dilation saves, the window.
  const std::int64_t plain = model.undilated_pairs(), pairs = model.total_pairs();
  ImGui::PushFont(ctx.fonts.bold);
  ImGui::Text("%s score entries", format_count(pairs).c_str());
  ImGui::PopFont();
  ImGui::SameLine();
  ImGui::Text("= %.1f%% of the same attention without dilation (%s); %lld of %d ring steps skipped",
              plain > 0 ? 100.0 * static_cast<double>(pairs) / static_cast<double>(plain) : 0.0,
              format_count(plain).c_str(), static_cast<long long>(model.report().skipped_steps),
              model.devices() * model.devices());
  help_marker("Score entries summed over heads and the patterns each head runs (one batch element). A ring step "
              "is skipped when no head and pattern has a pair in it.");
  int exponent = static_cast<int>(std::bit_width(static_cast<std::uint64_t>(shown)) - 1);
  const int max_exponent = static_cast<int>(std::bit_width(static_cast<std::uint64_t>(config.seq)) - 1);
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 12);
  const std::string window_text = fmt::format("positions 0 … {}", shown - 1);
  if (ImGui::SliderInt("window", &exponent, 3, std::max(3, max_exponent), window_text.c_str(), ImGuiSliderFlags_AlwaysClamp))
    window = std::min<std::int64_t>(std::int64_t{1} << exponent, config.seq), shown = window;
  help_marker("The range of positions drawn below (the first tokens of the sequence). Small windows show single "
              "tokens; large ones show the segments.");
  ImGui::SameLine(0, 16 * ctx.scale);
  int h = std::clamp(head, 0, static_cast<int>(config.heads) - 1);
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
  if (ImGui::SliderInt("head", &h, 0, static_cast<int>(config.heads) - 1, "head %d", ImGuiSliderFlags_AlwaysClamp)) head = h;
  help_marker("Whose mask is drawn in the middle.");
  head = h;

  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float gap = 16 * ctx.scale;
  const float first = std::floor(avail.x * 0.40f), second = std::min(std::floor(avail.x * 0.30f), avail.y);
  draw_selection(ctx, origin, {first, avail.y}, shown);
  draw_mask(ctx, {origin.x + first + gap, origin.y}, {second, avail.y}, shown);
  draw_assignment(ctx, {origin.x + first + second + 2 * gap, origin.y}, {avail.x - first - second - 2 * gap, avail.y});
  ImGui::SetCursorScreenPos(origin);
  ImGui::Dummy(avail);
}

void DilationPanel::draw_selection(Context& ctx, ImVec2 origin, ImVec2 size, std::int64_t shown) {
  Model& model = ctx.model;
  const auto& config = model.config();
  const float s = ctx.scale, line = ImGui::GetTextLineHeight();
  ImDrawList* draw = ImGui::GetWindowDrawList();
  draw->AddText(ctx.fonts.bold, ImGui::GetFontSize(), origin, to_u32(colors::text), "Selected positions (head, pattern)");
  const auto& heads = model.head_assignments();
  const float label = ImGui::CalcTextSize("h00 8192:4 o=3 ").x;
  const float x0 = origin.x + label, x1 = origin.x + size.x - 4 * s;
  const float row = std::max(line * 0.95f, 8.0f);
  float y = origin.y + line * 1.5f;
  const float bottom = origin.y + size.y;
  const int bins = std::max(1, static_cast<int>(std::min<std::int64_t>(shown, static_cast<std::int64_t>(x1 - x0))));
  int shown_heads = 0;
  for (const auto& assignment : heads) {
    const float needed = row * static_cast<float>(assignment.patterns.size()) + 4 * s;
    if (y + needed > bottom - line) break;
    for (std::size_t i = 0; i < assignment.patterns.size(); ++i) {
      const int pattern = assignment.patterns[i];
      const auto& select = assignment.selects[i];
      const Rgb color = pattern_color(pattern);
      const std::string text = fmt::format("h{} {} o={}", assignment.head,
                                           pattern_text(config.dilation[static_cast<std::size_t>(pattern)]), assignment.offsets[i]);
      draw->AddText({origin.x, y + (row - line) * 0.5f}, to_u32(color), text.c_str());
      const auto strip = sim::selection_strip(select, 0, shown, bins);
      const float bw = (x1 - x0) / static_cast<float>(bins);
      draw->AddRectFilled({x0, y + 1}, {x1, y + row - 1}, to_u32(colors::masked));
      for (int b = 0; b < bins;) {  // runs of equal share in one rectangle (wide bins keep a 1-pixel gap)
        const float share = strip[static_cast<std::size_t>(b)];
        int end = b + 1;
        while (bw <= 3 && end < bins && strip[static_cast<std::size_t>(end)] == share) ++end;
        if (share > 0)
          draw->AddRectFilled({x0 + bw * static_cast<float>(b), y + 1},
                              {x0 + bw * static_cast<float>(end) - (bw > 3 ? 1.0f : 0.0f), y + row - 1},
                              to_u32(mix(kWhite, color, 0.3f + 0.7f * share)));
        b = end;
      }
      // Segment boundaries of this pattern.
      const double per_token = (x1 - x0) / static_cast<double>(shown);
      if (select.segment_length * per_token >= 4)
        for (std::int64_t t = select.segment_length; t < shown; t += select.segment_length) {
          const float x = x0 + static_cast<float>(static_cast<double>(t) * per_token);
          draw->AddLine({x, y - 1}, {x, y + row + 1}, to_u32(colors::text), 1.5f * s);
        }
      y += row;
    }
    draw->AddLine({origin.x, y + 2 * s}, {x1, y + 2 * s}, to_u32(colors::grid, 0.5f));
    y += 4 * s;
    ++shown_heads;
  }
  const std::string note = shown_heads < static_cast<int>(heads.size())
                               ? fmt::format("heads 0 … {} of {} shown; black ticks: segment ends", shown_heads - 1, heads.size())
                               : std::string("black ticks: segment ends");
  draw->AddText({origin.x, std::min(y + 2 * s, bottom - line)}, to_u32(colors::text_muted), note.c_str());
}

void DilationPanel::draw_mask(Context& ctx, ImVec2 origin, ImVec2 size, std::int64_t shown) {
  Model& model = ctx.model;
  const auto& config = model.config();
  const float s = ctx.scale, line = ImGui::GetTextLineHeight();
  ImDrawList* draw = ImGui::GetWindowDrawList();
  const std::string title = fmt::format("Mask of head {}", head);
  draw->AddText(ctx.fonts.bold, ImGui::GetFontSize(), origin, to_u32(colors::text), title.c_str());
  const float side = std::min(size.x, size.y - line * 4.2f);
  if (side < 30) return;
  const int bins = static_cast<int>(std::min<std::int64_t>({shown, 128, static_cast<std::int64_t>(side)}));
  const sim::HeadMask& mask = model.head_mask(head, 0, shown, bins);
  const ImVec2 m0{origin.x, origin.y + line * 1.5f};
  const float cell = side / static_cast<float>(mask.bins);
  draw->AddRectFilled(m0, {m0.x + side, m0.y + side}, to_u32(colors::masked));
  // The colour of the patterns that select a tile's pairs, darker when several do; runs of one colour along a
  // row are one rectangle.
  auto tile_color = [&](std::size_t index) -> std::optional<Rgb> {
    const float m = mask.multiplicity[index];
    if (m <= 0) return std::nullopt;
    float rr = 0, gg = 0, bb = 0;
    for (int p = 0; p < mask.patterns; ++p) {
      const float share = mask.by_pattern[index * static_cast<std::size_t>(mask.patterns) + static_cast<std::size_t>(p)] / m;
      const Rgb color = pattern_color(p);
      rr += share * color.r, gg += share * color.g, bb += share * color.b;
    }
    const Rgb color{static_cast<std::uint8_t>(rr), static_cast<std::uint8_t>(gg), static_cast<std::uint8_t>(bb)};
    return m <= 1.0f ? mix(kWhite, color, 0.3f + 0.55f * m) : mix(color, {20, 20, 30}, std::min(0.6f, 0.3f * (m - 1.0f)));
  };
  for (int r = 0; r < mask.bins; ++r) {
    const std::size_t row = static_cast<std::size_t>(r) * static_cast<std::size_t>(mask.bins);
    for (int c = 0; c < mask.bins;) {
      const auto color = tile_color(row + static_cast<std::size_t>(c));
      int end = c + 1;
      while (end < mask.bins && tile_color(row + static_cast<std::size_t>(end)) == color) ++end;
      if (color)
        draw->AddRectFilled({m0.x + cell * static_cast<float>(c), m0.y + cell * static_cast<float>(r)},
                            {m0.x + cell * static_cast<float>(end), m0.y + cell * static_cast<float>(r + 1)}, to_u32(*color));
      c = end;
    }
  }
  draw->AddRect({m0.x - 1, m0.y - 1}, {m0.x + side + 1, m0.y + side + 1}, to_u32(colors::grid));
  ImGui::SetCursorScreenPos(m0);
  ImGui::InvisibleButton("mask", {side, side});
  if (ImGui::IsItemHovered()) {
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    const int c = std::clamp(static_cast<int>((mouse.x - m0.x) / cell), 0, mask.bins - 1);
    const int r = std::clamp(static_cast<int>((mouse.y - m0.y) / cell), 0, mask.bins - 1);
    const std::size_t index = static_cast<std::size_t>(r) * static_cast<std::size_t>(mask.bins) + static_cast<std::size_t>(c);
    const std::int64_t q0 = r * shown / mask.bins, q1 = (r + 1) * shown / mask.bins;
    const std::int64_t k0 = c * shown / mask.bins, k1 = (c + 1) * shown / mask.bins;
    ImGui::BeginTooltip();
    ImGui::Text("queries [%lld, %lld), keys [%lld, %lld)", static_cast<long long>(q0), static_cast<long long>(q1),
                static_cast<long long>(k0), static_cast<long long>(k1));
    ImGui::Text("multiplicity %.2f (mean over the tile)", mask.multiplicity[index]);
    for (int p = 0; p < mask.patterns; ++p) {
      const float share = mask.by_pattern[index * static_cast<std::size_t>(mask.patterns) + static_cast<std::size_t>(p)];
      if (share > 0)
        ImGui::TextColored(to_vec4(pattern_color(p)), "pattern %s: %.2f", pattern_text(config.dilation[static_cast<std::size_t>(p)]).c_str(), share);
    }
    ImGui::EndTooltip();
  }
  ImGui::SetCursorScreenPos({origin.x, m0.y + side + 4 * s});
  ImGui::BeginGroup();
  ImGui::PushTextWrapPos(origin.x - ImGui::GetWindowPos().x + size.x);
  if (config.combine == Combine::lse && mask.max_multiplicity > 1.0f)
    ImGui::TextWrapped("darker: selected by up to %d patterns (lse counts the pair once per pattern)",
                       static_cast<int>(std::ceil(mask.max_multiplicity - 1e-3f)));
  else
    ImGui::TextWrapped("each pair counted once; colour: the pattern that selects it");
  ImGui::PopTextWrapPos();
  ImGui::EndGroup();
}

void DilationPanel::draw_assignment(Context& ctx, ImVec2 origin, ImVec2 size) {
  Model& model = ctx.model;
  const auto& config = model.config();
  ImGui::SetCursorScreenPos(origin);
  ImGui::BeginGroup();
  ImGui::PushFont(ctx.fonts.bold);
  ImGui::TextUnformatted("Heads → patterns");
  ImGui::PopFont();
  help_marker("For each head, the offset o it uses in each pattern it runs (offset rule) — or a dash when it does "
              "not run the pattern (offset rule group). Heads sharing a K/V head (GQA) read the same keys.");
  const auto& heads = model.head_assignments();
  const int columns = 2 + static_cast<int>(config.dilation.size());
  const ImGuiTableFlags flags = ImGuiTableFlags_BordersInnerH | ImGuiTableFlags_RowBg | ImGuiTableFlags_ScrollY |
                                ImGuiTableFlags_SizingStretchSame;
  const float height = size.y - ImGui::GetTextLineHeightWithSpacing() * 2.6f;
  if (height > 40 && ImGui::BeginTable("heads", columns, flags, {size.x, height})) {
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("head");
    ImGui::TableSetupColumn("K/V");
    for (const auto& p : config.dilation) ImGui::TableSetupColumn(pattern_text(p).c_str());
    ImGui::TableHeadersRow();
    for (const auto& assignment : heads) {
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      if (assignment.head == head) ImGui::TableSetBgColor(ImGuiTableBgTarget_RowBg1, to_u32(colors::highlight, 0.35f));
      ImGui::Text("%d", assignment.head);
      ImGui::TableNextColumn();
      ImGui::Text("%d", assignment.kv_head);
      for (std::size_t p = 0; p < config.dilation.size(); ++p) {
        ImGui::TableNextColumn();
        const auto it = std::find(assignment.patterns.begin(), assignment.patterns.end(), static_cast<int>(p));
        if (it == assignment.patterns.end())
          ImGui::TextDisabled("–");
        else
          ImGui::TextColored(to_vec4(pattern_color(static_cast<int>(p))), "o=%lld",
                             static_cast<long long>(assignment.offsets[static_cast<std::size_t>(it - assignment.patterns.begin())]));
      }
    }
    ImGui::EndTable();
  }
  ImGui::TextDisabled("rule %s, combine %s", to_string(config.offset_rule).c_str(), to_string(config.combine).c_str());
  ImGui::EndGroup();
}

}  // namespace ringlab::viz
