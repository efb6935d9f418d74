// Does a device-to-device copy within one GPU run beside kernels that hold every SM, or wait for them?
// (The virtual ring's K/V hops are such copies: docs/gpu-rings.md.) A kernel that fills every SM (two blocks
// per SM, every thread slot) spins for --spin-us; 200 µs after its launch another stream copies --mib MiB.
// If the copy is done by a copy engine it ends long before the kernel; if the driver runs it as a kernel on
// the SMs, it ends after. Each way of asking for the copy is tried.
//
//   ringlab_copy_engine_probe [--mib 16] [--spin-us 2000]
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

__device__ unsigned long long now_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Launched as two 1024-thread blocks per SM: every SM's 2048 thread slots taken, so no other block fits.
__global__ void spin(unsigned long long ns, int* sink) {
  const unsigned long long start = now_ns();
  int x = threadIdx.x;
  while (now_ns() - start < ns) x = x * 1664525 + 1013904223;
  if (x == 42) *sink = x;
}

}  // namespace

int main(int argc, char** argv) {
  double mib = 16, spin_us = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--mib") mib = std::atof(argv[i + 1]);
    else if (flag == "--spin-us") spin_us = std::atof(argv[i + 1]);
  }
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "attribute");
  const std::size_t bytes = static_cast<std::size_t>(mib * (1 << 20));
  void *from, *to;
  int* sink;
  check(cudaMalloc(&from, bytes), "malloc");
  check(cudaMalloc(&to, bytes), "malloc");
  check(cudaMalloc(&sink, 4), "malloc");
  check(cudaMemset(from, 1, bytes), "memset");
  cudaStream_t compute, copies;
  check(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking), "stream");
  check(cudaStreamCreateWithFlags(&copies, cudaStreamNonBlocking), "stream");
  cudaEvent_t start, spun, copy_start, copied;
  for (cudaEvent_t* e : {&start, &spun, &copy_start, &copied}) check(cudaEventCreate(e), "event");

  struct Way {
    const char* name;
    void (*issue)(void*, const void*, std::size_t, cudaStream_t);
  };
  const Way ways[] = {
      {"cudaMemcpyAsync", [](void* d, const void* s, std::size_t n, cudaStream_t st) {
         check(cudaMemcpyAsync(d, s, n, cudaMemcpyDeviceToDevice, st), "cudaMemcpyAsync");
       }},
#if CUDART_VERSION >= 13000  // (12.8 and 12.9 take one more argument; earlier releases lack the call)
      {"cudaMemcpyBatchAsync, PreferOverlapWithCompute", [](void* d, const void* s, std::size_t n, cudaStream_t st) {
         cudaMemcpyAttributes attributes{};
         attributes.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
         attributes.flags = cudaMemcpyFlagPreferOverlapWithCompute;
         std::size_t index = 0;
         void* dsts[1] = {d};
         const void* srcs[1] = {s};
         std::size_t sizes[1] = {n};
         check(cudaMemcpyBatchAsync(dsts, srcs, sizes, 1, &attributes, &index, 1, st), "cudaMemcpyBatchAsync");
       }},
#endif
      {"cudaMemcpy2DAsync (16 rows)", [](void* d, const void* s, std::size_t n, cudaStream_t st) {
         check(cudaMemcpy2DAsync(d, n / 16, s, n / 16, n / 16, 16, cudaMemcpyDeviceToDevice, st), "2D");
       }},
  };
  std::printf("| way | copy alone µs | kernel µs | copy issued at µs | copy ended at µs | verdict |\n|---|---|---|---|---|---|\n");
  for (const Way& way : ways) {
    float alone = 0;
    for (int i = 0; i < 3; ++i) {  // warm-up, then the copy alone
      check(cudaEventRecord(copy_start, copies), "record");
      way.issue(to, from, bytes, copies);
      check(cudaEventRecord(copied, copies), "record");
      check(cudaEventSynchronize(copied), "sync");
      check(cudaEventElapsedTime(&alone, copy_start, copied), "elapsed");
    }
    check(cudaEventRecord(start, compute), "record");
    spin<<<2 * sms, 1024, 0, compute>>>(static_cast<unsigned long long>(spin_us * 1e3), sink);
    check(cudaGetLastError(), "spin");
    check(cudaEventRecord(spun, compute), "record");
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // the kernel has taken the SMs by now
    check(cudaEventRecord(copy_start, copies), "record");
    way.issue(to, from, bytes, copies);
    check(cudaEventRecord(copied, copies), "record");
    check(cudaDeviceSynchronize(), "sync");
    float kernel = 0, issued = 0, ended = 0;
    check(cudaEventElapsedTime(&kernel, start, spun), "elapsed");
    check(cudaEventElapsedTime(&issued, start, copy_start), "elapsed");
    check(cudaEventElapsedTime(&ended, start, copied), "elapsed");
    std::printf("| %s | %.0f | %.0f | %.0f | %.0f | %s |\n", way.name, alone * 1e3, kernel * 1e3, issued * 1e3,
                ended * 1e3, ended < 0.9f * kernel ? "beside the kernel (copy engine)" : "after the kernel (SMs)");
  }
  return 0;
}
