#include "ringlab/golden.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <system_error>

#include "ringlab/errors.hpp"
#include "ringlab/random.hpp"

#ifndef RINGLAB_VERSION
#error "RINGLAB_VERSION must be defined by the build (reference/CMakeLists.txt)"
#endif

namespace ringlab {
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using i64 = std::int64_t;

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string shape_text(const std::vector<i64>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// Paths start messages unquoted, as npy::read's do: "DIR/o.npy: shape ...".
std::string path_text(const fs::path& path) { return path.string(); }

// The same function on one device: the oracle (dense) and the low-precision baselines ignore the ring.
AttentionConfig single_device(AttentionConfig config) {
  config.ring = 1;
  config.q_replicated = false;
  return config;
}

}  // namespace

std::string ringlab_version() { return RINGLAB_VERSION; }

// ---- precisions -------------------------------------------------------------------------------------------

std::string to_string(Precision precision) {
  switch (precision) {
    case Precision::fp64:
      return "fp64";
    case Precision::fp32:
      return "fp32";
    case Precision::bf16:
      return "bf16";
    case Precision::fp16:
      return "fp16";
  }
  return "?";
}

Precision parse_precision(const std::string& text, const std::string& parameter) {
  std::string valid;
  for (Precision precision : kPrecisions) {
    if (to_string(precision) == text) return precision;
    valid += (valid.empty() ? "" : ", ") + to_string(precision);
  }
  throw ConfigError(parameter, "'" + text + "'", "valid values are " + valid);
}

float round_to_bfloat16(float value) {
  if (std::isnan(value)) return value;
  const auto bits = std::bit_cast<std::uint32_t>(value);
  // Round to nearest even on the low 16 bits; a carry into the exponent is the correct result, up to ±∞.
  const std::uint32_t rounded = bits + 0x7fffu + ((bits >> 16) & 1u);
  return std::bit_cast<float>(rounded & 0xffff0000u);
}

namespace {

// float → IEEE binary16 bits, round to nearest even.
std::uint16_t float_to_half_bits(float value) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  const std::uint32_t sign = (bits >> 16) & 0x8000u;
  const std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u)  // ±∞ stays ∞; NaN stays a quiet NaN
    return static_cast<std::uint16_t>(sign | 0x7c00u | (magnitude > 0x7f800000u ? 0x200u : 0u));
  if (magnitude >= 0x477ff000u)  // ≥ 65520, halfway from 65504 (the largest half) to 2^16: overflows to ∞
    return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (magnitude < 0x38800000u) {  // below 2^-14: a subnormal half m·2^-24 (or 0); m = 1024 is 2^-14, also right
    const float scaled = std::bit_cast<float>(magnitude) * 0x1p24f;  // exact: a power-of-two scaling
    auto m = static_cast<std::uint32_t>(scaled);                     // truncation; the fraction is exact
    const float fraction = scaled - static_cast<float>(m);
    if (fraction > 0.5f || (fraction == 0.5f && (m & 1u))) ++m;
    return static_cast<std::uint16_t>(sign | m);
  }
  // Normal: rebias the exponent (127 → 15) and keep 10 of the 23 mantissa bits.
  std::uint32_t half = (magnitude - 0x38000000u) >> 13;
  const std::uint32_t rest = magnitude & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // a carry into the exponent is right
  return static_cast<std::uint16_t>(sign | half);
}

float half_bits_to_float(std::uint16_t half) {
  const bool negative = (half & 0x8000u) != 0;
  const int exponent = (half >> 10) & 0x1f;
  const int mantissa = half & 0x3ff;
  float magnitude;
  if (exponent == 0x1f)
    magnitude = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else if (exponent == 0)
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  else
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
  return negative ? -magnitude : magnitude;
}

}  // namespace

float round_to_float16(float value) { return half_bits_to_float(float_to_half_bits(value)); }

RoundFunction<float> rounding_function(Precision precision) {
  switch (precision) {
    case Precision::bf16:
      return &round_to_bfloat16;
    case Precision::fp16:
      return &round_to_float16;
    default:
      return nullptr;
  }
}

double unit_roundoff(Precision precision) {
  switch (precision) {
    case Precision::fp64:
      return 0x1p-53;
    case Precision::fp32:
      return 0x1p-24;
    case Precision::bf16:
      return 0x1p-8;
    case Precision::fp16:
      return 0x1p-11;
  }
  return 0;
}

// ---- tensors ----------------------------------------------------------------------------------------------

const Tensor<double>& CaseOutputs::operator[](const std::string& name) const {
  if (name == "o") return o;
  if (name == "lse") return lse;
  if (name == "dq") return dq;
  if (name == "dk") return dk;
  if (name == "dv") return dv;
  throw Error("internal error: no output tensor named '" + name + "'");
}

Tensor<double>& CaseOutputs::operator[](const std::string& name) {
  return const_cast<Tensor<double>&>(std::as_const(*this)[name]);
}

CaseInputs case_inputs(const AttentionConfig& config, std::uint64_t seed) {
  NormalGenerator generator(seed);
  auto fill = [&](std::vector<i64> shape) {
    Tensor<double> tensor(std::move(shape));
    tensor.data = standard_normal(generator, tensor.data.size());
    return tensor;
  };
  CaseInputs inputs;  // one stream, in this order: q, k, v, do
  inputs.q = fill(query_shape(config));
  inputs.k = fill(kv_shape(config));
  inputs.v = fill(kv_shape(config));
  inputs.dout = fill(query_shape(config));
  return inputs;
}

