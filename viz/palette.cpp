#include "palette.hpp"

#include <algorithm>
#include <array>
#include <cmath>

namespace ringlab::viz {
namespace {

// Tableau 10, with its grey replaced (grey means "pending" here).
constexpr std::array<Rgb, 10> kQualitative = {{{78, 121, 167},
                                                {242, 142, 43},
                                                {225, 87, 89},
                                                {118, 183, 178},
                                                {89, 161, 79},
                                                {237, 201, 72},
                                                {176, 122, 161},
                                                {255, 157, 167},
                                                {156, 117, 95},
                                                {182, 153, 45}}};

Rgb from_hsv(double h, double s, double v) {
  h = h - std::floor(h);
  const double i = std::floor(h * 6), f = h * 6 - i;
  const double p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
  double r = 0, g = 0, b = 0;
  switch (static_cast<int>(i) % 6) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
  }
  auto byte = [](double x) { return static_cast<std::uint8_t>(std::clamp(std::lround(x * 255.0), 0L, 255L)); };
  return {byte(r), byte(g), byte(b)};
}

}  // namespace

Rgb device_color(int device, int devices) {
  if (devices <= static_cast<int>(kQualitative.size())) return kQualitative[static_cast<std::size_t>(device) % kQualitative.size()];
  // A hue wheel around the ring; neighbours alternate in saturation and value so they stay apart. A third,
  // slower modulation keeps colours distinct when 4096 hues crowd together.
  const double hue = static_cast<double>(device) / devices;
  const bool odd = device % 2 == 1;
  const double wobble = 0.06 * ((device / 2) % 3);
  return from_hsv(hue + 0.58, odd ? 0.85 - wobble : 0.55 + wobble, odd ? 0.68 + wobble : 0.93 - wobble);
}

Rgb pattern_color(int index) {
  constexpr std::array<Rgb, 6> kPatterns = {
      {{94, 60, 153}, {0, 137, 123}, {230, 97, 1}, {33, 102, 172}, {178, 24, 43}, {77, 146, 33}}};
  return kPatterns[static_cast<std::size_t>(std::max(index, 0)) % kPatterns.size()];
}

Rgb category_color(int category) {
  // q, kv, kv_recv, out, lse, scratch, grad
  constexpr std::array<Rgb, 7> kCategories = {{{66, 133, 244},
                                               {52, 168, 83},
                                               {163, 214, 140},
                                               {251, 188, 5},
                                               {171, 71, 188},
                                               {158, 158, 158},
                                               {234, 67, 53}}};
  return kCategories[static_cast<std::size_t>(std::clamp(category, 0, 6))];
}

Rgb mix(Rgb a, Rgb b, float t) {
  auto lerp = [t](std::uint8_t x, std::uint8_t y) {
    return static_cast<std::uint8_t>(std::lround(static_cast<float>(x) + (static_cast<float>(y) - static_cast<float>(x)) * t));
  };
  return {lerp(a.r, b.r), lerp(a.g, b.g), lerp(a.b, b.b)};
}

}  // namespace ringlab::viz
