#include "config_panel.hpp"

#include <fmt/format.h>
#include <imgui.h>

#include <algorithm>
#include <bit>

#include "widgets.hpp"

namespace ringlab::viz {
namespace {

constexpr float kLabelShare = 0.42f;  // of the panel width, for labels right of the widgets

// The width left for a widget once its label is drawn to the right.
void widget_width() { ImGui::SetNextItemWidth(ImGui::GetContentRegionAvail().x * (1.0f - kLabelShare)); }

bool combo(const char* label, int* current, const std::vector<std::string>& items) {
  widget_width();
  bool changed = false;
  if (ImGui::BeginCombo(label, items[static_cast<std::size_t>(*current)].c_str())) {
    for (int i = 0; i < static_cast<int>(items.size()); ++i) {
      if (ImGui::Selectable(items[static_cast<std::size_t>(i)].c_str(), i == *current)) {
        changed = i != *current;
        *current = i;
      }
    }
    ImGui::EndCombo();
  }
  return changed;
}

bool input_int64(const char* label, std::int64_t* value, std::int64_t step) {
  widget_width();
  const std::int64_t step_fast = step * 8;
  return ImGui::InputScalar(label, ImGuiDataType_S64, value, &step, &step_fast, "%lld",
                            ImGuiInputTextFlags_EnterReturnsTrue) ||
         ImGui::IsItemDeactivatedAfterEdit();
}

// A power-of-two slider over log2(value), labelled with the value itself.
bool log2_slider(const char* label, std::int64_t* value, int lo, int hi) {
  int exponent = *value > 0 ? static_cast<int>(std::bit_width(static_cast<std::uint64_t>(*value)) - 1) : lo;
  const std::string text = format_tokens(*value);
  widget_width();
  if (ImGui::SliderInt(label, &exponent, lo, hi, text.c_str(), ImGuiSliderFlags_AlwaysClamp)) {
    *value = std::int64_t{1} << exponent;
    return true;
  }
  return false;
}

}  // namespace

void ConfigPanel::draw(Context& ctx) {
  if (!ctx.model.error().empty()) {
    ImGui::PushStyleColor(ImGuiCol_Text, to_vec4(colors::exposed));
    ImGui::PushTextWrapPos(0);
    ImGui::TextUnformatted(ctx.model.error().c_str());
    ImGui::PopTextWrapPos();
    ImGui::PopStyleColor();
    ImGui::TextDisabled("The panels still show the last valid configuration.");
    ImGui::Separator();
  }
  ImGui::PushID("config");
  if (ImGui::CollapsingHeader("Problem", ImGuiTreeNodeFlags_DefaultOpen)) draw_problem(ctx);
  if (ImGui::CollapsingHeader("Ring and hardware", ImGuiTreeNodeFlags_DefaultOpen)) draw_ring(ctx);
  if (ImGui::CollapsingHeader("Mask", ImGuiTreeNodeFlags_DefaultOpen)) draw_mask(ctx);
  const ImGuiTreeNodeFlags dilation_open = ctx.edit.options.config.dilated() ? ImGuiTreeNodeFlags_DefaultOpen : 0;
  if (ImGui::CollapsingHeader("Dilation (LongNet)", dilation_open)) draw_dilation(ctx);
  if (ImGui::CollapsingHeader("Run", ImGuiTreeNodeFlags_DefaultOpen)) draw_run(ctx);
  ImGui::PopID();
}

void ConfigPanel::draw_problem(Context& ctx) {
  auto& c = ctx.edit.options.config;
  if (log2_slider("N tokens", &c.seq, 4, 30)) c.kv_seq = c.seq, ctx.edited = true;
  help_marker("Sequence length N (= M: ring attention needs as many keys as queries). Drag for powers of two; the "
              "exact field below takes any N. Large N runs in analytic mode (no tensors): N = 2^30 is fine.");
  if (input_int64("exact N", &c.seq, 1)) c.seq = std::max<std::int64_t>(c.seq, 1), c.kv_seq = c.seq, ctx.edited = true;
  help_marker("Any N >= 1; chunks may be unequal (the layouts split N as evenly as they can).");
  int heads = static_cast<int>(c.heads);
  widget_width();
  if (ImGui::SliderInt("H heads", &heads, 1, 128, "%d", ImGuiSliderFlags_AlwaysClamp)) {
    c.heads = heads;
    if (c.heads % c.kv_heads != 0) c.kv_heads = c.heads;
    ctx.edited = true;
  }
  help_marker("Query heads H. Every head does the same work unless dilation assigns them different patterns.");
  // Hkv: the divisors of H.
  std::vector<std::string> divisors;
  std::vector<std::int64_t> values;
  int current = 0;
  for (std::int64_t d = 1; d <= c.heads; ++d)
    if (c.heads % d == 0) {
      if (d == c.kv_heads) current = static_cast<int>(values.size());
      values.push_back(d);
      divisors.push_back(d == c.heads ? fmt::format("{} (MHA)", d) : d == 1 ? "1 (MQA)" : fmt::format("{} (GQA)", d));
    }
  if (combo("Hkv K/V heads", &current, divisors)) c.kv_heads = values[static_cast<std::size_t>(current)], ctx.edited = true;
  help_marker("K/V heads (GQA/MQA): head h reads K/V head floor(h*Hkv/H). Fewer K/V heads mean smaller chunks to "
              "send around the ring and less K/V memory.");
  const std::vector<std::int64_t> dims = {16, 32, 64, 96, 128, 256};
  std::vector<std::string> dim_names;
  int dim = 0;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    dim_names.push_back(std::to_string(dims[i]));
    if (dims[i] == c.head_dim) dim = static_cast<int>(i);
  }
  if (std::find(dims.begin(), dims.end(), c.head_dim) == dims.end()) {
    dim_names.push_back(std::to_string(c.head_dim));
    dim = static_cast<int>(dim_names.size()) - 1;
  }
  if (combo("D head dim", &dim, dim_names) && dim < static_cast<int>(dims.size()))
    c.head_dim = dims[static_cast<std::size_t>(dim)], ctx.edited = true;
  help_marker("Head dimension D: FLOPs per score entry are 4*D (Q*K^T and P*V).");
  int batch = static_cast<int>(c.batch);
  widget_width();
  if (ImGui::SliderInt("B batch", &batch, 1, 64, "%d", ImGuiSliderFlags_AlwaysClamp)) c.batch = batch, ctx.edited = true;
  help_marker("Batch size B: multiplies work, memory and traffic.");
  const std::vector<std::string> dtypes = {"fp32 (4 bytes)", "bf16 / fp16 (2 bytes)", "fp8 (1 byte)"};
  int dtype = ctx.edit.options.bytes_per_element >= 4 ? 0 : ctx.edit.options.bytes_per_element == 2 ? 1 : 2;
  if (combo("dtype", &dtype, dtypes)) {
    ctx.edit.options.bytes_per_element = dtype == 0 ? 4 : dtype == 1 ? 2 : 1;
    ctx.edited = true;
  }
  help_marker("Bytes per element of Q, K, V, O and dO. Accumulators and LSE stay fp32 (4 bytes).");
}

