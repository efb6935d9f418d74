// The ring driver (issue 6): one per-rank driver over the shared RingSchedule (ring_driver.cuh), the
// CopyTransport and VirtualRing (P virtual devices on one GPU). gpu::NcclRing (nccl_ring.cu) runs the same
// driver with an NCCL transport. See include/ringlab/gpu/ring.hpp and docs/gpu-rings.md.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "cuda_check.cuh"
#include "element.cuh"
#include "ring_driver.cuh"
#include "ringlab/errors.hpp"
#include "ringlab/gpu/lse_merge.hpp"
#include "ringlab/mask.hpp"

namespace ringlab::gpu {
namespace detail {
namespace {

__global__ void fill_kernel(float* __restrict__ values, i64 count, float value) {
  for (i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<i64>(gridDim.x) * blockDim.x)
    values[i] = value;
}

void fill(float* values, i64 count, float value, cudaStream_t stream) {
  if (count <= 0) return;
  const int blocks = static_cast<int>(std::min<i64>((count + 255) / 256, 1024));
  fill_kernel<<<blocks, 256, 0, stream>>>(values, count, value);
  RINGLAB_CUDA_CHECK(cudaGetLastError());
}


__global__ void add_kernel(float* __restrict__ into, const float* __restrict__ values, i64 count) {
  for (i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<i64>(gridDim.x) * blockDim.x)
    into[i] += values[i];
}

void add(float* into, const float* values, i64 count, cudaStream_t stream) {
  if (count <= 0) return;
  const int blocks = static_cast<int>(std::min<i64>((count + 255) / 256, 4096));
  add_kernel<<<blocks, 256, 0, stream>>>(into, values, count);
  RINGLAB_CUDA_CHECK(cudaGetLastError());
}

// out = round((total + partial) · factor) in Element: the held chunk's finished dK or dV, ready for the hop
// home (partial: the last step's share not yet added, or null).
template <class Element>
__global__ void finish_gradient_kernel(Element* __restrict__ out, const float* __restrict__ total,
                                       const float* __restrict__ partial, i64 count, float factor) {
  for (i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<i64>(gridDim.x) * blockDim.x)
    out[i] = narrow<Element>((total[i] + (partial ? partial[i] : 0.0f)) * factor);
}

void finish_gradient(DType dtype, void* out, const float* total, const float* partial, i64 count, float factor,
                     cudaStream_t stream) {
  if (count <= 0) return;
  const int blocks = static_cast<int>(std::min<i64>((count + 255) / 256, 4096));
  if (dtype == DType::bf16)
    finish_gradient_kernel<<<blocks, 256, 0, stream>>>(static_cast<__nv_bfloat16*>(out), total, partial, count, factor);
  else if (dtype == DType::f16)
    finish_gradient_kernel<<<blocks, 256, 0, stream>>>(static_cast<__half*>(out), total, partial, count, factor);
  else
    throw Error("internal error: finish_gradient for " + to_string(dtype));
  RINGLAB_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

// ---- RingProblem, EventPool, RingRank ---------------------------------------------------------------------

RingProblem::RingProblem(const AttentionConfig& config_in, DType dtype_in, GradientPrecision gradients,
                         const char* who)
    : config(config_in),
      dtype(dtype_in),
      // q_replicated: dK, dV never travel, so there is no hop for the dtype to halve; they stay fp32.
      gradient_dtype(gradients == GradientPrecision::input && !config_in.q_replicated ? dtype_in : DType::f32) {
  config.validate();
  const std::string where = std::string("the GPU ring (") + who + ")";
  if (config.kv_seq != config.seq || config.q_start != 0)
    throw ConfigError("kv_seq/q_start", std::to_string(config.kv_seq) + "/" + std::to_string(config.q_start),
                      where + " needs self-attention: kv_seq = seq, q_start = 0");
  ScheduleOptions schedule_options{static_cast<i64>(size_of(dtype))};
  schedule_options.returned_gradient_bytes_per_element = static_cast<i64>(size_of(gradient_dtype));
  schedule = make_ring_schedule(config, schedule_options);
  masks = head_mask_sets(config);  // LongNet: one set per pattern
  output_factor = static_cast<float>(output_scale(config));
  require_supported(dtype, config.head_dim, config.heads, config.dilated());  // before any buffer exists
  scale = static_cast<float>(config.tau());
  for (int p = 0; p < schedule.ring_size; ++p) {
    const i64 rows = schedule.chunk_positions[p].size();
    if (rows == 0)
      throw ConfigError("seq", std::to_string(config.seq),
                        "every device of " + where + " must own a token (device " + std::to_string(p) +
                            " owns none with P = " + std::to_string(schedule.ring_size) + ")");
    max_rows = std::max(max_rows, rows);
  }
}

PassOptions pass_options(const RingPassOptions& options) {
  if (options.repeat < 1) throw ConfigError("repeat", std::to_string(options.repeat), "at least 1 pass");
  PassOptions pass;
  pass.compute = options.compute;
  pass.transfer = options.transfer;
  return pass;
}

cudaStream_t create_transfer_stream(bool high_priority) {
  int least = 0, greatest = 0;
  RINGLAB_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  cudaStream_t stream = nullptr;
  RINGLAB_CUDA_CHECK(cudaStreamCreateWithPriority(&stream, cudaStreamNonBlocking, high_priority ? greatest : least));
  return stream;
}

EventPool::~EventPool() {
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
}

cudaEvent_t EventPool::record(cudaStream_t stream) {
  if (next_ == events_.size()) {
    cudaEvent_t e = nullptr;
    RINGLAB_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    events_.push_back(e);
  }
  cudaEvent_t e = events_[next_++];
  RINGLAB_CUDA_CHECK(cudaEventRecord(e, stream));
  return e;
}

RingRank::RingRank(const RingProblem& problem, int rank_) : rank(rank_) {
  const AttentionConfig& c = problem.config;
  const i64 B = c.batch, H = c.heads, Hkv = c.kv_heads, D = c.head_dim;
  const auto es = static_cast<i64>(size_of(problem.dtype));
  auto bytes = [](i64 n) { return static_cast<std::size_t>(n); };
  positions = problem.schedule.devices[rank].query_positions;
  rows = positions.size();
  kv_positions = problem.schedule.chunk_positions[rank];
  kv_rows = kv_positions.size();
  const i64 n = rows, m = problem.max_rows;
  q = DeviceBuffer(bytes(B * n * H * D * es));
  k_home = DeviceBuffer(bytes(B * kv_rows * Hkv * D * es));
  v_home = DeviceBuffer(bytes(B * kv_rows * Hkv * D * es));
  for (int i = 0; i < 2; ++i) {
    k[i] = DeviceBuffer(bytes(B * m * Hkv * D * es));
    v[i] = DeviceBuffer(bytes(B * m * Hkv * D * es));
  }
  if (c.q_replicated) {  // the own chunk's dK/dV only (ring_driver.cuh)
    dk[0] = DeviceBuffer(bytes(B * kv_rows * Hkv * D * 4));
    dv[0] = DeviceBuffer(bytes(B * kv_rows * Hkv * D * 4));
  } else {
    for (int i = 0; i < 2; ++i) {
      dk[i] = DeviceBuffer(bytes(B * m * Hkv * D * 4));
      dv[i] = DeviceBuffer(bytes(B * m * Hkv * D * 4));
    }
  }
  acc_dq = DeviceBuffer(bytes(B * n * H * D * 4));
  out = DeviceBuffer(bytes(B * n * H * D * es));
  lse = DeviceBuffer(bytes(B * H * n * 4));
  if (problem.dtype == DType::f32) {  // bf16/fp16 merge in the kernel's epilogue (block_attention_forward_accumulate)
    partial_out = DeviceBuffer(bytes(B * n * H * D * es));
    partial_lse = DeviceBuffer(bytes(B * H * n * 4));
  }
  dout = DeviceBuffer(bytes(B * n * H * D * es));
  delta = DeviceBuffer(bytes(B * H * n * 4));
  if (problem.schedule.ring_size > 1) {
    dk_step = DeviceBuffer(bytes(B * m * Hkv * D * 4));
    dv_step = DeviceBuffer(bytes(B * m * Hkv * D * 4));
  }
  // Where the own chunk's dK/dV end up: the last hop's receive buffer, or, when nothing travels (local_only),
  // the step-0 accumulator 0 — or accumulator 1, which the rounded total is written into. q_replicated: 0.
  if (c.q_replicated) home_index = 0;
  else if (!problem.schedule.local_only) home_index = problem.schedule.ring_size % 2;
  else home_index = problem.gradient_dtype != DType::f32 ? 1 : 0;
  RINGLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
}

RingRank::~RingRank() {
  if (stream) {
    cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
  }
}

std::vector<const DeviceBuffer*> RingRank::buffers() const {
  return {&q,           &k_home, &v_home, &k[0],  &k[1],  &v[0],  &v[1],  &acc_dq,  &out,    &lse,
          &partial_out, &partial_lse, &dout, &delta, &dk[0], &dk[1], &dv[0], &dv[1], &dk_step, &dv_step};
}

std::size_t RingRank::bytes() const {
  std::size_t total = 0;
  for (const DeviceBuffer* b : buffers()) total += b->bytes();
  return total;
}

namespace {
void fill_with_nan(std::span<const DeviceBuffer* const> buffers, cudaStream_t on) {  // 0xFF bytes: NaN in every dtype
  for (const DeviceBuffer* b : buffers)
    if (b->bytes() > 0) RINGLAB_CUDA_CHECK(cudaMemsetAsync(b->data(), 0xFF, b->bytes(), on));
}
}  // namespace

void RingRank::poison(cudaStream_t on) { fill_with_nan(buffers(), on); }

void RingRank::poison_in_transit(cudaStream_t on) {
  const DeviceBuffer* in_transit[] = {&k[0], &k[1], &v[0], &v[1], &dk[0], &dk[1], &dv[0], &dv[1], &dk_step, &dv_step};
  fill_with_nan(in_transit, on);
}

void copy_rows(const PositionSet& positions, i64 batch, i64 whole_rows, i64 row_bytes, const void* from, void* to,
               bool to_shard, cudaStream_t stream) {
  const i64 shard_rows = positions.size();
  for (i64 b = 0; b < batch; ++b) {
    i64 offset = 0;
    for (const PositionRun& run : positions.runs) {
      auto* whole = static_cast<char*>(const_cast<void*>(to_shard ? from : to)) + (b * whole_rows + run.start) * row_bytes;
      auto* shard = static_cast<char*>(const_cast<void*>(to_shard ? to : from)) + (b * shard_rows + offset) * row_bytes;
      const auto pitch = static_cast<std::size_t>(run.stride * row_bytes);
      const auto width = static_cast<std::size_t>(row_bytes);
      const auto height = static_cast<std::size_t>(run.count);
      if (to_shard)
        RINGLAB_CUDA_CHECK(cudaMemcpy2DAsync(shard, width, whole, pitch, width, height, cudaMemcpyDeviceToDevice, stream));
      else
        RINGLAB_CUDA_CHECK(cudaMemcpy2DAsync(whole, pitch, shard, width, width, height, cudaMemcpyDeviceToDevice, stream));
      offset += run.count;
    }
  }
}

namespace {

void require(const ConstDeviceTensor& t, DType dtype, const AttentionConfig& c, i64 heads, const std::string& what) {
  if (t.dtype != dtype || t.batch != c.batch || t.rows != c.seq || t.heads != heads || t.head_dim != c.head_dim)
    throw InputError(what + " must be [B, N, heads, D] = [" + std::to_string(c.batch) + ", " + std::to_string(c.seq) +
                     ", " + std::to_string(heads) + ", " + std::to_string(c.head_dim) + "] in " + to_string(dtype) +
                     " (got [" + std::to_string(t.batch) + ", " + std::to_string(t.rows) + ", " + std::to_string(t.heads) +
                     ", " + std::to_string(t.head_dim) + "] in " + to_string(t.dtype) + ")");
}

}  // namespace

void RingRank::load(const RingProblem& problem, ConstDeviceTensor q_whole, ConstDeviceTensor k_whole,
                    ConstDeviceTensor v_whole, cudaStream_t on) {
  const AttentionConfig& c = problem.config;
  require(q_whole, problem.dtype, c, c.heads, "load: q");
  require(k_whole, problem.dtype, c, c.kv_heads, "load: k");
  require(v_whole, problem.dtype, c, c.kv_heads, "load: v");
  const auto es = static_cast<i64>(size_of(problem.dtype));
  copy_rows(positions, c.batch, c.seq, c.heads * c.head_dim * es, q_whole.data, q.data(), true, on);
  copy_rows(kv_positions, c.batch, c.seq, c.kv_heads * c.head_dim * es, k_whole.data, k_home.data(), true, on);
  copy_rows(kv_positions, c.batch, c.seq, c.kv_heads * c.head_dim * es, v_whole.data, v_home.data(), true, on);
}

void RingRank::load_output_gradient(const RingProblem& problem, ConstDeviceTensor dout_whole, cudaStream_t on) {
  const AttentionConfig& c = problem.config;
  require(dout_whole, problem.dtype, c, c.heads, "load_output_gradient: dout");
  const auto es = static_cast<i64>(size_of(problem.dtype));
  copy_rows(positions, c.batch, c.seq, c.heads * c.head_dim * es, dout_whole.data, dout.data(), true, on);
}

void RingRank::gather_output(const RingProblem& problem, DeviceTensor out_whole, float* lse_whole, cudaStream_t on) const {
  const AttentionConfig& c = problem.config;
  require(out_whole, problem.dtype, c, c.heads, "gather_output: out");
  const i64 B = c.batch, N = c.seq, H = c.heads, D = c.head_dim;
  const auto es = static_cast<i64>(size_of(problem.dtype));
  copy_rows(positions, B, N, H * D * es, out.data(), out_whole.data, false, on);
  // LSE [B, H, n]: position is the last index; one strided copy of 4-byte rows per (b, h, run).
  for (i64 bh = 0; bh < B * H; ++bh) {
    i64 offset = 0;
    for (const PositionRun& run : positions.runs) {
      RINGLAB_CUDA_CHECK(cudaMemcpy2DAsync(lse_whole + bh * N + run.start, static_cast<std::size_t>(run.stride * 4),
                                           lse.as<float>() + bh * rows + offset, 4, 4,
                                           static_cast<std::size_t>(run.count), cudaMemcpyDeviceToDevice, on));
      offset += run.count;
    }
  }
}

ConstDeviceTensor RingRank::home_gradient(const RingProblem& problem, bool value_side) const {
  const AttentionConfig& c = problem.config;
  const DeviceBuffer& home = value_side ? dv[home_index] : dk[home_index];
  return {home.data(), problem.gradient_dtype, c.batch, kv_rows, c.kv_heads, c.head_dim};
}

void RingRank::gather_gradients(const RingProblem& problem, DeviceTensor dq_whole, DeviceTensor dk_whole,
                                DeviceTensor dv_whole, cudaStream_t on, bool with_dq) {
  const AttentionConfig& c = problem.config;
  require(dq_whole, DType::f32, c, c.heads, "gather_gradients: dq");
  require(dk_whole, DType::f32, c, c.kv_heads, "gather_gradients: dk");
  require(dv_whole, DType::f32, c, c.kv_heads, "gather_gradients: dv");
  const i64 B = c.batch, N = c.seq, D = c.head_dim;
  if (with_dq) copy_rows(positions, B, N, c.heads * D * 4, acc_dq.data(), dq_whole.data, false, on);
  const DeviceBuffer* dk_fp32 = &dk[home_index];
  const DeviceBuffer* dv_fp32 = &dv[home_index];
  if (problem.gradient_dtype != DType::f32) {  // widen into the free accumulators (only read again by backward)
    const int spare = 1 - home_index;
    convert(home_gradient(problem, false), DeviceTensor{dk[spare].data(), DType::f32, B, kv_rows, c.kv_heads, D}, on);
    convert(home_gradient(problem, true), DeviceTensor{dv[spare].data(), DType::f32, B, kv_rows, c.kv_heads, D}, on);
    dk_fp32 = &dk[spare];
    dv_fp32 = &dv[spare];
  }
  copy_rows(kv_positions, B, N, c.kv_heads * D * 4, dk_fp32->data(), dk_whole.data, false, on);
  copy_rows(kv_positions, B, N, c.kv_heads * D * 4, dv_fp32->data(), dv_whole.data, false, on);
}

// ---- the driver -------------------------------------------------------------------------------------------

namespace {

void* k_held(RingRank& r, int s) { return s == 0 ? r.k_home.data() : r.k[s % 2].data(); }
void* v_held(RingRank& r, int s) { return s == 0 ? r.v_home.data() : r.v[s % 2].data(); }

// Every rank posts step s + 1's K/V hop (its held chunk to the next rank's buffer (s + 1) mod 2) after
// `ready[i]`; returns each rank's arrival event (null when transfers are off).
void post_kv_round(const RingProblem& problem, std::span<RingRank* const> ranks, Transport& transport, int s,
                   std::span<const cudaEvent_t> ready, std::span<cudaEvent_t> arrived, bool transfer) {
  const AttentionConfig& c = problem.config;
  const i64 row_bytes = c.batch * c.kv_heads * c.head_dim * static_cast<i64>(size_of(problem.dtype));
  if (!transfer) {
    std::fill(arrived.begin(), arrived.end(), nullptr);
    return;
  }
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    RingRank& r = *ranks[i];
    const auto send_bytes = static_cast<std::size_t>(problem.schedule.at(r.rank, s).kv_rows * row_bytes);
    const auto recv_bytes = static_cast<std::size_t>(problem.schedule.at(r.rank, s + 1).kv_rows * row_bytes);
    const Hop hops[2] = {{k_held(r, s), send_bytes, r.k[(s + 1) % 2].data(), recv_bytes},
                         {v_held(r, s), send_bytes, r.v[(s + 1) % 2].data(), recv_bytes}};
    transport.post(r.rank, hops, ready[i]);
  }
  transport.flush();
  for (std::size_t i = 0; i < ranks.size(); ++i) arrived[i] = transport.arrived(ranks[i]->rank);
}

void begin(std::span<RingRank* const> ranks, Transport& transport, std::span<const cudaEvent_t> start, bool continues) {
  transport.begin_pass();
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    if (!continues) {  // a repeated pass keeps them: the watchdog reads every pass's step events
      ranks[i]->events.reset();
      ranks[i]->step_done.clear();
    }
    if (i < start.size() && start[i]) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(ranks[i]->stream, start[i], 0));
  }
}

void wait_for(RingRank& r, cudaEvent_t event) {
  if (event) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(r.stream, event, 0));
}

// RingProblem::hops_by_kernels for this pass (a pass without compute or without transfers keeps the transport's
// path: the benchmark's split). Every rank must be here, in rank order: a kernel writes its neighbour's buffers.
bool kernel_hops(const RingProblem& problem, std::span<RingRank* const> ranks, const PassOptions& options) {
  if (!problem.hops_by_kernels || !options.compute || !options.transfer) return false;
  bool in_order = ranks.size() == static_cast<std::size_t>(problem.schedule.ring_size);
  for (std::size_t i = 0; i < ranks.size(); ++i) in_order = in_order && ranks[i]->rank == static_cast<int>(i);
  if (!in_order) throw Error("internal error: hops by kernels need every rank of the ring in one driver call, in order");
  return true;
}

// Rank i's step s under kernel hops waits for its two neighbours' step s − 1 (`previous`): rank i − 1's kernel
// sent it the chunk (and accumulator) it holds, and rank i + 1 last read the buffers rank i's kernel writes.
void wait_for_neighbours(RingRank& r, std::span<const cudaEvent_t> previous, std::size_t i) {
  const std::size_t P = previous.size();
  wait_for(r, previous[(i + P - 1) % P]);
  wait_for(r, previous[(i + 1) % P]);
}

// A step whose kernel sends nothing (a skipped step, or one that launches plain block_attention_forward) under
// kernel hops: the held K/V go on by copies on the rank's stream.
void copy_held_kv_on(const RingProblem& problem, RingRank& r, RingRank& next, int s) {
  const AttentionConfig& c = problem.config;
  const auto bytes = static_cast<std::size_t>(problem.schedule.at(r.rank, s).kv_rows * c.batch * c.kv_heads *
                                              c.head_dim * static_cast<i64>(size_of(problem.dtype)));
  RINGLAB_CUDA_CHECK(cudaMemcpyAsync(next.k[(s + 1) % 2].data(), k_held(r, s), bytes, cudaMemcpyDeviceToDevice, r.stream));
  RINGLAB_CUDA_CHECK(cudaMemcpyAsync(next.v[(s + 1) % 2].data(), v_held(r, s), bytes, cudaMemcpyDeviceToDevice, r.stream));
}

}  // namespace

