// Scratch memory for one launch (the Hopper forward's precomputed block plans and its work counter), taken from
// a memory pool of ringlab's own on the current device, in stream order: allocated on `stream` before the kernels
// that use it and returned on the same stream after them, so no launch waits for the host. The pool keeps what
// is returned to it (release threshold: unlimited), so steady launches take nothing new from the driver; its
// high-water mark is the largest workspace any launch needed (items × sizeof(BlockPlan) for the forward: ~0.3 KiB
// per 128 query rows and head). A pool of its own leaves the device's default pool, which other libraries in
// the process (PyTorch) may configure, untouched.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace ringlab::gpu::detail {

class LaunchWorkspace {
 public:
  LaunchWorkspace(std::size_t bytes, cudaStream_t stream);
  ~LaunchWorkspace();  // returns the memory on the stream (after the kernels queued so far)
  LaunchWorkspace(const LaunchWorkspace&) = delete;
  LaunchWorkspace& operator=(const LaunchWorkspace&) = delete;
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  cudaStream_t stream_;
};

}  // namespace ringlab::gpu::detail
