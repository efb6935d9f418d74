#include "ringlab/config.hpp"

#include <cmath>
#include <sstream>

#include "ringlab/choices.hpp"
#include "ringlab/errors.hpp"

namespace ringlab {
namespace {

// Sizes beyond these would overflow 64-bit position and pair arithmetic long before memory runs out.
constexpr std::int64_t kMaxTokens = std::int64_t{1} << 40;
constexpr std::int64_t kMaxHeads = 65536;
constexpr std::int64_t kMaxHeadDim = 4096;
constexpr int kMaxRing = 1 << 20;

std::string str(std::int64_t v) { return std::to_string(v); }

void require_range(const std::string& parameter, std::int64_t value, std::int64_t lo, std::int64_t hi) {
  if (value < lo || value > hi)
    throw ConfigError(parameter, str(value), "must be an integer in [" + str(lo) + ", " + str(hi) + "]");
}

std::int64_t parse_int(const std::string& text, const std::string& parameter) {
  std::size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size())
    throw ConfigError(parameter, "'" + text + "'", "expected an integer");
  return value;
}

}  // namespace

double AttentionConfig::tau() const { return scale ? *scale : 1.0 / std::sqrt(static_cast<double>(head_dim)); }

void AttentionConfig::validate() const {
  require_range("--batch", batch, 1, kMaxHeads);
  require_range("--seq", seq, 1, kMaxTokens);
  require_range("--kv-seq", kv_seq, 1, kMaxTokens);
  require_range("--q-start", q_start, -kMaxTokens, kMaxTokens);
  require_range("--heads", heads, 1, kMaxHeads);
  require_range("--kv-heads", kv_heads, 1, kMaxHeads);
  require_range("--head-dim", head_dim, 1, kMaxHeadDim);
  if (heads % kv_heads != 0)
    throw ConfigError("--kv-heads", str(kv_heads),
                      "must divide --heads = " + str(heads) + " (each KV head serves H/Hkv query heads)");
  if (scale && !std::isfinite(*scale)) {
    std::ostringstream text;
    text << *scale;
    throw ConfigError("--scale", text.str(), "must be a finite number");
  }
  require_range("--window left", window_left, -1, kMaxTokens);
  require_range("--window right", window_right, -1, kMaxTokens);
  require_range("--ring", ring, 1, kMaxRing);
  if (ring > 1 || q_replicated) {
    if (seq != kv_seq)
      throw ConfigError("--kv-seq", str(kv_seq), "ring attention needs --kv-seq equal to --seq = " + str(seq));
    if (q_start != 0)
      throw ConfigError("--q-start", str(q_start), "ring attention needs --q-start 0");
  }
  if (!dilated()) return;

  if (seq != kv_seq)
    throw ConfigError("--kv-seq", str(kv_seq), "dilated attention needs --kv-seq equal to --seq = " + str(seq));
  if (q_start != 0) throw ConfigError("--q-start", str(q_start), "dilated attention needs --q-start 0");
  for (const DilationPattern& pattern : dilation) {
    const std::string text = str(pattern.segment_length) + ":" + str(pattern.rate);
    if (pattern.segment_length < 1)
      throw ConfigError("--dilation", text, "segment length w must be >= 1");
    if (pattern.rate < 1 || pattern.rate > pattern.segment_length)
      throw ConfigError("--dilation", text, "rate r must be in [1, w = " + str(pattern.segment_length) + "]");
    if (segments == SegmentMode::error && seq % pattern.segment_length != 0 && pattern.segment_length <= seq)
      throw ConfigError("--dilation", text,
                        "--seq " + str(seq) + " is not a multiple of the segment length " +
                            str(pattern.segment_length) + "; use --segments ragged to allow a shorter last segment");
    if (segments == SegmentMode::error && pattern.segment_length > seq)
      throw ConfigError("--dilation", text,
                        "segment length " + str(pattern.segment_length) + " exceeds --seq " + str(seq) +
                            "; use --segments ragged (one segment) or a shorter segment");
  }
  const auto pattern_count = static_cast<std::int64_t>(dilation.size());
  if (offset_rule == OffsetRule::group && heads < pattern_count)
    throw ConfigError("--heads", str(heads),
                      "offset rule 'group' gives each of the " + str(pattern_count) +
                          " patterns its own group of heads, so it needs at least " + str(pattern_count) + " heads");
  if (combine != Combine::lse && offset_rule != OffsetRule::group)
    throw ConfigError("--combine", to_string(combine),
                      "group_mean and group_sum need --offset-rule group (a head runs one pattern); "
                      "use --combine lse with offset rule '" + to_string(offset_rule) + "'");
}

void apply_preset(AttentionConfig& config, const std::string& preset_name) {
  if (preset_name == "longnet") {
    config.offset_rule = OffsetRule::paper;
    config.combine = Combine::lse;
    config.segments = SegmentMode::error;
  } else if (preset_name == "torchscale") {
    config.offset_rule = OffsetRule::torchscale;
    config.combine = Combine::lse;
    config.segments = SegmentMode::ragged;
  } else if (preset_name == "dilated-attention-pytorch") {
    config.offset_rule = OffsetRule::group;
    config.combine = Combine::group_mean;
    config.segments = SegmentMode::error;
  } else {
    std::string valid;
    for (const auto& name : preset_names()) valid += (valid.empty() ? "" : ", ") + name;
    throw ConfigError("--preset", "'" + preset_name + "'", "valid presets are " + valid);
  }
}