void ring_forward(const RingProblem& problem, std::span<RingRank* const> ranks, Transport& transport,
                  std::span<const cudaEvent_t> start, PassOptions options) {
  const AttentionConfig& c = problem.config;
  const int P = problem.schedule.ring_size;
  const i64 B = c.batch, H = c.heads, Hkv = c.kv_heads, D = c.head_dim;
  const DType dtype = problem.dtype;
  begin(ranks, transport, start, options.continues);
  // With one mask set in bf16/fp16 a rank whose steps compute once (every rank of a local_only ring: plain
  // attention within its chunk) writes O in the dtype and the LSE with one kernel, and a rank that never
  // computes just clears them: no fp32 accumulator to clear, merge into and convert (for dilated rings, whose
  // steps are short, those passes cost as much as the kernel). Rings with one undilated mask (the dense ones)
  // stage the merges of ranks that compute more than once (AccumulateStep): the first computing step writes
  // (O, LSE) over the accumulator and the last writes O in the dtype — no clearing beforehand, no merge into
  // zeros, no conversion pass after (~4 % of a 2-GPU zigzag forward at 16K tokens per GPU). Dilated masks visit
  // only their selected rows, so their multi-step rings clear, merge and convert.
  const bool one_mask = problem.masks.size() == 1 && dtype != DType::f32;
  const bool staged = one_mask && problem.masks[0].dilation.empty() && problem.output_factor == 1.0f;
  std::vector<int> first_step(ranks.size(), -1), last_step(ranks.size(), -1);  // the rank's computing steps
  for (std::size_t i = 0; i < ranks.size(); ++i)
    for (int s = 0; s < P; ++s)
      if (!problem.schedule.at(ranks[i]->rank, s).skipped) {
        if (first_step[i] < 0) first_step[i] = s;
        last_step[i] = s;
      }
  auto direct = [&](std::size_t i) { return one_mask && first_step[i] == last_step[i]; };  // (or never computes)
  auto writes_out = [&](std::size_t i) { return direct(i) || staged; };  // O itself, never the fp32 accumulator
  // A pass without compute (the benchmark's transfers-only pass) times what moves: no clearing or conversion
  // either (its O and LSE are left as they were).
  const bool transfers_only = !options.compute;
  const bool by_kernels = kernel_hops(problem, ranks, options);
  std::vector<cudaEvent_t> ready(ranks.size()), arrived(ranks.size(), nullptr), next_arrived(ranks.size(), nullptr);
  for (std::size_t i = 0; i < ranks.size() && !transfers_only; ++i) {  // (O, LSE) = (0, −∞): in fp32, or O itself
    RingRank* r = ranks[i];
    if (writes_out(i) && first_step[i] >= 0) continue;  // its first computing step writes them
    if (writes_out(i)) RINGLAB_CUDA_CHECK(cudaMemsetAsync(r->out.data(), 0, r->out.bytes(), r->stream));
    else RINGLAB_CUDA_CHECK(cudaMemsetAsync(r->acc_dq.data(), 0, r->acc_dq.bytes(), r->stream));
    fill(r->lse.as<float>(), B * H * r->rows, -INFINITY, r->stream);
  }
  for (std::size_t i = 0; i < ranks.size(); ++i) ready[i] = ranks[i]->events.record(ranks[i]->stream);
  for (int s = 0; s < P; ++s) {
    if (options.before_step) options.before_step(s);
    // Step s + 1's chunk travels during step s; ready = this rank finished step s − 1, the last reader of
    // buffer (s + 1) mod 2 (and, at s = 0, the initialisation above).
    if (s + 1 < P && !problem.schedule.local_only && !by_kernels)
      post_kv_round(problem, ranks, transport, s, ready, next_arrived, options.transfer);
    const std::vector<cudaEvent_t> previous = ready;  // each rank's step s − 1
    for (std::size_t i = 0; i < ranks.size(); ++i) {
      RingRank& r = *ranks[i];
      if (by_kernels && s > 0) wait_for_neighbours(r, previous, i);
      else wait_for(r, arrived[i]);
      const RingStep& step = problem.schedule.at(r.rank, s);
      // Kernel hops: this step's kernel sends the held chunk on to rank p + 1's buffer (s + 1) mod 2.
      const bool sends_now = by_kernels && s + 1 < P;
      KernelSends kv_sends;
      if (sends_now) {
        RingRank& next = *ranks[(i + 1) % ranks.size()];
        kv_sends.k_to = next.k[(s + 1) % 2].data();
        kv_sends.v_to = next.v[(s + 1) % 2].data();
      }
      bool sent = false;
      if (!step.skipped && options.compute) {
        const ConstDeviceTensor q(r.q.data(), dtype, B, r.rows, H, D);
        const ConstDeviceTensor k(k_held(r, s), dtype, B, step.kv_rows, Hkv, D);
        const ConstDeviceTensor v(v_held(r, s), dtype, B, step.kv_rows, Hkv, D);
        const PositionSet& k_positions = problem.schedule.chunk_positions[step.kv_owner];
        for (const HeadMasks& mask : problem.masks) {  // dilation: each pattern's attention, ⊕-merged
          const DeviceTensor out{r.out.data(), dtype, B, r.rows, H, D};
          if (direct(i)) {
            block_attention_forward(q, r.positions, k, v, k_positions, mask, problem.scale, out, r.lse.as<float>(),
                                    r.stream);
            continue;
          }
          if (staged) {
            const AccumulateStep staging = s == first_step[i] ? AccumulateStep::first
                                           : s == last_step[i] ? AccumulateStep::last
                                                               : AccumulateStep::middle;
            block_attention_forward_accumulate(q, r.positions, k, v, k_positions, mask, problem.scale,
                                               DeviceTensor{r.acc_dq.data(), DType::f32, B, r.rows, H, D},
                                               r.lse.as<float>(), r.stream, staging, out,
                                               sends_now ? &kv_sends : nullptr);
            sent = sends_now;
            continue;
          }
          if (dtype != DType::f32) {  // the tensor-core kernel merges into (O, LSE) in its epilogue
            block_attention_forward_accumulate(q, r.positions, k, v, k_positions, mask, problem.scale,
                                               DeviceTensor{r.acc_dq.data(), DType::f32, B, r.rows, H, D},
                                               r.lse.as<float>(), r.stream, AccumulateStep::middle, {},
                                               sends_now ? &kv_sends : nullptr);
            sent = sends_now;
            continue;
          }
          // fp32 rings (teaching kernels): a partial (O, LSE), then the ⊕ kernel (both fp32).
          const DeviceTensor partial{r.partial_out.data(), DType::f32, B, r.rows, H, D};
          block_attention_forward(q, r.positions, k, v, k_positions, mask, problem.scale, partial,
                                  r.partial_lse.as<float>(), r.stream);
          lse_merge(DeviceTensor{r.acc_dq.data(), DType::f32, B, r.rows, H, D}, r.lse.as<float>(), partial,
                    r.partial_lse.as<float>(), r.stream);
        }
      }
      if (sends_now && !sent) copy_held_kv_on(problem, r, *ranks[(i + 1) % ranks.size()], s);
      ready[i] = r.events.record(r.stream);
      r.step_done.push_back(ready[i]);
    }
    arrived = next_arrived;
  }
  for (std::size_t i = 0; i < ranks.size(); ++i) {  // O in the input dtype (times 1/k under group_mean; the LSE stays)
    RingRank* r = ranks[i];
    const DeviceTensor out{r->out.data(), dtype, B, r->rows, H, D};
    if (!writes_out(i) && !transfers_only)
      convert(ConstDeviceTensor(r->acc_dq.data(), DType::f32, B, r->rows, H, D), out, r->stream);
    if (problem.output_factor != 1.0f && !transfers_only) scale_in_place(out, problem.output_factor, r->stream);
    r->step_done.push_back(r->events.record(r->stream));
  }
}