CaseOutputs compute_outputs(const AttentionConfig& config, const CaseInputs& inputs, Algorithm algorithm) {
  const AttentionOptions<double> options{algorithm, {}, nullptr};
  auto forward = attention_forward(config, inputs.q, inputs.k, inputs.v, options);
  auto grads = attention_backward(config, inputs.q, inputs.k, inputs.v, forward.out, forward.lse, inputs.dout, options);
  return {std::move(forward.out), std::move(forward.lse), std::move(grads.dq), std::move(grads.dk),
          std::move(grads.dv)};
}

CaseOutputs emulate_precision(const AttentionConfig& config, const CaseInputs& inputs, Precision precision) {
  const AttentionConfig single = single_device(config);
  if (precision == Precision::fp64) return compute_outputs(single, inputs, Algorithm::dense);
  const RoundFunction<float> round = rounding_function(precision);
  // double → float → dtype: a double rounding, harmless for a baseline that only sets a tolerance.
  auto to_precision = [round](Tensor<float> tensor) {
    if (round)
      for (float& x : tensor.data) x = round(x);
    return tensor;
  };
  const Tensor<float> q = to_precision(tensor_cast<float>(inputs.q));  // [B, N, H, D]
  const Tensor<float> k = to_precision(tensor_cast<float>(inputs.k));  // [B, M, Hkv, D]
  const Tensor<float> v = to_precision(tensor_cast<float>(inputs.v));
  const Tensor<float> dout = to_precision(tensor_cast<float>(inputs.dout));
  const AttentionOptions<float> options{Algorithm::dense, {}, round};
  auto forward = attention_forward(single, q, k, v, options);
  const Tensor<float> out = to_precision(std::move(forward.out));  // what a kernel stores, and its backward reads
  auto grads = attention_backward(single, q, k, v, out, forward.lse, dout, options);
  return {tensor_cast<double>(out), tensor_cast<double>(forward.lse), tensor_cast<double>(to_precision(grads.dq)),
          tensor_cast<double>(to_precision(grads.dk)), tensor_cast<double>(to_precision(grads.dv))};
}

// ---- the error metric -------------------------------------------------------------------------------------

TensorError measure_error(const Tensor<double>& out, const Tensor<double>& ref) {
  if (out.shape != ref.shape || out.data.size() != ref.data.size())
    throw InputError("cannot compare a tensor of shape " + shape_text(out.shape) + " with one of shape " +
                     shape_text(ref.shape));
  double scale = 1.0;  // max |ref| over the finite entries, at least 1
  for (double y : ref.data)
    if (std::isfinite(y)) scale = std::max(scale, std::abs(y));
  TensorError error;
  std::size_t worst = 0;
  double worst_scaled = -1.0;
  for (std::size_t i = 0; i < ref.data.size(); ++i) {
    const double x = out.data[i], y = ref.data[i];
    double difference;
    if (std::isnan(x) || std::isnan(y))
      difference = kInfinity;
    else if (std::isinf(x) || std::isinf(y))
      difference = x == y ? 0.0 : kInfinity;  // −∞ must meet −∞
    else
      difference = std::abs(x - y);
    error.max_abs_error = std::max(error.max_abs_error, difference);
    const double scaled = difference / scale;
    if (scaled > worst_scaled) {
      worst_scaled = scaled;
      worst = i;
    }
  }
  if (ref.data.empty()) return error;
  error.scaled_error = worst_scaled;
  error.worst_output = out.data[worst];
  error.worst_reference = ref.data[worst];
  error.worst_relative_error = worst_scaled == kInfinity ? kInfinity
                                                         : std::abs(error.worst_output - error.worst_reference) /
                                                               std::max(std::abs(error.worst_reference), 1e-300);
  // Flat C-order index → multi-index.
  error.worst_index.assign(ref.shape.size(), 0);
  auto rest = static_cast<i64>(worst);
  for (std::size_t axis = ref.shape.size(); axis-- > 0;) {
    error.worst_index[axis] = rest % ref.shape[axis];
    rest /= ref.shape[axis];
  }
  return error;
}

PerTensor scaled_errors(const CaseOutputs& out, const CaseOutputs& ref) {
  PerTensor errors;
  for (const char* name : kOutputNames) errors[name] = measure_error(out[name], ref[name]).scaled_error;
  return errors;
}

std::map<Precision, PerTensor> tolerances_from_baselines(const std::map<Precision, PerTensor>& baseline_errors) {
  std::map<Precision, PerTensor> tolerances;
  for (const char* name : kOutputNames) {
    tolerances[Precision::fp64][name] = 1e-10;
    tolerances[Precision::fp32][name] = 1e-5;
  }
  for (Precision precision : {Precision::bf16, Precision::fp16})
    for (const char* name : kOutputNames) {
      const auto found = baseline_errors.find(precision);
      const double baseline =
          found == baseline_errors.end() || !found->second.contains(name) ? kNaN : found->second.at(name);
      // A baseline that overflowed (fp16 with a huge --scale) gives no usable tolerance: NaN, null in JSON.
      tolerances[precision][name] =
          std::isfinite(baseline) ? std::max(2.0 * baseline, 4.0 * unit_roundoff(precision)) : kNaN;
    }
  return tolerances;
}

// ---- cases ------------------------------------------------------------------------------------------------

