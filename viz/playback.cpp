#include "playback.hpp"

#include <fmt/format.h>
#include <imgui.h>

#include <algorithm>
#include <cmath>

#include "model.hpp"
#include "widgets.hpp"

namespace ringlab::viz {

int Playback::step() const { return std::clamp(static_cast<int>(std::floor(position)), 0, std::max(total - 1, 0)); }

float Playback::phase() const {
  if (position >= total) return 1.0f;
  return static_cast<float>(position - std::floor(position));
}

float Playback::travel() const {
  return std::clamp((phase() - kComputePhase) / (1.0f - kComputePhase), 0.0f, 1.0f);
}

void Playback::set_total(int steps) {
  total = std::max(steps, 1);
  position = std::clamp(position, 0.0, static_cast<double>(total) - 0.001);
}

void Playback::jump_to(int s) { position = std::clamp(s, 0, total - 1) + kComputePhase * 0.5; }

void Playback::advance(double seconds) {
  if (!playing) return;
  position += seconds * speed;
  if (position >= total) {
    if (loop) {
      position = std::fmod(position, static_cast<double>(total));
    } else {
      position = total - 0.001;
      playing = false;
    }
  }
}

void Playback::draw_controls(const Model& model) {
  const float button = ImGui::GetFrameHeight();
  auto transport = [&](const char* label, const char* tip) {
    const bool pressed = ImGui::Button(label, {button * 1.35f, 0});
    item_tooltip(tip);
    ImGui::SameLine(0, 3);
    return pressed;
  };
  if (transport("|<", "Go to the first step")) jump_to(0), playing = false;
  if (transport("<", "Previous step")) jump_to(step() - 1), playing = false;
  if (ImGui::Button(playing ? "Pause###play" : "Play###play", {button * 2.6f, 0})) {
    if (!playing && position >= total - 0.01) position = 0;
    playing = !playing;
  }
  item_tooltip("Animate the ring: every device computes on the chunk it holds, then passes it one hop on");
  ImGui::SameLine(0, 3);
  if (transport(">", "Next step")) jump_to(step() + 1), playing = false;
  if (transport(">|", "Go to the last step")) jump_to(total - 1), playing = false;
  ImGui::SameLine(0, 8);
  const StepRef ref = model.step_ref(step());
  const int P = model.devices();
  const std::string label = fmt::format("{} step {} of {}", ref.pass == 0 ? "forward" : "backward", ref.step + 1, P);
  float scrub = static_cast<float>(position);
  ImGui::SetNextItemWidth(-1);
  if (ImGui::SliderFloat("##scrub", &scrub, 0.0f, static_cast<float>(total) - 0.001f, label.c_str(),
                         ImGuiSliderFlags_AlwaysClamp)) {
    position = scrub;
    playing = false;
  }
  item_tooltip("Drag to scrub through the ring steps (forward, then backward when the pass includes it)");
}

void Playback::draw_speed() {
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 6.5f);
  ImGui::SliderFloat("##speed", &speed, 0.1f, 4.0f, "%.1f steps/s", ImGuiSliderFlags_Logarithmic);
  item_tooltip("Playback speed in ring steps per second");
  ImGui::SameLine();
  ImGui::Checkbox("loop", &loop);
  item_tooltip("Start again from the first step at the end");
}

}  // namespace ringlab::viz
