#include "timeline_panel.hpp"

#include <fmt/format.h>
#include <imgui.h>

#include <algorithm>
#include <cmath>

#include "widgets.hpp"

namespace ringlab::viz {
namespace {

// Draws bars that lie in the view, merging those closer than a pixel (a 64-device run has 30k slices).
template <class Bar, class ToX, class Emit>
void merged(const std::vector<Bar>& bars, double t0, double t1, ToX to_x, Emit emit) {
  float open_a = 0, open_b = -1e9f;
  for (const Bar& bar : bars) {
    double begin = 0, end = 0;
    if constexpr (requires { bar.begin_ns; })
      begin = static_cast<double>(bar.begin_ns), end = static_cast<double>(bar.end_ns);
    else
      begin = static_cast<double>(bar.begin), end = static_cast<double>(bar.end);
    if (end < t0 || begin > t1) continue;
    const float a = to_x(begin), b = std::max(to_x(end), a + 1.0f);
    if (a <= open_b + 0.5f) {
      open_b = std::max(open_b, b);
    } else {
      if (open_b > open_a) emit(open_a, open_b);
      open_a = a;
      open_b = b;
    }
  }
  if (open_b > open_a) emit(open_a, open_b);
}

double nice_step(double span, int ticks) {
  const double raw = span / std::max(ticks, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * magnitude) return m * magnitude;
  return 10 * magnitude;
}

}  // namespace

void TimelinePanel::rebuild(const Model& model) {
  generation_ = model.generation();
  const auto P = static_cast<std::size_t>(model.devices());
  compute_.assign(P, {});
  sends_.assign(P, {});
  const auto& slices = model.simulation().slices();
  for (std::size_t i = 0; i < slices.size(); ++i) {
    const sim::Slice& s = slices[i];
    if (s.device < 0 || static_cast<std::size_t>(s.device) >= P) continue;
    if (s.stream == 0) compute_[static_cast<std::size_t>(s.device)].push_back({s.begin_ns, s.end_ns, s.pass, s.step, i});
    if (s.stream == 1) sends_[static_cast<std::size_t>(s.device)].push_back({s.begin_ns, s.end_ns, s.pass, s.step, i});
  }
  for (auto* lists : {&compute_, &sends_})
    for (auto& list : *lists) std::sort(list.begin(), list.end(), [](const Bar& a, const Bar& b) { return a.begin < b.begin; });
  view_begin_ = view_end_ = 0;
}

void TimelinePanel::draw(Context& ctx) {
  Model& model = ctx.model;
  if (generation_ != model.generation()) rebuild(model);
  const float s = ctx.scale;
  const int P = model.devices();
  const sim::Report& report = model.report();
  const auto& waits = model.exposed_waits();
  const double makespan = static_cast<double>(std::max<std::int64_t>(report.makespan_ns, 1));
  if (view_end_ <= view_begin_) view_begin_ = 0, view_end_ = makespan;

  // Summary line.
  std::int64_t compute_max = 0, compute_min = INT64_MAX, exposed_max = 0;
  for (const auto& d : report.devices) {
    compute_max = std::max(compute_max, d.compute_ns);
    compute_min = std::min(compute_min, d.compute_ns);
    exposed_max = std::max(exposed_max, d.exposed_comm_ns);
  }
  ImGui::PushFont(ctx.fonts.bold);
  ImGui::Text("makespan %s", format_ns(report.makespan_ns).c_str());
  ImGui::PopFont();
  ImGui::SameLine();
  ImGui::Text("·  compute per device %s … %s  ·  exposed communication up to %s", format_ns(compute_min).c_str(),
              format_ns(compute_max).c_str(), format_ns(exposed_max).c_str());
  help_marker("Makespan: when the last device finishes. Compute: the busiest and the least busy device. "
              "Exposed communication: time a device waits between steps while a transfer it needs is moving "
              "(the simulator's exposed_comm_ns). Idle time that is not red is load imbalance: waiting for a "
              "slower neighbour.");
  swatch(device_color(0, P), "compute");
  ImGui::SameLine(0, 14 * s);
  swatch(colors::send, "send to next device");
  ImGui::SameLine(0, 14 * s);
  swatch(colors::exposed, "waiting on communication", true);
  ImGui::SameLine(0, 14 * s);
  swatch(colors::highlight, "current step");
  ImGui::SameLine(0, 14 * s);
  ImGui::TextDisabled("wheel: zoom, drag: pan, double-click: all");

  // Canvas.
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float line = ImGui::GetTextLineHeight();
  const float label_width = ImGui::CalcTextSize("dev 255").x + 6 * s;
  const float axis_height = line + 6 * s;
  const ImVec2 p0{origin.x + label_width, origin.y};
  const ImVec2 p1{origin.x + std::max(avail.x, label_width + 40), origin.y + std::max(avail.y - axis_height, 20.0f)};
  ImGui::InvisibleButton("timeline", {std::max(avail.x, 1.0f), std::max(avail.y, 1.0f)});
  const bool hovered = ImGui::IsItemHovered();
  ImDrawList* draw = ImGui::GetWindowDrawList();
  const double t0 = view_begin_, t1 = view_end_;
  const float width = p1.x - p0.x;
  auto to_x = [&](double t) { return p0.x + static_cast<float>((t - t0) / (t1 - t0)) * width; };
  auto to_t = [&](float x) { return t0 + (x - p0.x) / width * (t1 - t0); };
  const float row = (p1.y - p0.y) / static_cast<float>(std::max(P, 1));

  // Current step: from the previous step's end to this one's (snapshot times: the slowest device).
  const int global = ctx.playback.step();
  const auto& snaps = model.snapshots();
  if (!snaps.empty()) {
    const double end = static_cast<double>(snaps[static_cast<std::size_t>(global)].time_ns);
    const double begin = global > 0 ? static_cast<double>(snaps[static_cast<std::size_t>(global) - 1].time_ns) : 0.0;
    draw->AddRectFilled({std::max(to_x(begin), p0.x), p0.y}, {std::min(to_x(end), p1.x), p1.y}, to_u32(colors::highlight, 0.22f));
  }

  draw->PushClipRect(p0, p1, true);
  const StepRef current = model.step_ref(global);
  for (int p = 0; p < P; ++p) {
    const float y = p0.y + row * static_cast<float>(p);
    const Rgb color = device_color(p, P);
    const bool sends = row >= 9 * s;
    const float c0 = y + row * 0.12f, c1 = y + row * (sends ? 0.68f : 0.92f);
    if (P <= 16 && p % 2 == 1) draw->AddRectFilled({p0.x, y}, {p1.x, y + row}, IM_COL32(0, 0, 0, 8));  // zebra rows
    const auto& dev_waits = waits[static_cast<std::size_t>(p)];
    merged(dev_waits, t0, t1, [&](double t) { return to_x(t); }, [&](float a, float b) {
      draw->AddRectFilled({a, c0}, {b, c1}, to_u32(colors::exposed_fill));
      if (b - a > 6 && c1 - c0 > 6) hatch(draw, {a, c0}, {b, c1}, to_u32(colors::exposed, 0.8f), 5.0f * s, 1.0f);
      else draw->AddRectFilled({a, c0}, {b, c1}, to_u32(colors::exposed));
    });
    merged(compute_[static_cast<std::size_t>(p)], t0, t1, [&](double t) { return to_x(t); },
           [&](float a, float b) { draw->AddRectFilled({a, c0}, {b, c1}, to_u32(color)); });
    // Step boundaries inside merged bars, where rows and steps are large enough to tell apart.
    if (row >= 8 * s) {
      float last = -1e9f;
      for (const Bar& bar : compute_[static_cast<std::size_t>(p)]) {
        const float x = std::floor(to_x(static_cast<double>(bar.begin)));
        if (x >= p0.x && x <= p1.x && to_x(static_cast<double>(bar.end)) - x >= 4 && x - last >= 4)
          draw->AddRectFilled({x, c0}, {x + 1.5f, c1}, to_u32(colors::canvas));
        last = x;
      }
    }
    if (sends) {
      merged(sends_[static_cast<std::size_t>(p)], t0, t1, [&](double t) { return to_x(t); },
             [&](float a, float b) { draw->AddRectFilled({a, y + row * 0.74f}, {b, y + row * 0.9f}, to_u32(colors::send)); });
    }
    if (row >= 6 * s) {  // outline this step's compute bar
      for (const Bar& bar : compute_[static_cast<std::size_t>(p)])
        if (bar.pass == current.pass && bar.step == current.step)
          draw->AddRect({to_x(static_cast<double>(bar.begin)), c0}, {std::max(to_x(static_cast<double>(bar.end)), to_x(static_cast<double>(bar.begin)) + 2), c1},
                        to_u32(colors::text), 0, 0, 1.5f * s);
    }
  }
  draw->PopClipRect();
  draw->AddRect(p0, p1, to_u32(colors::grid));

  // Device labels (as many as fit).
  const int every = std::max(1, static_cast<int>(std::ceil(line / std::max(row, 0.1f))));
  for (int p = 0; p < P; p += every) {
    const std::string text = fmt::format("dev {}", p);
    const float y = p0.y + row * (static_cast<float>(p) + 0.5f) - line * 0.5f;
    draw->AddText({origin.x, y}, to_u32(device_color(p, P)), text.c_str());
  }

  // Time axis.
  const double tick = nice_step(t1 - t0, std::max(2, static_cast<int>(width / (90 * s))));
  for (double t = std::ceil(t0 / tick) * tick; t <= t1; t += tick) {
    const float x = to_x(t);
    draw->AddLine({x, p1.y}, {x, p1.y + 4 * s}, to_u32(colors::grid));
    const std::string text = format_ns(static_cast<std::int64_t>(std::llround(t)));
    const float w = ImGui::CalcTextSize(text.c_str()).x;
    draw->AddText({std::clamp(x - w * 0.5f, p0.x, p1.x - w), p1.y + 4 * s}, to_u32(colors::text_muted), text.c_str());
  }

  // Interaction: zoom, pan, reset, click to jump, hover.
  ImGuiIO& io = ImGui::GetIO();
  if (hovered && io.MouseWheel != 0) {
    const double at = to_t(io.MousePos.x), factor = std::pow(0.8, io.MouseWheel);
    const double span = std::clamp((t1 - t0) * factor, 1000.0, makespan);
    const double share = (at - t0) / (t1 - t0);
    view_begin_ = std::clamp(at - share * span, 0.0, makespan - span);
    view_end_ = view_begin_ + span;
  }
  if (ImGui::IsItemActive() && ImGui::IsMouseDragging(ImGuiMouseButton_Left, 3.0f)) {
    const double shift = -io.MouseDelta.x / width * (t1 - t0);
    const double span = t1 - t0;
    view_begin_ = std::clamp(t0 + shift, 0.0, makespan - span);
    view_end_ = view_begin_ + span;
    dragged_ = true;
  }
  if (hovered && ImGui::IsMouseDoubleClicked(ImGuiMouseButton_Left)) view_begin_ = 0, view_end_ = makespan;
  const bool released = ImGui::IsItemDeactivated();
  if (hovered && io.MousePos.y >= p0.y && io.MousePos.y < p1.y && io.MousePos.x >= p0.x) {
    const int p = std::clamp(static_cast<int>((io.MousePos.y - p0.y) / row), 0, P - 1);
    const double t = to_t(io.MousePos.x), slack = (t1 - t0) / width * 2;
    const Bar* hit = nullptr;
    for (const Bar& bar : compute_[static_cast<std::size_t>(p)])
      if (static_cast<double>(bar.begin) - slack <= t && t <= static_cast<double>(bar.end) + slack) hit = &bar;
    const Bar* send = nullptr;
    for (const Bar& bar : sends_[static_cast<std::size_t>(p)])
      if (static_cast<double>(bar.begin) <= t && t <= static_cast<double>(bar.end)) send = &bar;
    const sim::Interval* wait = nullptr;
    for (const auto& w : waits[static_cast<std::size_t>(p)])
      if (static_cast<double>(w.begin_ns) <= t && t <= static_cast<double>(w.end_ns)) wait = &w;
    ImGui::BeginTooltip();
    ImGui::PushFont(ctx.fonts.bold);
    ImGui::Text("device %d at %s", p, format_ns(static_cast<std::int64_t>(t)).c_str());
    ImGui::PopFont();
    const auto& slices = model.simulation().slices();
    if (hit) {
      const auto& slice = slices[hit->slice];
      ImGui::Text("%s: %s (click: go to this step)", slice.name.c_str(), format_ns(slice.end_ns - slice.begin_ns).c_str());
    } else if (wait) {
      ImGui::TextColored(to_vec4(colors::exposed), "waiting %s for a transfer (communication not hidden)",
                         format_ns(wait->end_ns - wait->begin_ns).c_str());
    } else {
      ImGui::TextDisabled("not computing");
    }
    if (send) ImGui::Text("%s: %s", slices[send->slice].name.c_str(), format_ns(send->end - send->begin).c_str());
    const auto& d = report.devices[static_cast<std::size_t>(p)];
    ImGui::Text("totals: compute %s, exposed communication %s, idle %s", format_ns(d.compute_ns).c_str(),
                format_ns(d.exposed_comm_ns).c_str(), format_ns(d.idle_ns).c_str());
    ImGui::EndTooltip();
    if (released && !dragged_ && hit) {
      ctx.playback.jump_to(model.global_step(hit->pass, hit->step));
      ctx.playback.playing = false;
    }
  }
  if (released) dragged_ = false;
}

}  // namespace ringlab::viz
