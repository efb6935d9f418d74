#include "ringlab/positions.hpp"

#include <sstream>

namespace ringlab {

std::int64_t PositionSet::size() const {
  std::int64_t total = 0;
  for (const auto& run : runs) total += run.count;
  return total;
}

std::vector<std::int64_t> PositionSet::expand() const {
  std::vector<std::int64_t> positions;
  positions.reserve(static_cast<std::size_t>(size()));
  for (const auto& run : runs)
    for (std::int64_t i = 0; i < run.count; ++i) positions.push_back(run.at(i));
  return positions;
}

std::string PositionSet::describe() const {
  if (runs.empty()) return "{}";
  std::ostringstream text;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto& run = runs[i];
    if (i > 0) text << " ∪ ";
    if (run.stride == 1 || run.count == 1)
      text << "[" << run.start << "," << run.last() + 1 << ")";
    else
      text << "{" << run.start << "+" << run.stride << "k, k<" << run.count << "}";
  }
  return text.str();
}

PositionSet contiguous_positions(std::int64_t begin, std::int64_t end) {
  PositionSet set;
  if (end > begin) set.runs.push_back({begin, 1, end - begin});
  return set;
}

PositionSet layout_positions(Layout layout, std::int64_t n, int ring_size, int device) {
  const std::int64_t p = device, P = ring_size;
  switch (layout) {
    case Layout::contiguous:
      return contiguous_positions(p * n / P, (p + 1) * n / P);
    case Layout::zigzag: {
      auto chunk_begin = [&](std::int64_t c) { return c * n / (2 * P); };
      PositionSet set = contiguous_positions(chunk_begin(p), chunk_begin(p + 1));
      PositionSet mirror = contiguous_positions(chunk_begin(2 * P - 1 - p), chunk_begin(2 * P - p));
      set.runs.insert(set.runs.end(), mirror.runs.begin(), mirror.runs.end());
      return set;
    }
    case Layout::striped: {
      PositionSet set;
      if (p < n) set.runs.push_back({p, P, (n - p + P - 1) / P});
      return set;
    }
  }
  return {};
}

}  // namespace ringlab