namespace {

// A golden case also computes dense attention (an N×M score matrix per head) and two baselines; refuse
// sizes that would take minutes or gigabytes instead of failing in the allocator.
void require_golden_size(const AttentionConfig& config) {
  constexpr double kMaxScores = 1 << 24;   // N·M: 128 MiB of doubles per head
  constexpr double kMaxTensor = 1 << 24;   // elements of one tensor
  constexpr double kMaxWork = 1ULL << 36;  // B·H·N·M·D multiply-adds of one matmul
  const double n = static_cast<double>(config.seq), m = static_cast<double>(config.kv_seq);
  if (n * m > kMaxScores)
    throw ConfigError("--seq", std::to_string(config.seq) + " (--kv-seq " + std::to_string(config.kv_seq) + ")",
                      "a golden case checks against dense attention, which holds N x M scores per head; keep "
                      "N*M <= 16777216 (e.g. N = M = 4096)");
  const double heads = static_cast<double>(std::max(config.heads, config.kv_heads));
  const double tensor =
      static_cast<double>(config.batch) * std::max(n, m) * heads * static_cast<double>(config.head_dim);
  if (tensor > kMaxTensor)
    throw ConfigError(
        "--batch/--heads/--head-dim",
        std::to_string(config.batch) + "/" + std::to_string(config.heads) + "/" + std::to_string(config.head_dim),
        "a golden tensor may hold at most 16777216 elements (B*N*H*D)");
  if (static_cast<double>(config.batch) * heads * n * m * static_cast<double>(config.head_dim) > kMaxWork)
    throw ConfigError("--seq", std::to_string(config.seq),
                      "B*H*N*M*D exceeds 2^36: too much work for a golden case; make it smaller");
}

// The nine tensors of a case: (name, is an input).
const std::array<std::pair<const char*, bool>, 9> kCaseFiles = {{
    {"q", true},
    {"k", true},
    {"v", true},
    {"do", true},
    {"o", false},
    {"lse", false},
    {"dq", false},
    {"dk", false},
    {"dv", false},
}};

const Tensor<double>& case_tensor(const GoldenCase& golden, const std::string& name) {
  if (name == "q") return golden.inputs.q;
  if (name == "k") return golden.inputs.k;
  if (name == "v") return golden.inputs.v;
  if (name == "do") return golden.inputs.dout;
  return golden.outputs[name];
}

Tensor<double>& case_tensor(GoldenCase& golden, const std::string& name) {
  return const_cast<Tensor<double>&>(case_tensor(std::as_const(golden), name));
}

std::vector<i64> expected_shape(const AttentionConfig& config, const std::string& name) {
  if (name == "lse") return lse_shape(config);
  if (name == "k" || name == "v" || name == "dk" || name == "dv") return kv_shape(config);
  return query_shape(config);
}

json per_tensor_json(const PerTensor& values) {
  json object = json::object();
  for (const char* name : kOutputNames) {
    const double value = values.contains(name) ? values.at(name) : kNaN;
    object[name] = std::isfinite(value) ? json(value) : json(nullptr);
  }
  return object;
}

// Throws unless `dir` may receive a case: missing, empty, or non-empty with force.
void require_usable_directory(const fs::path& dir, bool force) {
  std::error_code ec;
  const fs::file_status status = fs::status(dir, ec);
  if (!fs::exists(status)) return;
  if (!fs::is_directory(status))
    throw InputError(path_text(dir) + " exists and is not a directory; choose another --out");
  const bool empty = fs::is_empty(dir, ec);
  if (ec) throw InputError(path_text(dir) + ": cannot read the directory: " + ec.message());
  if (!empty && !force)
    throw InputError(path_text(dir) +
                     " exists and is not empty; pass --force to overwrite the case files in it "
                     "(other files are left alone)");
}

void prepare_directory(const fs::path& dir, bool force) {
  require_usable_directory(dir, force);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw InputError(path_text(dir) + ": cannot create the directory: " + ec.message());
}

// Text written to a temporary file next to `path` and renamed over it.
void write_text_file(const fs::path& path, const std::string& text) {
  std::random_device random;
  const fs::path temp = path.parent_path() / ("." + path.filename().string() + ".tmp" + std::to_string(random()));
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError(path_text(path) + ": cannot create " + temp.string() + " for writing");
    out << text;
    out.close();
    if (out.fail()) {
      std::error_code ignored;
      fs::remove(temp, ignored);
      throw InputError(path_text(path) + ": write error (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw InputError(path_text(path) + ": cannot rename the temporary file into place: " + ec.message());
  }
}

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path_text(path) + ": cannot open the file for reading");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw InputError(path_text(path) + ": read error");
  return text.str();
}

// ---- typed access to case.json, every failure naming the file and the field ------------------------------