void ring_backward(const RingProblem& problem, std::span<RingRank* const> ranks, Transport& transport,
                   std::span<const cudaEvent_t> start, PassOptions options) {
  const AttentionConfig& c = problem.config;
  const int P = problem.schedule.ring_size;
  const i64 B = c.batch, H = c.heads, Hkv = c.kv_heads, D = c.head_dim;
  const DType dtype = problem.dtype;
  const i64 grad_row_bytes = B * Hkv * D * 4;
  // GradientPrecision::input: the final hop home moves the finished dK/dV rounded to the dtype.
  const bool rounded_return = problem.gradient_dtype != DType::f32;
  // local_only: every step after 0 is skipped everywhere, nothing travels; the own chunk's dK/dV are complete
  // after step 0 (rounded, when asked, into accumulator 1: home_index). q_replicated: K/V still travel (dQ of all
  // queries needs every chunk), dK/dV never do: step 0 computes the own chunk's from all queries; the kernels of
  // later steps write theirs into dk_step/dv_step, which nobody reads (the seed variant's redundant work).
  const bool local = problem.schedule.local_only;
  const bool replicated = c.q_replicated;
  const int complete_after = local ? 0 : P - 1;
  const i64 returned_row_bytes = B * Hkv * D * static_cast<i64>(size_of(problem.gradient_dtype));
  // Kernel hops (RingProblem::hops_by_kernels): step s < P − 1's kernel sends the held K/V and writes the held
  // chunk's accumulator, its share added, into rank p + 1's buffers (s + 1) mod 2; only the hop home after the
  // last step goes through the transport.
  const bool by_kernels = kernel_hops(problem, ranks, options);  // (never local_only or q_replicated: VirtualRing)
  begin(ranks, transport, start, options.continues);
  std::vector<cudaEvent_t> ready(ranks.size()), kv_arrived(ranks.size(), nullptr),
      next_kv_arrived(ranks.size(), nullptr), grads_arrived(ranks.size(), nullptr);
  for (RingRank* r : ranks) {
    output_gradient_dot(ConstDeviceTensor(r->dout.data(), dtype, B, r->rows, H, D),
                        ConstDeviceTensor(r->out.data(), dtype, B, r->rows, H, D), r->delta.as<float>(), r->stream);
    // group_mean (O = c·O'): run the kernels with dO and δ/c, multiply the gradients by c at the end.
    if (problem.output_factor != 1.0f)
      scale_in_place(DeviceTensor{r->delta.data(), DType::f32, B, r->rows, H, 1}, 1.0f / problem.output_factor,
                     r->stream);
    RINGLAB_CUDA_CHECK(cudaMemsetAsync(r->acc_dq.data(), 0, r->acc_dq.bytes(), r->stream));  // dQ from here on
  }
  for (std::size_t i = 0; i < ranks.size(); ++i) ready[i] = ranks[i]->events.record(ranks[i]->stream);
  for (int s = 0; s < P; ++s) {
    if (options.before_step) options.before_step(s);
    // K/V of step s + 1 travel during step s (buffer (s + 1) mod 2 was last read at step s − 1).
    if (s + 1 < P && !local && !by_kernels)
      post_kv_round(problem, ranks, transport, s, ready, next_kv_arrived, options.transfer);
    const std::vector<cudaEvent_t> previous = ready;  // each rank's step s − 1
    for (std::size_t i = 0; i < ranks.size(); ++i) {
      RingRank& r = *ranks[i];
      if (by_kernels && s > 0) wait_for_neighbours(r, previous, i);
      else wait_for(r, kv_arrived[i]);
      const RingStep& step = problem.schedule.at(r.rank, s);
      RingRank& next = *ranks[(i + 1) % ranks.size()];
      const bool sends_now = by_kernels && s + 1 < P;
      const i64 grad_count = B * step.kv_rows * Hkv * D;
      // dk[s mod 2] is the held chunk's accumulator (step s ≥ 1: received from rank p − 1 in the round posted
      // after its step s − 1); step 0 writes it directly, later steps dk_step, which is added to it. The first
      // pattern's kernel overwrites (with one writer per key row it stores, so nothing is zeroed first), later
      // patterns add.
      // gradients_added_by_kernel: step s ≥ 1's kernel adds into the arrived accumulator dk[s mod 2] itself.
      // Kernel hops: the kernel writes the accumulator it sends on, in rank p + 1's dk[(s + 1) mod 2] (step 0:
      // overwriting; later: the received dk[s mod 2] plus its share), and at the last step adds in place.
      const bool into_accumulator = by_kernels || s == 0 || (problem.gradients_added_by_kernel && !replicated);
      float* dk_into = sends_now          ? next.dk[(s + 1) % 2].as<float>()
                       : into_accumulator ? r.dk[s % 2].as<float>()
                                          : r.dk_step.as<float>();
      float* dv_into = sends_now          ? next.dv[(s + 1) % 2].as<float>()
                       : into_accumulator ? r.dv[s % 2].as<float>()
                                          : r.dv_step.as<float>();
      KernelSends sends;
      if (sends_now) {
        sends.k_to = next.k[(s + 1) % 2].data();
        sends.v_to = next.v[(s + 1) % 2].data();
        if (s > 0) sends.dk_from = r.dk[s % 2].as<float>(), sends.dv_from = r.dv[s % 2].as<float>();
      }
      const bool compute = !step.skipped && options.compute;
      if (s > 0 && into_accumulator && !by_kernels) wait_for(r, grads_arrived[i]);
      if (!compute && s == 0) {  // the home chunk's accumulator still starts at zero
        RINGLAB_CUDA_CHECK(cudaMemsetAsync(dk_into, 0, static_cast<std::size_t>(grad_count * 4), r.stream));
        RINGLAB_CUDA_CHECK(cudaMemsetAsync(dv_into, 0, static_cast<std::size_t>(grad_count * 4), r.stream));
      }
      if (compute) {
        for (std::size_t m = 0; m < problem.masks.size(); ++m)  // the global LSE and δ serve every pattern's backward
          block_attention_backward(
              ConstDeviceTensor(r.q.data(), dtype, B, r.rows, H, D), r.positions,
              ConstDeviceTensor(k_held(r, s), dtype, B, step.kv_rows, Hkv, D),
              ConstDeviceTensor(v_held(r, s), dtype, B, step.kv_rows, Hkv, D),
              problem.schedule.chunk_positions[step.kv_owner], problem.masks[m], problem.scale,
              ConstDeviceTensor(r.dout.data(), dtype, B, r.rows, H, D), r.lse.as<float>(), r.delta.as<float>(),
              DeviceTensor{r.acc_dq.data(), DType::f32, B, r.rows, H, D},
              DeviceTensor{dk_into, DType::f32, B, step.kv_rows, Hkv, D},
              DeviceTensor{dv_into, DType::f32, B, step.kv_rows, Hkv, D}, r.stream,
              m == 0 && (s == 0 || !into_accumulator) ? GradientWrite::overwrite : GradientWrite::accumulate,
              sends_now ? &sends : nullptr);
      } else if (sends_now) {  // a skipped step passes the chunk and its accumulator on unchanged
        copy_held_kv_on(problem, r, next, s);
        if (s > 0) {  // (step 0's accumulator starts at zero: cleared above)
          const auto bytes = static_cast<std::size_t>(grad_count * 4);
          RINGLAB_CUDA_CHECK(cudaMemcpyAsync(dk_into, r.dk[s % 2].data(), bytes, cudaMemcpyDeviceToDevice, r.stream));
          RINGLAB_CUDA_CHECK(cudaMemcpyAsync(dv_into, r.dv[s % 2].data(), bytes, cudaMemcpyDeviceToDevice, r.stream));
        }
      }
      wait_for(r, grads_arrived[i]);  // the accumulator of the held chunk has arrived
      // (q_replicated: nothing to add or round, the own chunk's dK/dV were complete after step 0)
      if (!replicated && s == complete_after && rounded_return && options.compute) {
        // The chunk's total is complete: add the last share, apply 1/k and round, into the free K/V buffer
        // (local: straight into home accumulator 1). k/v[P mod 2] is free here: step P − 1 holds buffer
        // (P − 1) mod 2, and the last send from P mod 2 (round P − 2) is covered by kv_arrived, which this
        // stream waited for — the transport's arrival event covers a rank's sends as well as its receives. (Kernel
        // hops: that send was this rank's own step P − 2 kernel, earlier on this stream, and the last write into
        // the buffer rank p − 1's step P − 3 kernel, which step P − 2 waited for.)
        const float* k_share = compute && s > 0 && !into_accumulator ? dk_into : nullptr;
        const float* v_share = compute && s > 0 && !into_accumulator ? dv_into : nullptr;
        void* k_rounded = local ? r.dk[1].data() : r.k[P % 2].data();
        void* v_rounded = local ? r.dv[1].data() : r.v[P % 2].data();
        finish_gradient(problem.gradient_dtype, k_rounded, r.dk[s % 2].as<float>(), k_share, grad_count,
                        problem.output_factor, r.stream);
        finish_gradient(problem.gradient_dtype, v_rounded, r.dv[s % 2].as<float>(), v_share, grad_count,
                        problem.output_factor, r.stream);
      } else if (!replicated && compute && s > 0 && !into_accumulator) {
        add(r.dk[s % 2].as<float>(), dk_into, grad_count, r.stream);
        add(r.dv[s % 2].as<float>(), dv_into, grad_count, r.stream);
      }
      ready[i] = r.events.record(r.stream);
      r.step_done.push_back(ready[i]);
    }
    kv_arrived = next_kv_arrived;
    // The accumulators go on to rank p + 1 (into its dk[(s + 1) mod 2], which it adds to after step s + 1's
    // kernels); after the last step, home to the owner (dk[P mod 2]). The hop runs during step s + 1.
    if (options.transfer && !local && !replicated && (!by_kernels || s + 1 == P)) {
      for (std::size_t i = 0; i < ranks.size(); ++i) {
        RingRank& r = *ranks[i];
        const bool last = s + 1 == P;
        const i64 row_bytes = last ? returned_row_bytes : grad_row_bytes;
        const auto send_bytes = static_cast<std::size_t>(problem.schedule.at(r.rank, s).kv_rows * row_bytes);
        const auto recv_bytes = static_cast<std::size_t>(
            (last ? r.rows : problem.schedule.at(r.rank, s + 1).kv_rows) * row_bytes);
        const bool from_staging = last && rounded_return;  // the rounded total in the free K/V buffer
        const void* dk_send = from_staging ? r.k[P % 2].data() : r.dk[s % 2].data();
        const void* dv_send = from_staging ? r.v[P % 2].data() : r.dv[s % 2].data();
        const Hop hops[2] = {{dk_send, send_bytes, r.dk[(s + 1) % 2].data(), recv_bytes},
                             {dv_send, send_bytes, r.dv[(s + 1) % 2].data(), recv_bytes}};
        transport.post(r.rank, hops, ready[i]);
      }
      transport.flush();
      for (std::size_t i = 0; i < ranks.size(); ++i) grads_arrived[i] = transport.arrived(ranks[i]->rank);
    }
  }
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    RingRank& r = *ranks[i];
    wait_for(r, grads_arrived[i]);  // the own chunk's dK/dV have come home
    if (problem.output_factor != 1.0f) {
      scale_in_place(DeviceTensor{r.acc_dq.data(), DType::f32, B, r.rows, H, D}, problem.output_factor, r.stream);
    }
    if (problem.output_factor != 1.0f && !rounded_return) {  // (rounded: finish_gradient applied it)
      scale_in_place(DeviceTensor{r.dk[r.home_index].data(), DType::f32, B, r.kv_rows, Hkv, D}, problem.output_factor,
                     r.stream);
      scale_in_place(DeviceTensor{r.dv[r.home_index].data(), DType::f32, B, r.kv_rows, Hkv, D}, problem.output_factor,
                     r.stream);
    }
    r.step_done.push_back(r.events.record(r.stream));
  }
}

}  // namespace detail

