#include "ringlab/random.hpp"

#include <cmath>

namespace ringlab {

std::uint64_t NormalGenerator::next_bits() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double NormalGenerator::next_signed_uniform() {
  const double unit = static_cast<double>(next_bits() >> 11) * 0x1.0p-53;  // [0, 1), exact
  return 2.0 * unit - 1.0;
}

double portable_log(double x) {
  int exponent = 0;
  double mantissa = std::frexp(x, &exponent);  // x = mantissa · 2^exponent, mantissa ∈ [0.5, 1): exact
  if (mantissa < 0x1.6a09e667f3bcdp-1) {       // keep mantissa ∈ [√½, √2) so the series converges fast
    mantissa *= 2.0;
    exponent -= 1;
  }
  // ln m = 2·atanh(y), y = (m − 1)/(m + 1), |y| ≤ 0.172: Σ y^(2k+1)/(2k+1), 14 terms reach 1e-20.
  const double y = (mantissa - 1.0) / (mantissa + 1.0), y2 = y * y;
  double term = y, series = 0.0;
  for (int k = 0; k < 14; ++k) {
    series += term / (2 * k + 1);
    term *= y2;
  }
  constexpr double ln2 = 0x1.62e42fefa39efp-1;
  return exponent * ln2 + 2.0 * series;
}

double NormalGenerator::next() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u, v, s;
  do {
    u = next_signed_uniform();
    v = next_signed_uniform();
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  const double factor = std::sqrt(-2.0 * portable_log(s) / s);  // sqrt is correctly rounded by IEEE-754
  spare_ = v * factor;
  has_spare_ = true;
  return u * factor;
}

std::vector<double> standard_normal(NormalGenerator& generator, std::size_t count) {
  std::vector<double> values(count);
  for (auto& value : values) value = generator.next();
  return values;
}

}  // namespace ringlab