class JsonReader {
 public:
  explicit JsonReader(std::string where) : where_(std::move(where)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw InputError(where_ + ": field '" + field + "' " + what);
  }
  const json& member(const json& object, const std::string& prefix, const std::string& key) const {
    const std::string field = prefix.empty() ? key : prefix + "." + key;
    if (!object.is_object()) fail(prefix, "must be a JSON object");
    const auto found = object.find(key);
    if (found == object.end()) fail(field, "is missing");
    return *found;
  }
  i64 integer(const json& object, const std::string& prefix, const std::string& key) const {
    const json& value = member(object, prefix, key);
    const std::string field = prefix.empty() ? key : prefix + "." + key;
    if (value.is_number_unsigned() && value.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<i64>::max()))
      fail(field, "is too large: " + value.dump());
    if (!value.is_number_integer()) fail(field, "must be an integer, not " + value.dump());
    return value.get<i64>();
  }
  std::uint64_t unsigned_integer(const json& object, const std::string& prefix, const std::string& key) const {
    const json& value = member(object, prefix, key);
    if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<i64>() >= 0))
      fail(prefix.empty() ? key : prefix + "." + key, "must be a non-negative integer, not " + value.dump());
    return value.get<std::uint64_t>();
  }
  double number(const json& object, const std::string& prefix, const std::string& key) const {
    const json& value = member(object, prefix, key);
    if (!value.is_number()) fail(prefix.empty() ? key : prefix + "." + key, "must be a number, not " + value.dump());
    return value.get<double>();
  }
  // A number, or null for "none" (NaN).
  double number_or_null(const json& object, const std::string& prefix, const std::string& key) const {
    const json& value = member(object, prefix, key);
    if (value.is_null()) return kNaN;
    return number(object, prefix, key);
  }
  bool boolean(const json& object, const std::string& prefix, const std::string& key) const {
    const json& value = member(object, prefix, key);
    if (!value.is_boolean())
      fail(prefix.empty() ? key : prefix + "." + key, "must be true or false, not " + value.dump());
    return value.get<bool>();
  }
  std::string string(const json& object, const std::string& prefix, const std::string& key) const {
    const json& value = member(object, prefix, key);
    if (!value.is_string()) fail(prefix.empty() ? key : prefix + "." + key, "must be a string, not " + value.dump());
    return value.get<std::string>();
  }
  // Runs a ringlab parser on a field's text and turns its ConfigError into an InputError naming the file.
  template <class Parse>
  auto parsed(const json& object, const std::string& prefix, const std::string& key, Parse parse) const {
    const std::string text = string(object, prefix, key);
    try {
      return parse(text, prefix + "." + key);
    } catch (const ConfigError& error) {
      throw InputError(where_ + ": " + error.what());
    }
  }
  PerTensor per_tensor(const json& object, const std::string& prefix) const {
    PerTensor values;
    for (const char* name : kOutputNames) values[name] = number_or_null(object, prefix, name);
    return values;
  }

 private:
  std::string where_;
};

}  // namespace

json config_to_json(const AttentionConfig& c) {
  json config = json::object();
  config["batch"] = c.batch;
  config["seq"] = c.seq;
  config["kv_seq"] = c.kv_seq;
  config["q_start"] = c.q_start;
  config["heads"] = c.heads;
  config["kv_heads"] = c.kv_heads;
  config["head_dim"] = c.head_dim;
  config["scale"] = c.tau();
  config["scale_given"] = c.scale.has_value();
  config["causal"] = c.causal;
  config["window_left"] = c.window_left;
  config["window_right"] = c.window_right;
  config["ring"] = c.ring;
  config["layout"] = to_string(c.layout);
  config["q_replicated"] = c.q_replicated;
  config["dilation"] = format_dilation(c.dilation);
  config["offset_rule"] = to_string(c.offset_rule);
  config["combine"] = to_string(c.combine);
  config["segments"] = to_string(c.segments);
  return config;
}

AttentionConfig config_from_json(const json& object, const std::string& where) {
  const JsonReader read(where);
  const std::string p = "config";
  AttentionConfig c;
  c.batch = read.integer(object, p, "batch");
  c.seq = read.integer(object, p, "seq");
  c.kv_seq = read.integer(object, p, "kv_seq");
  c.q_start = read.integer(object, p, "q_start");
  c.heads = read.integer(object, p, "heads");
  c.kv_heads = read.integer(object, p, "kv_heads");
  c.head_dim = read.integer(object, p, "head_dim");
  const double scale = read.number(object, p, "scale");
  if (read.boolean(object, p, "scale_given")) c.scale = scale;
  c.causal = read.boolean(object, p, "causal");
  c.window_left = read.integer(object, p, "window_left");
  c.window_right = read.integer(object, p, "window_right");
  const i64 ring = read.integer(object, p, "ring");
  if (ring < 1 || ring > std::numeric_limits<int>::max()) read.fail("config.ring", "must be a positive integer");
  c.ring = static_cast<int>(ring);
  c.layout =
      read.parsed(object, p, "layout", [](const std::string& t, const std::string& n) { return parse_layout(t, n); });
  c.q_replicated = read.boolean(object, p, "q_replicated");
  c.dilation = read.parsed(object, p, "dilation",
                           [](const std::string& t, const std::string& n) { return parse_dilation(t, n); });
  c.offset_rule = read.parsed(object, p, "offset_rule",
                              [](const std::string& t, const std::string& n) { return parse_offset_rule(t, n); });
  c.combine =
      read.parsed(object, p, "combine", [](const std::string& t, const std::string& n) { return parse_combine(t, n); });
  c.segments = read.parsed(object, p, "segments",
                           [](const std::string& t, const std::string& n) { return parse_segment_mode(t, n); });
  try {
    c.validate();
  } catch (const ConfigError& error) {
    throw InputError(where + ": the stored config is invalid: " + error.what());
  }
  return c;
}