// ---- CopyTransport ----------------------------------------------------------------------------------------

CopyTransport::CopyTransport(int ring_size)
    : ring_size_(ring_size), posted_(ring_size), ready_(ring_size, nullptr),
      has_posted_(ring_size, false), events_(std::make_unique<detail::EventPool>()), arrived_(ring_size, nullptr) {
  for (int p = 0; p < ring_size; ++p) {
    cudaStream_t stream = nullptr;
    RINGLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    streams_.push_back(stream);
  }
}

CopyTransport::~CopyTransport() {
  for (Stream stream : streams_) {
    cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
  }
}

void CopyTransport::post(int rank, std::span<const Hop> hops, Event ready) {
  if (rank < 0 || rank >= ring_size_) throw InputError("CopyTransport::post: rank " + std::to_string(rank) + " outside the ring");
  posted_[rank].assign(hops.begin(), hops.end());
  ready_[rank] = ready;
  has_posted_[rank] = true;
}

void CopyTransport::flush() {
  for (int p = 0; p < ring_size_; ++p)
    if (!has_posted_[p])
      throw Error("internal error: CopyTransport::flush: rank " + std::to_string(p) + " posted nothing this round");
  // A copy out of rank `from` also waits for the previous round's arrival at `from`: its send buffer was that
  // round's receive buffer, and `ready` (the rank finished its previous step) does not cover the copy into it.
  // A copy into rank `to` needs no such wait for the copies out of `to`: its stream waited for them when it
  // recorded the previous arrival (below).
  const std::vector<Event> arrived_before = arrived_;  // [rank]
  std::vector<Event> link_done(static_cast<std::size_t>(ring_size_));  // [receiving rank]: this round's copies
  for (int from = 0; from < ring_size_; ++from) {
    const int to = (from + 1) % ring_size_;
    if (posted_[from].size() != posted_[to].size())
      throw Error("internal error: CopyTransport::flush: ranks " + std::to_string(from) + " and " + std::to_string(to) +
                  " posted different numbers of hops");
    const cudaStream_t stream = streams_[to];
    for (Event before : {ready_[from], ready_[to], arrived_before[from]})
      if (before) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(stream, before, 0));
    for (std::size_t h = 0; h < posted_[from].size(); ++h) {
      const Hop& send = posted_[from][h];
      const Hop& receive = posted_[to][h];
      if (send.send_bytes != receive.recv_bytes)
        throw Error("internal error: CopyTransport::flush: rank " + std::to_string(from) + " sends " +
                    std::to_string(send.send_bytes) + " bytes, rank " + std::to_string(to) + " expects " +
                    std::to_string(receive.recv_bytes));
      if (send.send_bytes > 0)
        RINGLAB_CUDA_CHECK(cudaMemcpyAsync(receive.recv, send.send, send.send_bytes, cudaMemcpyDeviceToDevice, stream));
    }
    link_done[to] = events_->record(stream);
  }
  // A rank's arrival covers its sends as well as its receives (the drivers rely on it: Transport::arrived).
  for (int rank = 0; rank < ring_size_; ++rank) {
    const cudaStream_t stream = streams_[rank];
    RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(stream, link_done[(rank + 1) % ring_size_], 0));
    arrived_[rank] = events_->record(stream);
  }
  std::fill(has_posted_.begin(), has_posted_.end(), false);
}