void ConfigPanel::draw_ring(Context& ctx) {
  auto& o = ctx.edit.options;
  auto& c = o.config;
  int scheme = static_cast<int>(scheme_choice(ctx.edit));
  if (combo("scheme", &scheme, {to_string(SchemeChoice::ring), to_string(SchemeChoice::ring_replicated),
                                to_string(SchemeChoice::flash), to_string(SchemeChoice::dense)})) {
    set_scheme_choice(ctx.edit, static_cast<SchemeChoice>(scheme));
    ctx.edited = true;
  }
  help_marker("Ring attention shards queries, keys and values over P devices and rotates K/V.\n"
              "Replicated queries: every device holds all queries and only K/V rotate: exact, but P times the "
              "compute.\nOne device: the whole attention on one GPU, flash-style (no score matrix) or dense (the "
              "N x N scores materialised) - the references of the Memory panel.");
  const bool one_device = o.scheme != sim::Scheme::ring;
  ImGui::BeginDisabled(one_device);
  int ring = c.ring;
  widget_width();
  if (ImGui::SliderInt("P devices", &ring, 1, kMaxDevices, "%d", ImGuiSliderFlags_AlwaysClamp | ImGuiSliderFlags_Logarithmic))
    c.ring = ring, ctx.edited = true;
  help_marker("Devices in the ring. Device p sends to p+1 (mod P). The viz draws up to 256.");
  int layout = static_cast<int>(c.layout);
  if (combo("layout", &layout, {"contiguous", "zigzag", "striped"})) c.layout = static_cast<Layout>(layout), ctx.edited = true;
  help_marker("Which tokens each device owns.\ncontiguous: [pN/P, (p+1)N/P).\nzigzag: chunks p and 2P-1-p of 2P "
              "chunks (balances causal work).\nstriped: every P-th token, starting at p.");
  ImGui::EndDisabled();
  int pass = static_cast<int>(o.pass);
  if (combo("pass", &pass, {"forward", "backward", "forward + backward"})) o.pass = static_cast<sim::Pass>(pass), ctx.edited = true;
  help_marker("Backward sends K, V and the dK, dV accumulators around the ring (one extra hop returns the "
              "gradients to their owner) and costs 2.5x the forward compute.");
  if (ImGui::Checkbox("overlap send with compute", &o.overlap)) ctx.edited = true;
  help_marker("On: a device posts the send of its chunk when the step starts, so the transfer runs under the "
              "compute. Off: it sends only after computing, and the next device waits for the hop.");
  const auto devices = sim::builtin_devices();
  std::vector<std::string> names;
  int device = 0;
  for (std::size_t i = 0; i < devices.size(); ++i) {
    names.push_back(devices[i].name);
    if (devices[i].name == o.device.name) device = static_cast<int>(i);
  }
  if (combo("GPU", &device, names)) o.device = devices[static_cast<std::size_t>(device)], ctx.edited = true;
  help_marker("Device preset (simulator/data/devices.json, each number with its source): peak FLOP/s, memory, "
              "memory bandwidth, NVLink and InfiniBand links.");
  ImGui::BeginDisabled(one_device);
  widget_width();
  if (ImGui::SliderInt("GPUs per node", &o.devices_per_node, 1, 64, "%d", ImGuiSliderFlags_AlwaysClamp)) ctx.edited = true;
  help_marker("Devices that share a node talk over the fast intra-node link (NVLink); a hop between nodes uses the "
              "slower inter-node network (InfiniBand).");
  ImGui::EndDisabled();
}