GoldenCase make_case(const AttentionConfig& config, Algorithm algorithm, std::uint64_t seed) {
  config.validate();
  require_golden_size(config);
  GoldenCase golden;
  golden.config = config;
  golden.seed = seed;
  golden.algorithm = algorithm;
  golden.ringlab_version = ringlab_version();
  golden.inputs = case_inputs(config, seed);
  golden.outputs = compute_outputs(config, golden.inputs, algorithm);
  if (algorithm == Algorithm::dense) {
    for (const char* name : kOutputNames) golden.max_scaled_difference_from_dense[name] = 0.0;
  } else {
    const CaseOutputs dense = compute_outputs(single_device(config), golden.inputs, Algorithm::dense);
    golden.max_scaled_difference_from_dense = scaled_errors(golden.outputs, dense);
  }
  for (Precision precision : {Precision::bf16, Precision::fp16})
    golden.baseline_errors[precision] =
        scaled_errors(emulate_precision(config, golden.inputs, precision), golden.outputs);
  golden.tolerances = tolerances_from_baselines(golden.baseline_errors);
  return golden;
}

void save_case(const GoldenCase& golden, const fs::path& dir, bool force) {
  prepare_directory(dir, force);
  const fs::path case_json = dir / "case.json";
  // The old case.json goes first: a directory caught half-rewritten has no case.json and cannot be loaded.
  std::error_code ec;
  fs::remove(case_json, ec);
  if (ec) throw InputError(path_text(case_json) + ": cannot remove the old file: " + ec.message());

  json tensors = json::object();
  for (const auto& [name, is_input] : kCaseFiles) {
    const Tensor<double>& tensor = case_tensor(golden, name);
    npy::write(dir / (std::string(name) + ".npy"), tensor.data, tensor.shape);
    tensors[name] = {{"file", std::string(name) + ".npy"}, {"shape", tensor.shape}, {"input", is_input}};
  }

  json root = json::object();
  root["format"] = kCaseFormat;
  root["format_version"] = kCaseFormatVersion;
  root["ringlab_version"] = golden.ringlab_version;
  root["description"] = describe(golden.config);
  root["config"] = config_to_json(golden.config);
  root["seed"] = golden.seed;
  root["inputs"] = "N(0,1) from ringlab's NormalGenerator(seed): one stream fills q, k, v, do in this order, C order";
  root["algorithm"] = to_string(golden.algorithm);
  root["tensors"] = tensors;
  root["max_scaled_difference_from_dense"] = per_tensor_json(golden.max_scaled_difference_from_dense);
  root["error_metric"] =
      "per tensor: max |out - ref| / max(max |ref| over finite ref, 1); -inf in ref must be -inf in out; "
      "NaN fails; pass iff error <= tolerance";
  json tolerances = json::object();
  for (Precision precision : kPrecisions)
    tolerances[to_string(precision)] =
        per_tensor_json(golden.tolerances.contains(precision) ? golden.tolerances.at(precision) : PerTensor{});
  root["tolerances"] = tolerances;
  root["tolerance_rule"] =
      "fp64 1e-10, fp32 1e-5; bf16, fp16: max(2 x baseline error, 4 x unit roundoff); null = no tolerance "
      "(the baseline overflowed)";
  json baselines = json::object();
  for (const auto& [precision, errors] : golden.baseline_errors)
    baselines[to_string(precision)] = per_tensor_json(errors);
  root["baseline_errors"] = baselines;
  root["baseline"] =
      "dense, inputs rounded to the dtype (nearest even), fp32 arithmetic, P and dS rounded before their matmuls, "
      "O, dQ, dK, dV rounded to the dtype, LSE fp32; ring configs computed on one device";
  write_text_file(case_json, root.dump(2) + "\n");
}

GoldenCase write_case(const AttentionConfig& config, Algorithm algorithm, const fs::path& dir, bool force,
                      std::uint64_t seed) {
  require_usable_directory(dir, force);  // before spending time on the computation
  GoldenCase golden = make_case(config, algorithm, seed);
  save_case(golden, dir, force);
  return golden;
}

GoldenCase load_case(const fs::path& dir) {
  std::error_code ec;
  const fs::file_status status = fs::status(dir, ec);
  if (!fs::exists(status)) throw InputError(path_text(dir) + ": case directory not found");
  if (!fs::is_directory(status))
    throw InputError(path_text(dir) + ": not a directory; expected a golden case directory");
  const fs::path path = dir / "case.json";
  if (!fs::exists(path, ec))
    throw InputError(path_text(path) +
                     ": not found; a golden case directory (written by ringlab golden) holds case.json");
  const std::string where = path_text(path);

  json root;
  try {
    root = json::parse(read_text_file(path));
  } catch (const json::exception& error) {
    throw InputError(where + ": not valid JSON: " + error.what());
  }
  if (!root.is_object()) throw InputError(where + ": expected a JSON object at the top level");
  const JsonReader read(where);
  const std::string format = read.string(root, "", "format");
  if (format != kCaseFormat)
    throw InputError(where + ": field 'format' is '" + format + "', expected '" + kCaseFormat + "'");
  const i64 version = read.integer(root, "", "format_version");
  if (version != kCaseFormatVersion)
    throw InputError(where + ": unsupported format_version " + std::to_string(version) +
                     "; this ringlab reads version " + std::to_string(kCaseFormatVersion));

  GoldenCase golden;
  golden.config = config_from_json(read.member(root, "", "config"), where);
  golden.seed = read.unsigned_integer(root, "", "seed");
  golden.algorithm = read.parsed(
      root, "", "algorithm", [](const std::string& t, const std::string&) { return parse_algorithm(t, "algorithm"); });
  golden.ringlab_version = read.string(root, "", "ringlab_version");
  const json& tolerances = read.member(root, "", "tolerances");
  for (Precision precision : kPrecisions)
    golden.tolerances[precision] = read.per_tensor(read.member(tolerances, "tolerances", to_string(precision)),
                                                   "tolerances." + to_string(precision));
  for (const auto& [precision, values] : golden.tolerances)
    for (const auto& [name, value] : values)
      if (value < 0) read.fail("tolerances." + to_string(precision) + "." + name, "must not be negative");
  if (root.contains("baseline_errors")) {
    const json& baselines = root["baseline_errors"];
    for (Precision precision : {Precision::bf16, Precision::fp16})
      if (baselines.is_object() && baselines.contains(to_string(precision)))
        golden.baseline_errors[precision] =
            read.per_tensor(baselines[to_string(precision)], "baseline_errors." + to_string(precision));
  }
  if (root.contains("max_scaled_difference_from_dense"))
    golden.max_scaled_difference_from_dense =
        read.per_tensor(root["max_scaled_difference_from_dense"], "max_scaled_difference_from_dense");

  for (const auto& [name, is_input] : kCaseFiles) {
    const fs::path file = dir / (std::string(name) + ".npy");
    npy::Array array = npy::read(file);
    const std::vector<i64> expected = expected_shape(golden.config, name);
    if (array.shape != expected)
      throw InputError(path_text(file) + ": shape " + shape_text(array.shape) + " but the case config (" +
                       describe(golden.config) + ") needs " + shape_text(expected));
    if (array.dtype != npy::DType::float64)
      throw InputError(path_text(file) + ": dtype " + npy::to_string(array.dtype) + "; golden case files are float64");
    Tensor<double>& tensor = case_tensor(golden, name);
    tensor.shape = std::move(array.shape);
    tensor.data = std::move(array.values);
  }
  return golden;
}

