// Golden cases: a config, its fp64 inputs and outputs on disk, and tolerances per precision, so that any
// implementation (PyTorch, JAX, CUDA) can prove it computes the same function as ringlab.
//
//   DIR/case.json                        format name and version, full config, seed, algorithm, tolerances
//   DIR/{q,do,o,dq}.npy                  [B, N, H, D]     float64, C order
//   DIR/{k,v,dk,dv}.npy                  [B, M, Hkv, D]
//   DIR/lse.npy                          [B, H, N]
//
// Error metric, per tensor (tests/helpers.hpp scaled_error is the same function):
//   scaled error = max |out − ref| / max(max |ref| over the finite reference entries, 1)
// −∞ in the reference must be −∞ in the output, a finite reference must get a finite output, and a NaN
// anywhere fails (each counts as an infinite error). A tensor passes iff scaled error ≤ its tolerance.
//
// Tolerances: fp64 1e-10, fp32 1e-5, and for bf16/fp16 2 × the scaled error of a naive same-precision
// baseline (emulate_precision), floored at 4 × the unit roundoff so that no tolerance is 0.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <vector>

#include "ringlab/attention.hpp"
#include "ringlab/config.hpp"
#include "ringlab/npy.hpp"
#include "ringlab/tensor.hpp"

namespace ringlab {

// "0.1.0": the project version the library was built from.
std::string ringlab_version();

// ---- precisions -------------------------------------------------------------------------------------------

// The precision an implementation under test computed in (ringlab check --dtype).
enum class Precision { fp64, fp32, bf16, fp16 };
inline constexpr std::array<Precision, 4> kPrecisions = {Precision::fp64, Precision::fp32, Precision::bf16,
                                                         Precision::fp16};
std::string to_string(Precision precision);
// Throws ConfigError naming `parameter` and listing the valid names.
Precision parse_precision(const std::string& text, const std::string& parameter = "--dtype");

// Round to nearest even, then widen back to float: bfloat16 (8 significant bits) and IEEE binary16
// (11 significant bits, subnormals below 2^-14, overflow to ±∞ from 65520 up). NaN stays NaN.
float round_to_bfloat16(float value);
float round_to_float16(float value);
// The rounding of a low precision (bf16/fp16); nullptr for fp32 and fp64.
RoundFunction<float> rounding_function(Precision precision);
// Unit roundoff: 2^-53, 2^-24, 2^-8, 2^-11.
double unit_roundoff(Precision precision);

// ---- tensors of a case ------------------------------------------------------------------------------------

// The five outputs a case stores and `check` compares, in this order.
inline constexpr std::array<const char*, 5> kOutputNames = {"o", "lse", "dq", "dk", "dv"};
// Per tensor name ("o", "lse", ...) → value.
using PerTensor = std::map<std::string, double>;

struct CaseInputs {
  Tensor<double> q, k, v, dout;  // q, dout [B, N, H, D]; k, v [B, M, Hkv, D]
};

struct CaseOutputs {
  Tensor<double> o, lse, dq, dk, dv;
  const Tensor<double>& operator[](const std::string& name) const;  // by kOutputNames; throws on others
  Tensor<double>& operator[](const std::string& name);
};

// N(0, 1) inputs: one NormalGenerator(seed) stream fills q, k, v and then do, each in C order.
CaseInputs case_inputs(const AttentionConfig& config, std::uint64_t seed);

// Forward and backward in double with `algorithm` (exact: no rounding of intermediates).
CaseOutputs compute_outputs(const AttentionConfig& config, const CaseInputs& inputs, Algorithm algorithm);

// The naive baseline of a precision: inputs rounded to it, S and softmax in fp32, P and dS rounded before
// their matmuls (dense algorithm), fp32 accumulation, O/dQ/dK/dV rounded to it (the backward uses the
// rounded O); LSE stays fp32. fp32 = plain fp32 dense, fp64 = exact dense. A ring config is computed as the
// same function on one device (ring = 1, q_replicated = false). Values are returned widened to double.
CaseOutputs emulate_precision(const AttentionConfig& config, const CaseInputs& inputs, Precision precision);

// ---- the error metric -------------------------------------------------------------------------------------

struct TensorError {
  double max_abs_error = 0;               // max |out − ref| over entries where both are finite (∞ on a mismatch)
  double scaled_error = 0;                // the metric above
  std::vector<std::int64_t> worst_index;  // multi-index of the worst element (empty for an empty tensor)
  double worst_output = 0, worst_reference = 0;
  double worst_relative_error = 0;  // |out − ref| / max(|ref|, 1e-300) at the worst element
};

// Compares out against ref (shapes must match: throws InputError otherwise).
TensorError measure_error(const Tensor<double>& out, const Tensor<double>& ref);
// The scaled error of every output.
PerTensor scaled_errors(const CaseOutputs& out, const CaseOutputs& ref);

// Tolerances of every precision from the bf16/fp16 baseline errors (see the top of this file).
std::map<Precision, PerTensor> tolerances_from_baselines(const std::map<Precision, PerTensor>& baseline_errors);

// ---- cases ------------------------------------------------------------------------------------------------

inline constexpr const char* kCaseFormat = "ringlab-golden";
inline constexpr int kCaseFormatVersion = 1;

struct GoldenCase {
  AttentionConfig config;
  std::uint64_t seed = 0;
  Algorithm algorithm = Algorithm::blockwise;
  std::string ringlab_version;
  CaseInputs inputs;
  CaseOutputs outputs;
  PerTensor max_scaled_difference_from_dense;
  std::map<Precision, PerTensor> tolerances;       // every precision, every output
  std::map<Precision, PerTensor> baseline_errors;  // bf16, fp16
};

// Computes a case in memory: inputs, outputs with `algorithm`, the difference from dense, the bf16/fp16
// baselines and the tolerances. Throws ConfigError for an invalid config or a config too large for a golden
// case (the dense check holds N×M scores per head).
GoldenCase make_case(const AttentionConfig& config, Algorithm algorithm, std::uint64_t seed);

// Writes `golden` into dir (created if missing): the nine .npy files, then case.json last. Refuses a
// non-empty dir unless force; with force it overwrites only the files a case writes. Throws InputError.
void save_case(const GoldenCase& golden, const std::filesystem::path& dir, bool force);

// make_case + save_case.
GoldenCase write_case(const AttentionConfig& config, Algorithm algorithm, const std::filesystem::path& dir, bool force,
                      std::uint64_t seed);

// Reads DIR/case.json and the nine tensors. Throws InputError naming the file for a missing or malformed
// case.json (format, version, fields), an unreadable .npy or a tensor whose shape disagrees with the config.
GoldenCase load_case(const std::filesystem::path& dir);

// The "config" object of case.json (and of `ringlab schedule --json`), fields named as the CLI flags with
// '_' for '-', the scale resolved (τ) with scale_given telling whether it was set.
nlohmann::ordered_json config_to_json(const AttentionConfig& config);
// Inverse of config_to_json. Throws InputError naming `where` (e.g. the case.json path) and the field.
AttentionConfig config_from_json(const nlohmann::ordered_json& json, const std::string& where);

// Writes values rounded to dtype as a little-endian C-order .npy (float16, float32 or float64), e.g. to
// submit outputs of a low-precision implementation to check_outputs. Throws InputError.
void write_npy(const std::filesystem::path& path, std::span<const double> values,
               const std::vector<std::int64_t>& shape, npy::DType dtype);

// ---- the checker ------------------------------------------------------------------------------------------

struct TensorCheck {
  std::string name;  // "o", "lse", ...
  std::filesystem::path file;
  npy::DType file_dtype = npy::DType::float64;
  TensorError error;
  double tolerance = 0;
  bool passed = false;
};

struct CheckReport {
  Precision precision = Precision::fp64;
  std::vector<TensorCheck> tensors;  // the outputs present, in kOutputNames order
  std::vector<std::string> missing;  // outputs not submitted
  bool passed() const;
};

// Compares DIR/{o,lse,dq,dk,dv}.npy (whichever exist; float16/32/64) with the case. Throws InputError for a
// missing outputs dir, none of the five files present, an unreadable file or a wrong shape (naming the file,
// its shape and the expected shape).
CheckReport check_outputs(const GoldenCase& golden, const std::filesystem::path& outputs_dir, Precision precision);

// ---- suites -----------------------------------------------------------------------------------------------

struct SuiteCase {
  std::string name;  // directory name, e.g. "ring_causal_zigzag_p4_n97"
  AttentionConfig config;
  Algorithm algorithm = Algorithm::blockwise;
  std::uint64_t seed = 0;  // derived from the name, so adding a case changes no other case
};

std::vector<std::string> suite_names();  // {"standard"}
// Throws ConfigError naming --suite for an unknown name.
std::vector<SuiteCase> suite_cases(const std::string& suite_name);

// Writes every case of the suite into DIR/<name>/ and then DIR/index.json; returns the cases written.
// Refuses a non-empty DIR unless force. `progress` (may be empty) is called after each case.
std::vector<SuiteCase> write_suite(const std::string& suite_name, const std::filesystem::path& dir, bool force,
                                   const std::function<void(const SuiteCase&, const GoldenCase&)>& progress = {});

}  // namespace ringlab