void CopyTransport::begin_pass() {
  events_->reset();
  std::fill(arrived_.begin(), arrived_.end(), nullptr);
}

Event CopyTransport::arrived(int rank) { return arrived_.at(static_cast<std::size_t>(rank)); }

// ---- VirtualRing ------------------------------------------------------------------------------------------

VirtualRing::VirtualRing(const AttentionConfig& config, DType dtype, GradientPrecision gradients, RingHops hops)
    : problem_(std::make_unique<detail::RingProblem>(config, dtype, gradients, "gpu::VirtualRing")),
      events_(std::make_unique<detail::EventPool>()) {
  // Hops by the kernels need one kernel call per step (one mask set) that the sends can ride on.
  const bool sendable = problem_->masks.size() == 1 && !config.q_replicated && !problem_->schedule.local_only &&
                        kernel_sends_available(dtype, config.head_dim, config.heads, config.kv_heads, problem_->masks[0]);
  if (hops == RingHops::kernels && !sendable)
    throw ConfigError("hops", "kernels",
                      "RingHops::copies or automatic here: hops by the kernels need the Hopper kernels (sm_90a) in "
                      "bf16/fp16 with head_dim 64 or 128, Hkv = H, no dilation and a ring whose chunks travel");
  problem_->hops_by_kernels = hops == RingHops::kernels;  // (automatic: copies, ring.hpp)
  // From P = 4 the backward kernels add into the travelling dK/dV themselves: the add kernels' passes over memory
  // cost SM time on one GPU, and other devices' kernels fill the wait for the accumulator. At P = 2 and 3 the
  // devices wait for each other at every step, and that was slower (bench/results/gpu-virtual-ring-2026-11-23-H100-grads.md).
  problem_->gradients_added_by_kernel = problem_->schedule.ring_size >= 4;
  for (int p = 0; p < problem_->schedule.ring_size; ++p) ranks_.push_back(std::make_unique<detail::RingRank>(*problem_, p));
  transport_ = std::make_unique<CopyTransport>(problem_->schedule.ring_size);
  // A blocking stream: ordered with the legacy default stream, so synchronous uploads/downloads and
  // DeviceBuffer::fill before load() and after gather_*() need no extra synchronisation.
  cudaStream_t stream = nullptr;
  RINGLAB_CUDA_CHECK(cudaStreamCreate(&stream));
  compute_ = stream;
}

