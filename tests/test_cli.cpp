// The ringlab command-line tool, run as a separate process (RINGLAB_CLI_PATH): golden → check round trips,
// the schedule's JSON, the standard suite, and ≥ 25 invalid invocations that must each end with exit code 2
// and one "ringlab <sub>: error: ..." line naming the flag or file — never a crash.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "temp_dir.hpp"
#include "ringlab/golden.hpp"
#include "ringlab/npy.hpp"

#ifndef RINGLAB_CLI_PATH
#error "RINGLAB_CLI_PATH must name the ringlab executable (tests/CMakeLists.txt)"
#endif

namespace fs = std::filesystem;

namespace {

using ringlab::testing::TempDir;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

struct Result {
  int code = -1;
  std::string out, err;
  std::string all() const { return out + err; }
};

// Runs `ringlab args...` with stdout and stderr captured in files of `scratch`.
Result run_cli(const std::vector<std::string>& args, const fs::path& scratch) {
  std::string command = shell_quote(RINGLAB_CLI_PATH);
  for (const auto& arg : args) command += " " + shell_quote(arg);
  const fs::path out = scratch / "stdout.txt", err = scratch / "stderr.txt";
  command += " >" + shell_quote(out.string()) + " 2>" + shell_quote(err.string());
  const int status = std::system(command.c_str());
  Result result;
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  result.out = read_file(out);
  result.err = read_file(err);
  return result;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string joined(const std::vector<std::string>& args) {
  std::string text;
  for (const auto& arg : args) text += (text.empty() ? "" : " ") + arg;
  return text;
}

// Text that means the process crashed or a sanitizer fired instead of a clean error.
bool looks_like_a_crash(const std::string& text) {
  for (const char* sign : {"Sanitizer", "Aborted", "terminate", "runtime error", "Segmentation", "core dumped"})
    if (contains(text, sign)) return true;
  return false;
}

std::string replace_once(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// Config flags of a small, fast case.
const std::vector<std::string> kSmallCase = {"--seq", "33",         "--heads", "4",        "--kv-heads",
                                             "2",     "--head-dim", "8",       "--causal", "--ring",
                                             "3",     "--layout",   "striped", "--seed",   "5"};

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("ringlab --version and --help", "[cli]") {
  TempDir temp;
  const Result version = run_cli({"--version"}, temp.path);
  CHECK(version.code == 0);
  CHECK(version.out == "ringlab " + ringlab::ringlab_version() + "\n");
  CHECK(version.out == "ringlab 0.1.0\n");

  for (const std::string sub : {"golden", "check", "schedule"}) {
    const Result help = run_cli({sub, "--help"}, temp.path);
    INFO(sub << ": " << help.all());
    CHECK(help.code == 0);
    CHECK(contains(help.out, "Usage: ringlab " + sub));
  }
  const Result golden_help = run_cli({"golden", "--help"}, temp.path);
  for (const char* flag :
       {"--out",     "--force",        "--algorithm", "--suite",       "--seed",    "--batch",    "--seq",   "--kv-seq",
        "--q-start", "--heads",        "--kv-heads",  "--head-dim",    "--causal",  "--window",   "--scale", "--ring",
        "--layout",  "--q-replicated", "--dilation",  "--offset-rule", "--combine", "--segments", "--preset"}) {
    INFO(flag);
    CHECK(contains(golden_help.out, flag));
  }
  const Result check_help = run_cli({"check", "--help"}, temp.path);
  CHECK(contains(check_help.out, "--outputs"));
  CHECK(contains(check_help.out, "--dtype"));
  const Result schedule_help = run_cli({"schedule", "--help"}, temp.path);
  CHECK(contains(schedule_help.out, "--json"));
  CHECK(contains(schedule_help.out, "--bytes-per-element"));
}

TEST_CASE("ringlab golden writes a case that ringlab check accepts, and check catches a perturbed output", "[cli]") {
  TempDir temp;
  const fs::path case_dir = temp.path / "case";
  const Result golden = run_cli(concat({"golden", "--out", case_dir.string()}, kSmallCase), temp.path);
  INFO(golden.all());
  REQUIRE(golden.code == 0);
  CHECK(contains(golden.out, "ring"));
  CHECK(contains(golden.out, case_dir.string()));
  CHECK(golden.err.empty());

  const ringlab::GoldenCase loaded = ringlab::load_case(case_dir);
  CHECK(loaded.config.seq == 33);
  CHECK(loaded.config.kv_heads == 2);
  CHECK(loaded.config.layout == ringlab::Layout::striped);
  CHECK(loaded.algorithm == ringlab::Algorithm::ring);
  CHECK(loaded.seed == 5);

  const Result pass = run_cli({"check", case_dir.string(), "--outputs", case_dir.string()}, temp.path);
  INFO(pass.all());
  CHECK(pass.code == 0);
  CHECK(contains(pass.out, "PASS"));
  for (const char* column : {"tensor", "max abs err", "scaled err", "tolerance", "verdict", "worst index", "rel err"})
    CHECK(contains(pass.out, column));

  // One element of dk off by 1e-3: exit 1, the index in the table.
  const fs::path outputs = temp.path / "outputs";
  fs::create_directories(outputs);
  ringlab::Tensor<double> dk = loaded.outputs.dk;  // [1, 33, 2, 8]
  dk.data[(20 * 2 + 1) * 8 + 6] += 1e-3;
  ringlab::npy::write(outputs / "dk.npy", dk.data, dk.shape);
  ringlab::npy::write(outputs / "o.npy", loaded.outputs.o.data, loaded.outputs.o.shape);
  const Result fail = run_cli({"check", case_dir.string(), "--outputs", outputs.string()}, temp.path);
  INFO(fail.all());
  CHECK(fail.code == 1);
  CHECK(contains(fail.out, "FAIL"));
  CHECK(contains(fail.out, "[0, 20, 1, 6]"));
  CHECK(contains(fail.out, "not submitted: lse.npy, dq.npy, dv.npy"));
  CHECK(!looks_like_a_crash(fail.all()));

  // The same perturbation is far inside the bf16 tolerance.
  const Result bf16 =
      run_cli({"check", case_dir.string(), "--outputs", outputs.string(), "--dtype", "bf16"}, temp.path);
  CHECK(bf16.code == 0);

  // --force rewrites the case in place; without it the directory is refused.
  const Result again = run_cli(concat({"golden", "--out", case_dir.string(), "--force"}, kSmallCase), temp.path);
  CHECK(again.code == 0);
}

TEST_CASE("ringlab schedule: JSON with the documented keys and the zigzag example", "[cli]") {
  TempDir temp;
  auto schedule = [&](const std::string& layout) {
    const Result result = run_cli(
        {"schedule", "--seq", "8", "--heads", "1", "--ring", "2", "--layout", layout, "--causal", "--json"}, temp.path);
    INFO(result.all());
    REQUIRE(result.code == 0);
    return nlohmann::json::parse(result.out);
  };
  const nlohmann::json zigzag = schedule("zigzag");
  REQUIRE(zigzag.contains("devices"));
  REQUIRE(zigzag["devices"].size() == 2);
  for (const auto& device : zigzag["devices"]) {
    CHECK(device.contains("id"));
    CHECK(device.contains("total_pairs"));
    REQUIRE(device["steps"].size() == 2);
    for (const auto& step : device["steps"])
      for (const char* key : {"step", "kv_owner", "pairs", "skipped"}) {
        INFO(key);
        CHECK(step.contains(key));
      }
  }
  CHECK(zigzag["devices"][0]["total_pairs"] == 18);
  CHECK(zigzag["devices"][1]["total_pairs"] == 18);
  CHECK(zigzag["devices"][0]["steps"][1]["kv_owner"] == 1);
  CHECK(zigzag["devices"][0]["steps"][1]["pairs"] == 8);
  CHECK(zigzag["total_pairs"] == 36);

  const nlohmann::json contiguous = schedule("contiguous");
  CHECK(contiguous["devices"][0]["total_pairs"] == 10);
  CHECK(contiguous["devices"][1]["total_pairs"] == 26);
  CHECK(contiguous["devices"][0]["steps"][1]["skipped"] == true);
  CHECK(contiguous["skipped_steps"] == 1);
  CHECK(contiguous["local_only"] == false);  // device 1 computes at step 1
  // dK, dV come home in the K/V's dtype: as many bytes per row as K, V.
  CHECK(contiguous["returned_gradient_bytes_per_row"] == contiguous["kv_bytes_per_row"]);
  CHECK(contiguous["gradient_bytes_per_row"] == 2 * contiguous["kv_bytes_per_row"].get<std::int64_t>());  // fp32

  const nlohmann::json striped = schedule("striped");
  CHECK(striped["devices"][0]["total_pairs"] == 16);
  CHECK(striped["devices"][1]["total_pairs"] == 20);

  const Result table =
      run_cli({"schedule", "--seq", "8", "--heads", "1", "--ring", "2", "--layout", "zigzag", "--causal"}, temp.path);
  CHECK(table.code == 0);
  CHECK(contains(table.out, "imbalance"));
  CHECK(contains(table.out, "kv owner"));
}

TEST_CASE("ringlab golden --suite standard writes at least 40 checkable cases", "[cli]") {
  TempDir temp;
  const fs::path suite = temp.path / "suite";
  const Result result = run_cli({"golden", "--suite", "standard", "--out", suite.string()}, temp.path);
  INFO(result.err);
  REQUIRE(result.code == 0);
  int cases = 0;
  for (const auto& entry : fs::directory_iterator(suite))
    if (entry.is_directory() && fs::exists(entry.path() / "case.json")) ++cases;
  CHECK(cases >= 40);
  const auto index = nlohmann::json::parse(read_file(suite / "index.json"));
  CHECK(index["cases"].size() == static_cast<std::size_t>(cases));
  const std::string first = index["cases"][0]["dir"];
  const Result check = run_cli({"check", (suite / first).string(), "--outputs", (suite / first).string()}, temp.path);
  CHECK(check.code == 0);
  // A second run into the same directory needs --force.
  const Result refused = run_cli({"golden", "--suite", "standard", "--out", suite.string()}, temp.path);
  CHECK(refused.code == 2);
  CHECK(contains(refused.err, "--force"));
}

TEST_CASE("invalid configurations and files: exit 2, one error line naming the problem, no crash", "[cli]") {
  TempDir temp;
  // A valid case and a set of broken output and case directories.
  const fs::path case_dir = temp.path / "case";
  REQUIRE(run_cli(concat({"golden", "--out", case_dir.string()}, kSmallCase), temp.path).code == 0);
  const ringlab::GoldenCase golden = ringlab::load_case(case_dir);
  const std::string case_path = case_dir.string();
  const std::string valid_o = read_file(case_dir / "o.npy");

  auto outputs_with = [&](const std::string& name, const std::string& file, const std::string& bytes) {
    const fs::path dir = temp.path / name;
    fs::create_directories(dir);
    write_file(dir / file, bytes);
    return dir.string();
  };
  const std::string corrupted = outputs_with("corrupted", "o.npy", "this is not a .npy file");
  const std::string truncated = outputs_with("truncated", "dq.npy", read_file(case_dir / "dq.npy").substr(0, 300));
  const std::string fortran =
      outputs_with("fortran", "o.npy", replace_once(valid_o, "'fortran_order': False", "'fortran_order': True "));
  const std::string big_endian = outputs_with("big_endian", "o.npy", replace_once(valid_o, "'<f8'", "'>f8'"));
  const std::string integers = outputs_with("integers", "o.npy", replace_once(valid_o, "'<f8'", "'<i8'"));
  const fs::path wrong_shape_dir = temp.path / "wrong_shape";
  fs::create_directories(wrong_shape_dir);
  ringlab::npy::write(wrong_shape_dir / "lse.npy", golden.outputs.lse.data, {1, 33, 4});  // [B, N, H]: transposed
  const fs::path empty_dir = temp.path / "empty";
  fs::create_directories(empty_dir);

  auto broken_case = [&](const std::string& name, const std::string& file, const std::string& bytes) {
    const fs::path dir = temp.path / name;
    fs::copy(case_dir, dir);
    if (bytes.empty())
      fs::remove(dir / file);
    else
      write_file(dir / file, bytes);
    return dir.string();
  };
  const std::string case_json = read_file(case_dir / "case.json");
  const std::string garbage_json = broken_case("garbage_json", "case.json", "{\"format\": \"ringlab-golden\", ");
  const std::string no_json = broken_case("no_json", "case.json", "");
  const std::string future =
      broken_case("future", "case.json", replace_once(case_json, "\"format_version\": 1", "\"format_version\": 9"));
  const std::string no_seq = broken_case("no_seq", "case.json", replace_once(case_json, "\"seq\": 33,", ""));
  const std::string missing_q = broken_case("missing_q", "q.npy", "");
  const fs::path a_file = temp.path / "a_file";
  write_file(a_file, "x");
  const fs::path occupied = temp.path / "occupied";
  fs::create_directories(occupied);
  write_file(occupied / "notes.txt", "mine");

  struct Invalid {
    std::vector<std::string> args;
    std::string names;  // text the error line must contain
  };
  const std::string out = (temp.path / "new_case").string();
  auto golden_with = [&](std::vector<std::string> flags) { return concat({"golden", "--out", out}, flags); };
  const std::vector<Invalid> invalid = {
      // Files given to check.
      {{"check", case_path, "--outputs", corrupted}, "o.npy"},
      {{"check", case_path, "--outputs", truncated}, "dq.npy"},
      {{"check", case_path, "--outputs", fortran}, "Fortran"},
      {{"check", case_path, "--outputs", big_endian}, "big-endian"},
      {{"check", case_path, "--outputs", integers}, "'<i8'"},
      {{"check", case_path, "--outputs", wrong_shape_dir.string()}, "lse.npy: shape [1, 33, 4]"},
      {{"check", case_path, "--outputs", empty_dir.string()}, "none of o.npy"},
      {{"check", case_path, "--outputs", (temp.path / "absent").string()}, "--outputs"},
      {{"check", (temp.path / "no_such_case").string(), "--outputs", case_path}, "no_such_case"},
      {{"check", garbage_json, "--outputs", case_path}, "case.json: not valid JSON"},
      {{"check", no_json, "--outputs", case_path}, "case.json"},
      {{"check", future, "--outputs", case_path}, "format_version 9"},
      {{"check", no_seq, "--outputs", case_path}, "config.seq"},
      {{"check", missing_q, "--outputs", case_path}, "q.npy"},
      {{"check", case_path, "--outputs", case_path, "--dtype", "fp8"}, "--dtype"},
      {{"check", case_path}, "--outputs"},
      {{"check", "--outputs", case_path}, "CASE_DIR"},
      // Configs given to golden.
      {golden_with({"--layout", "diagonal", "--ring", "2"}), "--layout"},
      {golden_with({"--heads", "6", "--kv-heads", "4"}), "--kv-heads"},
      {golden_with({"--ring", "2", "--seq", "64", "--kv-seq", "32"}), "--kv-seq"},
      {golden_with({"--q-replicated", "--q-start", "3"}), "--q-start"},
      {golden_with({"--window", "3"}), "--window"},
      {golden_with({"--window", "2,-5"}), "--window right"},
      {golden_with({"--dilation", "32-1"}), "--dilation"},
      {golden_with({"--dilation", "8:16"}), "--dilation"},
      {golden_with({"--seq", "100", "--dilation", "32:1"}), "--segments ragged"},
      {golden_with({"--dilation", "32:1,64:2", "--combine", "group_mean"}), "--combine"},
      {golden_with({"--heads", "1", "--kv-heads", "1", "--dilation", "32:1,64:2", "--offset-rule", "group"}),
       "--heads"},
      {golden_with({"--dilation", "32:1", "--preset", "megatron"}), "--preset"},
      {golden_with({"--offset-rule", "random"}), "--offset-rule"},
      {golden_with({"--segments", "padded"}), "--segments"},
      {golden_with({"--seq", "-5"}), "--seq"},
      {golden_with({"--seq", "abc"}), "--seq"},
      {golden_with({"--seq", "0"}), "--seq"},
      {golden_with({"--batch", "-1"}), "--batch"},
      {golden_with({"--head-dim", "0"}), "--head-dim"},
      {golden_with({"--ring", "0"}), "--ring"},
      {golden_with({"--scale", "nan"}), "--scale"},
      {golden_with({"--scale", "abc"}), "--scale"},
      {golden_with({"--seed", "-1"}), "--seed"},
      {golden_with({"--algorithm", "warp"}), "--algorithm"},
      {golden_with({"--algorithm", "blockwise", "--ring", "2"}), "--algorithm"},
      {golden_with({"--seq", "100000"}), "--seq"},
      {golden_with({"--bogus"}), "--bogus"},
      {golden_with({"--suite", "nonesuch"}), "--suite"},
      {golden_with({"--suite", "standard", "--seq", "8"}), "--suite"},
      {{"golden", "--seq", "8"}, "--out"},
      {{"golden", "--out", a_file.string()}, "not a directory"},
      {{"golden", "--out", occupied.string()}, "--force"},
      {{"golden", "--out", case_path}, "--force"},
      // Other subcommands.
      {{"schedule", "--bytes-per-element", "0"}, "--bytes-per-element"},
      {{"schedule", "--ring", "5000"}, "--ring"},
      {{"schedule", "--seq", "8", "--layout", "spiral", "--ring", "2"}, "--layout"},
      {{"frobnicate"}, "frobnicate"},
      {{}, "subcommand"},
  };
  CHECK(invalid.size() >= 25);
  for (const Invalid& test : invalid) {
    const Result result = run_cli(test.args, temp.path);
    INFO("ringlab " << joined(test.args) << "\nstdout: " << result.out << "\nstderr: " << result.err);
    CHECK(result.code == 2);
    CHECK(contains(result.err, test.names));
    CHECK(contains(result.err, "error: "));
    CHECK(result.err.find("ringlab") == 0);
    CHECK(std::count(result.err.begin(), result.err.end(), '\n') == 1);  // one line
    CHECK(result.out.empty());
    CHECK(!looks_like_a_crash(result.all()));
  }
  // Nothing was written where it was refused.
  CHECK(!fs::exists(temp.path / "new_case" / "case.json"));
  CHECK(read_file(occupied / "notes.txt") == "mine");
  CHECK(!fs::exists(occupied / "case.json"));
  CHECK(read_file(case_dir / "case.json") == case_json);
}

TEST_CASE("ringlab simulate: report, trace, config file, faults and exit codes", "[cli][simulate]") {
  TempDir temp;
  const std::vector<std::string> small = {"simulate", "--seq", "256", "--ring", "4", "--heads", "2", "--head-dim", "8"};
  const fs::path report = temp.path / "report.json", trace = temp.path / "trace.json";
  const Result run = run_cli(concat(small, {"--pass", "both", "--report-json", report.string(), "--trace",
                                            trace.string()}),
                             temp.path);
  INFO(run.all());
  REQUIRE(run.code == 0);
  CHECK(contains(run.out, "max |ring − single-device reference|"));
  CHECK(contains(run.out, "ui.perfetto.dev"));
  const auto json = nlohmann::json::parse(read_file(report));
  for (const char* key : {"config", "devices", "makespan_ns", "dense_reference", "max_abs_error_vs_dense"})
    CHECK(json.contains(key));
  REQUIRE(json["devices"].size() == 4);
  for (const char* key : {"id", "peak_bytes", "peak_bytes_by_category", "compute_ns", "comm_ns", "idle_ns",
                          "exposed_comm_ns", "bytes_sent"})
    CHECK(json["devices"][0].contains(key));
  CHECK(json["max_abs_error_vs_dense"].get<double>() < 1e-12);
  CHECK(nlohmann::json::parse(read_file(trace)).contains("traceEvents"));

  SECTION("analytic mode reports a null error") {
    const Result analytic = run_cli(concat(small, {"--mode", "analytic", "--report-json", report.string(), "--force"}),
                                    temp.path);
    REQUIRE(analytic.code == 0);
    CHECK(nlohmann::json::parse(read_file(report))["max_abs_error_vs_dense"].is_null());
  }
  SECTION("--grad-precision fp32 sends the dK/dV hop home in fp32: more bytes than the default") {
    auto sent = [&](const std::string& precision) {
      const Result result = run_cli(concat(small, {"--mode", "analytic", "--pass", "backward", "--grad-precision",
                                                   precision, "--report-json", report.string(), "--force"}),
                                    temp.path);
      REQUIRE(result.code == 0);
      return nlohmann::json::parse(read_file(report))["devices"][0]["bytes_sent"].get<std::int64_t>();
    };
    CHECK(sent("fp32") > sent("input"));
    const Result refused = run_cli(concat(small, {"--grad-precision", "bf16"}), temp.path);
    CHECK(refused.code == 2);
    CHECK(contains(refused.err, "--grad-precision"));
  }
  SECTION("existing output files are not overwritten without --force") {
    const std::string before = read_file(report);
    const Result again = run_cli(concat(small, {"--report-json", report.string()}), temp.path);
    CHECK(again.code == 2);
    CHECK(contains(again.err, "--force"));
    CHECK(read_file(report) == before);
  }
  SECTION("--config JSON, overridden by flags; unknown keys are errors") {
    write_file(temp.path / "config.json", R"({"seq": 128, "ring": 2, "layout": "striped", "mode": "analytic"})");
    const Result configured = run_cli({"simulate", "--config", (temp.path / "config.json").string(), "--ring", "4"},
                                      temp.path);
    REQUIRE(configured.code == 0);
    CHECK(contains(configured.out, "N=128"));
    CHECK(contains(configured.out, "ring=4 striped"));
    write_file(temp.path / "bad.json", R"({"seq": 128, "sequence_length": 5})");
    const Result bad = run_cli({"simulate", "--config", (temp.path / "bad.json").string()}, temp.path);
    CHECK(bad.code == 2);
    CHECK(contains(bad.err, "sequence_length"));
  }
  SECTION("every fault kind: detected faults exit 3 naming device and step; delay runs to the end") {
    for (const std::string kind : {"drop", "duplicate", "corrupt", "stale", "kill"}) {
      const Result faulty = run_cli(concat(small, {"--inject", kind + "@1:1"}), temp.path);
      INFO(kind << ": " << faulty.all());
      CHECK(faulty.code == 3);
      CHECK(contains(faulty.err, "fault detected"));
      CHECK(contains(faulty.err, "device"));
      CHECK(contains(faulty.err, "step"));
      CHECK(!looks_like_a_crash(faulty.all()));
    }
    const Result delayed = run_cli(concat(small, {"--inject", "delay@1:1"}), temp.path);
    CHECK(delayed.code == 0);
  }
  SECTION("a memory budget below the need (10 KiB against ~27 KiB) stops the run with exit 3") {
    const Result oom = run_cli(concat(small, {"--memory-budget", "0.00001"}), temp.path);
    CHECK(oom.code == 3);
    CHECK(contains(oom.err, "out of memory on device"));
  }
  SECTION("bad simulate flags exit 2 with the parameter named") {
    const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
        {{"--mode", "exact"}, "--mode"},          {{"--scheme", "tree"}, "--scheme"},
        {{"--pass", "sideways"}, "--pass"},       {{"--device-preset", "TPU"}, "--device-preset"},
        {{"--overlap", "maybe"}, "--overlap"},    {{"--inject", "drop@9:0"}, "--inject"},
        {{"--inject", "melt@1:1"}, "--inject"},   {{"--timeout-ms", "0"}, "--timeout-ms"},
        {{"--bytes-per-element", "0"}, "--bytes-per-element"}, {{"--devices-per-node", "0"}, "--devices-per-node"},
        {{"--device-file", "/nonexistent/devices.json"}, "devices.json"}};
    for (const auto& [flags, named] : bad) {
      const Result result = run_cli(concat(small, flags), temp.path);
      INFO(joined(flags) << ": " << result.all());
      CHECK(result.code == 2);
      CHECK(contains(result.err, named));
      CHECK(!looks_like_a_crash(result.all()));
    }
  }
}

TEST_CASE("ringlab simulate --backend gpu: refused flags, then the ring on a GPU or a clear no-GPU error",
          "[cli][simulate]") {
  TempDir temp;
  SECTION("bad --backend / --dtype / --iters and simulator-only flags exit 2 naming the flag, in every build") {
    const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
        {{"--backend", "bogus"}, "--backend"},
        {{"--backend", "gpu", "--mode", "analytic"}, "--mode"},
        {{"--backend", "gpu", "--inject", "drop@1:1"}, "simulator-only"},
        {{"--backend", "gpu", "--scheme", "flash"}, "--scheme"},
        {{"--backend", "gpu", "--memory-budget", "1"}, "--memory-budget"},
        {{"--backend", "gpu", "--trace", (temp.path / "trace.json").string()}, "--trace"},
        {{"--backend", "gpu", "--bytes-per-element", "4"}, "--bytes-per-element"},
        {{"--backend", "gpu", "--dtype", "fp32"}, "--dtype"},
        {{"--backend", "gpu", "--iters", "0"}, "--iters"},
        {{"--dtype", "fp16"}, "--backend gpu"},  // GPU-only flags with the CPU simulator
        {{"--iters", "3"}, "--backend gpu"},
        {{"--backend", "gpu", "--hops", "nccl"}, "--hops"},
        {{"--hops", "kernels"}, "--backend gpu"},
    };
    for (const auto& [flags, named] : bad) {
      const Result result = run_cli(concat({"simulate", "--seq", "256", "--ring", "4"}, flags), temp.path);
      INFO(joined(flags) << ": " << result.all());
      CHECK(result.code == 2);
      CHECK(contains(result.err, named));
      CHECK(contains(result.err, "ringlab simulate: error: "));
      CHECK(std::count(result.err.begin(), result.err.end(), '\n') == 1);
      CHECK(result.out.empty());
      CHECK(!looks_like_a_crash(result.all()));
    }
    const fs::path existing = temp.path / "existing.json";
    write_file(existing, "mine");
    const Result refused = run_cli({"simulate", "--backend", "gpu", "--report-json", existing.string()}, temp.path);
    CHECK(refused.code == 2);
    CHECK(contains(refused.err, "--force"));
    CHECK(read_file(existing) == "mine");
  }
  SECTION("the tiny ring: measured beside predicted where there is a GPU, exit 2 naming the missing GPU elsewhere") {
    const fs::path report = temp.path / "gpu-report.json";
    const Result run = run_cli({"simulate", "--backend", "gpu", "--seq", "1024", "--ring", "4", "--heads", "2",
                                "--head-dim", "64", "--causal", "--pass", "both", "--iters", "3", "--report-json",
                                report.string()},
                               temp.path);
    INFO(run.all());
    CHECK(!looks_like_a_crash(run.all()));
#if !RINGLAB_CLI_WITH_GPU
    CHECK(run.code == 2);
    CHECK(run.err ==
          "ringlab simulate: error: ringlab was built without GPU support (configure with -DRINGLAB_BUILD_GPU=ON)\n");
    CHECK(!fs::exists(report));
#else
    if (contains(run.err, "no CUDA device")) {  // this machine has none (CI, the development machine)
      CHECK(run.code == 2);
      CHECK(contains(run.err, "ringlab simulate: error: no CUDA device: --backend gpu needs one"));
      CHECK(std::count(run.err.begin(), run.err.end(), '\n') == 1);
      CHECK(run.out.empty());
      CHECK(!fs::exists(report));
      return;
    }
    REQUIRE(run.code == 0);
    for (const char* text : {"Correctness (measured)", "Memory per virtual device", "Time per pass", "(measured)",
                             "(predicted)", "virtual ring", "dense kernel", "ledger peak", "report written to"})
      CHECK(contains(run.out, text));
    const auto json = nlohmann::json::parse(read_file(report));
    CHECK(json["backend"] == "gpu");
    CHECK(json["dtype"] == "bf16");
    CHECK(json["config"]["seq"] == 1024);
    CHECK(json["measured"]["within_bound"] == true);
    for (const char* quantity : {"O", "LSE", "dQ", "dK", "dV"}) {
      INFO(quantity);
      REQUIRE(json["measured"]["relative_difference_vs_single_kernel"][quantity].is_number());
      CHECK(json["measured"]["relative_difference_vs_single_kernel"][quantity].get<double>() <= 2e-2);
    }
    for (const char* pass : {"forward", "backward"}) {
      INFO(pass);
      CHECK(json["measured"]["time"][pass]["virtual_ring_ms"].get<double>() > 0);
      CHECK(json["measured"]["time"][pass]["dense_kernel_ms"].get<double>() > 0);
      CHECK(json["predicted"]["time"][pass]["ring_makespan_ns"].get<double>() > 0);
      // Four devices rotate K/V (and dK/dV): the copies within the one GPU cost something.
      CHECK(json["predicted"]["time"][pass]["copies_as_kernels_ns"].get<double>() > 0);
    }
    REQUIRE(json["predicted"]["ledger_peak_bytes_per_device"].size() == 4);
    // The ring holds both passes' buffers at once, the ledger one pass's: never less than the ledger's peak.
    for (const auto& peak : json["predicted"]["ledger_peak_bytes_per_device"])
      CHECK(json["measured"]["bytes_per_device"].get<double>() >= peak.get<double>());
#endif
  }
}

TEST_CASE("docs/memory-table.md holds exactly what ringlab simulate --memory-table prints", "[cli][docs]") {
  TempDir temp;
  const Result table = run_cli({"simulate", "--memory-table"}, temp.path);
  REQUIRE(table.code == 0);
  const std::string doc = read_file(fs::path(RINGLAB_SOURCE_DIR) / "docs" / "memory-table.md");
  INFO("regenerate with scripts/gen_memory_table.sh");
  CHECK(contains(doc, "<!-- generated by: ringlab simulate --memory-table -->\n" + table.out));
  CHECK(contains(table.out, "| 8192 | 16 | 2096 | 176.1 |"));  // the seed documents' own figures are quoted
}
