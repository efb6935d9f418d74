#include "theme.hpp"

#include <filesystem>

namespace ringlab::viz {
namespace {

constexpr float kFontSize = 15.0f;
constexpr float kLargeFontSize = 21.0f;

// Latin-1, Greek, punctuation, super/subscripts, arrows, maths, technical (⌊⌋), geometric shapes (■ ● ▶).
const ImWchar kGlyphRanges[] = {0x0020, 0x00FF, 0x0370, 0x03FF, 0x2000, 0x206F, 0x2070, 0x209F, 0x2190, 0x21FF,
                                0x2200, 0x22FF, 0x2300, 0x23FF, 0x25A0, 0x25FF, 0};

std::filesystem::path find_font(const char* name) {
  for (const char* dir : {"/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/TTF", "/usr/share/fonts/dejavu",
                          "/usr/local/share/fonts"}) {
    const std::filesystem::path path = std::filesystem::path(dir) / name;
    if (std::filesystem::exists(path)) return path;
  }
  return {};
}

}  // namespace

Fonts load_fonts(float scale) {
  ImGuiIO& io = ImGui::GetIO();
  io.Fonts->Clear();
  Fonts fonts;
  const auto regular = find_font("DejaVuSans.ttf"), bold = find_font("DejaVuSans-Bold.ttf");
  if (!regular.empty() && !bold.empty()) {
    ImFontConfig config;
    config.OversampleH = 2;
    config.OversampleV = 1;
    fonts.regular = io.Fonts->AddFontFromFileTTF(regular.c_str(), kFontSize * scale, &config, kGlyphRanges);
    fonts.bold = io.Fonts->AddFontFromFileTTF(bold.c_str(), kFontSize * scale, &config, kGlyphRanges);
    fonts.large = io.Fonts->AddFontFromFileTTF(bold.c_str(), kLargeFontSize * scale, &config, kGlyphRanges);
    fonts.system_font = fonts.regular && fonts.bold && fonts.large;
  }
  if (!fonts.system_font) {  // ImGui's own font (ASCII only), at the same sizes
    io.Fonts->Clear();
    ImFontConfig config;
    config.SizePixels = kFontSize * scale;
    fonts.regular = fonts.bold = io.Fonts->AddFontDefault(&config);
    config.SizePixels = kLargeFontSize * scale;
    fonts.large = io.Fonts->AddFontDefault(&config);
  }
  io.FontDefault = fonts.regular;
  return fonts;
}

void apply_style(float scale) {
  ImGuiStyle style;
  ImGui::StyleColorsLight(&style);
  style.WindowRounding = 6;
  style.ChildRounding = 4;
  style.FrameRounding = 4;
  style.PopupRounding = 4;
  style.GrabRounding = 4;
  style.TabRounding = 4;
  style.ScrollbarRounding = 6;
  style.WindowBorderSize = 1;
  style.FrameBorderSize = 0;
  style.WindowPadding = {10, 8};
  style.FramePadding = {7, 4};
  style.ItemSpacing = {8, 6};
  style.ItemInnerSpacing = {6, 4};
  style.ScrollbarSize = 13;
  style.GrabMinSize = 12;
  style.WindowTitleAlign = {0.0f, 0.5f};
  ImVec4* c = style.Colors;
  c[ImGuiCol_WindowBg] = ImVec4(0.972f, 0.976f, 0.984f, 1.0f);
  c[ImGuiCol_ChildBg] = ImVec4(1, 1, 1, 1);
  c[ImGuiCol_PopupBg] = ImVec4(1, 1, 1, 0.98f);
  c[ImGuiCol_Border] = ImVec4(0.80f, 0.82f, 0.86f, 1.0f);
  c[ImGuiCol_TitleBg] = ImVec4(0.235f, 0.318f, 0.447f, 1.0f);
  c[ImGuiCol_TitleBgActive] = c[ImGuiCol_TitleBg];
  c[ImGuiCol_TitleBgCollapsed] = c[ImGuiCol_TitleBg];
  c[ImGuiCol_Text] = to_vec4(colors::text);
  c[ImGuiCol_TextDisabled] = to_vec4(colors::text_muted);
  c[ImGuiCol_FrameBg] = ImVec4(0.90f, 0.92f, 0.95f, 1.0f);
  c[ImGuiCol_FrameBgHovered] = ImVec4(0.84f, 0.88f, 0.94f, 1.0f);
  c[ImGuiCol_FrameBgActive] = ImVec4(0.78f, 0.84f, 0.93f, 1.0f);
  c[ImGuiCol_Button] = ImVec4(0.86f, 0.89f, 0.94f, 1.0f);
  c[ImGuiCol_ButtonHovered] = ImVec4(0.74f, 0.82f, 0.94f, 1.0f);
  c[ImGuiCol_ButtonActive] = ImVec4(0.62f, 0.74f, 0.92f, 1.0f);
  c[ImGuiCol_Header] = ImVec4(0.86f, 0.89f, 0.94f, 1.0f);
  c[ImGuiCol_HeaderHovered] = ImVec4(0.78f, 0.84f, 0.93f, 1.0f);
  c[ImGuiCol_HeaderActive] = ImVec4(0.70f, 0.79f, 0.92f, 1.0f);
  c[ImGuiCol_Tab] = ImVec4(0.86f, 0.89f, 0.94f, 1.0f);
  c[ImGuiCol_TabHovered] = ImVec4(0.74f, 0.82f, 0.94f, 1.0f);
  c[ImGuiCol_TabActive] = ImVec4(1, 1, 1, 1);
  c[ImGuiCol_MenuBarBg] = ImVec4(0.93f, 0.94f, 0.96f, 1.0f);
  c[ImGuiCol_SliderGrab] = ImVec4(0.30f, 0.47f, 0.65f, 1.0f);
  c[ImGuiCol_SliderGrabActive] = ImVec4(0.20f, 0.37f, 0.58f, 1.0f);
  c[ImGuiCol_CheckMark] = ImVec4(0.20f, 0.37f, 0.58f, 1.0f);
  style.ScaleAllSizes(scale);
  ImGui::GetStyle() = style;
}

Rgb text_on(Rgb background) {
  const double luminance = 0.299 * background.r + 0.587 * background.g + 0.114 * background.b;
  return luminance > 150 ? colors::text : Rgb{255, 255, 255};
}

}  // namespace ringlab::viz
