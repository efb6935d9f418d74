// Host side of tma.cuh: the row steps a launch copies with, and their TMA descriptors.
#include <atomic>
#include <string>

#include "cuda_check.cuh"
#include "tma.cuh"

namespace ringlab::gpu::detail {
namespace {

// cuTensorMapEncodeTiled from the driver the runtime loaded (no link against libcuda, so that CI machines
// without a driver still link); nullptr where the driver lacks it.
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encoder = [] {
    void* function = nullptr;
    cudaDriverEntryPointQueryResult found{};
    const cudaError_t status =
        cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &function, 12000, cudaEnableDefault, &found);
    if (status != cudaSuccess || found != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(function);
  }();
  return encoder;
}

std::atomic<i64> descriptors_encoded{0};

}  // namespace

i64 tma_descriptors_encoded() { return descriptors_encoded.load(); }

int collect_row_steps(const AttentionParams& params, bool keys, int min_rows, i64 (&steps)[RowTileMaps::kMaxSteps]) {
  int count = 0;
  const i64 heads = params.dilation_count > 1 ? params.heads : 1;  // without per-head dilation every head is alike
  for (i64 h = 0; h < heads; ++h) {
    const HeadView view = head_view(params, h);
    const RowMap& map = keys ? view.k : view.q;
    for (const RowRun& run : map.run) {
      // No whole tile inside it (every copy of it is by cp.async), or a step the descriptor cannot hold.
      if (run.count < min_rows || run.row_step >= (i64{1} << 31)) continue;
      bool known = false;
      for (int i = 0; i < count; ++i) known = known || steps[i] == run.row_step;
      if (!known && count < RowTileMaps::kMaxSteps) steps[count++] = run.row_step;
    }
  }
  return count;
}

void encode_row_maps(RowTileMaps& maps, const void* base, bool bfloat16, i64 batch, i64 rows, i64 heads,
                     i64 head_dim, const i64* steps, int step_count, int box_rows) {
  maps.count = 0;
  const PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
  const i64 total_rows = batch * rows;
  if (encode == nullptr || total_rows >= (i64{1} << 31)) return;  // coordinates are 32-bit
  constexpr i64 kElementBytes = 2;
  for (int i = 0; i < step_count; ++i) {
    const i64 step = steps[i];
    const cuuint64_t dims[4] = {static_cast<cuuint64_t>(head_dim), static_cast<cuuint64_t>(heads),
                                static_cast<cuuint64_t>(step), static_cast<cuuint64_t>((total_rows + step - 1) / step)};
    const cuuint64_t strides[3] = {static_cast<cuuint64_t>(head_dim * kElementBytes),
                                   static_cast<cuuint64_t>(heads * head_dim * kElementBytes),
                                   static_cast<cuuint64_t>(step * heads * head_dim * kElementBytes)};
    const cuuint32_t box[4] = {64, 1, 1, static_cast<cuuint32_t>(box_rows)};
    const cuuint32_t element_strides[4] = {1, 1, 1, 1};
    const CUresult status = encode(
        &maps.map[maps.count], bfloat16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 4,
        const_cast<void*>(base), dims, strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
        CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (status != CUDA_SUCCESS)  // the inputs were validated (16-byte aligned, D = 64 or 128): a bug here
      throw CudaError("cuTensorMapEncodeTiled failed (CUresult " + std::to_string(static_cast<int>(status)) +
                      ") for rows " + std::to_string(total_rows) + ", heads " + std::to_string(heads) +
                      ", head_dim " + std::to_string(head_dim) + ", row step " + std::to_string(step));
    maps.row_step[maps.count++] = static_cast<int>(step);
    ++descriptors_encoded;
  }
}

}  // namespace ringlab::gpu::detail
