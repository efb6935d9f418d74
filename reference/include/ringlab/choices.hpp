// Parsing a named choice ("zigzag", "analytic", ...) into its enum, with the one error message every
// ringlab flag uses. `to_string(Enum)` is found by argument-dependent lookup in the enum's namespace.
#pragma once

#include <cstddef>
#include <string>

#include "ringlab/errors.hpp"

namespace ringlab {

template <class Enum, std::size_t Count>
Enum parse_choice(const std::string& text, const std::string& parameter, const Enum (&values)[Count]) {
  std::string valid;
  for (Enum value : values) {
    if (to_string(value) == text) return value;
    valid += (valid.empty() ? "" : ", ") + to_string(value);
  }
  throw ConfigError(parameter, "'" + text + "'", "valid values are " + valid);
}

}  // namespace ringlab