void write_npy(const fs::path& path, std::span<const double> values, const std::vector<i64>& shape, npy::DType dtype) {
  if (dtype == npy::DType::float64) return npy::write(path, values, shape);
  i64 count = 1;
  for (i64 dim : shape) {
    if (dim < 0) throw InputError(path_text(path) + ": cannot write a negative dimension");
    count *= dim;
  }
  if (static_cast<std::size_t>(count) != values.size())
    throw InputError(path_text(path) + ": " + std::to_string(values.size()) + " values do not fit shape " +
                     shape_text(shape));
  const bool half = dtype == npy::DType::float16;
  // Header as numpy.save writes it: v1.0, dict, spaces, '\n', total a multiple of 64 bytes.
  std::string shape_tuple = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) shape_tuple += (i ? ", " : "") + std::to_string(shape[i]);
  shape_tuple += shape.size() == 1 ? ",)" : ")";
  std::string dict = std::string("{'descr': '") + (half ? "<f2" : "<f4") +
                     "', 'fortran_order': False, 'shape': " + shape_tuple + ", }";
  const std::size_t padding = 64 - (10 + dict.size() + 1) % 64;
  const std::size_t header_length = dict.size() + padding + 1;
  if (header_length > 0xffff) throw InputError(path_text(path) + ": shape too long for a .npy v1.0 header");
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(header_length & 0xff);
  bytes += static_cast<char>(header_length >> 8);
  bytes += dict + std::string(padding, ' ') + '\n';
  for (double value : values) {
    const auto narrow = static_cast<float>(value);
    const std::uint32_t bits = half ? float_to_half_bits(narrow) : std::bit_cast<std::uint32_t>(narrow);
    for (int b = 0; b < (half ? 2 : 4); ++b) bytes += static_cast<char>((bits >> (8 * b)) & 0xff);  // little-endian
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw InputError(path_text(path) + ": cannot open for writing");
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (out.fail()) throw InputError(path_text(path) + ": write error");
}

// ---- the checker ------------------------------------------------------------------------------------------

bool CheckReport::passed() const {
  return std::all_of(tensors.begin(), tensors.end(), [](const TensorCheck& check) { return check.passed; });
}

CheckReport check_outputs(const GoldenCase& golden, const fs::path& outputs_dir, Precision precision) {
  std::error_code ec;
  const fs::file_status status = fs::status(outputs_dir, ec);
  if (!fs::exists(status)) throw InputError(path_text(outputs_dir) + ": outputs directory not found (--outputs)");
  if (!fs::is_directory(status)) throw InputError(path_text(outputs_dir) + ": not a directory (--outputs)");
  CheckReport report;
  report.precision = precision;
  for (const char* name : kOutputNames) {
    const fs::path file = outputs_dir / (std::string(name) + ".npy");
    if (!fs::exists(fs::symlink_status(file, ec))) {
      report.missing.push_back(name);
      continue;
    }
    const npy::Array array = npy::read(file);
    const Tensor<double>& reference = golden.outputs[name];
    if (array.shape != reference.shape)
      throw InputError(path_text(file) + ": shape " + shape_text(array.shape) + " but the case expects " +
                       shape_text(reference.shape) + " for " + name + " (" + describe(golden.config) + ")");
    TensorCheck check;
    check.name = name;
    check.file = file;
    check.file_dtype = array.dtype;
    check.tolerance = golden.tolerances.contains(precision) && golden.tolerances.at(precision).contains(name)
                          ? golden.tolerances.at(precision).at(name)
                          : kNaN;
    if (std::isnan(check.tolerance))
      throw InputError("the case has no " + to_string(precision) + " tolerance for " + name + " (its naive " +
                       to_string(precision) + " baseline overflowed); check with another --dtype");
    Tensor<double> out;
    out.shape = array.shape;
    out.data = array.values;
    check.error = measure_error(out, reference);
    check.passed = check.error.scaled_error <= check.tolerance;
    report.tensors.push_back(std::move(check));
  }
  if (report.tensors.empty())
    throw InputError(path_text(outputs_dir) + ": none of o.npy, lse.npy, dq.npy, dk.npy, dv.npy found (--outputs)");
  return report;
}

