// Which kernel runs: the environment's RINGLAB_FORWARD_VARIANT / RINGLAB_BACKWARD_VARIANT, read in one place,
// and whether the Hopper kernels can run here (kernels.cuh).
#include <cstdlib>
#include <string>

#include "kernels.cuh"
#include "ringlab/errors.hpp"

namespace ringlab::gpu::detail {
namespace {

// The variable's value, or "auto" when unset or empty; anything not in `valid` is refused by name.
std::string variant(const char* variable, const std::string& valid) {
  const char* value = std::getenv(variable);
  if (value == nullptr || *value == '\0') return "auto";
  const std::string text = value;
  std::string options = " " + valid + " ";
  if (options.find(" " + text + " ") == std::string::npos)
    throw ConfigError(variable, "'" + text + "'", "one of: " + valid + " (or unset)");
  return text;
}

}  // namespace

ForwardVariant forward_variant() {
  const std::string value = variant("RINGLAB_FORWARD_VARIANT", "auto mma n64");
  if (value == "mma") return ForwardVariant::mma;
  if (value == "n64") return ForwardVariant::mma_n64;
  return ForwardVariant::automatic;
}

BackwardVariant backward_variant() {
  return variant("RINGLAB_BACKWARD_VARIANT", "auto mma") == "mma" ? BackwardVariant::mma
                                                                   : BackwardVariant::automatic;
}

bool hopper_copies_by_tma() { return variant("RINGLAB_HOPPER_COPIES", "auto tma cp.async") != "cp.async"; }

bool hopper_forward_available() {
  return forward_variant() == ForwardVariant::automatic && hopper_kernels_loadable();
}
bool hopper_backward_available() {
  return backward_variant() == BackwardVariant::automatic && hopper_kernels_loadable();
}

}  // namespace ringlab::gpu::detail
