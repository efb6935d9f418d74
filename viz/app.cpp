#include "app.hpp"

#include <fmt/format.h>
#include <imgui.h>

#include <algorithm>

#include "widgets.hpp"

namespace ringlab::viz {
namespace {

// The panels tile the display and draw no background of their own: Platform::end_frame clears to the window
// colour, which is far cheaper than a blended full-screen quad under software rendering (Mesa llvmpipe).
constexpr ImGuiWindowFlags kPanelFlags = ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize |
                                         ImGuiWindowFlags_NoCollapse | ImGuiWindowFlags_NoSavedSettings |
                                         ImGuiWindowFlags_NoBringToFrontOnFocus | ImGuiWindowFlags_NoBackground;

}  // namespace

App::App(Platform& platform) : platform_(platform), edit_(model_.settings()) {
  apply_scene(scenes().front());
}

bool App::apply_scene(const Scene& scene, std::optional<int> step) {
  edit_ = scene_settings(scene);
  if (!model_.apply(edit_)) return false;
  scene_ = &scene;
  scene_edited_ = false;
  attention_.order = scene.order;
  dilation_.window = 0;
  dilation_.head = 0;
  set_tab(scene.tab);
  playback_.set_total(model_.total_steps());
  const int target = step.value_or(std::min(scene.step, model_.total_steps() - 1));
  if (target < 0 || target >= model_.total_steps()) return false;
  playback_.playing = false;
  playback_.jump_to(target);
  return true;
}

bool App::apply_settings(const Settings& settings) {
  edit_ = settings;
  scene_edited_ = true;
  const bool ok = model_.apply(edit_);
  playback_.set_total(model_.total_steps());
  return ok;
}

void App::set_tab(Tab tab) {
  tab_ = tab;
  tab_requested_ = true;
}

void App::handle_keys() {
  const ImGuiIO& io = ImGui::GetIO();
  if (io.WantCaptureKeyboard) return;
  if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Space), false)) playback_.playing = !playback_.playing;
  if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_RightArrow))) playback_.jump_to(playback_.step() + 1), playback_.playing = false;
  if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_LeftArrow))) playback_.jump_to(playback_.step() - 1), playback_.playing = false;
}

float App::draw_menu_bar() {
  float height = 0;
  if (ImGui::BeginMainMenuBar()) {
    if (ImGui::BeginMenu("Scenes")) {
      for (const Scene& scene : scenes()) {
        if (ImGui::MenuItem(scene.title.c_str(), nullptr, scene_ == &scene && !scene_edited_)) apply_scene(scene);
        item_tooltip(scene.lesson.c_str());
      }
      ImGui::EndMenu();
    }
    if (ImGui::BeginMenu("View")) {
      ImGui::TextDisabled("UI scale (projector, HiDPI)");
      for (float scale : {0.75f, 1.0f, 1.25f, 1.5f, 2.0f}) {
        const std::string label = fmt::format("{:.0f}%", scale * 100);
        if (ImGui::MenuItem(label.c_str(), nullptr, std::abs(platform_.user_scale() - scale) < 1e-3f)) platform_.set_user_scale(scale);
      }
      ImGui::Separator();
      if (ImGui::MenuItem("Timeline", nullptr, tab_ == Tab::timeline)) set_tab(Tab::timeline);
      if (ImGui::MenuItem("Memory", nullptr, tab_ == Tab::memory)) set_tab(Tab::memory);
      if (ImGui::MenuItem("Dilation", nullptr, tab_ == Tab::dilation)) set_tab(Tab::dilation);
      ImGui::EndMenu();
    }
    if (ImGui::BeginMenu("Help")) {
      if (ImGui::MenuItem("How to use ringlab-viz")) about_open_ = true;
      ImGui::EndMenu();
    }
    ImGui::SameLine(ImGui::GetWindowWidth() - ImGui::CalcTextSize("space: play/pause   ← →: step").x - 16);
    ImGui::TextDisabled("space: play/pause   ← →: step");
    height = ImGui::GetWindowSize().y;
    ImGui::EndMainMenuBar();
  }
  return height;
}

