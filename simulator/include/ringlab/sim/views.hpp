// View models: what a picture of the simulator's state needs, computed by the model so that a front-end
// (ringlab-viz) only draws. No ImGui here. Everything is derived from the reference spine — the
// RingSchedule, MaskPredicate / count_allowed_pairs, plan_heads — and from a Simulation's snapshots and
// slices; nothing is re-derived.
//
//   attention_map      the N×N score matrix downsampled to bins: per cell the allowed pairs (mask,
//                      dilation, heads) split by (query device, key owner), so any ring step can be drawn
//   cell_state         one cell at one ring step: computed now (by whom), before, skipped, masked
//   ring_state         per device at one step: its queries, the chunk it holds, pairs, skipped
//   head_assignments   which (pattern, offset) each head runs (plan_heads, flattened)
//   selection_strip    which positions a (pattern, offset) selects, per bin
//   head_mask          the multiplicity mask of one head over a window of positions (lse mode counts a key
//                      once per pattern that selects it)
//   memory             per-device closed-form peaks, one-device references by category, scaling over N
//   exposed_waits      timeline stretches where a device waits while its transfers move
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ringlab/config.hpp"
#include "ringlab/dilation.hpp"
#include "ringlab/mask.hpp"
#include "ringlab/positions.hpp"
#include "ringlab/schedule.hpp"
#include "ringlab/sim/ledger.hpp"
#include "ringlab/sim/simulation.hpp"

namespace ringlab::sim {

// ---- positions ------------------------------------------------------------------------------------------

// The positions of `set` that lie in [begin, end).
PositionSet restrict_positions(const PositionSet& set, std::int64_t begin, std::int64_t end);
// The elements of `set` with index i, first ≤ i < last, in set order.
PositionSet slice_positions(const PositionSet& set, std::int64_t first, std::int64_t last);

// ---- the attention map ----------------------------------------------------------------------------------

// How the axes of the map are ordered: by global position (the causal triangle is a triangle), or by device
// (each device's queries, and each owner's keys, side by side: one ring step is one block per device).
enum class MapOrder { positions, devices };
std::string to_string(MapOrder order);

struct MapBin {
  std::int64_t begin = 0;  // offset of the bin's first token along the axis (in the axis order)
  std::int64_t count = 0;  // tokens in the bin
  int device = -1;         // the one device owning every token of the bin (queries: holder; keys: owner); -1 if several
  PositionSet positions;   // the bin's global positions
};

// One (query device, key owner) part of a cell. Its pairs are computed by query_device at ring step
// (query_device − key_owner) mod P. query_device = −1 with q-replicated queries: every device holds them,
// and device (key_owner + s) mod P computes them at every step s.
struct MapPiece {
  int query_device = -1;
  int key_owner = 0;
  std::int64_t pairs = 0;  // allowed (q, k) pairs summed over heads and the patterns each head runs
};

struct AttentionMap {
  MapOrder order = MapOrder::positions;
  int ring_size = 1;
  bool q_replicated = false;
  std::int64_t heads = 1;
  std::int64_t tokens = 0;                // N
  std::vector<MapBin> rows, cols;         // query bins, key bins
  std::vector<std::int64_t> pairs;        // [cell]: allowed pairs in the cell (heads × patterns)
  std::vector<std::int64_t> area;         // [cell]: |queries| · |keys| · H
  std::vector<std::int32_t> piece_begin;  // [cell], cells + 1 entries: the cell's pieces in `pieces`
  std::vector<MapPiece> pieces;
  bool coarsened = false;                 // fewer bins than asked: every bin mixes many devices (striped)

