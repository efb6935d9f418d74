// The colours of ringlab-viz, without ImGui, so the screenshot tests can look for them in the PNGs.
//
// A device keeps one colour everywhere: its node on the ring, the K/V chunk it owns while that chunk
// travels, its rows of the attention matrix, its bars in the memory and timeline panels.
#pragma once

#include <cstdint>

namespace ringlab::viz {

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

// Colour of device `device` in a ring of `devices`: a qualitative palette up to 10 devices, a hue wheel
// beyond (the ring is then a colour wheel), neighbours alternating light and dark. For rings up to 256
// devices (the viz's limit) every two devices differ by at least 12 in |Δr| + |Δg| + |Δb| (tested).
Rgb device_color(int device, int devices);

// Colour of dilation pattern `index` (patterns are not devices: a separate palette).
Rgb pattern_color(int index);

// Fixed meanings.
namespace colors {
inline constexpr Rgb canvas{255, 255, 255};     // background of plots and maps
inline constexpr Rgb masked{238, 240, 243};     // the mask excludes these pairs
inline constexpr Rgb pending{200, 206, 216};    // allowed, computed at a later ring step
inline constexpr Rgb skipped{192, 57, 43};      // hatch of a skipped step (nothing to compute, chunk still sent)
inline constexpr Rgb exposed{200, 30, 45};      // waiting on communication (not hidden by compute)
inline constexpr Rgb exposed_fill{252, 214, 214};
inline constexpr Rgb send{96, 112, 135};        // a transfer on a send stream
inline constexpr Rgb text{33, 37, 41};
inline constexpr Rgb text_muted{105, 112, 122};
inline constexpr Rgb grid{170, 176, 186};
inline constexpr Rgb capacity{200, 30, 45};     // the GPU's memory capacity line
inline constexpr Rgb highlight{255, 196, 0};    // the current step
}  // namespace colors

// Category colours of the memory ledger (q, kv, kv_recv, out, lse, scratch, grad).
Rgb category_color(int category);

// Mix a and b: t = 0 gives a, t = 1 gives b.
Rgb mix(Rgb a, Rgb b, float t);

}  // namespace ringlab::viz
