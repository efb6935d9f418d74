#include "ring_panel.hpp"

#include <fmt/format.h>
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "widgets.hpp"

namespace ringlab::viz {
namespace {

constexpr float kPi = std::numbers::pi_v<float>;

ImVec2 on_circle(ImVec2 center, float radius, float angle) {
  return {center.x + radius * std::cos(angle), center.y + radius * std::sin(angle)};
}

// Device p sits at 12 o'clock for p = 0 and the ring runs clockwise.
float device_angle(float p, int devices) { return -kPi / 2 + 2 * kPi * p / static_cast<float>(devices); }

float smoothstep(float t) { return t * t * (3 - 2 * t); }

void dashed_arc(ImDrawList* draw, ImVec2 center, float radius, float a0, float a1, ImU32 color, float thickness,
                float dash) {
  const float length = std::fabs(a1 - a0) * radius;
  const int dashes = std::max(1, static_cast<int>(length / (2 * dash)));
  for (int i = 0; i < dashes; ++i) {
    const float t0 = static_cast<float>(2 * i) / static_cast<float>(2 * dashes);
    const float t1 = static_cast<float>(2 * i + 1) / static_cast<float>(2 * dashes);
    draw->PathArcTo(center, radius, a0 + (a1 - a0) * t0, a0 + (a1 - a0) * t1, 8);
    draw->PathStroke(color, 0, thickness);
  }
}

}  // namespace

void RingPanel::draw(Context& ctx) {
  Model& model = ctx.model;
  Playback& playback = ctx.playback;
  playback.draw_controls(model);

  const float s = ctx.scale;
  const int P = model.devices();
  const int global = playback.step();
  const auto& snapshots = model.snapshots();
  if (snapshots.empty()) return;
  const sim::StepSnapshot& snap = snapshots[static_cast<std::size_t>(global)];
  const bool last_of_pass = snap.step == P - 1;
  // After the last forward step nothing is sent; after the last backward step dK, dV go home.
  // A local_only schedule (LongNet segments inside the chunks) moves nothing: every step after 0 is skipped.
  const bool local_only = model.schedule().local_only;
  const bool moves = playback.travelling() && P > 1 && !local_only && (!last_of_pass || snap.pass == 1);
  const float travel = moves ? smoothstep(playback.travel()) : 0.0f;

  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  // The legend and the speed controls share one row when they fit, else take two.
  const int legend_items = P > model.settings().options.devices_per_node ? 4 : 3;
  const float icon = ImGui::GetTextLineHeight() * 0.8f + 16 * ctx.scale;
  const float legend_width = ImGui::CalcTextSize("deviceK/V chunkskipped").x + 3 * icon +
                             (legend_items == 4 ? ImGui::CalcTextSize("inter-node").x + icon : 0.0f);
  const float controls = ImGui::GetFontSize() * 6.5f + ImGui::CalcTextSize("loop").x + ImGui::GetFrameHeight() * 1.6f;
  const int legend_rows = legend_width + controls <= avail.x ? 1 : 2;
  const float legend_height = ImGui::GetFrameHeightWithSpacing() * static_cast<float>(legend_rows) + 2.0f;
  const ImVec2 canvas{std::max(avail.x, 50.0f), std::max(avail.y - legend_height, 50.0f)};
  ImGui::InvisibleButton("ring", canvas);
  const bool hovered = ImGui::IsItemHovered();
  ImDrawList* draw = ImGui::GetWindowDrawList();
  const ImVec2 center{origin.x + canvas.x * 0.5f, origin.y + canvas.y * 0.5f};
  // Devices on a circle of radius R, each with the chunk it holds just outside it.
  const int per_node = model.settings().options.devices_per_node;
  const bool multi_node = P > per_node;
  const float half = std::min(canvas.x, canvas.y) * 0.5f;
  const float estimate = half - 36.0f * s;
  const float node = std::clamp(estimate * std::sin(kPi / std::max(P, 2)) * 0.62f, 3.5f * s, 17.0f * s);
  const float chunk = std::clamp(node * 1.15f, 4.0f * s, 19.0f * s);
  const float outside = node + 3.0f * s + chunk * 1.1f + (multi_node ? ImGui::GetTextLineHeight() * 1.2f + 4 * s : 2 * s);
  const float R = std::max(half - outside, 20.0f * s);
  const float chunk_radius = R + node + 3.0f * s + chunk * 0.55f;

  // Links p → p+1: grey arcs, dashed and orange across nodes, highlighted while the chunks travel.
  if (P > 1) {
    const float gap = (node + 3.0f * s) / R;
    for (int p = 0; p < P; ++p) {
      const int q = (p + 1) % P;
      const float a0 = device_angle(static_cast<float>(p), P) + gap;
      const float a1 = device_angle(static_cast<float>(p + 1), P) - gap;
      if (a1 <= a0) continue;
      const bool inter = multi_node && p / per_node != q / per_node;
      const ImU32 color = inter ? IM_COL32(214, 120, 30, 255) : to_u32(colors::grid);
      if (moves) {
        draw->PathArcTo(center, R, a0, a0 + (a1 - a0) * travel, 16);
        draw->PathStroke(to_u32(device_color(snap.kv_owner[static_cast<std::size_t>(p)], P), 0.45f), 0,
                         std::max(3.0f * s, node * 0.5f));
      }
      if (inter)
        dashed_arc(draw, center, R, a0, a1, color, 2.5f * s, 4.0f * s);
      else {
        draw->PathArcTo(center, R, a0, a1, 16);
        draw->PathStroke(color, 0, 1.6f * s);
      }
      if (P <= 32) {  // an arrowhead in the middle of the link: the direction of the ring
        const float am = (a0 + a1) * 0.5f;
        const ImVec2 tip = on_circle(center, R, am + 0.6f * node / R);
        const ImVec2 back = on_circle(center, R, am - 0.6f * node / R);
        const ImVec2 dir{tip.x - back.x, tip.y - back.y};
        const ImVec2 normal{-dir.y * 0.55f, dir.x * 0.55f};
        draw->AddTriangleFilled(tip, {back.x + normal.x, back.y + normal.y}, {back.x - normal.x, back.y - normal.y},
                                color);
      }
    }
  }

  // Node labels ("node 0", "node 1") when the ring spans several nodes.
  if (multi_node && P / per_node <= 8) {
    for (int n = 0; n * per_node < P; ++n) {
      const float mid = device_angle(n * per_node + (std::min(P, (n + 1) * per_node) - n * per_node - 1) * 0.5f, P);
      const std::string text = fmt::format("node {}", n);
      const ImVec2 extent = ImGui::CalcTextSize(text.c_str());
      const float reach = std::fabs(std::cos(mid)) * extent.x * 0.5f + std::fabs(std::sin(mid)) * extent.y * 0.5f;
      const ImVec2 at = on_circle(center, chunk_radius + chunk * 0.6f + 3 * s + reach, mid);
      centered_text(draw, ctx.fonts.regular, ImGui::GetFontSize() * 0.85f, at, IM_COL32(214, 120, 30, 255),
                    text.c_str());
    }
  }

  // Devices.
  int hovered_device = -1, hovered_chunk = -1;
  const ImVec2 mouse = ImGui::GetIO().MousePos;
  for (int p = 0; p < P; ++p) {
    const ImVec2 at = on_circle(center, R, device_angle(static_cast<float>(p), P));
    const Rgb color = device_color(p, P);
    const bool skipped = snap.skipped[static_cast<std::size_t>(p)];
    if (skipped) {
      draw->AddCircleFilled(at, node, IM_COL32(255, 255, 255, 255));
      draw->AddCircle(at, node, to_u32(color), 0, std::max(2.0f, node * 0.28f));
    } else {
      draw->AddCircleFilled(at, node, to_u32(color));
      if (!playback.travelling() && P <= 24) {  // computing: a progress arc around the node
        const float done = std::clamp(playback.phase() / Playback::kComputePhase, 0.0f, 1.0f);
        draw->PathArcTo(at, node + 3.0f * s, -kPi / 2, -kPi / 2 + 2 * kPi * done, 24);
        draw->PathStroke(to_u32(colors::text, 0.8f), 0, 2.2f * s);
      }
    }
    if (node >= 7.5f * s) {
      const std::string label = std::to_string(p);
      centered_text(draw, ctx.fonts.bold, std::min(node * 1.05f, ImGui::GetFontSize()), at,
                    to_u32(skipped ? color : text_on(color)), label.c_str());
    }
    if (skipped && P <= 16) {
      const ImVec2 out = on_circle(center, R - node - 12.0f * s, device_angle(static_cast<float>(p), P));
      centered_text(draw, ctx.fonts.regular, ImGui::GetFontSize() * 0.85f, out, to_u32(colors::skipped), "skip");
    }
    const float dx = mouse.x - at.x, dy = mouse.y - at.y;
    if (hovered && dx * dx + dy * dy <= (node + 2) * (node + 2)) hovered_device = p;
  }

  // Chunks, coloured by owner, at their holder (or on their way to the next device).
  for (int p = 0; p < P; ++p) {
    const int owner = local_only ? p : snap.kv_owner[static_cast<std::size_t>(p)];  // local_only: chunks stay home
    const float angle = device_angle(static_cast<float>(p) + travel, P);
    const ImVec2 at = on_circle(center, chunk_radius, angle);
    const Rgb color = device_color(owner, P);
    const ImVec2 a{at.x - chunk * 0.5f, at.y - chunk * 0.5f}, b{at.x + chunk * 0.5f, at.y + chunk * 0.5f};
    draw->AddRectFilled(a, b, to_u32(color), chunk * 0.18f);
    draw->AddRect(a, b, to_u32(colors::text, 0.55f), chunk * 0.18f, 0, 1.0f);
    if (chunk >= 13.0f * s) {
      const std::string label = std::to_string(owner);
      centered_text(draw, ctx.fonts.bold, std::min(chunk * 0.72f, ImGui::GetFontSize()), at, to_u32(text_on(color)),
                    label.c_str());
    }
    if (hovered && mouse.x >= a.x && mouse.x <= b.x && mouse.y >= a.y && mouse.y <= b.y) hovered_chunk = p;
  }

  // The centre: which step, how many devices work.
  int skipped = 0;
  for (bool k : snap.skipped) skipped += k ? 1 : 0;
  const std::string title = fmt::format("{} step {} / {}", snap.pass == 0 ? "forward" : "backward", snap.step + 1, P);
  const float line = ImGui::GetTextLineHeight();
  // Centre lines, each only when it fits inside the ring.
  const float inner = 2.0f * (R - node - 6.0f * s);
  auto centre_line = [&](ImFont* font, float size, float y, ImU32 color, const std::string& text) {
    if (font->CalcTextSizeA(size, 1e9f, 0.0f, text.c_str()).x <= inner) centered_text(draw, font, size, {center.x, y}, color, text.c_str());
  };
  const bool roomy = R - node > 70.0f * s;
  const bool large = ctx.fonts.large->CalcTextSizeA(ctx.fonts.large->FontSize, 1e9f, 0.0f, title.c_str()).x <= inner;
  centre_line(large ? ctx.fonts.large : ctx.fonts.bold, large ? ctx.fonts.large->FontSize : ImGui::GetFontSize(),
              roomy ? center.y - line * 1.3f : center.y, to_u32(colors::text), title);
  if (roomy) {
    const std::string work = skipped == 0 ? fmt::format("all {} devices compute", P)
                                          : fmt::format("{} compute, {} skip", P - skipped, skipped);
    centre_line(ctx.fonts.regular, ImGui::GetFontSize(), center.y + line * 0.1f,
                to_u32(skipped ? colors::skipped : colors::text), work);
    centre_line(ctx.fonts.regular, ImGui::GetFontSize(), center.y + line * 1.2f, to_u32(colors::text_muted),
                fmt::format("{} score entries", format_count(model.pairs_at(global))));
    centre_line(ctx.fonts.regular, ImGui::GetFontSize() * 0.9f, center.y + line * 2.3f, to_u32(colors::text_muted),
                local_only && P > 1 ? "local only: nothing moves"
                : moves             ? (last_of_pass ? "dK, dV return to their owners" : "chunks move one hop")
                                    : "each device computes on the chunk it holds");
  }

  // Hover: what the device or chunk holds (the simulator's ring_state).
  if (hovered_device >= 0 || hovered_chunk >= 0) {
    const int p = hovered_device >= 0 ? hovered_device : hovered_chunk;
    const auto state = sim::ring_state(model.schedule(), snap.step)[static_cast<std::size_t>(p)];
    ImGui::BeginTooltip();
    ImGui::PushFont(ctx.fonts.bold);
    ImGui::Text("device %d", p);
    ImGui::PopFont();
    ImGui::Text("queries: %s (%s tokens)", state.queries.describe().c_str(), format_count(state.queries.size()).c_str());
    ImGui::Text("holds the K/V chunk of device %d: %s", state.held_owner, state.held_keys.describe().c_str());
    if (state.skipped && model.schedule().local_only && snap.step > 0)
      ImGui::TextColored(to_vec4(colors::skipped),
                         "skipped: every step after 0 is, on every device, so no chunk moves (local only)");
    else if (state.skipped)
      ImGui::TextColored(to_vec4(colors::skipped), "skipped: the mask leaves no pair (the chunk is still sent on)");
    else
      ImGui::Text("computes %s score entries at this step", format_count(state.pairs).c_str());
    ImGui::Text("memory in use after the step: %s",
                format_bytes(snap.memory_bytes[static_cast<std::size_t>(p)]).c_str());
    ImGui::EndTooltip();
  }

  // Legend (the shapes as drawn above), then speed and loop at the right.
  ImGui::SetCursorScreenPos({origin.x, origin.y + canvas.y + 2});
  ImGui::AlignTextToFramePadding();
  auto legend = [&](int shape, Rgb color, const char* text) {
    const float size = ImGui::GetTextLineHeight() * 0.8f;
    const ImVec2 p = ImGui::GetCursorScreenPos();
    const ImVec2 c{p.x + size * 0.5f, p.y + ImGui::GetFrameHeight() * 0.5f};
    if (shape == 0) draw->AddCircleFilled(c, size * 0.5f, to_u32(color));
    if (shape == 1) draw->AddRectFilled({c.x - size * 0.45f, c.y - size * 0.45f}, {c.x + size * 0.45f, c.y + size * 0.45f}, to_u32(color), 2.0f);
    if (shape == 2) draw->AddCircle(c, size * 0.45f, to_u32(color), 0, 2.0f);
    if (shape == 3) draw->AddLine({c.x - size * 0.6f, c.y}, {c.x + size * 0.6f, c.y}, to_u32(color), 3.0f);
    ImGui::Dummy({size, ImGui::GetFrameHeight()});
    ImGui::SameLine(0, 4 * s);
    ImGui::TextUnformatted(text);
    ImGui::SameLine(0, 12 * s);
  };
  legend(0, device_color(0, P), "device");
  legend(1, device_color(std::min(1, P - 1), P), "K/V chunk");
  legend(2, colors::skipped, "skipped");
  if (multi_node) legend(3, {214, 120, 30}, "inter-node");
  const float right = ImGui::GetWindowContentRegionMax().x - controls;
  if (legend_rows == 1) ImGui::SameLine(right);
  else ImGui::NewLine();
  ctx.playback.draw_speed();
}

}  // namespace ringlab::viz