  std::size_t cell(std::size_t row, std::size_t col) const { return row * cols.size() + col; }
  std::size_t cells() const { return rows.size() * cols.size(); }
};

// The map of a validated ring config and its schedule, with about `target_bins` bins per axis (in device
// order a multiple of P, so no bin crosses devices). The pair counts are exact (count_allowed_pairs); their
// cost is bounded by coarsening the grid when bins mix many devices.
AttentionMap attention_map(const AttentionConfig& config, const RingSchedule& schedule, MapOrder order,
                           int target_bins = 128);

// One cell at ring step `step` (of any pass: forward and backward compute the same pairs).
struct CellState {
  std::int64_t pairs_now = 0;     // computed at this step
  std::int64_t pairs_before = 0;  // computed at earlier steps (with q-replicated queries: counted each time)
  int device_now = -1;            // the device computing most of pairs_now (the scheduled one when none)
  int devices_now = 0;            // how many devices compute part of this cell now
  bool scheduled_now = false;     // some device holds these keys for these queries at this step
  bool skipped_now = false;       // … and that device's whole step is skipped (its mask leaves no pair)
};
CellState cell_state(const AttentionMap& map, const RingSchedule& schedule, std::size_t cell, int step);

// Per device at one ring step: who it is, what it holds.
struct RingDeviceState {
  int device = 0;
  PositionSet queries;      // the queries it owns
  int held_owner = 0;       // whose K/V chunk it holds (its own throughout a local_only ring: nothing moves)
  PositionSet held_keys;    // that chunk's positions
  std::int64_t pairs = 0;   // score entries it computes (one batch element)
  bool skipped = false;
};
std::vector<RingDeviceState> ring_state(const RingSchedule& schedule, int step);

// ---- dilation -------------------------------------------------------------------------------------------

struct HeadAssignment {
  int head = 0;
  int kv_head = 0;                    // ⌊h·Hkv/H⌋
  int group = -1;                     // offset rule `group` only
  double output_scale = 1.0;          // 1/k under group_mean
  std::vector<int> patterns;          // the patterns it runs (−1: no dilation, the band mask)
  std::vector<std::int64_t> offsets;  // parallel: the offset o of each
  std::vector<DilationSelect> selects;
};
std::vector<HeadAssignment> head_assignments(const AttentionConfig& config);

// Fraction of the positions of each of `bins` equal bins of [begin, end) that `select` selects
// (exactly 0 or 1 per position when bins = end − begin).
std::vector<float> selection_strip(const DilationSelect& select, std::int64_t begin, std::int64_t end, int bins);

// The mask of one head over positions [begin, end)², in bins×bins cells: the mean multiplicity of a cell
// (Σ over the head's masks of allowed pairs / cell area; lse mode counts a pair once per pattern), and the
// share of each pattern in it. With one position per bin the multiplicities are exact integers.
struct HeadMask {
  int head = 0;
  std::int64_t begin = 0, end = 0;
  int bins = 0;
  int patterns = 0;                       // columns of by_pattern (1 without dilation)
  std::vector<float> multiplicity;        // [row * bins + col]
  std::vector<float> by_pattern;          // [(row * bins + col) * patterns + pattern]: mean multiplicity from it
  float max_multiplicity = 0;
};
HeadMask head_mask(const AttentionConfig& config, int head, std::int64_t begin, std::int64_t end, int bins);

// ---- memory ---------------------------------------------------------------------------------------------

struct MemoryBar {
  std::string label;
  std::array<std::int64_t, kCategoryCount> bytes{};  // peak per category
  std::int64_t total = 0;                            // peak of the sum
};

// One device running the whole attention under `scheme` (flash or dense): the simulator's own ledger, run in
// analytic mode on the options' config (ring size ignored). Nullopt when a byte count would pass 2^62 (the
// scores of dense attention near N = 2^30), where the ledger's 64-bit arithmetic would overflow.
std::optional<MemoryBar> single_device_memory(const SimulationOptions& options, Scheme scheme);

// The peak bytes of the fullest ring device (docs/simulator.md §Memory, the closed forms the ledger equals),
// without building a schedule: cheap for N = 2^30, P = 4096.
std::int64_t ring_peak_bytes(const AttentionConfig& config, std::int64_t bytes_per_element, Pass pass);

// Peak bytes per device over N = 2^log2_min … 2^log2_max (N = M, the options' other shapes), forward pass:
// one series per ring size P (closed forms), then flash-style dense and dense with materialised scores on one
// device. Points with P > N, and dense points whose byte count would pass 2^62, are left out.
struct ScalingSeries {
  std::string label;
  int ring = 0;  // 0 for the one-device references
  Scheme scheme = Scheme::ring;
  std::vector<std::int64_t> tokens;
  std::vector<std::int64_t> bytes;
};
std::vector<ScalingSeries> memory_scaling(const SimulationOptions& options, const std::vector<int>& rings,
                                          int log2_min, int log2_max);

// ---- timeline -------------------------------------------------------------------------------------------

struct Interval {
  std::int64_t begin_ns = 0, end_ns = 0;
};
// Per device: the stretches where it waits between steps while a transfer it needs (the chunk for its next
// step, or its own send of this step) is moving — communication the compute did not hide. Replayed from the
// slices with the simulator's step rule; per device they add up to DeviceReport::exposed_comm_ns (tested).
// `overlapped_gradients`: the run's backward overlapped the dK/dV hop (overlap on, queries not replicated,
// P > 1: Simulation's rule, the GPU ring's scheme).
std::vector<std::vector<Interval>> exposed_waits(const std::vector<Slice>& slices, int devices,
                                                 bool overlapped_gradients = false);

}  // namespace ringlab::sim
