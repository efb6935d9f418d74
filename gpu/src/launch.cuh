// The one way the attention kernels are launched: one block per (tile, head, batch), the dynamic
// shared-memory limit raised to what the kernel asks for first.
//
// Profiling: in a build configured with -DRINGLAB_KERNEL_TIMELINE=ON (off by default: the stamps cost the
// D = 128 forward registers, 8 → 88 bytes of spill loads), and with RINGLAB_KERNEL_TIMELINE=FILE in the
// environment, every launch of a kernel that records (the Hopper forward and backward) is followed by a
// synchronisation, and one CSV line per block is appended to FILE: when it started, had its plan, had its
// first tiles, finished its main loop and its epilogue (%globaltimer, ns), on which SM and over how many
// tiles (+ 2^32 for a forward merging into a ring's accumulator; bench/gpu/profile_blocks.py reads it). It serialises the launches: for finding where a block's time
// goes, never for timing the kernels.
//
// With RINGLAB_KERNEL_TIMELINE_CONCURRENT=1 as well, launches are not serialised: each records into its own
// slice of one device buffer (the first device that launches; 64 MiB, ~930 000 blocks; launches beyond it or on
// other devices run unrecorded), and the lines are written when the process exits, each with a 13th field:
// the launch's stream, numbered in order of first use. That keeps concurrent kernels concurrent (a virtual
// ring's P streams): for seeing what ran when (bench/gpu/ring_timeline.py), not for timing either.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "attention_params.cuh"
#include "cuda_check.cuh"
#include "ringlab/errors.hpp"

namespace ringlab::gpu::detail {

inline const char* kernel_timeline_path() {
  const char* path = std::getenv("RINGLAB_KERNEL_TIMELINE");
  if (path == nullptr || *path == '\0') return nullptr;
#if !defined(RINGLAB_KERNEL_TIMELINE)
  throw ConfigError("RINGLAB_KERNEL_TIMELINE", "'" + std::string(path) + "'",
                    "unset: this build records no timeline (configure with -DRINGLAB_KERNEL_TIMELINE=ON)");
#endif
  return path;
}

// Numbers the profiled launches of this process (one counter for every kernel, whatever thread launches).
inline int next_timeline_launch() {
  static std::atomic<int> launches{0};
  return ++launches;
}

// One block's line of the timeline file (without its line end; the concurrent mode appends the stream).
inline void print_block(std::FILE* file, int launch, const char* label, std::size_t block, const unsigned long long* r) {
  std::fprintf(file, "%d,%s,%zu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu", launch, label, block, r[kSm], r[kTiles],
               r[kStarted], r[kPlanned], r[kLanded], r[kLooped], r[kEnded], r[kViewed], r[kSearched]);
}

// The concurrent mode's buffer and what was launched into it (see above). Written out by an exit handler,
// which runs before the CUDA runtime's own (it is registered after the runtime started).
class TimelineArena {
 public:
  static TimelineArena& get() {
    static TimelineArena* arena = new TimelineArena();  // never destroyed: the exit handler uses it
    return *arena;
  }
  // Where a launch of `blocks` blocks on `stream` records, or nullptr (no room, or another device).
  unsigned long long* take(std::size_t blocks, const char* label, cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(mutex_);
    int device = 0;
    RINGLAB_CUDA_CHECK(cudaGetDevice(&device));
    if (buffer_ == nullptr) {
      device_ = device;
      RINGLAB_CUDA_CHECK(cudaMalloc(&buffer_, kBytes));
      RINGLAB_CUDA_CHECK(cudaMemset(buffer_, 0, kBytes));
      RINGLAB_CUDA_CHECK(cudaDeviceSynchronize());  // zeroed before any launch, whatever its stream
      std::atexit([] { TimelineArena::get().write(); });
    }
    const std::size_t fields = blocks * kTimelineFields;
    if (device != device_ || used_ + fields > kBytes / sizeof(unsigned long long)) return nullptr;
    int stream_number = 0;
    while (stream_number < static_cast<int>(streams_.size()) && streams_[stream_number] != stream) ++stream_number;
    if (stream_number == static_cast<int>(streams_.size())) streams_.push_back(stream);
    launches_.push_back({next_timeline_launch(), label, blocks, used_, stream_number});
    unsigned long long* slice = buffer_ + used_;
    used_ += fields;
    return slice;
  }