void ConfigPanel::draw_mask(Context& ctx) {
  auto& c = ctx.edit.options.config;
  if (ImGui::Checkbox("causal", &c.causal)) ctx.edited = true;
  help_marker("Query q sees keys k <= q (global positions). Makes contiguous rings unbalanced: see the scenes.");
  bool window = c.window_left >= 0 || c.window_right >= 0;
  if (ImGui::Checkbox("sliding window", &window)) {
    c.window_left = window ? std::max<std::int64_t>(c.seq / 8, 1) : -1;
    c.window_right = -1;
    ctx.edited = true;
  }
  help_marker("Query q sees keys q-left <= k <= q+right (flash-attn convention; -1 = unbounded side).");
  if (window) {
    if (input_int64("left", &c.window_left, 16)) c.window_left = std::max<std::int64_t>(c.window_left, -1), ctx.edited = true;
    help_marker("How far back a query looks (-1: unbounded).");
    if (input_int64("right", &c.window_right, 16)) c.window_right = std::max<std::int64_t>(c.window_right, -1), ctx.edited = true;
    help_marker("How far ahead a query looks (-1: unbounded; causal caps it at 0).");
  }
}

void ConfigPanel::draw_dilation(Context& ctx) {
  auto& o = ctx.edit.options;
  auto& c = o.config;
  std::vector<std::string> presets = {"(keep rules)"};
  for (const auto& name : preset_names()) presets.push_back(name);
  int preset = 0;
  if (combo("preset", &preset, presets) && preset > 0) {
    apply_preset(c, presets[static_cast<std::size_t>(preset)]);
    ctx.edited = true;
  }
  help_marker("Sets offset rule, combination and segment mode as a public implementation does "
              "(docs/semantics.md §8.3): longnet (the paper), torchscale, dilated-attention-pytorch.");
  ImGui::TextUnformatted("patterns (w = segment, r = rate)");
  help_marker("Pattern (w, r): segments of w tokens; inside each, every r-th token (from the head's offset) is "
              "selected, and selected queries attend to selected keys of the same segment.");
  int remove = -1;
  const float field = ImGui::GetFontSize() * 5.5f;
  for (std::size_t i = 0; i < c.dilation.size(); ++i) {
    ImGui::PushID(static_cast<int>(i));
    const Rgb color = pattern_color(static_cast<int>(i));
    ImGui::TextColored(to_vec4(color), "%zu", i);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(field);
    // Drag with the mouse (double-click to type): mouse-only use works.
    std::int64_t w = c.dilation[i].segment_length, r = c.dilation[i].rate;
    const std::int64_t one = 1, longest = std::max<std::int64_t>(c.seq, 1);
    if (ImGui::DragScalar("w", ImGuiDataType_S64, &w, std::max(1.0f, static_cast<float>(w) / 64.0f), &one, &longest,
                          "%lld", ImGuiSliderFlags_AlwaysClamp)) {
      c.dilation[i].segment_length = w;
      ctx.edited = true;
    }
    item_tooltip("Segment length w: drag, or double-click to type");
    ImGui::SameLine();
    ImGui::SetNextItemWidth(field * 0.7f);
    if (ImGui::DragScalar("r", ImGuiDataType_S64, &r, 0.05f, &one, &w, "%lld", ImGuiSliderFlags_AlwaysClamp)) {
      c.dilation[i].rate = r;
      ctx.edited = true;
    }
    item_tooltip("Dilation rate r (1 <= r <= w): drag, or double-click to type");
    ImGui::SameLine();
    if (ImGui::SmallButton("remove")) remove = static_cast<int>(i);
    ImGui::PopID();
  }
  if (remove >= 0) c.dilation.erase(c.dilation.begin() + remove), ctx.edited = true;
  if (ImGui::Button("+ add pattern")) {
    const std::int64_t w = c.dilation.empty() ? std::max<std::int64_t>(c.seq / 8, 1)
                                              : std::min(c.dilation.back().segment_length * 2, c.seq);
    const std::int64_t r = c.dilation.empty() ? 1 : std::min(c.dilation.back().rate * 2, w);
    c.dilation.push_back({w, r});
    ctx.edited = true;
  }
  item_tooltip("Adds a pattern with twice the segment and twice the rate of the last (LongNet's geometric series)");
  if (c.dilated()) {
    ImGui::SameLine();
    if (ImGui::Button("clear")) c.dilation.clear(), ctx.edited = true;
    item_tooltip("Back to ordinary attention");
  }
  int rule = static_cast<int>(c.offset_rule);
  if (combo("offset rule", &rule, {"paper", "torchscale", "group"})) c.offset_rule = static_cast<OffsetRule>(rule), ctx.edited = true;
  help_marker("Which offset o head h uses in a pattern of rate r.\npaper: o = h mod r.\ntorchscale: o = "
              "floor(h / ceil(H/r)).\ngroup: heads split into one group per pattern; a head runs only its group's "
              "pattern.");
  int combine = static_cast<int>(c.combine);
  if (combo("combine", &combine, {"lse", "group_mean", "group_sum"})) c.combine = static_cast<Combine>(combine), ctx.edited = true;
  help_marker("lse: a head's pattern outputs merge by their softmax denominators (LongNet eq. 10): a key selected "
              "by two patterns counts twice (multiplicity).\ngroup_mean / group_sum: the PyTorch packages' rule "
              "(needs offset rule group).");
  int segments = static_cast<int>(c.segments);
  if (combo("segments", &segments, {"error if N % w != 0", "ragged last segment"}))
    c.segments = static_cast<SegmentMode>(segments), ctx.edited = true;
  help_marker("What happens when N is not a multiple of w: an error (default), or a shorter last segment.");
  ImGui::BeginDisabled(!c.dilated() || o.scheme != sim::Scheme::ring);
  if (ImGui::Checkbox("send only selected rows", &o.send_selected_rows)) ctx.edited = true;
  help_marker("What-if: send only the K/V rows some head selects. Smaller messages and K/V buffers.");
  ImGui::EndDisabled();
}