void App::draw_lesson(Context& ctx) {
  const float wrap = ImGui::GetContentRegionAvail().x;
  ImGui::PushTextWrapPos(ImGui::GetCursorPosX() + wrap);
  ImGui::PushFont(ctx.fonts.large);
  ImGui::TextUnformatted(scene_ && !scene_edited_ ? scene_->title.c_str() : "Your configuration");
  ImGui::PopFont();
  if (scene_ && scene_edited_) {
    ImGui::TextDisabled("Edited from the scene \"%s\". Every panel follows your settings; the Scenes menu starts "
                        "a lesson again.", scene_->title.c_str());
  } else if (scene_) {
    ImGui::TextUnformatted(scene_->lesson.c_str());
    ImGui::PushStyleColor(ImGuiCol_Text, to_vec4({30, 90, 150}));
    ImGui::TextUnformatted(("Look at: " + scene_->look_at).c_str());
    ImGui::PopStyleColor();
  }
  ImGui::PopTextWrapPos();
  ImGui::Separator();

  // Results of the run.
  const sim::Report& report = model_.report();
  std::int64_t compute_max = 0, compute_min = INT64_MAX, peak = 0, pairs_max = 0, pairs_sum = 0;
  for (const auto& d : report.devices) {
    compute_max = std::max(compute_max, d.compute_ns);
    compute_min = std::min(compute_min, d.compute_ns);
    peak = std::max(peak, d.peak_bytes);
    pairs_max = std::max(pairs_max, d.pairs);
    pairs_sum += d.pairs;
  }
  const int P = model_.devices();
  const double balance = pairs_sum > 0 ? static_cast<double>(pairs_max) * P / static_cast<double>(pairs_sum) : 1.0;
  if (ImGui::BeginTable("results", 2, ImGuiTableFlags_SizingStretchProp)) {
    auto row = [](const char* name, const std::string& value, const char* help) {
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      ImGui::TextDisabled("%s", name);
      item_tooltip(help);
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(value.c_str());
      item_tooltip(help);
    };
    row("makespan", format_ns(report.makespan_ns), "Simulated time until the last device finishes.");
    row("compute, max / min", fmt::format("{} / {}", format_ns(compute_max), format_ns(compute_min)),
        "Compute time of the device with the most work and of the one with the least.");
    row("imbalance", fmt::format("{:.2f}x", balance),
        "Most work on one device / mean work per device. 1.00x is perfectly balanced.");
    row("skipped steps", fmt::format("{} of {}", report.skipped_steps, static_cast<std::int64_t>(P) * P),
        "Ring steps (device, step) of one pass whose mask leaves no pair: no compute, the chunk is still sent on.");
    row("peak memory", fmt::format("{} per device", format_bytes(peak)), "The fullest device's ledger peak.");
    if (model_.check() == Model::Check::done) {
      ImGui::PushStyleColor(ImGuiCol_Text, to_vec4({30, 130, 60}));
      row("error vs dense", fmt::format("{:.1e} (rounding)", *model_.check_error()),
          "Compute mode: max |ring - dense| over the outputs (and gradients), fp64.");
      ImGui::PopStyleColor();
    }
    ImGui::EndTable();
  }
  ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyle().Colors[ImGuiCol_TextDisabled]);
  ImGui::TextWrapped("%s", describe(model_.config()).c_str());
  ImGui::PopStyleColor();
}

