// What the tests "TMA and cp.async tile copies give the same bits" and "the persistent grid and one block per
// item give the same bits" (test_gpu.cpp) ask of the library's internals: whether the Hopper forward runs here
// at all, how many TMA descriptors have been encoded and how many launches gave blocks several items, so that
// the tests can tell that the path under test was taken (and not both settings falling back to the same one).
#include <cstdint>

#include "kernels.cuh"
#include "tma.cuh"

namespace ringlab::testing {

bool hopper_forward_runs() { return gpu::detail::hopper_forward_available(); }

std::int64_t tma_descriptors_encoded() { return gpu::detail::tma_descriptors_encoded(); }

std::int64_t persistent_forward_launches() {
  return gpu::detail::hopper_forward_launches_with_several_items_per_block();
}

}  // namespace ringlab::testing
