// ringlab error types. Every user-facing failure is one of these, so the CLI can print the message and
// exit non-zero (2 for unusable input) instead of crashing.
#pragma once

#include <stdexcept>
#include <string>

namespace ringlab {

// Base of all ringlab errors; what() is a complete sentence meant for the user.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An invalid configuration: names the parameter, the value given and what would be valid.
class ConfigError : public Error {
 public:
  ConfigError(const std::string& parameter, const std::string& value, const std::string& valid)
      : Error("invalid " + parameter + " = " + value + ": " + valid), parameter_(parameter) {}
  const std::string& parameter() const { return parameter_; }

 private:
  std::string parameter_;
};

// Unusable input data: a missing, unreadable or malformed file, a tensor of the wrong shape or dtype.
class InputError : public Error {
 public:
  using Error::Error;
};

}  // namespace ringlab
