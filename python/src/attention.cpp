// Whole-problem attention (dense | blockwise | ring, dilated included) forward and backward in float and
// double; the two primitives block_attention and lse_merge for one head; the dilation plan of each head and
// the mask multiplicity matrix. The GIL is released while the reference computes.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "bindings.hpp"
#include "ringlab/attention.hpp"
#include "ringlab/dilation.hpp"
#include "ringlab/errors.hpp"

namespace ringlab::python {

namespace {

using i64 = std::int64_t;

AttentionOptions<double> options_of(const AttentionConfig& config, const std::optional<std::string>& algorithm,
                                    i64 tile_rows, i64 tile_columns) {
  if (tile_rows < 1 || tile_columns < 1)
    throw ConfigError("tiles", "(" + std::to_string(tile_rows) + ", " + std::to_string(tile_columns) + ")",
                      "tile sizes (Br, Bc) must be >= 1");
  AttentionOptions<double> options;
  options.algorithm = algorithm ? parse_algorithm(*algorithm, "--algorithm") : default_algorithm(config);
  options.tiles = {tile_rows, tile_columns};
  return options;
}

template <class T>
AttentionOptions<T> cast_options(const AttentionOptions<double>& options) {
  return {options.algorithm, options.tiles, nullptr};
}

template <class T>
std::tuple<OutArray<T>, OutArray<T>> forward(const AttentionConfig& config, InArray<T> q, InArray<T> k, InArray<T> v,
                                             const std::optional<std::string>& algorithm, i64 tile_rows,
                                             i64 tile_columns) {
  const auto options = cast_options<T>(options_of(config, algorithm, tile_rows, tile_columns));
  const Tensor<T> tq = to_tensor(q), tk = to_tensor(k), tv = to_tensor(v);
  AttentionOutput<T> result;
  {
    nb::gil_scoped_release release;
    result = attention_forward(config, tq, tk, tv, options);
  }
  return {to_numpy(std::move(result.out)), to_numpy(std::move(result.lse))};
}

template <class T>
std::tuple<OutArray<T>, OutArray<T>, OutArray<T>> backward(const AttentionConfig& config, InArray<T> q, InArray<T> k,
                                                           InArray<T> v, InArray<T> out, InArray<T> lse,
                                                           InArray<T> dout,
                                                           const std::optional<std::string>& algorithm,
                                                           i64 tile_rows, i64 tile_columns) {
  const auto options = cast_options<T>(options_of(config, algorithm, tile_rows, tile_columns));
  const Tensor<T> tq = to_tensor(q), tk = to_tensor(k), tv = to_tensor(v), to = to_tensor(out),
                  tl = to_tensor(lse), td = to_tensor(dout);
  AttentionGradients<T> grads;
  {
    nb::gil_scoped_release release;
    grads = attention_backward(config, tq, tk, tv, to, tl, td, options);
  }
  return {to_numpy(std::move(grads.dq)), to_numpy(std::move(grads.dk)), to_numpy(std::move(grads.dv))};
}

// One head: q [n, D], k, v [m, D], positions [n] and [m], the band mask (and optionally one dilation select).
std::tuple<OutArray<double>, OutArray<double>> block_forward(
    InArray<double> q, InArray<double> k, InArray<double> v, InArray<i64> q_positions, InArray<i64> k_positions,
    bool causal, i64 window_left, i64 window_right, std::optional<double> scale,
    std::optional<std::tuple<i64, i64, i64>> dilation, i64 tile_rows, i64 tile_columns) {
  if (q.ndim() != 2 || k.ndim() != 2 || v.ndim() != 2)
    throw InputError("block_attention: q, k and v must be 2-d [rows, D]");
  const i64 n = static_cast<i64>(q.shape(0)), m = static_cast<i64>(k.shape(0)), d = static_cast<i64>(q.shape(1));
  if (static_cast<i64>(k.shape(1)) != d || static_cast<i64>(v.shape(1)) != d || static_cast<i64>(v.shape(0)) != m)
    throw InputError("block_attention: k and v must be [m, D] with the D of q");
  if (q_positions.ndim() != 1 || static_cast<i64>(q_positions.shape(0)) != n || k_positions.ndim() != 1 ||
      static_cast<i64>(k_positions.shape(0)) != m)
    throw InputError("block_attention: q_positions must be [n] and k_positions [m]");
  if (tile_rows < 1 || tile_columns < 1) throw ConfigError("tiles", "(Br, Bc)", "tile sizes must be >= 1");
  if (window_left < -1 || window_right < -1) throw ConfigError("window", "(L, R)", "each side must be >= -1");
  MaskPredicate mask{BandMask::from(causal, window_left, window_right), std::nullopt};
  if (dilation) {
    const auto [w, r, o] = *dilation;
    if (w < 1 || r < 1 || r > w || o < 0 || o >= r)
      throw ConfigError("dilation", "(w, r, offset)", "needs 1 <= r <= w and 0 <= offset < r");
    mask.dilation = DilationSelect{w, r, o};
  }
  const double tau = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> out(static_cast<std::size_t>(n * d)), lse(static_cast<std::size_t>(n));
  {
    nb::gil_scoped_release release;
    block_attention_forward<double>({q.data(), n, d, d}, {q_positions.data(), static_cast<std::size_t>(n)},
                                    {k.data(), m, d, d}, {v.data(), m, d, d},
                                    {k_positions.data(), static_cast<std::size_t>(m)}, mask, tau,
                                    {out.data(), n, d, d}, lse, {tile_rows, tile_columns});
  }
  return {to_numpy(std::move(out), {static_cast<std::size_t>(n), static_cast<std::size_t>(d)}),
          to_numpy(std::move(lse), {static_cast<std::size_t>(n)})};
}

// (O_a, L_a) ⊕ (O_b, L_b) for rows [n, D] and [n].
std::tuple<OutArray<double>, OutArray<double>> merge(InArray<double> out_a, InArray<double> lse_a,
                                                     InArray<double> out_b, InArray<double> lse_b) {
  if (out_a.ndim() != 2 || out_b.ndim() != 2 || lse_a.ndim() != 1 || lse_b.ndim() != 1 ||
      out_a.shape(0) != out_b.shape(0) || out_a.shape(1) != out_b.shape(1) || lse_a.shape(0) != out_a.shape(0) ||
      lse_b.shape(0) != out_a.shape(0))
    throw InputError("lse_merge: expected o_a, o_b [n, D] and lse_a, lse_b [n] of one n and D");
  const i64 n = static_cast<i64>(out_a.shape(0)), d = static_cast<i64>(out_a.shape(1));
  std::vector<double> out(out_a.data(), out_a.data() + out_a.size()), lse(lse_a.data(), lse_a.data() + lse_a.size());
  lse_merge<double>({out.data(), n, d, d}, lse, {out_b.data(), n, d, d},
                    {lse_b.data(), static_cast<std::size_t>(n)});
  return {to_numpy(std::move(out), {static_cast<std::size_t>(n), static_cast<std::size_t>(d)}),
          to_numpy(std::move(lse), {static_cast<std::size_t>(n)})};
}

// Per head: the (pattern, w, r, offset) masks it runs, its output factor and its group.
nb::list head_plans(const AttentionConfig& config) {
  nb::list result;
  for (const HeadPlan& plan : plan_heads(config)) {
    nb::list masks;
    for (std::size_t i = 0; i < plan.masks.size(); ++i) {
      nb::dict mask;
      mask["pattern"] = plan.pattern_indices[i];
      if (const auto& select = plan.masks[i].dilation) {
        mask["segment_length"] = select->segment_length;
        mask["rate"] = select->rate;
        mask["offset"] = select->offset;
      }
      masks.append(mask);
    }
    nb::dict entry;
    entry["masks"] = masks;
    entry["output_scale"] = plan.output_scale;
    entry["group"] = plan.group;
    result.append(entry);
  }
  return result;
}

// m_h(t, j): in how many of head h's masks query i (position q_start + i) and key j interact, [N, M] int32.
OutArray<std::int32_t> multiplicity(const AttentionConfig& config, i64 head) {
  if (head < 0 || head >= config.heads)
    throw ConfigError("head", std::to_string(head), "must be in [0, heads = " + std::to_string(config.heads) + ")");
  constexpr i64 kMaxEntries = i64{1} << 26;
  if (config.seq * config.kv_seq > kMaxEntries)
    throw ConfigError("--seq", std::to_string(config.seq),
                      "the mask matrix holds N x M entries; at most 2^26 (use a smaller seq for a picture)");
  const HeadPlan plan = plan_heads(config)[static_cast<std::size_t>(head)];
  std::vector<std::int32_t> counts(static_cast<std::size_t>(config.seq * config.kv_seq), 0);
  for (i64 i = 0; i < config.seq; ++i)
    for (i64 j = 0; j < config.kv_seq; ++j)
      for (const MaskPredicate& mask : plan.masks)
        counts[static_cast<std::size_t>(i * config.kv_seq + j)] += mask.allows(config.q_start + i, j) ? 1 : 0;
  return to_numpy(std::move(counts), {static_cast<std::size_t>(config.seq), static_cast<std::size_t>(config.kv_seq)});
}

template <class T>
void bind_typed(nb::module_& m, const char* forward_name, const char* backward_name) {
  m.def(forward_name, &forward<T>, nb::arg("config"), nb::arg("q").noconvert(), nb::arg("k").noconvert(),
        nb::arg("v").noconvert(), nb::arg("algorithm").none(), nb::arg("tile_rows"), nb::arg("tile_columns"));
  m.def(backward_name, &backward<T>, nb::arg("config"), nb::arg("q").noconvert(), nb::arg("k").noconvert(),
        nb::arg("v").noconvert(), nb::arg("o").noconvert(), nb::arg("lse").noconvert(), nb::arg("do").noconvert(),
        nb::arg("algorithm").none(), nb::arg("tile_rows"), nb::arg("tile_columns"));
}

}  // namespace

void bind_attention(nb::module_& m) {
  bind_typed<double>(m, "forward_float64", "backward_float64");
  bind_typed<float>(m, "forward_float32", "backward_float32");
  m.def("block_attention", &block_forward, nb::arg("q").noconvert(), nb::arg("k").noconvert(),
        nb::arg("v").noconvert(), nb::arg("q_positions").noconvert(), nb::arg("k_positions").noconvert(),
        nb::arg("causal"), nb::arg("window_left"), nb::arg("window_right"), nb::arg("scale").none(),
        nb::arg("dilation").none(), nb::arg("tile_rows"), nb::arg("tile_columns"));
  m.def("lse_merge", &merge, nb::arg("o_a").noconvert(), nb::arg("lse_a").noconvert(), nb::arg("o_b").noconvert(),
        nb::arg("lse_b").noconvert());
  m.def("head_plans", &head_plans, nb::arg("config"));
  m.def("multiplicity", &multiplicity, nb::arg("config"), nb::arg("head"));
  m.def("default_algorithm", [](const AttentionConfig& config) { return to_string(default_algorithm(config)); });
}

}  // namespace ringlab::python
