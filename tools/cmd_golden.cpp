// ringlab golden: write one golden case (config flags) or a whole suite (--suite standard).
#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "commands.hpp"
#include "config_flags.hpp"
#include "ringlab/errors.hpp"
#include "ringlab/golden.hpp"

namespace ringlab::cli {

namespace {

// CLI11 would wrap "-1" round to 2^64 - 1; a seed is a plain decimal number.
std::uint64_t parse_seed(const std::string& text) {
  const bool digits = !text.empty() && text.size() <= 20 &&
                      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  errno = 0;
  const unsigned long long value = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
  if (!digits || errno == ERANGE)
    throw ConfigError("--seed", "'" + text + "'", "must be an integer in [0, 18446744073709551615]");
  return value;
}

struct GoldenFlags {
  std::string out, algorithm, suite;
  bool force = false;
  std::string seed = "0";
  std::unique_ptr<ConfigFlags> config;
};

int run_suite(const GoldenFlags& flags, const CLI::App& app) {
  if (flags.config->any_given() || app.count("--algorithm") || app.count("--seed"))
    throw ConfigError("--suite", flags.suite,
                      "a suite defines the config, algorithm and seed of every case; drop the config flags, "
                      "--algorithm and --seed");
  const auto start = std::chrono::steady_clock::now();
  const auto total = suite_cases(flags.suite).size();  // throws ConfigError for an unknown suite first
  std::size_t done = 0;
  write_suite(flags.suite, flags.out, flags.force, [&](const SuiteCase& suite_case, const GoldenCase& golden) {
    double worst = 0;
    for (const auto& [name, value] : golden.max_scaled_difference_from_dense) worst = std::max(worst, value);
    fmt::print("[{:2}/{}] {:<48} {:<9} max diff from dense {}\n", ++done, total, suite_case.name,
               to_string(suite_case.algorithm), format_error(worst));
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print("wrote {} cases of suite '{}' to {} (index.json) in {:.1f} s\n", total, flags.suite, flags.out, seconds);
  return 0;
}

int run_golden(const GoldenFlags& flags, const CLI::App& app) {
  if (!flags.suite.empty() || app.count("--suite")) return run_suite(flags, app);
  const AttentionConfig config = flags.config->config();
  const Algorithm algorithm =
      app.count("--algorithm") ? parse_algorithm(flags.algorithm, "--algorithm") : default_algorithm(config);
  const std::uint64_t seed = parse_seed(flags.seed);
  const GoldenCase golden = write_case(config, algorithm, flags.out, flags.force, seed);
  double worst = 0;
  for (const auto& [name, value] : golden.max_scaled_difference_from_dense) worst = std::max(worst, value);
  fmt::print("golden case: {} | algorithm {} | seed {} | max scaled diff from dense {} | {}\n", describe(config),
             to_string(algorithm), seed, format_error(worst), flags.out);
  return 0;
}

}  // namespace

Command add_golden_command(CLI::App& parent) {
  auto flags = std::make_shared<GoldenFlags>();
  CLI::App* app = parent.add_subcommand(
      "golden",
      "Write a golden case: inputs q, k, v, do ~ N(0,1) from --seed and the exact fp64 outputs o, lse, dq, dk, dv "
      "(.npy, float64, C order) plus case.json (config, tolerances per dtype). With --suite, write a whole suite.");
  app->add_option("--out", flags->out, "case directory to write (created if missing)")->required()->type_name("DIR");
  app->add_flag("--force", flags->force, "overwrite the case files in a non-empty --out (other files are left alone)");
  app->add_option("--algorithm", flags->algorithm,
                  "dense | blockwise | ring (default: ring when --ring > 1 or --q-replicated, else blockwise)")
      ->type_name("ALGORITHM");
  app->add_option("--seed", flags->seed, "seed of ringlab's portable N(0,1) generator (default 0)")->type_name("SEED");
  app->add_option("--suite", flags->suite,
                  "write the named suite (standard: 50+ small cases) into --out/<case>/ and --out/index.json "
                  "instead of one case")
      ->type_name("NAME");
  flags->config = std::make_unique<ConfigFlags>(*app);
  app->footer("Example: ringlab golden --out cases/zigzag --seq 97 --causal --ring 4 --layout zigzag");
  return {app, [flags, app] { return run_golden(*flags, *app); }};
}

}  // namespace ringlab::cli