 private:
  static constexpr std::size_t kBytes = std::size_t{64} << 20;
  struct Launch {
    int number;
    const char* label;
    std::size_t blocks, offset;
    int stream;
  };
  void write() {
    const char* path = std::getenv("RINGLAB_KERNEL_TIMELINE");
    if (buffer_ == nullptr || path == nullptr || cudaSetDevice(device_) != cudaSuccess ||
        cudaDeviceSynchronize() != cudaSuccess)
      return;
    std::vector<unsigned long long> records(used_);
    if (cudaMemcpy(records.data(), buffer_, used_ * sizeof(unsigned long long), cudaMemcpyDeviceToHost) != cudaSuccess)
      return;
    std::FILE* file = std::fopen(path, "a");
    if (file == nullptr) return;
    for (const Launch& launch : launches_)
      for (std::size_t block = 0; block < launch.blocks; ++block) {
        const unsigned long long* r = &records[launch.offset + block * kTimelineFields];
        if (r[kStarted] == 0) continue;
        print_block(file, launch.number, launch.label, block, r);
        std::fprintf(file, ",%d\n", launch.stream);
      }
    std::fclose(file);
  }
  std::mutex mutex_;
  unsigned long long* buffer_ = nullptr;
  int device_ = 0;
  std::size_t used_ = 0;  // u64 fields
  std::vector<cudaStream_t> streams_;
  std::vector<Launch> launches_;
};

// `rows` are the most rows any head has on the side the blocks tile (`tile_rows` per block). `extra` are the
// kernel's parameters after the AttentionParams (the Hopper forward's TMA descriptors).
template <class Kernel, class... Extra>
void launch_per_tile(Kernel kernel, i64 rows, int tile_rows, int threads, int shared_bytes,
                     const AttentionParams& params, cudaStream_t stream, const char* label = nullptr,
                     const Extra&... extra) {
  RINGLAB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared_bytes));
  const dim3 grid(static_cast<unsigned>((rows + tile_rows - 1) / tile_rows), static_cast<unsigned>(params.heads),
                  static_cast<unsigned>(params.batch));
  const char* timeline_path = label != nullptr ? kernel_timeline_path() : nullptr;
  if (timeline_path == nullptr) {
    kernel<<<grid, threads, shared_bytes, stream>>>(params, extra...);
    RINGLAB_CUDA_CHECK(cudaGetLastError());
    return;
  }
  const std::size_t blocks = static_cast<std::size_t>(grid.x) * grid.y * grid.z;
  const std::size_t bytes = blocks * kTimelineFields * sizeof(unsigned long long);
  AttentionParams profiled = params;
  if (const char* concurrent = std::getenv("RINGLAB_KERNEL_TIMELINE_CONCURRENT");
      concurrent != nullptr && std::string(concurrent) == "1") {
    profiled.timeline = TimelineArena::get().take(blocks, label, stream);  // (zeroed once, used once)
    kernel<<<grid, threads, shared_bytes, stream>>>(profiled, extra...);
    RINGLAB_CUDA_CHECK(cudaGetLastError());
    return;
  }
  RINGLAB_CUDA_CHECK(cudaMalloc(&profiled.timeline, bytes));
  RINGLAB_CUDA_CHECK(cudaMemsetAsync(profiled.timeline, 0, bytes, stream));
  kernel<<<grid, threads, shared_bytes, stream>>>(profiled, extra...);
  RINGLAB_CUDA_CHECK(cudaGetLastError());
  std::vector<unsigned long long> records(blocks * kTimelineFields);
  RINGLAB_CUDA_CHECK(cudaMemcpyAsync(records.data(), profiled.timeline, bytes, cudaMemcpyDeviceToHost, stream));
  RINGLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
  RINGLAB_CUDA_CHECK(cudaFree(profiled.timeline));
  const int launch_number = next_timeline_launch();
  std::FILE* file = std::fopen(timeline_path, "a");
  if (file == nullptr) return;  // profiling output only: never fail the computation over it
  for (std::size_t block = 0; block < blocks; ++block) {
    const unsigned long long* r = &records[block * kTimelineFields];
    if (r[kStarted] == 0) continue;  // left before its first stamp (per-head dilation: no rows for its head)
    print_block(file, launch_number, label, block, r);
    std::fputc('\n', file);
  }
  std::fclose(file);
}

}  // namespace ringlab::gpu::detail
