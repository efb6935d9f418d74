// Host side of gpu::block_attention_*: validation (every error before any launch), the kernel parameters,
// and the one dispatch place where the runtime dtype and head_dim become template parameters.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "element.cuh"
#include "cuda_check.cuh"
#include "kernels.cuh"
#include "ringlab/errors.hpp"
#include "ringlab/dilation.hpp"
#include "ringlab/gpu/block_attention.hpp"
#include "ringlab/gpu/lse_merge.hpp"
#include "ringlab/gpu/memory.hpp"

namespace ringlab::gpu {
namespace detail {
namespace {

// Device memory that lives in `stream`'s order (cudaMallocAsync / cudaFreeAsync from the device's default
// pool): a temporary that work queued on the stream may use after the host function returns.
struct StreamOrderedBuffer {
  void* data = nullptr;
  cudaStream_t stream;
  StreamOrderedBuffer(std::size_t bytes, cudaStream_t on) : stream(on) {
    RINGLAB_CUDA_CHECK(cudaMallocAsync(&data, bytes, stream));
  }
  ~StreamOrderedBuffer() { cudaFreeAsync(data, stream); }  // after the work queued on `stream` before it
  StreamOrderedBuffer(const StreamOrderedBuffer&) = delete;
  StreamOrderedBuffer& operator=(const StreamOrderedBuffer&) = delete;
};

// ---- small element-wise kernels ---------------------------------------------------------------------------


// O = 0, LSE = −∞ on the query rows that strided dilation does not visit (position not selected by the
// head's pattern). One block per (row, batch): which heads skip the row is decided once per head (two
// 64-bit remainders), then the block writes those heads' 4-byte words.
__global__ void fill_unselected(const AttentionParams p, int element_bytes) {
  __shared__ bool unselected[kMaxDilationHeads];
  const i64 row_index = blockIdx.x, b = blockIdx.y;
  const i64 position = p.q_rows.position(row_index), row = p.q_rows.row(row_index);
  for (int h = static_cast<int>(threadIdx.x); h < p.dilation_count; h += static_cast<int>(blockDim.x)) {
    const DilationSelect select = p.dilation[h].expand();
    unselected[h] = select.segment_length % select.rate == 0 && !select.selects(position);
  }
  __syncthreads();
  const int words = static_cast<int>(p.head_dim) * element_bytes / 4;  // per head (head_dim even for 2 bytes)
  std::uint32_t* out = reinterpret_cast<std::uint32_t*>(static_cast<unsigned char*>(p.out) +
                                                        (b * p.rows_q + row) * p.heads * p.head_dim * element_bytes);
  for (int t = static_cast<int>(threadIdx.x); t < p.heads * words; t += static_cast<int>(blockDim.x)) {
    const int h = t / words;
    if (!unselected[p.dilation_count == 1 ? 0 : h]) continue;
    out[t] = 0u;
    if (t % words == 0) p.lse[(b * p.heads + h) * p.rows_q + row] = -INFINITY;
  }
}

// δ[b, h, r] = Σ_x dO[b, r, h, x]·O[b, r, h, x]: one warp per row.
template <class Element>
__global__ void output_gradient_dot_kernel(const Element* dout, const Element* out, float* delta, i64 batch, i64 rows,
                                           i64 heads, int head_dim) {
  const i64 row = (static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;  // (b·rows + r)·heads + h
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (row >= batch * rows * heads) return;
  float sum = 0.0f;
  for (int x = lane; x < head_dim; x += 32) sum += widen(dout[row * head_dim + x]) * widen(out[row * head_dim + x]);
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0) {
    const i64 h = row % heads, r = row / heads % rows, b = row / (heads * rows);
    delta[(b * heads + h) * rows + r] = sum;
  }
}

template <class From, class To>
__global__ void convert_kernel(const From* from, To* to, i64 count) {
  for (i64 i = static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<i64>(gridDim.x) * blockDim.x)
    to[i] = narrow<To>(widen(from[i]));
}

template <class Element>
__global__ void scale_kernel(Element* values, float factor, i64 count) {
  for (i64 i = static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<i64>(gridDim.x) * blockDim.x)
    values[i] = narrow<Element>(widen(values[i]) * factor);
}

unsigned blocks_for(i64 threads, int per_block) { return static_cast<unsigned>((threads + per_block - 1) / per_block); }

// ---- the dispatch: runtime (dtype, head_dim) → template parameters, in one place --------------------------

template <class Element, class Launch>
void with_head_dim(std::int64_t head_dim, Launch&& launch) {
  switch (head_dim) {
    case 64: return launch.template operator()<Element, 64>();
    case 128: return launch.template operator()<Element, 128>();
  }
  throw ConfigError("head_dim", std::to_string(head_dim), supported_configurations());
}

// Calls launch.operator()<Element, HeadDim>() for a tensor-core configuration.
template <class Launch>
void with_tensor_core_kernel(DType dtype, std::int64_t head_dim, Launch&& launch) {
  switch (dtype) {
    case DType::bf16: return with_head_dim<__nv_bfloat16>(head_dim, launch);
    case DType::f16: return with_head_dim<__half>(head_dim, launch);
    case DType::f32: break;
  }
  throw ConfigError("dtype", to_string(dtype), supported_configurations());
}

// Calls launch.operator()<Element>() for any element type.
template <class Launch>
void with_element(DType dtype, Launch&& launch) {
  switch (dtype) {
    case DType::f32: return launch.template operator()<float>();
    case DType::f16: return launch.template operator()<__half>();
    case DType::bf16: return launch.template operator()<__nv_bfloat16>();
  }
}

// ---- validation -------------------------------------------------------------------------------------------

std::string shape_text(const ConstDeviceTensor& t) {
  return to_string(t.dtype) + " [" + std::to_string(t.batch) + ", " + std::to_string(t.rows) + ", " +
         std::to_string(t.heads) + ", " + std::to_string(t.head_dim) + "]";
}

void require(bool condition, const std::string& parameter, const std::string& value, const std::string& valid) {
  if (!condition) throw ConfigError(parameter, value, valid);
}

void require_supported(DType dtype, std::int64_t head_dim) {
  const bool ok = dtype == DType::f32 ? head_dim >= 1 && head_dim <= 128 : head_dim == 64 || head_dim == 128;
  require(ok, "head_dim", std::to_string(head_dim) + " with " + to_string(dtype), supported_configurations());
}

void require_aligned(const void* pointer, std::size_t alignment, const std::string& name) {
  if (reinterpret_cast<std::uintptr_t>(pointer) % alignment != 0)
    throw InputError("gpu attention: " + name + " must be " + std::to_string(alignment) +
                     "-byte aligned (cudaMalloc'd memory is); " + supported_configurations());
}

// "{start, stride, count} ∪ …" (PositionSet::describe lives in the reference library, which the shared C API
// must not need).
std::string describe(const PositionSet& positions) {
  std::string text;
  for (const PositionRun& run : positions.runs)
    text += (text.empty() ? "{" : " ∪ {") + std::to_string(run.start) + ", stride " + std::to_string(run.stride) +
            ", count " + std::to_string(run.count) + "}";
  return text.empty() ? "{}" : text;
}

std::int64_t total_count(const PositionSet& positions) {
  std::int64_t count = 0;
  for (const PositionRun& run : positions.runs) count += run.count;
  return count;
}

RowMap row_map(const PositionSet& positions, const std::string& name, std::int64_t rows) {
  require(positions.runs.size() <= 2, name, describe(positions),
          "at most two runs (contiguous, striped: one; zigzag: two)");
  require(total_count(positions) == rows, name, describe(positions),
          "one position per tensor row (" + std::to_string(rows) + " rows)");
  RowMap map;
  std::int64_t first_row = 0;
  for (std::size_t r = 0; r < positions.runs.size(); ++r) {
    const PositionRun& run = positions.runs[r];
    require(run.count >= 1 && run.stride >= 1, name, describe(positions), "runs of count ≥ 1 and stride ≥ 1");
    if (r == 1)
      require(run.start > positions.runs[0].last(), name, describe(positions), "runs in increasing position order");
    map.run[r] = RowRun{run.count, first_row, 1, run.start, run.stride};
    first_row += run.count;
  }
  map.rows = first_row;
  return map;
}

void fill_dilation(AttentionParams& params, const HeadMasks& mask, const PositionSet& q_positions,
                   const PositionSet& k_positions) {
  const auto count = static_cast<std::int64_t>(mask.dilation.size());
  require(count == 0 || count == 1 || count == params.heads, "mask.dilation", std::to_string(count) + " entries",
          "0, 1 (every head) or H = " + std::to_string(params.heads) + " (one per query head)");
  require(count <= kMaxDilationHeads, "mask.dilation", std::to_string(count) + " entries",
          "per-head dilation supports at most " + std::to_string(kMaxDilationHeads) + " heads");
  constexpr std::int64_t int_max = std::numeric_limits<int>::max();
  for (std::int64_t h = 0; h < count; ++h) {
    const DilationSelect& d = mask.dilation[static_cast<std::size_t>(h)];
    require(d.segment_length >= 1 && d.segment_length <= int_max && d.rate >= 1 && d.rate <= d.segment_length &&
                d.offset >= 0 && d.offset < d.rate,
            "mask.dilation[" + std::to_string(h) + "]",
            std::to_string(d.segment_length) + ":" + std::to_string(d.rate) + " offset " + std::to_string(d.offset),
            "1 ≤ rate ≤ segment_length < 2^31 and 0 ≤ offset < rate");
    params.dilation[h] = CompactSelect{static_cast<int>(d.segment_length), static_cast<int>(d.rate),
                                       static_cast<int>(d.offset)};
  }
  params.dilation_count = static_cast<int>(count);
  if (count > 0)
    for (const PositionSet* side : {&q_positions, &k_positions})
      require(side->empty() || side->runs.front().start >= 0, "positions", describe(*side),
              "positions ≥ 0 under dilation (segments start at position 0)");
}

// The parameters shared by forward and backward, validated.
AttentionParams make_params(ConstDeviceTensor q, const PositionSet& q_positions, ConstDeviceTensor k,
                            ConstDeviceTensor v, const PositionSet& k_positions, const HeadMasks& mask, float scale) {
  require_supported(q.dtype, q.head_dim);
  require(k.dtype == q.dtype && v.dtype == q.dtype, "k, v dtype", to_string(k.dtype) + ", " + to_string(v.dtype),
          "the dtype of q (" + to_string(q.dtype) + ")");
  require(q.batch >= 1 && k.batch == q.batch && v.batch == q.batch && k.head_dim == q.head_dim &&
              v.head_dim == q.head_dim && v.rows == k.rows && v.heads == k.heads,
          "shapes", "q " + shape_text(q) + ", k " + shape_text(k) + ", v " + shape_text(v),
          "q [B, n, H, D], k and v [B, m, Hkv, D]");
  require(k.heads >= 1 && q.heads >= 1 && q.heads % k.heads == 0, "heads",
          "H = " + std::to_string(q.heads) + ", Hkv = " + std::to_string(k.heads), "H a multiple of Hkv");
  require(std::isfinite(scale), "scale", std::to_string(scale), "a finite value");
  require(q.heads * q.head_dim < (std::int64_t{1} << 31) / 2, "heads × head_dim",
          std::to_string(q.heads * q.head_dim), "below 2^30 (32-bit row strides)");
  require(q.rows < (std::int64_t{1} << 31) && k.rows < (std::int64_t{1} << 31), "rows",
          std::to_string(q.rows) + ", " + std::to_string(k.rows), "below 2^31 per block");
  const std::size_t alignment = q.dtype == DType::f32 ? 4 : 16;
  require_aligned(q.data, alignment, "q");
  require_aligned(k.data, alignment, "k");
  require_aligned(v.data, alignment, "v");

  AttentionParams params;
  params.q = q.data;
  params.k = k.data;
  params.v = v.data;
  params.batch = q.batch;
  params.heads = q.heads;
  params.kv_heads = k.heads;
  params.head_dim = q.head_dim;
  params.rows_q = q.rows;
  params.rows_k = k.rows;
  params.q_rows = row_map(q_positions, "q_positions", q.rows);
  params.k_rows = row_map(k_positions, "k_positions", k.rows);
  params.band = mask.band;
  params.scale = scale;
  params.scale_log2 = static_cast<float>(scale * 1.4426950408889634);
  fill_dilation(params, mask, q_positions, k_positions);
  return params;
}

// The most rows a head visits on each side (strided dilation selects fewer): the grid sizes. Under per-head
// dilation, also each head's rows (params.head_rows_*), by which the kernels' surplus blocks leave early.
void visited_rows(AttentionParams& params, i64& rows_q, i64& rows_k) {
  rows_q = rows_k = 0;
  const i64 heads = params.dilation_count > 1 ? params.heads : 1;
  for (i64 h = 0; h < heads; ++h) {
    const HeadView view = head_view(params, h);
    rows_q = std::max(rows_q, view.q.rows);
    rows_k = std::max(rows_k, view.k.rows);
    if (params.dilation_count > 1) {  // rows < 2^31 (make_params)
      params.head_rows_q[h] = static_cast<int>(view.q.rows);
      params.head_rows_k[h] = static_cast<int>(view.k.rows);
    }
  }
}

void require_like(ConstDeviceTensor t, ConstDeviceTensor like, DType dtype, const std::string& name,
                  const std::string& like_name) {
  require(t.dtype == dtype && t.batch == like.batch && t.rows == like.rows && t.heads == like.heads &&
              t.head_dim == like.head_dim,
          name, shape_text(t), std::string("shape of ") + like_name + " in " + to_string(dtype));
  require_aligned(t.data, dtype == DType::f32 ? 8 : 16, name);
}

// Validates a step's KernelSends and puts them in the kernel parameters. `grads_passed_on`: the call may pass a
// dK/dV accumulator on (backward with GradientWrite::accumulate).
void apply_sends(AttentionParams& params, const KernelSends& sends, ConstDeviceTensor q, ConstDeviceTensor k,
                 const HeadMasks& mask, bool grads_passed_on, const char* who) {
  require(kernel_sends_available(q.dtype, q.head_dim, q.heads, k.heads, mask), "sends", who,
          "the Hopper kernels (sm_90a) in bf16/fp16 with head_dim 64 or 128, Hkv = H and no dilation "
          "(gpu::kernel_sends_available); here: " + shape_text(q) + ", Hkv = " + std::to_string(k.heads) +
              (mask.dilation.empty() ? "" : ", dilated"));
  require((sends.k_to == nullptr) == (sends.v_to == nullptr), "sends.k_to, sends.v_to", "one of them null",
          "both device pointers, or both null");
  require((sends.dk_from == nullptr) == (sends.dv_from == nullptr), "sends.dk_from, sends.dv_from",
          "one of them null", "both device pointers, or both null");
  require(sends.dk_from == nullptr || grads_passed_on, "sends.dk_from", "set",
          "null except in block_attention_backward with GradientWrite::accumulate");
  // (In the forward dk is null, as dk_from is.)
  const bool apart = sends.k_to != k.data && sends.v_to != params.v &&
                     (sends.dk_from == nullptr || (sends.dk_from != params.dk && sends.dv_from != params.dv));
  require(apart, "sends", "k_to = k, v_to = v, dk_from = dk or dv_from = dv",
          "destinations apart from their sources (the next device's buffers)");
  for (const void* pointer : {static_cast<const void*>(sends.k_to), static_cast<const void*>(sends.v_to),
                              static_cast<const void*>(sends.dk_from), static_cast<const void*>(sends.dv_from)})
    require_aligned(pointer, 16, "sends");
  params.k_send = sends.k_to;
  params.v_send = sends.v_to;
  params.dk_from = sends.dk_from;
  params.dv_from = sends.dv_from;
}

// The sends of a call that launches no kernel (no pair to compute): the same hop by copies.
void send_by_copies(const AttentionParams& params, ConstDeviceTensor k, cudaStream_t stream) {
  const std::size_t kv_bytes = static_cast<std::size_t>(k.size()) * size_of(k.dtype);
  if (params.k_send != nullptr) {
    RINGLAB_CUDA_CHECK(cudaMemcpyAsync(params.k_send, params.k, kv_bytes, cudaMemcpyDeviceToDevice, stream));
    RINGLAB_CUDA_CHECK(cudaMemcpyAsync(params.v_send, params.v, kv_bytes, cudaMemcpyDeviceToDevice, stream));
  }
  if (params.dk_from != nullptr) {  // dK = the received accumulator + 0
    const std::size_t grad_bytes = static_cast<std::size_t>(k.size()) * 4;
    RINGLAB_CUDA_CHECK(cudaMemcpyAsync(params.dk, params.dk_from, grad_bytes, cudaMemcpyDeviceToDevice, stream));
    RINGLAB_CUDA_CHECK(cudaMemcpyAsync(params.dv, params.dv_from, grad_bytes, cudaMemcpyDeviceToDevice, stream));
  }
}

}  // namespace
}  // namespace detail

std::string supported_configurations() {
  return "supported: bf16 and fp16 with head_dim 64 or 128 (tensor-core kernels, 16-byte aligned tensors), "
         "fp32 with head_dim 1..128 (teaching kernel, for checking); BNHD tensors, H a multiple of Hkv, "
         "at most two position runs per side, per-head dilation for at most 128 heads";
}

void block_attention_forward(ConstDeviceTensor q, const PositionSet& q_positions, ConstDeviceTensor k,
                             ConstDeviceTensor v, const PositionSet& k_positions, const HeadMasks& mask, float scale,
                             DeviceTensor out, float* lse, Stream stream) {
  using namespace detail;
  AttentionParams params = make_params(q, q_positions, k, v, k_positions, mask, scale);
  require_like(out, q, q.dtype, "out", "q");
  require(lse != nullptr, "lse", "nullptr", "a device pointer to [B, H, n] floats");
  params.out = out.data;
  params.lse = lse;
  if (q.rows == 0) return;
  i64 rows_q, rows_k;
  visited_rows(params, rows_q, rows_k);
  if (params.dilation_count > 0) {
    fill_unselected<<<dim3(static_cast<unsigned>(params.rows_q), static_cast<unsigned>(params.batch)), 128, 0,
                      stream>>>(params, static_cast<int>(size_of(q.dtype)));
    RINGLAB_CUDA_CHECK(cudaGetLastError());
  }
  if (rows_q == 0) return;
  if (q.dtype == DType::f32) return launch_teaching_forward(params, rows_q, stream);
  with_tensor_core_kernel(q.dtype, q.head_dim, [&]<class Element, int HeadDim>() {
    launch_fast_forward<Element, HeadDim>(params, rows_q, stream);
  });
}

void block_attention_forward_accumulate(ConstDeviceTensor q, const PositionSet& q_positions, ConstDeviceTensor k,
                                        ConstDeviceTensor v, const PositionSet& k_positions, const HeadMasks& mask,
                                        float scale, DeviceTensor acc, float* lse, Stream stream,
                                        AccumulateStep step, DeviceTensor out, const KernelSends* sends) {
  using namespace detail;
  AttentionParams params = make_params(q, q_positions, k, v, k_positions, mask, scale);
  if (sends != nullptr) apply_sends(params, *sends, q, k, mask, false, "block_attention_forward_accumulate");
  require_like(acc, q, DType::f32, "acc", "q");
  require(lse != nullptr, "lse", "nullptr", "a device pointer to [B, H, n] floats");
  require(q.dtype != DType::f32, "q.dtype", "fp32",
          "bf16 or fp16 for the accumulating forward (fp32 inputs: block_attention_forward, then lse_merge)");
  params.accumulate = static_cast<float*>(acc.data);
  params.lse = lse;
  require(step == AccumulateStep::middle || step == AccumulateStep::first || step == AccumulateStep::last, "step",
          std::to_string(static_cast<int>(step)), "AccumulateStep::middle, first or last");
  const char* step_name = step == AccumulateStep::first ? "first" : "last";
  if (step != AccumulateStep::middle) {
    require(params.dilation_count == 0, "step", step_name,
            "middle for a dilated mask (first and last write every query row; a dilated mask visits its selected rows)");
    require(k.rows > 0, "step", step_name, "middle when there are no keys (k.rows = 0)");
  }
  if (step == AccumulateStep::last) {
    require_like(out, q, q.dtype, "out", "q");
    params.out = out.data;
  }
  params.accumulate_step = step == AccumulateStep::first  ? kAccumulateFirst
                           : step == AccumulateStep::last ? kAccumulateLast
                                                          : kAccumulateMiddle;
  i64 rows_q, rows_k;
  visited_rows(params, rows_q, rows_k);
  if (rows_q == 0 || rows_k == 0) {  // nothing selected on a side: the block adds nothing (middle only)
    send_by_copies(params, k, stream);
    return;
  }
  with_tensor_core_kernel(q.dtype, q.head_dim, [&]<class Element, int HeadDim>() {
    launch_fast_forward<Element, HeadDim>(params, rows_q, stream);
  });
}

void output_gradient_dot(ConstDeviceTensor dout, ConstDeviceTensor out, float* delta, Stream stream) {
  using namespace detail;
  require_like(dout, out, out.dtype, "dout", "out");
  require(delta != nullptr, "delta", "nullptr", "a device pointer to [B, H, n] floats");
  const i64 rows = out.batch * out.rows * out.heads;
  if (rows == 0) return;
  with_element(out.dtype, [&]<class Element>() {
    output_gradient_dot_kernel<Element><<<blocks_for(rows * 32, 256), 256, 0, stream>>>(
        static_cast<const Element*>(dout.data), static_cast<const Element*>(out.data), delta, out.batch, out.rows,
        out.heads, static_cast<int>(out.head_dim));
  });
  RINGLAB_CUDA_CHECK(cudaGetLastError());
}

void block_attention_backward(ConstDeviceTensor q, const PositionSet& q_positions, ConstDeviceTensor k,
                              ConstDeviceTensor v, const PositionSet& k_positions, const HeadMasks& mask, float scale,
                              ConstDeviceTensor dout, const float* lse, const float* delta, DeviceTensor dq,
                              DeviceTensor dk, DeviceTensor dv, Stream stream, GradientWrite write,
                              const KernelSends* sends) {
  using namespace detail;
  AttentionParams params = make_params(q, q_positions, k, v, k_positions, mask, scale);
  require_like(dout, q, q.dtype, "dout", "q");
  require_like(dq, q, DType::f32, "dq", "q");
  const bool overwrite = write == GradientWrite::overwrite;
  // overwrite: fp32 or q's dtype; accumulate: fp32.
  const DType gradient_dtype = overwrite && dk.dtype != DType::f32 ? q.dtype : DType::f32;
  require_like(dk, k, gradient_dtype, "dk", "k");
  require_like(dv, v, gradient_dtype, "dv", "v");
  require(lse != nullptr && delta != nullptr, "lse, delta", "nullptr", "device pointers to [B, H, n] floats");
  params.dout = dout.data;
  params.lse_in = lse;
  params.delta = delta;
  params.dq = static_cast<float*>(dq.data);
  if (sends != nullptr) {
    params.dk = static_cast<float*>(dk.data);  // (what the received accumulator is passed on in)
    params.dv = static_cast<float*>(dv.data);
    apply_sends(params, *sends, q, k, mask, !overwrite, "block_attention_backward");
  }
  i64 rows_q, rows_k;
  visited_rows(params, rows_q, rows_k);
  const auto clear = [&](DeviceTensor t) {
    RINGLAB_CUDA_CHECK(cudaMemsetAsync(t.data, 0, static_cast<std::size_t>(t.size()) * size_of(t.dtype), stream));
  };
  if (rows_q == 0 || rows_k == 0) {  // no pair: every gradient += 0
    if (overwrite) clear(dk), clear(dv);
    send_by_copies(params, k, stream);
    return;
  }
  const auto launch = [&] {
    if (q.dtype == DType::f32) return launch_teaching_backward(params, rows_q, rows_k, stream);
    with_tensor_core_kernel(q.dtype, q.head_dim, [&]<class Element, int HeadDim>() {
      launch_fast_backward<Element, HeadDim>(params, rows_k, stream);
    });
  };
  if (overwrite && q.dtype != DType::f32 && k.heads == q.heads && hopper_backward_available()) {
    // One writer per key row: the kernel stores them. Rows outside every head's dilated view it never visits.
    if (params.dilation_count > 0) clear(dk), clear(dv);
    params.dk_out = dk.data;
    params.dv_out = dv.data;
    params.dkv_out_fp32 = gradient_dtype == DType::f32;
    return launch();
  }
  if (!overwrite || gradient_dtype == DType::f32) {
    if (overwrite) clear(dk), clear(dv);
    params.dk = static_cast<float*>(dk.data);
    params.dv = static_cast<float*>(dv.data);
    return launch();
  }
  // overwrite in the dtype elsewhere (GQA, or not the Hopper kernel): through temporary fp32 accumulators,
  // allocated and freed in stream order, so the call stays asynchronous like every other path.
  const StreamOrderedBuffer dk32(static_cast<std::size_t>(dk.size()) * 4, stream);
  const StreamOrderedBuffer dv32(static_cast<std::size_t>(dv.size()) * 4, stream);
  const DeviceTensor dk_acc{dk32.data, DType::f32, dk.batch, dk.rows, dk.heads, dk.head_dim};
  const DeviceTensor dv_acc{dv32.data, DType::f32, dv.batch, dv.rows, dv.heads, dv.head_dim};
  clear(dk_acc), clear(dv_acc);
  params.dk = static_cast<float*>(dk32.data);
  params.dv = static_cast<float*>(dv32.data);
  launch();
  convert(dk_acc, dk, stream);
  convert(dv_acc, dv, stream);
}

void convert(ConstDeviceTensor from, DeviceTensor to, Stream stream) {
  using namespace detail;
  require(from.batch == to.batch && from.rows == to.rows && from.heads == to.heads && from.head_dim == to.head_dim,
          "convert", shape_text(from) + " → " + shape_text(to), "tensors of the same shape");
  const i64 count = from.size();
  if (count == 0) return;
  with_element(from.dtype, [&]<class From>() {
    with_element(to.dtype, [&]<class To>() {
      convert_kernel<From, To><<<std::min<unsigned>(blocks_for(count, 256), 65535u * 8u), 256, 0, stream>>>(
          static_cast<const From*>(from.data), static_cast<To*>(to.data), count);
    });
  });
  RINGLAB_CUDA_CHECK(cudaGetLastError());
}

std::vector<HeadMasks> head_mask_sets(const AttentionConfig& config) {
  const std::vector<HeadPlan> plans = plan_heads(config);
  const std::size_t count = plans.front().masks.size();
  for (std::size_t h = 0; h < plans.size(); ++h) {
    if (plans[h].masks.size() != count)
      throw ConfigError("dilation", std::to_string(config.dilation.size()) + " pattern(s)",
                        "a plan in which every head runs the same number of patterns (head " + std::to_string(h) +
                            " runs " + std::to_string(plans[h].masks.size()) + ", head 0 " + std::to_string(count) + ")");
  }
  std::vector<HeadMasks> sets;
  for (std::size_t j = 0; j < count; ++j) {
    HeadMasks set;
    set.band = plans.front().masks[j].band;
    if (plans.front().masks[j].dilation)
      for (const HeadPlan& plan : plans) set.dilation.push_back(*plan.masks[j].dilation);
    sets.push_back(std::move(set));
  }
  return sets;
}

double output_scale(const AttentionConfig& config) {
  const std::vector<HeadPlan> plans = plan_heads(config);
  for (const HeadPlan& plan : plans)
    if (plan.output_scale != plans.front().output_scale)
      throw ConfigError("combine", to_string(config.combine),
                        "a plan whose heads share one output factor on the GPU (head 0: " +
                            std::to_string(plans.front().output_scale) + ", another: " +
                            std::to_string(plan.output_scale) + ")");
  return plans.front().output_scale;
}

void scale_in_place(DeviceTensor tensor, float factor, Stream stream) {
  using namespace detail;
  const i64 count = tensor.size();
  if (count == 0) return;
  with_element(tensor.dtype, [&]<class Element>() {
    scale_kernel<Element><<<std::min<unsigned>(blocks_for(count, 256), 65535u * 8u), 256, 0, stream>>>(
        static_cast<Element*>(tensor.data), factor, count);
  });
  RINGLAB_CUDA_CHECK(cudaGetLastError());
}

bool kernel_sends_available(DType dtype, std::int64_t head_dim, std::int64_t heads, std::int64_t kv_heads,
                            const HeadMasks& mask) {
  return dtype != DType::f32 && (head_dim == 64 || head_dim == 128) && heads == kv_heads && mask.dilation.empty() &&
         detail::hopper_forward_available() && detail::hopper_backward_available();
}

void require_supported(DType dtype, std::int64_t head_dim, std::int64_t heads, bool per_head_dilation) {
  detail::require_supported(dtype, head_dim);
  if (per_head_dilation && heads > detail::kMaxDilationHeads)
    throw ConfigError("heads", std::to_string(heads),
                      "at most " + std::to_string(detail::kMaxDilationHeads) + " with per-head dilation");
}

namespace {
PositionSet whole_sequence(const AttentionConfig& config) {
  if (config.kv_seq != config.seq || config.q_start != 0)
    throw ConfigError("kv_seq/q_start", std::to_string(config.kv_seq) + "/" + std::to_string(config.q_start),
                      "self-attention for gpu::attention_forward/backward: kv_seq = seq, q_start = 0");
  PositionSet positions;
  positions.runs.push_back(PositionRun{0, 1, config.seq});
  return positions;
}
}  // namespace

void attention_forward(const AttentionConfig& config, ConstDeviceTensor q, ConstDeviceTensor k, ConstDeviceTensor v,
                       DeviceTensor out, float* lse, DeviceTensor partial_out, float* partial_lse, Stream stream) {
  const PositionSet all = whole_sequence(config);
  const std::vector<HeadMasks> masks = head_mask_sets(config);
  const auto scale = static_cast<float>(config.tau());
  for (std::size_t j = 0; j < masks.size(); ++j) {
    if (j == 0) {
      block_attention_forward(q, all, k, v, all, masks[j], scale, out, lse, stream);
      continue;
    }
    block_attention_forward(q, all, k, v, all, masks[j], scale, partial_out, partial_lse, stream);
    lse_merge(out, lse, partial_out, partial_lse, stream);
  }
  const auto factor = static_cast<float>(output_scale(config));
  if (factor != 1.0f) scale_in_place(out, factor, stream);  // group_mean: O = O'/k, LSE unchanged
}

void attention_backward(const AttentionConfig& config, ConstDeviceTensor q, ConstDeviceTensor k, ConstDeviceTensor v,
                        ConstDeviceTensor out, const float* lse, ConstDeviceTensor dout, float* delta, DeviceTensor dq,
                        DeviceTensor dk, DeviceTensor dv, Stream stream) {
  const PositionSet all = whole_sequence(config);
  for (const DeviceTensor* gradient : {&dq, &dk, &dv})  // checked before the zeroing writes size·4 bytes
    if (gradient->dtype != DType::f32)
      throw ConfigError("dq/dk/dv dtype", to_string(gradient->dtype), "fp32 accumulators");
  for (const DeviceTensor* gradient : {&dq, &dk, &dv})
    RINGLAB_CUDA_CHECK(cudaMemsetAsync(gradient->data, 0, static_cast<std::size_t>(gradient->size()) * 4, stream));
  output_gradient_dot(dout, out, delta, stream);
  // group_mean (O = c·O'): the kernels' gradients are linear in (dO, δ), so run them with dO and δ/c, then
  // multiply by c (output_scale).
  const auto factor = static_cast<float>(output_scale(config));
  const DeviceTensor delta_view{delta, DType::f32, dout.batch, dout.rows, dout.heads, 1};
  if (factor != 1.0f) scale_in_place(delta_view, 1.0f / factor, stream);
  for (const HeadMasks& mask : head_mask_sets(config))
    block_attention_backward(q, all, k, v, all, mask, static_cast<float>(config.tau()), dout, lse, delta, dq, dk, dv,
                             stream);
  if (factor != 1.0f)
    for (const DeviceTensor* gradient : {&dq, &dk, &dv}) scale_in_place(*gradient, factor, stream);
}

}  // namespace ringlab::gpu
