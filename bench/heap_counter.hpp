// Heap counters of the benchmark binary (heap_counter.cpp replaces operator new/delete and malloc/free).
#pragma once

#include <cstdint>

namespace ringlab::bench {

struct HeapCounts {
  std::int64_t current_bytes = 0;  // live heap bytes (usable sizes)
  std::int64_t peak_bytes = 0;     // high-water mark of current_bytes since the last reset_heap_peak()
  std::int64_t allocations = 0;    // allocations so far
};

HeapCounts heap_counts();
// Sets the peak to the current value, so the next peak is the high-water mark of what follows.
void reset_heap_peak();

}  // namespace ringlab::bench
