// The ringlab subcommands. Each add_*_command registers a subcommand with its flags on the top-level app and
// returns the function main() runs when that subcommand was chosen. A run function returns the exit code
// (0 success, 1 a check failed) and lets ringlab::Error escape: main() turns it into one "error:" line and
// exit code 2.
#pragma once

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <functional>
#include <string>

namespace ringlab::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_golden_command(CLI::App& parent);    // tools/cmd_golden.cpp
Command add_check_command(CLI::App& parent);     // tools/cmd_check.cpp
Command add_schedule_command(CLI::App& parent);  // tools/cmd_schedule.cpp
Command add_simulate_command(CLI::App& parent);  // tools/cmd_simulate.cpp

// "1.234e-05", "0", "inf": the number format of every error column.
inline std::string format_error(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return "0";
  return fmt::format("{:.3e}", value);
}

}  // namespace ringlab::cli
