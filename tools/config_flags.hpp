// The command-line flags that describe one AttentionConfig (--batch … --preset), shared by every ringlab
// subcommand that takes a config (golden, schedule, simulate), so each flag means the same thing everywhere.
// docs/semantics.md defines the fields.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "ringlab/config.hpp"

namespace ringlab::cli {

class ConfigFlags {
 public:
  // Registers every config flag on `app` (which must outlive this object). `defaults` gives the value of
  // each flag that is not on the command line (and shows in --help); --kv-seq and --kv-heads follow --seq
  // and --heads when the defaults have them equal.
  explicit ConfigFlags(CLI::App& app, const AttentionConfig& defaults = {});
  ConfigFlags(const ConfigFlags&) = delete;
  ConfigFlags& operator=(const ConfigFlags&) = delete;

  // After parsing: the config the flags describe, with --preset applied before the explicit --offset-rule,
  // --combine and --segments, and validated (unless `validate` is false: a caller that sets fields such as
  // the sequence length itself validates the result). Throws ConfigError naming the offending flag.
  AttentionConfig config(bool validate = true) const;
  // Whether any config flag appeared on the command line.
  bool any_given() const;

 private:
  bool given(const std::string& flag) const;

  CLI::App* app_;
  AttentionConfig defaults_;
  std::vector<CLI::Option*> options_;
  // Raw flag values; text flags are parsed by config() so that errors name the flag the ringlab way.
  std::int64_t batch_, seq_, kv_seq_, q_start_, heads_, kv_heads_, head_dim_;
  double scale_ = 0;
  bool causal_, q_replicated_;
  int ring_;
  std::string window_, layout_, dilation_, offset_rule_, combine_, segments_, preset_;
};

}  // namespace ringlab::cli
