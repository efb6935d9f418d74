// LongNet dilated attention as ringlab defines it (docs/semantics.md §Dilated attention): which
// (pattern, offset) runs each head executes, and how a head's pattern outputs are combined.
#pragma once

#include <cstdint>
#include <vector>

#include "ringlab/config.hpp"
#include "ringlab/mask.hpp"

namespace ringlab {

// What one head computes: the mask of each pattern it runs (merged with ⊕ in lse mode) and the factor
// applied to its output (1/k for group_mean). A config without dilation gives one mask, the band.
struct HeadPlan {
  std::vector<MaskPredicate> masks;
  std::vector<int> pattern_indices;  // parallel to masks; -1 when not dilated
  double output_scale = 1.0;
  int group = -1;                    // offset rule `group` only
};

// The offset o of head h in a pattern of rate r under `rule` (not `group`, which needs the group index).
//   paper: h mod r          torchscale: ⌊h / ⌈H/r⌉⌋
std::int64_t pattern_offset(OffsetRule rule, std::int64_t head, std::int64_t heads, std::int64_t rate);

// Head groups of offset rule `group`: k groups of sizes ⌊H/k⌋, the first H mod k one larger, cumulative.
int head_group(std::int64_t head, std::int64_t heads, int group_count);

// One plan per head, for a validated config.
std::vector<HeadPlan> plan_heads(const AttentionConfig& config);

// A distinct mask of the plans and how many (head, pattern) runs use it: heads that share a mask do the same
// work, so counts (pairs, rows) are taken once per mask and weighted.
struct WeightedMask {
  MaskPredicate mask;
  std::int64_t heads = 0;
};
std::vector<WeightedMask> distinct_masks(const std::vector<HeadPlan>& plans);

}  // namespace ringlab