VirtualRing::~VirtualRing() {
  if (compute_) cudaStreamSynchronize(compute_);
  ranks_.clear();
  transport_.reset();
  events_.reset();
  if (compute_) cudaStreamDestroy(compute_);
}

const RingSchedule& VirtualRing::schedule() const { return problem_->schedule; }
RingHops VirtualRing::hops() const { return problem_->hops_by_kernels ? RingHops::kernels : RingHops::copies; }
int VirtualRing::size() const { return problem_->schedule.ring_size; }

std::size_t VirtualRing::bytes_per_device() const { return ranks_.front()->bytes(); }

void VirtualRing::poison() {
  for (auto& r : ranks_) r->poison(compute_);
}

void VirtualRing::poison_in_transit() {
  for (auto& r : ranks_) r->poison_in_transit(compute_);
}

void VirtualRing::load(ConstDeviceTensor q, ConstDeviceTensor k, ConstDeviceTensor v) {
  for (auto& r : ranks_) r->load(*problem_, q, k, v, compute_);
}

void VirtualRing::load_output_gradient(ConstDeviceTensor dout) {
  for (auto& r : ranks_) r->load_output_gradient(*problem_, dout, compute_);
}

// Every device's kernels run on its own stream (the virtual devices of one step overlap on the GPU, as on
// separate GPUs); the pass starts after the compute stream's earlier work and the compute stream waits for
// the pass.
std::vector<Event> VirtualRing::begin_pass() {
  events_->reset();
  const Event start = events_->record(compute_);
  for (Stream copies : transport_->streams()) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(copies, start, 0));
  return std::vector<Event>(ranks_.size(), start);
}

