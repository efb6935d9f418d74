// The memory ledger of one virtual device: every buffer it holds is allocated here, named, with a category.
// It tracks current and peak bytes, in total and per category, and enforces an optional budget.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ringlab/errors.hpp"

namespace ringlab::sim {

enum class Category { q, kv, kv_recv, out, lse, scratch, grad };
inline constexpr std::size_t kCategoryCount = 7;
std::string to_string(Category category);
inline constexpr std::array<Category, kCategoryCount> kAllCategories = {
    Category::q, Category::kv, Category::kv_recv, Category::out, Category::lse, Category::scratch, Category::grad};

class OutOfMemory : public Error {
 public:
  using Error::Error;
};

using BufferId = int;

class MemoryLedger {
 public:
  MemoryLedger(int device, std::optional<std::int64_t> budget_bytes) : device_(device), budget_(budget_bytes) {}

  // Throws OutOfMemory naming the device, the buffer, its bytes, what is in use and the budget.
  BufferId allocate(const std::string& name, Category category, std::int64_t bytes);
  void release(BufferId id);

  std::int64_t current_bytes() const { return current_; }
  std::int64_t peak_bytes() const { return peak_; }
  // Per category: the most that category alone ever held.
  const std::array<std::int64_t, kCategoryCount>& peak_by_category() const { return category_peak_; }
  const std::array<std::int64_t, kCategoryCount>& current_by_category() const { return category_current_; }

  struct Buffer {
    std::string name;
    Category category;
    std::int64_t bytes;
    bool live;
  };
  const std::vector<Buffer>& buffers() const { return buffers_; }

 private:
  int device_;
  std::optional<std::int64_t> budget_;
  std::vector<Buffer> buffers_;
  std::int64_t current_ = 0, peak_ = 0;
  std::array<std::int64_t, kCategoryCount> category_current_{}, category_peak_{};
};

}  // namespace ringlab::sim
