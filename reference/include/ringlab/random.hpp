// Standard normal numbers that are bit-identical on every IEEE-754 machine, so a golden case can be
// regenerated anywhere from its seed. std::normal_distribution is implementation-defined and libm's log
// may differ in the last bit between platforms, so: SplitMix64 → uniform doubles → Marsaglia's polar
// method, with ln computed from +, −, ×, ÷ only (and the file compiled without FMA contraction).
#pragma once

#include <cstdint>
#include <vector>

namespace ringlab {

class NormalGenerator {
 public:
  explicit NormalGenerator(std::uint64_t seed) : state_(seed) {}
  double next();

 private:
  std::uint64_t next_bits();       // SplitMix64
  double next_signed_uniform();    // in (−1, 1), 53 random bits
  std::uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// Natural log of x > 0 from basic arithmetic only (frexp range reduction + atanh series); ~1 ulp.
double portable_log(double x);

std::vector<double> standard_normal(NormalGenerator& generator, std::size_t count);

}  // namespace ringlab
