// The mask predicate: which (query position q, key position k) pairs may attend. Written once and used by
// every kernel (reference, GPU), by the exact pair counts of the ring schedule, and by the viz.
// BandMask and DilationSelect are plain constexpr structs so CUDA device code can call them as they are
// (nvcc --expt-relaxed-constexpr).
//
//   band:      lo ≤ k − q ≤ hi          causal: hi = 0; window (left, right): lo = −left, hi = right
//   dilation:  same segment ⌊q/w⌋ = ⌊k/w⌋ and both selected: (t mod w) mod r = o
#pragma once

#include <cstdint>
#include <limits>
#include <optional>

#include "ringlab/config.hpp"
#include "ringlab/positions.hpp"

namespace ringlab {

// Allowed iff lo ≤ k − q ≤ hi. "Unbounded" sides are ±kUnbounded, far beyond any position difference.
struct BandMask {
  static constexpr std::int64_t kUnbounded = std::int64_t{1} << 61;
  std::int64_t lo = -kUnbounded;
  std::int64_t hi = kUnbounded;

  static BandMask from(bool causal, std::int64_t window_left, std::int64_t window_right);
  static BandMask from(const AttentionConfig& config) {
    return from(config.causal, config.window_left, config.window_right);
  }
  constexpr bool allows(std::int64_t q, std::int64_t k) const { return k - q >= lo && k - q <= hi; }
  bool operator==(const BandMask&) const = default;
};

// One (pattern, offset) of LongNet: segments of w tokens; token t is selected iff (t mod w) mod r = o.
struct DilationSelect {
  std::int64_t segment_length = 1;  // w
  std::int64_t rate = 1;            // r
  std::int64_t offset = 0;          // o, 0 ≤ o < r
  constexpr bool selects(std::int64_t t) const { return (t % segment_length) % rate == offset; }
  constexpr bool same_segment(std::int64_t q, std::int64_t k) const {
    return q / segment_length == k / segment_length;
  }
  bool operator==(const DilationSelect&) const = default;
};

enum class TileCoverage { empty, partial, full };

struct MaskPredicate {
  BandMask band;
  std::optional<DilationSelect> dilation;

  bool allows(std::int64_t q, std::int64_t k) const {
    if (!band.allows(q, k)) return false;
    if (!dilation) return true;
    return dilation->same_segment(q, k) && dilation->selects(q) && dilation->selects(k);
  }
  // Coverage of a tile whose query positions lie in [q_min, q_max] and key positions in [k_min, k_max]:
  // empty = no pair allowed (skip it), full = every pair allowed (no per-element test), else partial.
  TileCoverage classify(std::int64_t q_min, std::int64_t q_max, std::int64_t k_min, std::int64_t k_max) const;
  bool operator==(const MaskPredicate&) const = default;
};

// Exact number of allowed (q, k) pairs with q ∈ queries, k ∈ keys. Closed form per pair of runs (and per
// shared segment under dilation), so it costs nothing like |queries|·|keys|.
std::int64_t count_allowed_pairs(const PositionSet& queries, const PositionSet& keys, const MaskPredicate& mask);

// Number of positions of `set` that `select` selects (for "send only selected rows").
std::int64_t count_selected(const PositionSet& set, const DilationSelect& select);

}  // namespace ringlab