void App::frame(double seconds) {
  model_.poll();
  playback_.set_total(model_.total_steps());
  playback_.advance(seconds);
  handle_keys();
  Context ctx{model_, playback_, edit_, false, platform_.fonts(), platform_.scale()};
  regions_.clear();
  auto record = [&](const char* name) {
    const ImVec2 p = ImGui::GetWindowPos(), s = ImGui::GetWindowSize();
    regions_.push_back({name, p.x, p.y, s.x, s.y});
  };

  const float menu = draw_menu_bar();
  const ImVec2 display = ImGui::GetIO().DisplaySize;
  const float s = ctx.scale;
  const float height = display.y - menu;
  const float left = std::clamp(std::floor(display.x * 0.25f), 290.0f * s, 430.0f * s);
  const float right = display.x - left;
  const float top = std::floor(height * 0.57f);
  const float ring = std::floor(right * 0.46f);

  auto place = [&](float x, float y, float w, float h) {
    ImGui::SetNextWindowPos({x, y});
    ImGui::SetNextWindowSize({w, h});
  };
  // The lesson takes the height its text needs (up to 60%); the configuration scrolls below it.
  ImGui::SetNextWindowPos({0, menu});
  ImGui::SetNextWindowSizeConstraints({left, 0}, {left, std::floor(height * 0.6f)});
  float lesson = std::floor(height * 0.40f);
  if (ImGui::Begin("Lesson", nullptr, kPanelFlags | ImGuiWindowFlags_AlwaysAutoResize)) {
    record("lesson");
    draw_lesson(ctx);
    lesson = ImGui::GetWindowSize().y;
  }
  ImGui::End();
  place(0, menu + lesson, left, height - lesson);
  if (ImGui::Begin("Configuration", nullptr, kPanelFlags)) {
    record("config");
    config_.draw(ctx);
  }
  ImGui::End();
  place(left, menu, ring, top);
  if (ImGui::Begin("Ring", nullptr, kPanelFlags | ImGuiWindowFlags_NoScrollbar)) {
    record("ring");
    ring_.draw(ctx);
  }
  ImGui::End();
  place(left + ring, menu, right - ring, top);
  if (ImGui::Begin("Attention matrix", nullptr, kPanelFlags | ImGuiWindowFlags_NoScrollbar)) {
    record("attention");
    attention_.draw(ctx);
  }
  ImGui::End();
  place(left, menu + top, right, height - top);
  if (ImGui::Begin("##bottom", nullptr, kPanelFlags | ImGuiWindowFlags_NoTitleBar | ImGuiWindowFlags_NoScrollbar)) {
    record("bottom");
    if (ImGui::BeginTabBar("panels")) {
      auto tab = [&](const char* label, Tab which) {
        const ImGuiTabItemFlags flags = tab_requested_ && tab_ == which ? ImGuiTabItemFlags_SetSelected : 0;
        const bool open = ImGui::BeginTabItem(label, nullptr, flags);
        if (open && !tab_requested_) tab_ = which;
        return open;
      };
      if (tab("Timeline", Tab::timeline)) {
        timeline_.draw(ctx);
        ImGui::EndTabItem();
      }
      if (tab("Memory", Tab::memory)) {
        memory_.draw(ctx);
        ImGui::EndTabItem();
      }
      if (tab("Dilation", Tab::dilation)) {
        dilation_.draw(ctx);
        ImGui::EndTabItem();
      }
      tab_requested_ = false;
      ImGui::EndTabBar();
    }
  }
  ImGui::End();

  // Thin lines between the panels (they draw no background or border of their own).
  ImDrawList* lines = ImGui::GetBackgroundDrawList();
  const ImU32 border = ImGui::GetColorU32(ImGuiCol_Border);
  lines->AddLine({left, menu}, {left, display.y}, border, 1.0f);
  lines->AddLine({left + ring, menu}, {left + ring, menu + top}, border, 1.0f);
  lines->AddLine({left, menu + top}, {display.x, menu + top}, border, 1.0f);
  lines->AddLine({0, menu + lesson}, {left, menu + lesson}, border, 1.0f);

  if (about_open_) {
    ImGui::OpenPopup("How to use ringlab-viz");
    about_open_ = false;
  }
  ImGui::SetNextWindowSize({ImGui::GetFontSize() * 36, 0});
  if (ImGui::BeginPopupModal("How to use ringlab-viz", nullptr, ImGuiWindowFlags_AlwaysAutoResize)) {
    ImGui::PushTextWrapPos(ImGui::GetFontSize() * 35);
    ImGui::TextUnformatted(
        "Pick a scene from the Scenes menu, or change any knob in Configuration: the simulation re-runs at once.\n\n"
        "Ring: press Play (or space) to watch the K/V chunks travel; < and > (or the arrow keys) step; drag the "
        "slider to scrub.\nAttention matrix: what each device computes at the current step; hover a tile.\n"
        "Timeline: compute and communication per device; wheel to zoom, drag to pan, click a bar to jump to its "
        "step.\nMemory: per-device peaks against one GPU running everything, and the scaling over N.\n"
        "Dilation: LongNet's patterns, a head's mask and the head-to-pattern assignment.\n\n"
        "Every (?) explains the control next to it. docs/viz.md has more.");
    ImGui::PopTextWrapPos();
    if (ImGui::Button("Close")) ImGui::CloseCurrentPopup();
    ImGui::EndPopup();
  }

  if (ctx.edited) {
    if (model_.apply(edit_)) {
      scene_edited_ = true;
      playback_.set_total(model_.total_steps());
    }
  }
}

}  // namespace ringlab::viz
