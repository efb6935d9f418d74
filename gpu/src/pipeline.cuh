// What the warp-specialised kernels (forward_hopper.cu, backward_hopper.cu) synchronise with: mbarriers in
// shared memory (a producer's copies landing, consumers releasing a buffer), named barriers (consumer
// warpgroups taking turns or publishing dSᵀ), setmaxnreg (moving registers from the producer to the
// consumers), and the copy engine's bulk reductions (dQ). sm_90 (setmaxnreg: sm_90a).
#pragma once

#include <cstdint>

namespace ringlab::gpu::ptx {

// An mbarrier: completes a phase when `count` arrivals have happened; waiters name the phase by its parity.
__device__ __forceinline__ void mbarrier_init(std::uint32_t barrier, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(barrier), "r"(count) : "memory");
}
__device__ __forceinline__ void mbarrier_arrive(std::uint32_t barrier) {
  asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(barrier) : "memory");
}
// One arrival on `barrier` when every cp.async this thread issued so far has landed (.noinc: the barrier's
// count already includes this arrival).
__device__ __forceinline__ void cp_async_arrive(std::uint32_t barrier) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(barrier) : "memory");
}
// One arrival on `barrier` that also expects `bytes` more bytes of asynchronous copies (TMA: tma.cuh) before its
// phase ends.
__device__ __forceinline__ void mbarrier_arrive_expect_bytes(std::uint32_t barrier, std::uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(barrier), "r"(bytes) : "memory");
}
// Makes this thread's mbarrier.init visible to the asynchronous proxy (TMA copies complete byte counts on them).
__device__ __forceinline__ void mbarrier_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// Blocks until the phase with parity `parity` has completed.
__device__ __forceinline__ void mbarrier_wait(std::uint32_t barrier, int parity) {
  asm volatile(
      "{\n.reg .pred done;\n"
      "wait:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait;\n}\n" ::"r"(barrier),
      "r"(parity)
      : "memory");
}

// Named barrier `id` (1..15; 0 is __syncthreads) over `threads` threads: sync waits, arrive does not.
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// The register budget of the executing warpgroup (all its threads execute it).
template <int Registers>
__device__ __forceinline__ void set_max_registers_increase() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Registers));
#endif
}
template <int Registers>
__device__ __forceinline__ void set_max_registers_decrease() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Registers));
#endif
}

// The copy engine adds `bytes` (a multiple of 16, both addresses 16-byte aligned) fp32 values from shared
// memory into global memory, asynchronously (one instruction for a whole row instead of a red.global per
// pair of values). Shared memory written by ordinary stores needs fence.proxy.async before it.
__device__ __forceinline__ void bulk_reduce_add_f32(float* destination, std::uint32_t source, int bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(destination),
               "r"(source), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
// Asks for `bytes` (a multiple of 16, the address 16-byte aligned) of global memory to be brought into L2, with
// nothing to wait for: a hint.
__device__ __forceinline__ void prefetch_l2(const void* address, int bytes) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(address), "r"(bytes) : "memory");
}
// The same for the cache line that holds `address` (any alignment).
__device__ __forceinline__ void prefetch_line_l2(const void* address) {
  asm volatile("prefetch.global.L2 [%0];\n" ::"l"(address) : "memory");
}
// Orders this thread's ordinary (generic proxy) global accesses before, and after, asynchronous-proxy ones such as
// bulk reductions (a bulk reduction issued after an mbarrier wait then sees what another thread stored before it
// fenced and arrived).
__device__ __forceinline__ void fence_proxy_async_global() {
  asm volatile("fence.proxy.async.global;\n" ::: "memory");
}
// Waits until this thread's bulk operations have read their shared-memory sources (the buffer may be reused).
__device__ __forceinline__ void bulk_wait_read() { asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory"); }
// Waits until this thread's bulk operations are complete.
__device__ __forceinline__ void bulk_wait() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }

}  // namespace ringlab::gpu::ptx
