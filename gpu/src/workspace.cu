// workspace.cuh: per-device memory pools for launch workspaces.
#include <mutex>

#include "cuda_check.cuh"
#include "workspace.cuh"

namespace ringlab::gpu::detail {
namespace {

// The pool of `device`, created on first use (ring threads ask concurrently, one device each).
cudaMemPool_t workspace_pool(int device) {
  static std::mutex mutex;
  static cudaMemPool_t pools[64] = {};
  const std::lock_guard<std::mutex> lock(mutex);
  cudaMemPool_t& pool = pools[device < 64 ? device : 63];
  if (pool != nullptr && device < 64) return pool;
  cudaMemPoolProps properties{};
  properties.allocType = cudaMemAllocationTypePinned;
  properties.location.type = cudaMemLocationTypeDevice;
  properties.location.id = device;
  cudaMemPool_t created = nullptr;
  RINGLAB_CUDA_CHECK(cudaMemPoolCreate(&created, &properties));
  unsigned long long keep_everything = ~0ull;
  RINGLAB_CUDA_CHECK(cudaMemPoolSetAttribute(created, cudaMemPoolAttrReleaseThreshold, &keep_everything));
  if (device < 64) pool = created;
  return created;  // (past 64 devices: a pool per call, never released; no machine has that many)
}

}  // namespace

LaunchWorkspace::LaunchWorkspace(std::size_t bytes, cudaStream_t stream) : stream_(stream) {
  if (bytes == 0) return;
  int device = 0;
  RINGLAB_CUDA_CHECK(cudaGetDevice(&device));
  RINGLAB_CUDA_CHECK(cudaMallocFromPoolAsync(&data_, bytes, workspace_pool(device), stream));
}

LaunchWorkspace::~LaunchWorkspace() {
  if (data_ != nullptr) (void)cudaFreeAsync(data_, stream_);  // (a destructor does not throw; errors resurface later)
}

}  // namespace ringlab::gpu::detail
