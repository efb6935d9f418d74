// ringlab check: compare an implementation's outputs (o, lse, dq, dk, dv .npy) with a golden case.
#include <fmt/core.h>

#include <memory>
#include <string>

#include "commands.hpp"
#include "ringlab/golden.hpp"

namespace ringlab::cli {
namespace {

struct CheckFlags {
  std::string case_dir, outputs, dtype = "fp64";
};

std::string index_text(const std::vector<std::int64_t>& index) {
  std::string text = "[";
  for (std::size_t i = 0; i < index.size(); ++i) text += (i ? ", " : "") + std::to_string(index[i]);
  return text + "]";
}

int run_check(const CheckFlags& flags) {
  const Precision precision = parse_precision(flags.dtype, "--dtype");
  const GoldenCase golden = load_case(flags.case_dir);
  const CheckReport report = check_outputs(golden, flags.outputs, precision);

  fmt::print("case     {}: {} (algorithm {}, seed {})\n", flags.case_dir, describe(golden.config),
             to_string(golden.algorithm), golden.seed);
  fmt::print("outputs  {}, checked at {} tolerances\n", flags.outputs, to_string(precision));
  fmt::print("metric   scaled err = max|out - ref| / max(max|ref|, 1); pass iff scaled err <= tolerance\n\n");
  fmt::print("{:<6} {:<8} {:>12} {:>12} {:>12} {:<7} {:<22} {:>12}\n", "tensor", "file", "max abs err", "scaled err",
             "tolerance", "verdict", "worst index", "rel err there");
  int failed = 0;
  for (const TensorCheck& check : report.tensors) {
    failed += check.passed ? 0 : 1;
    fmt::print("{:<6} {:<8} {:>12} {:>12} {:>12} {:<7} {:<22} {:>12}\n", check.name, npy::to_string(check.file_dtype),
               format_error(check.error.max_abs_error), format_error(check.error.scaled_error),
               format_error(check.tolerance), check.passed ? "pass" : "FAIL", index_text(check.error.worst_index),
               format_error(check.error.worst_relative_error));
  }
  if (!report.missing.empty()) {
    std::string missing;
    for (const auto& name : report.missing) missing += (missing.empty() ? "" : ", ") + name + ".npy";
    fmt::print("not submitted: {}\n", missing);
  }
  const auto checked = report.tensors.size();
  if (failed == 0)
    fmt::print("\nPASS: {} of {} tensors within {} tolerance\n", checked, checked, to_string(precision));
  else
    fmt::print("\nFAIL: {} of {} tensors outside {} tolerance\n", failed, checked, to_string(precision));
  return failed == 0 ? 0 : 1;
}

}  // namespace

Command add_check_command(CLI::App& parent) {
  auto flags = std::make_shared<CheckFlags>();
  CLI::App* app = parent.add_subcommand(
      "check",
      "Compare outputs (whichever of o.npy, lse.npy, dq.npy, dk.npy, dv.npy exist; float16/32/64) with a golden "
      "case. Exit 0 all pass, 1 any fails, 2 unusable input.");
  app->add_option("CASE_DIR", flags->case_dir, "golden case directory (holds case.json, written by ringlab golden)")
      ->required()
      ->type_name("DIR");
  app->add_option("--outputs", flags->outputs, "directory with the outputs to check, same shapes as the case")
      ->required()
      ->type_name("DIR");
  app->add_option("--dtype", flags->dtype,
                  "precision the outputs were computed in, which picks the tolerances: fp64 | fp32 | bf16 | fp16 "
                  "(default fp64; submit bf16 widened to float32)")
      ->type_name("DTYPE");
  app->footer("Example: ringlab check cases/zigzag --outputs my_outputs --dtype bf16");
  return {app, [flags] { return run_check(*flags); }};
}

}  // namespace ringlab::cli
