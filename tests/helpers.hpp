// Shared test helpers: random inputs from ringlab's own generator and error measures against fp64.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

#include "ringlab/attention.hpp"
#include "ringlab/random.hpp"

namespace ringlab::testing {

struct Inputs {
  Tensor<double> q, k, v, dout;
};

inline Inputs random_inputs(const AttentionConfig& config, std::uint64_t seed) {
  NormalGenerator generator(seed);
  auto fill = [&](std::vector<std::int64_t> shape) {
    Tensor<double> tensor(std::move(shape));
    tensor.data = standard_normal(generator, tensor.data.size());
    return tensor;
  };
  Inputs inputs;
  inputs.q = fill(query_shape(config));
  inputs.k = fill(kv_shape(config));
  inputs.v = fill(kv_shape(config));
  inputs.dout = fill(query_shape(config));
  return inputs;
}

// max |a − b| / max(max |b|, 1): relative to the tensor's largest entry, absolute when that is below 1 (a
// gradient that is 0 in exact arithmetic is compared absolutely, not relative to its rounding noise).
// −∞ must match −∞ exactly (else the error is +∞). docs/semantics.md §Tolerances defines the same metric.
template <class A, class B>
double scaled_error(const Tensor<A>& a, const Tensor<B>& b) {
  if (a.shape != b.shape) return INFINITY;
  double worst = 0.0, scale = 1.0;
  for (std::size_t i = 0; i < b.data.size(); ++i)
    if (std::isfinite(static_cast<double>(b.data[i]))) scale = std::max(scale, std::abs(static_cast<double>(b.data[i])));
  for (std::size_t i = 0; i < a.data.size(); ++i) {
    const double x = static_cast<double>(a.data[i]), y = static_cast<double>(b.data[i]);
    if (std::isnan(x) || std::isnan(y)) return INFINITY;
    if (std::isinf(x) || std::isinf(y)) {
      if (x != y) return INFINITY;
      continue;
    }
    worst = std::max(worst, std::abs(x - y) / scale);
  }
  return worst;
}

template <class T>
bool all_finite_or_minus_infinity(const Tensor<T>& tensor) {
  return std::all_of(tensor.data.begin(), tensor.data.end(),
                     [](T x) { return std::isfinite(x) || x == -std::numeric_limits<T>::infinity(); });
}

}  // namespace ringlab::testing
