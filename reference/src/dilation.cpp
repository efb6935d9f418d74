#include "ringlab/dilation.hpp"

#include <algorithm>

namespace ringlab {

std::int64_t pattern_offset(OffsetRule rule, std::int64_t head, std::int64_t heads, std::int64_t rate) {
  if (rule == OffsetRule::torchscale) {
    const std::int64_t heads_per_offset = (heads + rate - 1) / rate;  // ⌈H/r⌉
    return head / heads_per_offset;                                    // < r because h < H ≤ r·⌈H/r⌉
  }
  return head % rate;
}

int head_group(std::int64_t head, std::int64_t heads, int group_count) {
  const std::int64_t base = heads / group_count, larger = heads % group_count;
  // The first `larger` groups hold base + 1 heads each.
  const std::int64_t heads_in_larger_groups = larger * (base + 1);
  if (head < heads_in_larger_groups) return static_cast<int>(head / (base + 1));
  return static_cast<int>(larger + (head - heads_in_larger_groups) / base);
}

std::vector<HeadPlan> plan_heads(const AttentionConfig& config) {
  const BandMask band = BandMask::from(config);
  std::vector<HeadPlan> plans(static_cast<std::size_t>(config.heads));
  const int pattern_count = static_cast<int>(config.dilation.size());
  for (std::int64_t head = 0; head < config.heads; ++head) {
    HeadPlan& plan = plans[static_cast<std::size_t>(head)];
    if (!config.dilated()) {
      plan.masks.push_back({band, std::nullopt});
      plan.pattern_indices.push_back(-1);
      continue;
    }
    auto add_pattern = [&](int index, std::int64_t offset) {
      const DilationPattern& pattern = config.dilation[static_cast<std::size_t>(index)];
      plan.masks.push_back({band, DilationSelect{pattern.segment_length, pattern.rate, offset}});
      plan.pattern_indices.push_back(index);
    };
    if (config.offset_rule == OffsetRule::group) {
      plan.group = head_group(head, config.heads, pattern_count);
      add_pattern(plan.group, plan.group % config.dilation[static_cast<std::size_t>(plan.group)].rate);
      if (config.combine == Combine::group_mean) plan.output_scale = 1.0 / pattern_count;
    } else {
      for (int index = 0; index < pattern_count; ++index)
        add_pattern(index, pattern_offset(config.offset_rule, head, config.heads,
                                          config.dilation[static_cast<std::size_t>(index)].rate));
    }
  }
  return plans;
}

std::vector<WeightedMask> distinct_masks(const std::vector<HeadPlan>& plans) {
  std::vector<WeightedMask> distinct;
  for (const HeadPlan& plan : plans)
    for (const MaskPredicate& mask : plan.masks) {
      auto found = std::find_if(distinct.begin(), distinct.end(), [&](const WeightedMask& w) { return w.mask == mask; });
      if (found == distinct.end())
        distinct.push_back({mask, 1});
      else
        ++found->heads;
    }
  return distinct;
}

}  // namespace ringlab