// ---- suites -----------------------------------------------------------------------------------------------

namespace {

// FNV-1a: a case's seed depends on its name only.
std::uint64_t seed_from_name(const std::string& name) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : name) hash = (hash ^ c) * 0x100000001b3ULL;
  return hash & 0xffffffffULL;
}

AttentionConfig shape(i64 n, i64 heads = 4, i64 head_dim = 32) {
  AttentionConfig config;
  config.seq = config.kv_seq = n;
  config.heads = config.kv_heads = heads;
  config.head_dim = head_dim;
  return config;
}

AttentionConfig ring(AttentionConfig config, int devices, Layout layout, bool causal = true) {
  config.ring = devices;
  config.layout = layout;
  config.causal = causal;
  return config;
}

AttentionConfig dilated(AttentionConfig config, const std::string& patterns, OffsetRule rule, Combine combine,
                        SegmentMode segments = SegmentMode::error) {
  config.dilation = parse_dilation(patterns);
  config.offset_rule = rule;
  config.combine = combine;
  config.segments = segments;
  return config;
}

std::vector<SuiteCase> standard_suite() {
  std::vector<SuiteCase> cases;
  auto add = [&cases](const std::string& name, const AttentionConfig& config,
                      std::optional<Algorithm> algorithm = std::nullopt) {
    cases.push_back({name, config, algorithm.value_or(default_algorithm(config)), seed_from_name(name)});
  };
  using L = Layout;
  AttentionConfig c;
  // One case per line reads as a table.
  // clang-format off

  // Masks, single device.
  add("none_n128", shape(128));
  c = shape(128); c.causal = true; add("causal_n128", c);
  c = shape(128); c.window_left = 16; c.window_right = 16; add("window_16_16_n128", c);
  c = shape(97); c.window_left = 0; c.window_right = 8; add("window_0_8_n97", c);
  c = shape(128); c.causal = true; c.window_left = 32; add("causal_window_32_n128", c);
  c = shape(97); c.causal = true; add("causal_dense_algorithm_n97", c, Algorithm::dense);
  // Alignment: q_start = M − N (flash-attn's bottom-right); N > M leaves rows with no key (O = 0, LSE = −∞).
  c = shape(64); c.kv_seq = 160; c.q_start = 96; c.causal = true; add("causal_bottom_right_n64_m160", c);
  c = shape(64); c.kv_seq = 32; c.q_start = -32; c.causal = true; add("causal_bottom_right_n64_m32_empty_rows", c);
  c = shape(48); c.kv_seq = 128; c.q_start = 80; c.causal = true; c.window_left = 16;
  add("causal_window_bottom_right_n48_m128", c);
  c = shape(1); c.kv_seq = 131; c.q_start = 130; c.causal = true; add("decode_causal_n1_m131", c);
  c = shape(80); c.kv_seq = 48; add("none_top_left_n80_m48", c);
  // GQA / MQA.
  c = shape(128, 6); c.kv_heads = 2; c.causal = true; add("gqa_h6_kv2_causal_n128", c);
  c = shape(97, 5); c.kv_heads = 1; add("mqa_h5_kv1_n97", c);
  // Odd sizes, head dims, scale, batch.
  add("n1", shape(1));
  c = shape(97); c.causal = true; add("causal_n97", c);
  c = shape(131); c.window_left = 7; c.window_right = 3; add("window_7_3_n131", c);
  c = shape(128, 4, 16); c.causal = true; add("causal_d16_n128", c);
  c = shape(128, 2, 64); add("none_d64_n128", c);
  c = shape(97, 3, 33); c.causal = true; add("causal_d33_n97", c);
  c = shape(64); c.scale = 0.5; c.causal = true; add("causal_scale_0p5_n64", c);
  c = shape(64, 4); c.batch = 2; c.kv_heads = 2; c.causal = true; add("causal_gqa_b2_n64", c);
  c = shape(256, 2, 64); c.causal = true; add("causal_d64_n256", c);

  // Ring: every layout with P ∈ {2, 3, 4, 8}, P > N included.
  add("ring_causal_contiguous_p2_n128", ring(shape(128), 2, L::contiguous));
  add("ring_none_contiguous_p3_n97", ring(shape(97), 3, L::contiguous, false));
  c = ring(shape(128), 4, L::contiguous, false); c.window_left = c.window_right = 8;
  add("ring_window_contiguous_p4_n128", c);
  add("ring_causal_contiguous_p8_n5", ring(shape(5), 8, L::contiguous));
  add("ring_causal_zigzag_p2_n8", ring(shape(8), 2, L::zigzag));
  add("ring_causal_zigzag_p3_n97", ring(shape(97), 3, L::zigzag));
  add("ring_causal_zigzag_p4_n97", ring(shape(97), 4, L::zigzag));
  c = ring(shape(64), 8, L::zigzag); c.window_left = 8; add("ring_causal_window_zigzag_p8_n64", c);
  add("ring_causal_zigzag_p8_n6", ring(shape(6), 8, L::zigzag));
  add("ring_causal_striped_p2_n131", ring(shape(131), 2, L::striped));
  c = ring(shape(64), 3, L::striped, false); c.window_left = 5; c.window_right = 5;
  add("ring_window_striped_p3_n64", c);
  c = ring(shape(97, 6), 4, L::striped); c.kv_heads = 3; add("ring_causal_gqa_striped_p4_n97", c);
  add("ring_causal_striped_p8_n7", ring(shape(7), 8, L::striped));
  add("ring_causal_zigzag_p8_n256", ring(shape(256, 2, 16), 8, L::zigzag));
  c = ring(shape(64, 4), 4, L::zigzag); c.batch = 2; c.kv_heads = 1; add("ring_causal_mqa_zigzag_b2_p4_n64", c);
  // The seed documents' variant: queries on every device, K/V rotating.
  c = ring(shape(64), 4, L::contiguous); c.q_replicated = true; add("qrep_causal_contiguous_p4_n64", c);
  c = ring(shape(97), 3, L::zigzag); c.q_replicated = true; add("qrep_causal_zigzag_p3_n97", c);
  c = ring(shape(32), 2, L::striped, false); c.q_replicated = true; c.window_left = c.window_right = 4;
  add("qrep_window_striped_p2_n32", c);

  // Dilation: every offset rule, combination and segment mode, and the presets.
  using R = OffsetRule;
  using C = Combine;
  add("dilated_paper_lse_n128", dilated(shape(128), "32:1,64:2,128:4", R::paper, C::lse));
  c = dilated(shape(128), "32:1,64:2", R::paper, C::lse); c.causal = true; add("dilated_paper_lse_causal_n128", c);
  add("dilated_torchscale_lse_ragged_n97", dilated(shape(97), "32:2,64:4", R::torchscale, C::lse, SegmentMode::ragged));
  c = dilated(shape(128, 6), "32:1,64:2", R::torchscale, C::lse); c.window_left = c.window_right = 12;
  add("dilated_torchscale_lse_window_h6_n128", c);
  add("dilated_group_lse_n64", dilated(shape(64), "16:1,32:2", R::group, C::lse));
  add("dilated_group_mean_n128", dilated(shape(128), "32:1,64:2", R::group, C::group_mean));
  add("dilated_group_sum_h5_n128", dilated(shape(128, 5), "32:1,64:2", R::group, C::group_sum));
  add("dilated_ragged_w_gt_n_n50", dilated(shape(50), "16:2,64:4", R::paper, C::lse, SegmentMode::ragged));
  c = dilated(shape(64, 6), "16:1,32:2", R::paper, C::lse); c.kv_heads = 2; c.causal = true;
  add("dilated_paper_gqa_h6_kv2_causal_n64", c);
  c = shape(128); c.dilation = parse_dilation("32:1,64:2"); apply_preset(c, "longnet"); add("preset_longnet_n128", c);
  c = shape(100); c.dilation = parse_dilation("32:1,64:2"); apply_preset(c, "torchscale"); c.causal = true;
  add("preset_torchscale_causal_n100", c);
  c = shape(128); c.dilation = parse_dilation("32:1,64:2"); apply_preset(c, "dilated-attention-pytorch");
  add("preset_dilated_attention_pytorch_n128", c);
  // Ring + dilation: contiguous with segments inside a device skips every step s ≥ 1.
  c = ring(dilated(shape(128), "16:1,32:2", R::paper, C::lse), 4, L::contiguous, false);
  add("ring_dilated_paper_contiguous_p4_n128", c);
  add("ring_dilated_group_mean_zigzag_p2_n64",
      ring(dilated(shape(64), "16:1,32:2", R::group, C::group_mean), 2, L::zigzag));
  add("ring_dilated_torchscale_ragged_striped_p3_n90",
      ring(dilated(shape(90), "32:2,64:4", R::torchscale, C::lse, SegmentMode::ragged), 3, L::striped));
  // clang-format on
  return cases;
}

}  // namespace

