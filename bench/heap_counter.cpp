// A counting heap for the memory benchmark: replaces the global operator new/delete (std::vector, Tensor)
// and interposes the C allocator (malloc, calloc, realloc, free, the aligned variants), because Eigen's
// dynamic matrices are allocated with std::malloc, not operator new. Every allocation is counted by its
// usable size (malloc_usable_size), on allocation and on release alike, so current bytes return exactly
// to where they were. Single-threaded use; the counters are relaxed atomics all the same.
//
// glibc only: the replacements forward to __libc_malloc and friends (exported by glibc for this purpose).
// Stack memory (Eigen's alloca'd GEMM blocks under 128 KiB) is not heap and is not counted.
#include "heap_counter.hpp"

#include <malloc.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <new>

extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t count, std::size_t size);
void* __libc_realloc(void* pointer, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
void* __libc_valloc(std::size_t size);
void* __libc_pvalloc(std::size_t size);
void __libc_free(void* pointer);
}

namespace {

std::atomic<std::int64_t> current_bytes{0};
std::atomic<std::int64_t> peak_bytes{0};
std::atomic<std::int64_t> allocation_count{0};

void note_allocated(void* pointer) {
  if (pointer == nullptr) return;
  const auto size = static_cast<std::int64_t>(malloc_usable_size(pointer));
  const std::int64_t now = current_bytes.fetch_add(size, std::memory_order_relaxed) + size;
  allocation_count.fetch_add(1, std::memory_order_relaxed);
  std::int64_t peak = peak_bytes.load(std::memory_order_relaxed);
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void note_released(void* pointer) {
  if (pointer == nullptr) return;
  current_bytes.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(pointer)), std::memory_order_relaxed);
}

void* counted_aligned(std::size_t alignment, std::size_t size) {
  void* pointer = __libc_memalign(alignment, size);
  note_allocated(pointer);
  return pointer;
}

void* counted_new(std::size_t size) {
  void* pointer = __libc_malloc(size == 0 ? 1 : size);
  if (pointer == nullptr) throw std::bad_alloc();
  note_allocated(pointer);
  return pointer;
}

void* counted_new_aligned(std::size_t size, std::align_val_t alignment) {
  void* pointer = counted_aligned(static_cast<std::size_t>(alignment), size == 0 ? 1 : size);
  if (pointer == nullptr) throw std::bad_alloc();
  return pointer;
}

void counted_delete(void* pointer) {
  note_released(pointer);
  __libc_free(pointer);
}

}  // namespace

namespace ringlab::bench {

HeapCounts heap_counts() {
  return {current_bytes.load(std::memory_order_relaxed), peak_bytes.load(std::memory_order_relaxed),
          allocation_count.load(std::memory_order_relaxed)};
}

void reset_heap_peak() { peak_bytes.store(current_bytes.load(std::memory_order_relaxed), std::memory_order_relaxed); }

}  // namespace ringlab::bench

// ---- the C allocator ----------------------------------------------------------------------------------------
extern "C" {

void* malloc(std::size_t size) {
  void* pointer = __libc_malloc(size);
  note_allocated(pointer);
  return pointer;
}

void* calloc(std::size_t count, std::size_t size) {
  void* pointer = __libc_calloc(count, size);
  note_allocated(pointer);
  return pointer;
}

void* realloc(void* pointer, std::size_t size) {
  if (pointer == nullptr) return malloc(size);
  const auto old_size = static_cast<std::int64_t>(malloc_usable_size(pointer));
  void* moved = __libc_realloc(pointer, size);
  if (moved == nullptr && size != 0) return nullptr;  // the old block is untouched and still counted
  current_bytes.fetch_sub(old_size, std::memory_order_relaxed);
  note_allocated(moved);
  return moved;
}

void free(void* pointer) { counted_delete(pointer); }

void* memalign(std::size_t alignment, std::size_t size) { return counted_aligned(alignment, size); }

void* aligned_alloc(std::size_t alignment, std::size_t size) { return counted_aligned(alignment, size); }

int posix_memalign(void** result, std::size_t alignment, std::size_t size) {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* pointer = counted_aligned(alignment, size);
  if (pointer == nullptr) return ENOMEM;
  *result = pointer;
  return 0;
}

void* valloc(std::size_t size) {
  void* pointer = __libc_valloc(size);
  note_allocated(pointer);
  return pointer;
}

void* pvalloc(std::size_t size) {
  void* pointer = __libc_pvalloc(size);
  note_allocated(pointer);
  return pointer;
}

}  // extern "C"

// ---- the C++ allocator --------------------------------------------------------------------------------------
void* operator new(std::size_t size) { return counted_new(size); }
void* operator new[](std::size_t size) { return counted_new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_new(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_new(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t size, std::align_val_t alignment) { return counted_new_aligned(size, alignment); }
void* operator new[](std::size_t size, std::align_val_t alignment) { return counted_new_aligned(size, alignment); }
void* operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return counted_aligned(static_cast<std::size_t>(alignment), size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return counted_aligned(static_cast<std::size_t>(alignment), size == 0 ? 1 : size);
}

void operator delete(void* pointer) noexcept { counted_delete(pointer); }
void operator delete[](void* pointer) noexcept { counted_delete(pointer); }
void operator delete(void* pointer, std::size_t) noexcept { counted_delete(pointer); }
void operator delete[](void* pointer, std::size_t) noexcept { counted_delete(pointer); }
void operator delete(void* pointer, const std::nothrow_t&) noexcept { counted_delete(pointer); }
void operator delete[](void* pointer, const std::nothrow_t&) noexcept { counted_delete(pointer); }
void operator delete(void* pointer, std::align_val_t) noexcept { counted_delete(pointer); }
void operator delete[](void* pointer, std::align_val_t) noexcept { counted_delete(pointer); }
void operator delete(void* pointer, std::size_t, std::align_val_t) noexcept { counted_delete(pointer); }
void operator delete[](void* pointer, std::size_t, std::align_val_t) noexcept { counted_delete(pointer); }
void operator delete(void* pointer, std::align_val_t, const std::nothrow_t&) noexcept { counted_delete(pointer); }
void operator delete[](void* pointer, std::align_val_t, const std::nothrow_t&) noexcept { counted_delete(pointer); }
