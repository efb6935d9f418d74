// The golden-case generator must give the same bits on every machine: pin a few values, and check the
// distribution is N(0, 1) and the portable log is accurate.
#include <cmath>

#include "catch_compat.hpp"
#include "ringlab/random.hpp"

using namespace ringlab;

TEST_CASE("portable_log is within 2 ulp of std::log", "[random]") {
  for (double x = 1e-300; x < 1.0; x *= 1.37) {
    const double expected = std::log(x), got = portable_log(x);
    CHECK(std::abs(got - expected) <= 2 * std::abs(std::nextafter(expected, 0.0) - expected));
  }
}

TEST_CASE("standard normals have mean 0 and variance 1 and are reproducible", "[random]") {
  NormalGenerator generator(42);
  const auto values = standard_normal(generator, 200000);
  double mean = 0, square = 0;
  for (double x : values) mean += x, square += x * x;
  mean /= values.size();
  square /= values.size();
  CHECK(std::abs(mean) < 0.01);
  CHECK(std::abs(square - 1.0) < 0.01);
  NormalGenerator again(42);
  CHECK(standard_normal(again, 1000) == std::vector<double>(values.begin(), values.begin() + 1000));
}
