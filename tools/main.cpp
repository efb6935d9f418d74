// ringlab — the command-line front end of the reference: golden cases, the checker and the ring schedule.
//   ringlab golden   --out DIR [config flags]     write a golden case (or --suite standard)
//   ringlab check    CASE_DIR --outputs DIR       compare an implementation's outputs with a case
//   ringlab schedule [config flags] [--json]      the ring schedule per device and step
//   ringlab simulate [config flags] [--mode ...]  P virtual devices: memory, timeline, faults (the main job)
// Exit codes: 0 success, 1 a check failed, 2 unusable input (bad flag, config or file), 3 internal error.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "commands.hpp"
#include "ringlab/errors.hpp"
#include "ringlab/golden.hpp"

namespace {

constexpr int kExitUnusableInput = 2;
constexpr int kExitInternalError = 3;

// One line on stderr: "ringlab <sub>: error: <message>".
void print_error(const std::string& command, std::string message) {
  std::replace(message.begin(), message.end(), '\n', ' ');
  while (!message.empty() && message.back() == ' ') message.pop_back();
  fmt::print(stderr, "{}: error: {}\n", command, message);
}

// The subcommand a failed parse was inside, for the error line (argv[1] if it names one).
std::string command_name(const CLI::App& app, const std::vector<ringlab::cli::Command>& commands, int argc,
                         char** argv) {
  for (const auto* sub : app.get_subcommands()) return "ringlab " + sub->get_name();
  if (argc > 1)
    for (const auto& command : commands)
      if (command.app->get_name() == argv[1]) return "ringlab " + command.app->get_name();
  return "ringlab";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ringlab " + ringlab::ringlab_version() +
                   ": ring attention and LongNet dilated attention workbench (exact fp64 reference, golden cases, "
                   "checker, ring schedule)",
               "ringlab"};
  app.set_version_flag("--version", "ringlab " + ringlab::ringlab_version(), "print the version and exit");
  app.require_subcommand(1);
  app.get_formatter()->column_width(34);
  app.footer("Run 'ringlab <subcommand> --help' for its flags. Exit codes: 0 ok, 1 check failed, 2 unusable input.");

  std::vector<ringlab::cli::Command> commands;
  try {
    commands = {ringlab::cli::add_golden_command(app), ringlab::cli::add_check_command(app),
                ringlab::cli::add_schedule_command(app), ringlab::cli::add_simulate_command(app)};
  } catch (const std::exception& error) {  // a flag registration bug, not user input
    print_error("ringlab", std::string("internal error: ") + error.what());
    return kExitInternalError;
  }

  // CLI11 would say "A subcommand is required" for a misspelt one.
  if (argc > 1 && argv[1][0] != '-' &&
      std::none_of(commands.begin(), commands.end(), [&](const auto& c) { return c.app->get_name() == argv[1]; })) {
    std::string names;
    for (const auto& command : commands) names += (names.empty() ? "" : ", ") + command.app->get_name();
    print_error("ringlab", std::string("unknown subcommand '") + argv[1] + "'; the subcommands are " + names +
                               " (see 'ringlab --help')");
    return kExitUnusableInput;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const std::string name = command_name(app, commands, argc, argv);
    print_error(name, std::string(e.what()) + " (see '" + name + " --help')");
    return kExitUnusableInput;
  }

  for (const auto& command : commands) {
    if (!command.app->parsed()) continue;
    const std::string name = "ringlab " + command.app->get_name();
    try {
      return command.run();
    } catch (const ringlab::Error& error) {  // ConfigError, InputError: the user's flags or files
      print_error(name, error.what());
      return kExitUnusableInput;
    } catch (const std::bad_alloc&) {
      print_error(name, "out of memory; try a smaller configuration");
      return kExitUnusableInput;
    } catch (const std::exception& error) {
      print_error(name, std::string("internal error: ") + error.what());
      return kExitInternalError;
    }
  }
  print_error("ringlab", "no subcommand given (see 'ringlab --help')");
  return kExitUnusableInput;
}