void VirtualRing::end_pass() {
  for (auto& r : ranks_) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(compute_, events_->record(r->stream), 0));
  for (Stream copies : transport_->streams())
    RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(compute_, events_->record(copies), 0));
}

namespace {
std::vector<detail::RingRank*> pointers(const std::vector<std::unique_ptr<detail::RingRank>>& ranks) {
  std::vector<detail::RingRank*> result;
  for (const auto& r : ranks) result.push_back(r.get());
  return result;
}
}  // namespace

void VirtualRing::forward(RingPassOptions options) { run(true, options); }
void VirtualRing::backward(RingPassOptions options) { run(false, options); }

// options.repeat passes back to back: each waits for the previous one's end on the compute stream.
void VirtualRing::run(bool forward, const RingPassOptions& options) {
  const detail::PassOptions pass = detail::pass_options(options);
  for (int i = 0; i < options.repeat; ++i) {
    const auto start = begin_pass();
    if (forward) detail::ring_forward(*problem_, pointers(ranks_), *transport_, start, pass);
    else detail::ring_backward(*problem_, pointers(ranks_), *transport_, start, pass);
    end_pass();
  }
}

// Each rank's query rows where it reports them (RingProblem::reports_queries), and its own chunk's dK, dV.
void VirtualRing::gather_output(DeviceTensor out, float* lse) {
  for (const auto& r : ranks_)
    if (problem_->reports_queries(r->rank)) r->gather_output(*problem_, out, lse, compute_);
}

void VirtualRing::gather_gradients(DeviceTensor dq, DeviceTensor dk, DeviceTensor dv) {
  for (const auto& r : ranks_)
    r->gather_gradients(*problem_, dq, dk, dv, compute_, problem_->reports_queries(r->rank));
}

}  // namespace ringlab::gpu