void ConfigPanel::draw_run(Context& ctx) {
  int mode = static_cast<int>(ctx.edit.mode);
  if (combo("mode", &mode, {"automatic", "analytic", "compute"})) ctx.edit.mode = static_cast<ModeChoice>(mode), ctx.edited = true;
  help_marker("analytic: no tensors, only the schedule, memory ledgers and timeline (any N).\ncompute: real fp64 "
              "tensors through the reference kernels, and the gathered ring result is checked against dense "
              "attention (small problems only).\nautomatic: compute when B*N*H*D <= 2^20 and the work is small.");
  Model& model = ctx.model;
  switch (model.check()) {
    case Model::Check::off:
      if (model.settings().mode == ModeChoice::compute)
        ImGui::TextColored(to_vec4(colors::exposed), "too large for compute mode here: analytic");
      else
        ImGui::TextDisabled("analytic: no tensors (N too large for real ones)");
      break;
    case Model::Check::running:
      ImGui::TextDisabled("computing real tensors ...");
      break;
    case Model::Check::done:
      ImGui::TextColored(to_vec4({30, 130, 60}), "max |ring - dense| = %.1e", *model.check_error());
      help_marker("Compute mode ran the ring on real fp64 tensors and compared the gathered output (and "
                  "gradients) with single-device attention. Differences are rounding only.");
      break;
    case Model::Check::failed:
      ImGui::PushTextWrapPos(0);
      ImGui::TextColored(to_vec4(colors::exposed), "compute mode failed: %s", model.check_message().c_str());
      ImGui::PopTextWrapPos();
      break;
  }
}

}  // namespace ringlab::viz