std::vector<std::string> suite_names() { return {"standard"}; }

std::vector<SuiteCase> suite_cases(const std::string& suite_name) {
  if (suite_name == "standard") return standard_suite();
  std::string valid;
  for (const auto& name : suite_names()) valid += (valid.empty() ? "" : ", ") + name;
  throw ConfigError("--suite", "'" + suite_name + "'", "valid suites are " + valid);
}

std::vector<SuiteCase> write_suite(const std::string& suite_name, const fs::path& dir, bool force,
                                   const std::function<void(const SuiteCase&, const GoldenCase&)>& progress) {
  const std::vector<SuiteCase> cases = suite_cases(suite_name);
  prepare_directory(dir, force);
  const fs::path index_path = dir / "index.json";
  std::error_code ec;
  fs::remove(index_path, ec);  // written again last: its presence means the suite is complete
  json index_cases = json::array();
  for (const SuiteCase& suite_case : cases) {
    const GoldenCase golden = make_case(suite_case.config, suite_case.algorithm, suite_case.seed);
    save_case(golden, dir / suite_case.name, force);
    index_cases.push_back({{"name", suite_case.name},
                           {"dir", suite_case.name},
                           {"description", describe(suite_case.config)},
                           {"algorithm", to_string(suite_case.algorithm)},
                           {"seed", suite_case.seed}});
    if (progress) progress(suite_case, golden);
  }
  json index = json::object();
  index["format"] = "ringlab-golden-suite";
  index["format_version"] = 1;
  index["suite"] = suite_name;
  index["ringlab_version"] = ringlab_version();
  index["case_count"] = cases.size();
  index["cases"] = index_cases;
  write_text_file(index_path, index.dump(2) + "\n");
  return cases;
}

}  // namespace ringlab
