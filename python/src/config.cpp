// AttentionConfig as the Python class `_ringlab.Config`, built from keyword arguments by make_config. The
// Python layer resolves defaults (kv_seq = seq, ...) and passes every field; parsing and validation are the
// reference's own (parse_layout, parse_dilation, apply_preset, validate), so the messages are the CLI's.
#include <optional>
#include <string>

#include <nanobind/operators.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "bindings.hpp"
#include "ringlab/config.hpp"
#include "ringlab/golden.hpp"

namespace ringlab::python {

namespace {

AttentionConfig make_config(std::int64_t batch, std::int64_t seq, std::int64_t kv_seq, std::int64_t q_start,
                            std::int64_t heads, std::int64_t kv_heads, std::int64_t head_dim,
                            std::optional<double> scale, bool causal, std::int64_t window_left,
                            std::int64_t window_right, int ring, const std::string& layout, bool q_replicated,
                            const std::string& dilation, const std::optional<std::string>& offset_rule,
                            const std::optional<std::string>& combine, const std::optional<std::string>& segments,
                            const std::optional<std::string>& preset) {
  AttentionConfig config;
  config.batch = batch;
  config.seq = seq;
  config.kv_seq = kv_seq;
  config.q_start = q_start;
  config.heads = heads;
  config.kv_heads = kv_heads;
  config.head_dim = head_dim;
  config.scale = scale;
  config.causal = causal;
  config.window_left = window_left;
  config.window_right = window_right;
  config.ring = ring;
  config.layout = parse_layout(layout);
  config.q_replicated = q_replicated;
  config.dilation = parse_dilation(dilation);
  // As on the command line: the preset first, then whatever was given explicitly.
  if (preset) apply_preset(config, *preset);
  if (offset_rule) config.offset_rule = parse_offset_rule(*offset_rule);
  if (combine) config.combine = parse_combine(*combine);
  if (segments) config.segments = parse_segment_mode(*segments);
  config.validate();
  return config;
}

}  // namespace

void bind_config(nb::module_& m) {
  nb::class_<AttentionConfig>(m, "Config", "A validated ringlab::AttentionConfig (docs/semantics.md).")
      .def_ro("batch", &AttentionConfig::batch)
      .def_ro("seq", &AttentionConfig::seq)
      .def_ro("kv_seq", &AttentionConfig::kv_seq)
      .def_ro("q_start", &AttentionConfig::q_start)
      .def_ro("heads", &AttentionConfig::heads)
      .def_ro("kv_heads", &AttentionConfig::kv_heads)
      .def_ro("head_dim", &AttentionConfig::head_dim)
      .def_ro("causal", &AttentionConfig::causal)
      .def_ro("ring", &AttentionConfig::ring)
      .def_ro("q_replicated", &AttentionConfig::q_replicated)
      .def_prop_ro("window", [](const AttentionConfig& c) { return std::pair(c.window_left, c.window_right); })
      .def_prop_ro("scale", &AttentionConfig::tau)
      .def_prop_ro("layout", [](const AttentionConfig& c) { return to_string(c.layout); })
      .def_prop_ro("dilation", [](const AttentionConfig& c) { return format_dilation(c.dilation); })
      .def_prop_ro("offset_rule", [](const AttentionConfig& c) { return to_string(c.offset_rule); })
      .def_prop_ro("combine", [](const AttentionConfig& c) { return to_string(c.combine); })
      .def_prop_ro("segments", [](const AttentionConfig& c) { return to_string(c.segments); })
      .def("to_dict", [](const AttentionConfig& c) { return to_python(config_to_json(c)); },
           "The config as case.json stores it (scale resolved, scale_given says whether it was set).")
      .def("describe", [](const AttentionConfig& c) { return describe(c); })
      .def("__repr__", [](const AttentionConfig& c) { return "<ringlab.Config " + describe(c) + ">"; })
      .def(nb::self == nb::self);

  m.def("make_config", &make_config, nb::kw_only(), nb::arg("batch"), nb::arg("seq"), nb::arg("kv_seq"),
        nb::arg("q_start"), nb::arg("heads"), nb::arg("kv_heads"), nb::arg("head_dim"), nb::arg("scale").none(),
        nb::arg("causal"), nb::arg("window_left"), nb::arg("window_right"), nb::arg("ring"), nb::arg("layout"),
        nb::arg("q_replicated"), nb::arg("dilation"), nb::arg("offset_rule").none(), nb::arg("combine").none(),
        nb::arg("segments").none(), nb::arg("preset").none());
  m.def("parse_window", [](const std::string& text) { return parse_window(text); }, nb::arg("text"));
  m.def("preset_names", &preset_names);
  m.def("version", &ringlab_version);
}

}  // namespace ringlab::python
