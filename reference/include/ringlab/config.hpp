// AttentionConfig: everything that defines one attention problem in ringlab — shapes, positions, mask,
// ring layout and dilation. The reference, the simulator, the GPU code and the CLI all take this one struct.
// docs/semantics.md defines what each field means.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ringlab {

enum class Layout { contiguous, zigzag, striped };
enum class OffsetRule { paper, torchscale, group };
enum class Combine { lse, group_mean, group_sum };
enum class SegmentMode { error, ragged };
enum class Algorithm { dense, blockwise, ring };

// One LongNet pattern: segments of w tokens, every r-th token of a segment selected.
struct DilationPattern {
  std::int64_t segment_length = 0;  // w
  std::int64_t rate = 1;            // r
  bool operator==(const DilationPattern&) const = default;
};

struct AttentionConfig {
  // Shapes: Q [batch, seq, heads, head_dim]; K, V [batch, kv_seq, kv_heads, head_dim].
  std::int64_t batch = 1;
  std::int64_t seq = 128;       // N
  std::int64_t kv_seq = 128;    // M
  std::int64_t q_start = 0;     // query i has global position q_start + i; key j has position j
  std::int64_t heads = 4;       // H
  std::int64_t kv_heads = 4;    // Hkv; head h reads KV head ⌊h·Hkv/H⌋
  std::int64_t head_dim = 32;   // D
  std::optional<double> scale;  // τ; 1/√D when unset

  // Mask on global positions (flash-attn conventions): allowed iff q − left ≤ k ≤ q + right, −1 = unbounded.
  bool causal = false;
  std::int64_t window_left = -1;
  std::int64_t window_right = -1;

  // Ring of P devices.
  int ring = 1;  // P
  Layout layout = Layout::contiguous;
  bool q_replicated = false;  // the seed documents' variant: every device holds all queries

  // LongNet dilated attention; empty = ordinary attention.
  std::vector<DilationPattern> dilation;
  OffsetRule offset_rule = OffsetRule::paper;
  Combine combine = Combine::lse;
  SegmentMode segments = SegmentMode::error;

  double tau() const;
  bool dilated() const { return !dilation.empty(); }
  // Throws ConfigError naming the first invalid parameter.
  void validate() const;
  bool operator==(const AttentionConfig&) const = default;
};

// Presets of the dilation rules used by public implementations (docs/semantics.md §Presets).
void apply_preset(AttentionConfig& config, const std::string& preset_name);
std::vector<std::string> preset_names();

// Enum <-> text. Parsers throw ConfigError naming `parameter` and listing the valid values.
std::string to_string(Layout);
std::string to_string(OffsetRule);
std::string to_string(Combine);
std::string to_string(SegmentMode);
std::string to_string(Algorithm);
Layout parse_layout(const std::string& text, const std::string& parameter = "--layout");
OffsetRule parse_offset_rule(const std::string& text, const std::string& parameter = "--offset-rule");
Combine parse_combine(const std::string& text, const std::string& parameter = "--combine");
SegmentMode parse_segment_mode(const std::string& text, const std::string& parameter = "--segments");
Algorithm parse_algorithm(const std::string& text, const std::string& parameter = "--algorithm");
// "2048:1,4096:2" -> patterns.
std::vector<DilationPattern> parse_dilation(const std::string& text, const std::string& parameter = "--dilation");
std::string format_dilation(const std::vector<DilationPattern>& patterns);
// "L,R" -> (left, right).
std::pair<std::int64_t, std::int64_t> parse_window(const std::string& text, const std::string& parameter = "--window");

// The algorithm a config names: the ring when P > 1, blockwise otherwise.
Algorithm default_algorithm(const AttentionConfig& config);

// One-line human-readable summary, e.g. "B=1 N=128 M=128 H=4 Hkv=4 D=32 causal ring=4 zigzag".
std::string describe(const AttentionConfig& config);

}  // namespace ringlab
