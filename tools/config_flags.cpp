#include "config_flags.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "ringlab/errors.hpp"

namespace ringlab::cli {

ConfigFlags::ConfigFlags(CLI::App& app, const AttentionConfig& defaults)
    : app_(&app),
      defaults_(defaults),
      batch_(defaults.batch),
      seq_(defaults.seq),
      kv_seq_(defaults.kv_seq),
      q_start_(defaults.q_start),
      heads_(defaults.heads),
      kv_heads_(defaults.kv_heads),
      head_dim_(defaults.head_dim),
      causal_(defaults.causal),
      q_replicated_(defaults.q_replicated),
      ring_(defaults.ring),
      layout_(to_string(defaults.layout)) {
  const AttentionConfig& d = defaults;
  // Placeholders shown in --help instead of CLI11's INT/TEXT.
  const std::map<std::string, std::string> type_names = {
      {"--batch", "B"},          {"--seq", "N"},        {"--kv-seq", "M"},      {"--q-start", "POS"},
      {"--heads", "H"},          {"--kv-heads", "HKV"}, {"--head-dim", "D"},    {"--scale", "TAU"},
      {"--window", "L,R"},       {"--ring", "P"},       {"--layout", "LAYOUT"}, {"--dilation", "W:R,..."},
      {"--offset-rule", "RULE"}, {"--combine", "MODE"}, {"--segments", "MODE"}, {"--preset", "NAME"},
  };
  const std::string shapes = "Config: shapes", mask = "Config: mask", ring = "Config: ring",
                    dilation = "Config: dilation (LongNet)";
  auto add = [&](CLI::Option* option, const std::string& group) {
    option->group(group);
    if (const auto name = type_names.find(option->get_name()); name != type_names.end())
      option->type_name(name->second);
    options_.push_back(option);
  };
  const std::string kv_seq_default = d.kv_seq == d.seq ? "--seq" : std::to_string(d.kv_seq);
  const std::string kv_heads_default = d.kv_heads == d.heads ? "--heads" : std::to_string(d.kv_heads);
  const std::string scale_default = d.scale ? fmt::format("{}", *d.scale) : "1/sqrt(D)";
  const std::string window_default =
      d.window_left < 0 && d.window_right < 0 ? "-1,-1 = none" : fmt::format("{},{}", d.window_left, d.window_right);
  const std::string dilation_default = d.dilated() ? format_dilation(d.dilation) : "none";

  add(app.add_option("--batch", batch_, fmt::format("batch size B (default {})", d.batch)), shapes);
  add(app.add_option("--seq", seq_, fmt::format("query tokens N (default {})", d.seq)), shapes);
  add(app.add_option("--kv-seq", kv_seq_, fmt::format("key/value tokens M (default {})", kv_seq_default)), shapes);
  add(app.add_option("--q-start", q_start_,
                     fmt::format("global position of query 0; keys sit at 0..M-1 (default {}; 0 = top-left causal "
                                 "alignment, M-N = bottom-right)",
                                 d.q_start)),
      shapes);
  add(app.add_option("--heads", heads_, fmt::format("query heads H (default {})", d.heads)), shapes);
  add(app.add_option("--kv-heads", kv_heads_,
                     fmt::format("key/value heads Hkv, must divide H (default {})", kv_heads_default)),
      shapes);
  add(app.add_option("--head-dim", head_dim_, fmt::format("head dimension D (default {})", d.head_dim)), shapes);
  add(app.add_option("--scale", scale_, fmt::format("softmax scale tau in S = tau*Q*K^T (default {})", scale_default)),
      shapes);
  // A default that is on needs a way off: --no-causal, --no-q-replicated.
  add(app.add_flag(d.causal ? "--causal,!--no-causal" : "--causal", causal_,
                   std::string("causal mask: key k is allowed iff k <= q (global positions)") +
                       (d.causal ? " (default on)" : "")),
      mask);
  add(app.add_option("--window", window_,
                     fmt::format("sliding window: key k allowed iff q-L <= k <= q+R; -1 = unbounded side (default {})",
                                 window_default)),
      mask);
  add(app.add_option("--ring", ring_, fmt::format("ring devices P (default {}; 1 = one device)", d.ring)), ring);
  add(app.add_option(
          "--layout", layout_,
          fmt::format("token layout over the ring: contiguous | zigzag | striped (default {})", to_string(d.layout))),
      ring);
  add(app.add_flag(d.q_replicated ? "--q-replicated,!--no-q-replicated" : "--q-replicated", q_replicated_,
                   std::string("every device holds all queries and only K/V rotate (the seed documents' variant)") +
                       (d.q_replicated ? " (default on)" : "")),
      ring);
  add(app.add_option("--dilation", dilation_,
                     fmt::format("patterns w:r,w:r,... (segment length in tokens : rate), e.g. 32:1,64:2 (default {})",
                                 dilation_default)),
      dilation);
  add(app.add_option("--offset-rule", offset_rule_,
                     fmt::format("which offset each head uses: paper | torchscale | group (default {}, or --preset's)",
                                 to_string(d.offset_rule))),
      dilation);
  add(app.add_option("--combine", combine_,
                     fmt::format("how a head's patterns combine: lse | group_mean | group_sum (default {}, or "
                                 "--preset's)",
                                 to_string(d.combine))),
      dilation);
  add(app.add_option("--segments", segments_,
                     fmt::format("when N is not a multiple of w: error | ragged (shorter last segment) (default {}, "
                                 "or --preset's)",
                                 to_string(d.segments))),
      dilation);
  add(app.add_option("--preset", preset_,
                     "longnet | torchscale | dilated-attention-pytorch: sets --offset-rule, --combine, --segments; "
                     "explicit flags override it"),
      dilation);
}

bool ConfigFlags::given(const std::string& flag) const { return app_->count(flag) > 0; }

bool ConfigFlags::any_given() const {
  return std::any_of(options_.begin(), options_.end(), [](const CLI::Option* option) { return option->count() > 0; });
}

AttentionConfig ConfigFlags::config(bool validate) const {
  AttentionConfig config = defaults_;
  config.batch = batch_;
  config.seq = seq_;
  // --kv-seq and --kv-heads follow --seq and --heads unless given (or unless the defaults set them apart).
  config.kv_seq = given("--kv-seq") || defaults_.kv_seq != defaults_.seq ? kv_seq_ : seq_;
  config.q_start = q_start_;
  config.heads = heads_;
  config.kv_heads = given("--kv-heads") || defaults_.kv_heads != defaults_.heads ? kv_heads_ : heads_;
  config.head_dim = head_dim_;
  if (given("--scale")) config.scale = scale_;
  config.causal = causal_;
  if (given("--window")) std::tie(config.window_left, config.window_right) = parse_window(window_, "--window");
  config.ring = ring_;
  config.layout = parse_layout(layout_, "--layout");
  config.q_replicated = q_replicated_;
  if (given("--dilation")) config.dilation = parse_dilation(dilation_, "--dilation");
  // The preset first, then whatever was given explicitly.
  if (given("--preset")) apply_preset(config, preset_);
  if (given("--offset-rule")) config.offset_rule = parse_offset_rule(offset_rule_, "--offset-rule");
  if (given("--combine")) config.combine = parse_combine(combine_, "--combine");
  if (given("--segments")) config.segments = parse_segment_mode(segments_, "--segments");
  if (validate) config.validate();
  return config;
}

}  // namespace ringlab::cli