std::vector<std::string> preset_names() { return {"longnet", "torchscale", "dilated-attention-pytorch"}; }

std::string to_string(Layout v) {
  switch (v) {
    case Layout::contiguous: return "contiguous";
    case Layout::zigzag: return "zigzag";
    case Layout::striped: return "striped";
  }
  return "?";
}
std::string to_string(OffsetRule v) {
  switch (v) {
    case OffsetRule::paper: return "paper";
    case OffsetRule::torchscale: return "torchscale";
    case OffsetRule::group: return "group";
  }
  return "?";
}
std::string to_string(Combine v) {
  switch (v) {
    case Combine::lse: return "lse";
    case Combine::group_mean: return "group_mean";
    case Combine::group_sum: return "group_sum";
  }
  return "?";
}
std::string to_string(SegmentMode v) { return v == SegmentMode::error ? "error" : "ragged"; }
std::string to_string(Algorithm v) {
  switch (v) {
    case Algorithm::dense: return "dense";
    case Algorithm::blockwise: return "blockwise";
    case Algorithm::ring: return "ring";
  }
  return "?";
}

Layout parse_layout(const std::string& text, const std::string& parameter) {
  static constexpr Layout values[] = {Layout::contiguous, Layout::zigzag, Layout::striped};
  return parse_choice(text, parameter, values);
}
OffsetRule parse_offset_rule(const std::string& text, const std::string& parameter) {
  static constexpr OffsetRule values[] = {OffsetRule::paper, OffsetRule::torchscale, OffsetRule::group};
  return parse_choice(text, parameter, values);
}
Combine parse_combine(const std::string& text, const std::string& parameter) {
  static constexpr Combine values[] = {Combine::lse, Combine::group_mean, Combine::group_sum};
  return parse_choice(text, parameter, values);
}
SegmentMode parse_segment_mode(const std::string& text, const std::string& parameter) {
  static constexpr SegmentMode values[] = {SegmentMode::error, SegmentMode::ragged};
  return parse_choice(text, parameter, values);
}
Algorithm parse_algorithm(const std::string& text, const std::string& parameter) {
  static constexpr Algorithm values[] = {Algorithm::dense, Algorithm::blockwise, Algorithm::ring};
  return parse_choice(text, parameter, values);
}

std::vector<DilationPattern> parse_dilation(const std::string& text, const std::string& parameter) {
  std::vector<DilationPattern> patterns;
  if (text.empty()) return patterns;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    const auto colon = item.find(':');
    if (colon == std::string::npos)
      throw ConfigError(parameter, "'" + item + "'", "each pattern is w:r (segment length:rate), e.g. 2048:1,4096:2");
    patterns.push_back({parse_int(item.substr(0, colon), parameter + " segment length"),
                        parse_int(item.substr(colon + 1), parameter + " rate")});
  }
  if (patterns.empty() || text.back() == ',')
    throw ConfigError(parameter, "'" + text + "'", "expected a comma-separated list of w:r patterns");
  return patterns;
}

std::string format_dilation(const std::vector<DilationPattern>& patterns) {
  std::string text;
  for (const auto& pattern : patterns)
    text += (text.empty() ? "" : ",") + str(pattern.segment_length) + ":" + str(pattern.rate);
  return text;
}

std::pair<std::int64_t, std::int64_t> parse_window(const std::string& text, const std::string& parameter) {
  const auto comma = text.find(',');
  if (comma == std::string::npos)
    throw ConfigError(parameter, "'" + text + "'", "expected L,R (left and right window sizes, -1 = unbounded)");
  return {parse_int(text.substr(0, comma), parameter + " left"), parse_int(text.substr(comma + 1), parameter + " right")};
}

Algorithm default_algorithm(const AttentionConfig& config) {
  return config.ring > 1 || config.q_replicated ? Algorithm::ring : Algorithm::blockwise;
}

std::string describe(const AttentionConfig& c) {
  std::ostringstream text;
  text << "B=" << c.batch << " N=" << c.seq << " M=" << c.kv_seq << " H=" << c.heads << " Hkv=" << c.kv_heads
       << " D=" << c.head_dim;
  if (c.q_start != 0) text << " q_start=" << c.q_start;
  if (c.scale) text << " scale=" << *c.scale;
  if (c.causal) text << " causal";
  if (c.window_left >= 0 || c.window_right >= 0) text << " window=" << c.window_left << "," << c.window_right;
  if (c.ring > 1 || c.q_replicated) text << " ring=" << c.ring << " " << to_string(c.layout);
  if (c.q_replicated) text << " q-replicated";
  if (c.dilated())
    text << " dilation=" << format_dilation(c.dilation) << " offset=" << to_string(c.offset_rule)
         << " combine=" << to_string(c.combine) << " segments=" << to_string(c.segments);
  return text.str();
}

}  // namespace ringlab
