#include "ringlab/sim/ledger.hpp"

namespace ringlab::sim {

std::string to_string(Category category) {
  switch (category) {
    case Category::q: return "q";
    case Category::kv: return "kv";
    case Category::kv_recv: return "kv_recv";
    case Category::out: return "out";
    case Category::lse: return "lse";
    case Category::scratch: return "scratch";
    case Category::grad: return "grad";
  }
  return "?";
}

BufferId MemoryLedger::allocate(const std::string& name, Category category, std::int64_t bytes) {
  if (budget_ && current_ + bytes > *budget_)
    throw OutOfMemory("out of memory on device " + std::to_string(device_) + ": allocating '" + name + "' (" +
                      to_string(category) + ", " + std::to_string(bytes) + " bytes) with " +
                      std::to_string(current_) + " bytes in use exceeds the budget of " + std::to_string(*budget_) +
                      " bytes");
  buffers_.push_back({name, category, bytes, true});
  current_ += bytes;
  peak_ = std::max(peak_, current_);
  auto& in_category = category_current_[static_cast<std::size_t>(category)];
  in_category += bytes;
  auto& category_peak = category_peak_[static_cast<std::size_t>(category)];
  category_peak = std::max(category_peak, in_category);
  return static_cast<BufferId>(buffers_.size() - 1);
}

void MemoryLedger::release(BufferId id) {
  Buffer& buffer = buffers_.at(static_cast<std::size_t>(id));
  if (!buffer.live) throw Error("internal error: buffer '" + buffer.name + "' released twice");
  buffer.live = false;
  current_ -= buffer.bytes;
  category_current_[static_cast<std::size_t>(buffer.category)] -= buffer.bytes;
}

}  // namespace ringlab::sim
