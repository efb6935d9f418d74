// View models for front-ends (docs/viz.md): everything here is a count, a lookup or a closed form over the
// reference spine; a front-end only maps the results to pixels.
#include "ringlab/sim/views.hpp"

#include <algorithm>
#include <map>
#include <limits>
#include <numeric>

namespace ringlab::sim {
namespace {

using i64 = std::int64_t;

i64 floor_div(i64 a, i64 b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
i64 ceil_div(i64 a, i64 b) { return -floor_div(-a, b); }

// A pair allowed by a mask that w (head, pattern) runs use counts w times in the schedule's `pairs`
// (distinct_masks).
i64 weighted_pairs(const PositionSet& queries, const PositionSet& keys, const std::vector<WeightedMask>& masks) {
  if (queries.empty() || keys.empty()) return 0;
  i64 total = 0;
  for (const WeightedMask& m : masks) total += m.heads * count_allowed_pairs(queries, keys, m.mask);
  return total;
}

// A bin's parts that belong to one device each.
struct BinPiece {
  int device = -1;
  PositionSet positions;
};

// Bins of [0, n) in position order, about `bins` of them.
std::vector<MapBin> position_bins(i64 n, int bins) {
  const i64 count = std::clamp<i64>(bins, 1, std::max<i64>(n, 1));
  std::vector<MapBin> result;
  for (i64 i = 0; i < count; ++i) {
    const i64 begin = i * n / count, end = (i + 1) * n / count;
    if (end > begin) result.push_back({begin, end - begin, -1, contiguous_positions(begin, end)});
  }
  return result;
}

// Each device's set cut into `per_device` bins, devices side by side.
std::vector<MapBin> device_bins(const std::vector<PositionSet>& sets, int per_device) {
  std::vector<MapBin> result;
  i64 offset = 0;
  for (std::size_t p = 0; p < sets.size(); ++p) {
    const i64 n = sets[p].size();
    const i64 k = std::min<i64>(per_device, std::max<i64>(n, 1));
    for (i64 j = 0; j < k; ++j) {
      const i64 first = j * n / k, last = (j + 1) * n / k;
      if (last > first)
        result.push_back({offset + first, last - first, static_cast<int>(p), slice_positions(sets[p], first, last)});
    }
    offset += n;
  }
  return result;
}

// The device parts of a bin: the bin itself when one device (or, with `everyone`, all devices) holds it.
std::vector<BinPiece> pieces_of(MapBin& bin, const std::vector<PositionSet>& sets, bool everyone) {
  if (everyone) return {{-1, bin.positions}};
  if (bin.device >= 0) return {{bin.device, bin.positions}};
  std::vector<BinPiece> pieces;
  for (std::size_t p = 0; p < sets.size(); ++p) {
    PositionSet part = restrict_positions(sets[p], bin.begin, bin.begin + bin.count);
    if (!part.empty()) pieces.push_back({static_cast<int>(p), std::move(part)});
  }
  if (pieces.size() == 1) bin.device = pieces.front().device;
  return pieces;
}

}  // namespace

// ---- positions ------------------------------------------------------------------------------------------

PositionSet restrict_positions(const PositionSet& set, std::int64_t begin, std::int64_t end) {
  PositionSet result;
  for (const PositionRun& run : set.runs) {
    const i64 first = std::max<i64>(0, ceil_div(begin - run.start, run.stride));
    const i64 last = std::min<i64>(run.count, ceil_div(end - run.start, run.stride));
    if (last > first) result.runs.push_back({run.at(first), run.stride, last - first});
  }
  return result;
}

PositionSet slice_positions(const PositionSet& set, std::int64_t first, std::int64_t last) {
  PositionSet result;
  i64 index = 0;
  for (const PositionRun& run : set.runs) {
    const i64 lo = std::max<i64>(first - index, 0), hi = std::min<i64>(last - index, run.count);
    if (hi > lo) result.runs.push_back({run.at(lo), run.stride, hi - lo});
    index += run.count;
  }
  return result;
}

// ---- the attention map ----------------------------------------------------------------------------------

std::string to_string(MapOrder order) { return order == MapOrder::positions ? "positions" : "devices"; }

AttentionMap attention_map(const AttentionConfig& config, const RingSchedule& schedule, MapOrder order,
                           int target_bins) {
  const int P = schedule.ring_size;
  const i64 n = config.seq;
  const auto masks = distinct_masks(plan_heads(config));
  std::vector<PositionSet> query_sets, key_sets = schedule.chunk_positions;
  for (const DeviceSchedule& device : schedule.devices) query_sets.push_back(device.query_positions);
  const bool replicated = schedule.q_replicated;

  // Pair counts cost one call per (row piece, column piece, mask); keep that bounded (striped layouts in
  // position order put every device in every bin).
  constexpr i64 kCountBudget = 2'000'000;
  AttentionMap map;
  map.order = order;
  map.ring_size = P;
  map.q_replicated = replicated;
  map.heads = config.heads;
  map.tokens = n;
  int bins = std::max(1, target_bins);
  std::vector<std::vector<BinPiece>> row_pieces, col_pieces;
  for (;;) {
    if (order == MapOrder::devices) {
      const int per_device = std::max(1, (bins + P - 1) / P);
      map.rows = replicated ? position_bins(n, bins) : device_bins(query_sets, per_device);
      map.cols = device_bins(key_sets, per_device);
    } else {
      map.rows = position_bins(n, bins);
      map.cols = position_bins(n, bins);
    }
    row_pieces.clear();
    col_pieces.clear();
    i64 row_total = 0, col_total = 0;
    for (MapBin& bin : map.rows) {
      row_pieces.push_back(pieces_of(bin, query_sets, replicated));
      row_total += static_cast<i64>(row_pieces.back().size());
    }
    for (MapBin& bin : map.cols) {
      col_pieces.push_back(pieces_of(bin, key_sets, false));
      col_total += static_cast<i64>(col_pieces.back().size());
    }
    const i64 work = row_total * col_total * static_cast<i64>(masks.size());
    if (work <= kCountBudget || order == MapOrder::devices || bins <= 8) break;
    bins /= 2;
    map.coarsened = true;
  }

  const std::size_t cells = map.cells();
  map.pairs.assign(cells, 0);
  map.area.assign(cells, 0);
  map.piece_begin.assign(cells + 1, 0);
  for (std::size_t r = 0; r < map.rows.size(); ++r)
    for (std::size_t c = 0; c < map.cols.size(); ++c) {
      const std::size_t cell = map.cell(r, c);
      map.piece_begin[cell] = static_cast<std::int32_t>(map.pieces.size());
      map.area[cell] = map.rows[r].count * map.cols[c].count * config.heads;
      for (const BinPiece& q : row_pieces[r])
        for (const BinPiece& k : col_pieces[c]) {
          const i64 pairs = weighted_pairs(q.positions, k.positions, masks);
          map.pieces.push_back({q.device, k.device, pairs});
          map.pairs[cell] += pairs;
        }
    }
  map.piece_begin[cells] = static_cast<std::int32_t>(map.pieces.size());
  return map;
}

CellState cell_state(const AttentionMap& map, const RingSchedule& schedule, std::size_t cell, int step) {
  CellState state;
  const int P = map.ring_size;
  i64 best = -1;
  bool all_skipped = true;
  for (std::int32_t i = map.piece_begin[cell]; i < map.piece_begin[cell + 1]; ++i) {
    const MapPiece& piece = map.pieces[static_cast<std::size_t>(i)];
    int device = -1;
    if (piece.query_device < 0) {  // every device holds these queries: owner + step computes them now
      device = (piece.key_owner + step) % P;
      state.pairs_before += piece.pairs * step;
    } else {
      const int at = ((piece.query_device - piece.key_owner) % P + P) % P;
      if (at < step) state.pairs_before += piece.pairs;
      if (at == step) device = piece.query_device;
    }
    if (device < 0) continue;
    state.scheduled_now = true;
    all_skipped = all_skipped && schedule.at(device, step).skipped;
    state.pairs_now += piece.pairs;
    if (piece.pairs > 0) ++state.devices_now;
    if (piece.pairs > best) {
      best = piece.pairs;
      state.device_now = device;
    }
  }
  state.skipped_now = state.scheduled_now && all_skipped;
  return state;
}

std::vector<RingDeviceState> ring_state(const RingSchedule& schedule, int step) {
  std::vector<RingDeviceState> devices;
  for (const DeviceSchedule& device : schedule.devices) {
    const RingStep& s = device.steps[static_cast<std::size_t>(step)];
    const int held = schedule.local_only ? device.id : s.kv_owner;  // a local_only ring rotates nothing
    devices.push_back({device.id, device.query_positions, held,
                       schedule.chunk_positions[static_cast<std::size_t>(held)], s.pairs, s.skipped});
  }
  return devices;
}

// ---- dilation -------------------------------------------------------------------------------------------

std::vector<HeadAssignment> head_assignments(const AttentionConfig& config) {
  std::vector<HeadAssignment> heads;
  const auto plans = plan_heads(config);
  for (std::size_t h = 0; h < plans.size(); ++h) {
    const HeadPlan& plan = plans[h];
    HeadAssignment head;
    head.head = static_cast<int>(h);
    head.kv_head = static_cast<int>(static_cast<i64>(h) * config.kv_heads / config.heads);
    head.group = plan.group;
    head.output_scale = plan.output_scale;
    for (std::size_t i = 0; i < plan.masks.size(); ++i) {
      head.patterns.push_back(plan.pattern_indices[i]);
      const auto& select = plan.masks[i].dilation;
      head.offsets.push_back(select ? select->offset : 0);
      head.selects.push_back(select ? *select : DilationSelect{});
    }
    heads.push_back(std::move(head));
  }
  return heads;
}

std::vector<float> selection_strip(const DilationSelect& select, std::int64_t begin, std::int64_t end, int bins) {
  std::vector<float> strip;
  const i64 length = end - begin;
  if (length <= 0 || bins <= 0) return strip;
  for (i64 i = 0; i < bins; ++i) {
    const i64 a = begin + i * length / bins, b = begin + (i + 1) * length / bins;
    strip.push_back(b > a ? static_cast<float>(count_selected(contiguous_positions(a, b), select)) /
                                static_cast<float>(b - a)
                          : 0.0f);
  }
  return strip;
}

HeadMask head_mask(const AttentionConfig& config, int head, std::int64_t begin, std::int64_t end, int bins) {
  HeadMask view;
  view.head = head;
  view.begin = begin;
  view.end = end;
  view.bins = static_cast<int>(std::clamp<i64>(bins, 1, std::max<i64>(end - begin, 1)));
  view.patterns = std::max<int>(1, static_cast<int>(config.dilation.size()));
  const auto plans = plan_heads(config);
  const HeadPlan& plan = plans.at(static_cast<std::size_t>(head));
  const std::size_t cells = static_cast<std::size_t>(view.bins) * static_cast<std::size_t>(view.bins);
  view.multiplicity.assign(cells, 0.0f);
  view.by_pattern.assign(cells * static_cast<std::size_t>(view.patterns), 0.0f);
  const i64 length = end - begin;
  std::vector<PositionSet> ranges;
  for (i64 i = 0; i < view.bins; ++i)
    ranges.push_back(contiguous_positions(begin + i * length / view.bins, begin + (i + 1) * length / view.bins));
  for (int r = 0; r < view.bins; ++r)
    for (int c = 0; c < view.bins; ++c) {
      const double area = static_cast<double>(ranges[static_cast<std::size_t>(r)].size()) *
                          static_cast<double>(ranges[static_cast<std::size_t>(c)].size());
      if (area == 0) continue;
      const std::size_t cell = static_cast<std::size_t>(r) * static_cast<std::size_t>(view.bins) + static_cast<std::size_t>(c);
      for (std::size_t m = 0; m < plan.masks.size(); ++m) {
        const double share =
            static_cast<double>(count_allowed_pairs(ranges[static_cast<std::size_t>(r)],
                                                    ranges[static_cast<std::size_t>(c)], plan.masks[m])) /
            area;
        const int pattern = std::max(0, plan.pattern_indices[m]);
        view.by_pattern[cell * static_cast<std::size_t>(view.patterns) + static_cast<std::size_t>(pattern)] +=
            static_cast<float>(share);
        view.multiplicity[cell] += static_cast<float>(share);
      }
      view.max_multiplicity = std::max(view.max_multiplicity, view.multiplicity[cell]);
    }
  return view;
}

// ---- memory ---------------------------------------------------------------------------------------------

std::optional<MemoryBar> single_device_memory(const SimulationOptions& options, Scheme scheme) {
  const auto& c = options.config;
  const double tokens = static_cast<double>(c.batch) * static_cast<double>(std::max(c.seq, c.kv_seq));
  const double scores = scheme == Scheme::dense ? tokens * static_cast<double>(c.heads) * static_cast<double>(c.kv_seq) * 2 : 0.0;
  const double tensors = tokens * static_cast<double>(c.heads + c.kv_heads) * static_cast<double>(c.head_dim) * 4;
  if ((scores + tensors) * static_cast<double>(options.bytes_per_element) > 0x1p62) return std::nullopt;
  SimulationOptions one = options;
  one.scheme = scheme;
  one.mode = Mode::analytic;
  one.faults.clear();
  one.memory_budget.reset();
  Simulation simulation(one);
  simulation.run();
  const Report report = simulation.report();
  MemoryBar bar;
  bar.label = scheme == Scheme::dense ? "dense, scores materialised (1 device)" : "dense, flash-style (1 device)";
  bar.bytes = report.devices.at(0).peak_bytes_by_category;
  bar.total = report.devices.at(0).peak_bytes;
  return bar;
}

std::int64_t ring_peak_bytes(const AttentionConfig& config, std::int64_t bytes_per_element, Pass pass) {
  const i64 B = config.batch, H = config.heads, Hkv = config.kv_heads, D = config.head_dim, e = bytes_per_element;
  constexpr i64 f = 4;  // fp32 accumulators and LSE
  const int P = config.ring;
  i64 m = 0, n_max = 0;
  for (int p = 0; p < P; ++p) {
    const i64 chunk = layout_positions(config.layout, config.seq, P, p).size();
    m = std::max(m, chunk);
  }
  i64 peak = 0;
  for (int p = 0; p < P; ++p) {
    const i64 own = layout_positions(config.layout, config.seq, P, p).size();
    const i64 n = config.q_replicated ? config.seq : own;
    n_max = std::max(n_max, n);
    // docs/simulator.md §Memory (the GPU ring's buffers): own K, V; two rotation buffers; fp32 accumulators.
    const i64 q = B * n * H * D * e, kv = 2 * B * own * Hkv * D * e, kv_recv = P > 1 ? 2 * 2 * B * m * Hkv * D * e : 0;
    const i64 lse = B * H * n * f;
    const i64 forward = q + kv + kv_recv + B * n * H * D * f + lse + (B * n * H * D * e + B * H * n * f);
    const i64 grad = B * n * H * D * e + B * n * H * D * f +
                     (config.q_replicated ? 2 * B * own * Hkv * D * f + (P > 1 ? 2 * B * m * Hkv * D * f : 0)
                                          : (P > 1 ? 3 : 2) * 2 * B * m * Hkv * D * f);
    const i64 backward = q + kv + kv_recv + B * n * H * D * e + lse + grad + B * H * n * f;
    const i64 device = pass == Pass::forward ? forward : pass == Pass::backward ? backward : std::max(forward, backward);
    peak = std::max(peak, device);
  }
  return peak;
}

std::vector<ScalingSeries> memory_scaling(const SimulationOptions& options, const std::vector<int>& rings,
                                          int log2_min, int log2_max) {
  std::vector<ScalingSeries> series;
  for (const int P : rings) {
    ScalingSeries s;
    s.label = "ring, P = " + std::to_string(P);
    s.ring = P;
    for (int k = log2_min; k <= log2_max; ++k) {
      AttentionConfig config = options.config;
      config.seq = config.kv_seq = i64{1} << k;
      config.ring = P;
      if (P > config.seq) continue;
      s.tokens.push_back(config.seq);
      s.bytes.push_back(ring_peak_bytes(config, options.bytes_per_element, Pass::forward));
    }
    series.push_back(std::move(s));
  }
  ScalingSeries flash{"dense, flash-style (1 device)", 0, Scheme::flash, {}, {}};
  ScalingSeries dense{"dense, scores materialised (1 device)", 0, Scheme::dense, {}, {}};
  for (int k = log2_min; k <= log2_max; ++k) {
    AttentionConfig config = options.config;
    config.seq = config.kv_seq = i64{1} << k;
    flash.tokens.push_back(config.seq);
    flash.bytes.push_back(flash_dense_peak_bytes(config, options.bytes_per_element));
    // The scores B·H·N²·e pass 2^63 bytes near N = 2^30: stop the series before it overflows.
    const double scores = static_cast<double>(config.batch) * static_cast<double>(config.heads) *
                          static_cast<double>(config.seq) * static_cast<double>(config.kv_seq) *
                          static_cast<double>(options.bytes_per_element);
    if (scores > 0x1p62) continue;
    dense.tokens.push_back(config.seq);
    dense.bytes.push_back(naive_dense_peak_bytes(config, options.bytes_per_element));
  }
  series.push_back(std::move(flash));
  series.push_back(std::move(dense));
  return series;
}

// ---- timeline -------------------------------------------------------------------------------------------

std::vector<std::vector<Interval>> exposed_waits(const std::vector<Slice>& slices, int devices,
                                                 bool overlapped_gradients) {
  // Replays each device's step starts from the slices, by the simulator's rule (docs/simulator.md
  // §Execution): step s + 1 starts when the compute of step s is done, the device's own sends of step s have
  // left and the chunk for step s + 1 has arrived. A wait [compute end, next start) is exposed from the
  // first moment a transfer it waits on (a receive for step s + 1, or its own send of step s) is moving.
  // Backward with `overlapped_gradients`: step s + 1 waits for its K/V, the own K/V send of step s and the
  // dK/dV accumulator tagged s (added after step s); the hop of the sum is not waited for, except by the end.
  constexpr i64 kNever = std::numeric_limits<i64>::max();
  const std::size_t D = static_cast<std::size_t>(std::max(devices, 0));
  std::vector<std::vector<Interval>> waits(D);
  i64 pass_start = 0;
  for (int pass = 0; pass < 2; ++pass) {
    int steps = 0;
    bool any = false;
    i64 pass_end = pass_start;
    for (const Slice& s : slices)
      if (s.pass == pass) {
        any = true;
        steps = std::max(steps, s.step + 1);
        pass_end = std::max(pass_end, s.end_ns);
      }
    if (!any) continue;
    const std::size_t S = static_cast<std::size_t>(steps) + 1;
    struct Step {
      i64 compute_begin = -1, compute_end = -1;
      i64 send_end = 0, send_first = kNever;     // own sends posted at this step
      i64 receive_end = 0, receive_first = kNever;  // transfers this device needs before this step
      i64 kv_send_end = 0, kv_send_first = kNever;  // the same, K/V only and dK/dV only
      i64 kv_receive_end = 0, kv_receive_first = kNever, dkv_receive_end = 0, dkv_receive_first = kNever;
    };
    std::vector<std::vector<Step>> table(D, std::vector<Step>(S));
    for (const Slice& s : slices) {
      if (s.pass != pass || s.device < 0 || static_cast<std::size_t>(s.device) >= D || s.step < 0) continue;
      Step& step = table[static_cast<std::size_t>(s.device)][static_cast<std::size_t>(s.step)];
      const bool gradients = s.name.find("dK/dV") != std::string::npos;  // "send dK/dV of …", "receive dK/dV of …"
      if (s.stream == 0) {
        step.compute_begin = s.begin_ns;
        step.compute_end = s.end_ns;
      } else if (s.stream == 1) {
        step.send_end = std::max(step.send_end, s.end_ns);
        step.send_first = std::min(step.send_first, s.begin_ns);
        if (!gradients) {
          step.kv_send_end = std::max(step.kv_send_end, s.end_ns);
          step.kv_send_first = std::min(step.kv_send_first, s.begin_ns);
        }
      } else {
        step.receive_end = std::max(step.receive_end, s.end_ns);
        step.receive_first = std::min(step.receive_first, s.begin_ns);
        i64& end = gradients ? step.dkv_receive_end : step.kv_receive_end;
        i64& first = gradients ? step.dkv_receive_first : step.kv_receive_first;
        end = std::max(end, s.end_ns);
        first = std::min(first, s.begin_ns);
      }
    }
    for (std::size_t p = 0; p < D; ++p) {
      const auto& t = table[p];
      i64 start = pass_start;
      for (std::size_t s = 0; s + 1 < S; ++s) {
        const i64 done = t[s].compute_end >= 0 ? t[s].compute_end : start;
        i64 next = t[s + 1].compute_begin >= 0 ? t[s + 1].compute_begin
                                               : std::max({done, t[s].send_end, t[s + 1].receive_end});
        i64 first_transfer = std::min(t[s + 1].receive_first, t[s].send_first);
        if (overlapped_gradients && pass == 1) {
          // Steps 0..P−1; the own chunk's dK/dV come home tagged P, so S = P + 2 here.
          const std::size_t ring_steps = S - 2;
          if (s >= ring_steps) break;
          const bool last = s + 1 == ring_steps;  // the wait before finishing: the add, the dK/dV home, the last send
          const i64 add_after = s > 0 ? t[s].dkv_receive_end : 0;
          const i64 add_first = s > 0 ? t[s].dkv_receive_first : kNever;
          if (t[s + 1].compute_begin < 0)
            next = last ? std::max({done, add_after, t[s + 1].dkv_receive_end, t[s].send_end})
                        : std::max({done, add_after, t[s].kv_send_end, t[s + 1].kv_receive_end});
          first_transfer = last ? std::min({add_first, t[s + 1].dkv_receive_first, t[s].send_first})
                                : std::min({add_first, t[s + 1].kv_receive_first, t[s].kv_send_first});
        }
        const i64 exposed_from = std::max(done, std::min(first_transfer, next));
        if (next > exposed_from) {
          if (!waits[p].empty() && waits[p].back().end_ns == exposed_from)
            waits[p].back().end_ns = next;
          else
            waits[p].push_back({exposed_from, next});
        }
        start = next;
      }
    }
    pass_start = pass_end;
  }
  return waits;
}

}  // namespace ringlab::sim
