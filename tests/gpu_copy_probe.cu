// What the test "TMA and cp.async tile copies give the same bits" (test_gpu.cpp) asks of the library's internals:
// whether the Hopper forward runs here at all, and how many TMA descriptors have been encoded, so that the test
// can tell that the TMA path was taken (and not both settings falling back to the same copies).
#include <cstdint>

#include "kernels.cuh"
#include "tma.cuh"

namespace ringlab::testing {

bool hopper_forward_runs() { return gpu::detail::hopper_forward_available(); }

std::int64_t tma_descriptors_encoded() { return gpu::detail::tma_descriptors_encoded(); }

}  // namespace ringlab::testing
