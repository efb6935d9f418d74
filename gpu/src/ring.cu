// The ring driver (issue 6): VirtualRing over the shared RingSchedule, CopyTransport for P virtual
// devices on one GPU. See include/ringlab/gpu/ring.hpp and docs/gpu-rings.md.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "element.cuh"
#include "cuda_check.cuh"
#include "ringlab/errors.hpp"
#include "ringlab/gpu/lse_merge.hpp"
#include "ringlab/gpu/ring.hpp"
#include "ringlab/mask.hpp"

namespace ringlab::gpu {
namespace {

using i64 = std::int64_t;

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


// (acc, lse) ← (acc, lse) ⊕ (part, part_lse) with an fp32 accumulator: acc [B, n, H, D] fp32, part in the
// input dtype, LSE [B, H, n]. One warp per (b, i, h). Keeping the running O in fp32 avoids rounding it to
// bf16 after every one of the P merges (gpu::lse_merge needs equal dtypes).
template <class Element>
__global__ void merge_f32_kernel(float* __restrict__ acc, float* __restrict__ lse, const Element* __restrict__ part,
                                 const float* __restrict__ part_lse, i64 batch, i64 n, int heads, int head_dim) {
  const i64 warp = (blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= batch * n * heads) return;
  const int h = static_cast<int>(warp % heads);
  const i64 i = (warp / heads) % n, b = warp / (heads * n);
  const i64 l = (b * heads + h) * n + i;
  const float la = lse[l], lb = part_lse[l];
  const float larger = fmaxf(la, lb);
  if (larger == -INFINITY) return;
  const float merged = larger + log1pf(expf(fminf(la, lb) - larger));
  const float wa = expf(la - merged), wb = expf(lb - merged);
  float* row = acc + warp * head_dim;
  const Element* other = part + warp * head_dim;
  for (int d = lane; d < head_dim; d += 32) row[d] = (wa == 0.0f ? 0.0f : wa * row[d]) + wb * widen(other[d]);
  __syncwarp();
  if (lane == 0) lse[l] = merged;
}

void merge_f32(float* acc, float* lse, const void* part, DType dtype, const float* part_lse, i64 batch, i64 n,
               i64 heads, i64 head_dim, cudaStream_t stream) {
  const i64 threads = batch * n * heads * 32;
  const auto blocks = static_cast<unsigned>((threads + 255) / 256);
  const int h = static_cast<int>(heads), d = static_cast<int>(head_dim);
  if (dtype == DType::f32)
    merge_f32_kernel<<<blocks, 256, 0, stream>>>(acc, lse, static_cast<const float*>(part), part_lse, batch, n, h, d);
  else if (dtype == DType::f16)
    merge_f32_kernel<<<blocks, 256, 0, stream>>>(acc, lse, static_cast<const __half*>(part), part_lse, batch, n, h, d);
  else
    merge_f32_kernel<<<blocks, 256, 0, stream>>>(acc, lse, static_cast<const __nv_bfloat16*>(part), part_lse, batch,
                                                 n, h, d);
  RINGLAB_CUDA_CHECK(cudaGetLastError());
}

// Rows of a [B, rows, heads, D] tensor: whole tensor (`whole_rows` rows, positions 0..) ↔ a shard holding
// the rows at `positions` (in order). One strided 2-D copy per (batch, run).
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

}  // namespace

// ---- CopyTransport ----------------------------------------------------------------------------------------

CopyTransport::CopyTransport(int ring_size) : ring_size_(ring_size) {
  cudaStream_t stream = nullptr;
  RINGLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  stream_ = stream;
}

CopyTransport::~CopyTransport() {
  if (stream_) cudaStreamDestroy(stream_);
}

void CopyTransport::shift(std::span<void* const> send, std::span<void* const> recv, std::span<const std::size_t> bytes,
                          std::span<const Event> after) {
  if (static_cast<int>(send.size()) != ring_size_ || static_cast<int>(recv.size()) != ring_size_ ||
      static_cast<int>(bytes.size()) != ring_size_)
    throw InputError("CopyTransport::shift: expected one send buffer, receive buffer and size per device (P = " +
                     std::to_string(ring_size_) + ")");
  for (Event e : after)
    if (e) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(stream_, e, 0));
  for (int d = 0; d < ring_size_; ++d)
    if (bytes[d] > 0)
      RINGLAB_CUDA_CHECK(cudaMemcpyAsync(recv[(d + 1) % ring_size_], send[d], bytes[d], cudaMemcpyDeviceToDevice, stream_));
}

// ---- VirtualRing ------------------------------------------------------------------------------------------

struct VirtualRing::Device {
  i64 rows = 0;  // queries and K/V rows this device owns
  PositionSet positions;
  DeviceBuffer q, k_home, v_home, k[2], v[2];  // K/V: home chunk and the two rotation buffers
  DeviceBuffer acc, out, lse, partial_out, partial_lse;  // acc: the running O in fp32
  Stream stream = nullptr;                              // this device's compute stream
  DeviceBuffer dout, delta, dq;
  DeviceBuffer dk[2], dv[2], dk_home, dv_home;  // fp32; dk/dv travel with the chunk, *_home receive the last hop
};

VirtualRing::VirtualRing(const AttentionConfig& config, DType dtype) : config_(config), dtype_(dtype) {
  config_.validate();
  if (config_.dilated())
    throw ConfigError("dilation", std::to_string(config_.dilation.size()) + " pattern(s)",
                      "the GPU ring (gpu::VirtualRing) supports no dilation yet");
  if (config_.q_replicated)
    throw ConfigError("q_replicated", "true", "the GPU ring (gpu::VirtualRing) shards queries (q_replicated = false)");
  if (config_.kv_seq != config_.seq || config_.q_start != 0)
    throw ConfigError("kv_seq/q_start", std::to_string(config_.kv_seq) + "/" + std::to_string(config_.q_start),
                      "the GPU ring (gpu::VirtualRing) needs self-attention: kv_seq = seq, q_start = 0");
  schedule_ = make_ring_schedule(config_, ScheduleOptions{static_cast<i64>(size_of(dtype))});
  mask_ = HeadMasks(MaskPredicate{BandMask::from(config_), std::nullopt});
  const int ring = schedule_.ring_size;
  i64 max_rows = 0;
  for (int p = 0; p < ring; ++p) {
    const i64 rows = schedule_.chunk_positions[p].size();
    if (rows == 0)
      throw ConfigError("seq", std::to_string(config_.seq),
                        "every device of the GPU ring must own a token (device " + std::to_string(p) +
                            " owns none with P = " + std::to_string(ring) + ")");
    max_rows = std::max(max_rows, rows);
  }
  const i64 B = config_.batch, H = config_.heads, Hkv = config_.kv_heads, D = config_.head_dim;
  const auto es = static_cast<i64>(size_of(dtype));
  auto bytes = [](i64 n) { return static_cast<std::size_t>(n); };
  for (int p = 0; p < ring; ++p) {
    auto device = std::make_unique<Device>();
    device->positions = schedule_.chunk_positions[p];
    device->rows = device->positions.size();
    const i64 n = device->rows;
    device->q = DeviceBuffer(bytes(B * n * H * D * es));
    device->k_home = DeviceBuffer(bytes(B * n * Hkv * D * es));
    device->v_home = DeviceBuffer(bytes(B * n * Hkv * D * es));
    for (int i = 0; i < 2; ++i) {
      device->k[i] = DeviceBuffer(bytes(B * max_rows * Hkv * D * es));
      device->v[i] = DeviceBuffer(bytes(B * max_rows * Hkv * D * es));
      device->dk[i] = DeviceBuffer(bytes(B * max_rows * Hkv * D * 4));
      device->dv[i] = DeviceBuffer(bytes(B * max_rows * Hkv * D * 4));
    }
    device->acc = DeviceBuffer(bytes(B * n * H * D * 4));
    device->out = DeviceBuffer(bytes(B * n * H * D * es));
    cudaStream_t device_stream = nullptr;
    RINGLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&device_stream, cudaStreamNonBlocking));
    device->stream = device_stream;
    device->partial_out = DeviceBuffer(bytes(B * n * H * D * es));
    device->lse = DeviceBuffer(bytes(B * H * n * 4));
    device->partial_lse = DeviceBuffer(bytes(B * H * n * 4));
    device->dout = DeviceBuffer(bytes(B * n * H * D * es));
    device->delta = DeviceBuffer(bytes(B * H * n * 4));
    device->dq = DeviceBuffer(bytes(B * n * H * D * 4));
    device->dk_home = DeviceBuffer(bytes(B * n * Hkv * D * 4));
    device->dv_home = DeviceBuffer(bytes(B * n * Hkv * D * 4));
    devices_.push_back(std::move(device));
  }
  transport_ = std::make_unique<CopyTransport>(ring);
  // A blocking stream: ordered with the legacy default stream, so synchronous uploads/downloads and
  // DeviceBuffer::fill before load() and after gather_*() need no extra synchronisation.
  cudaStream_t stream = nullptr;
  RINGLAB_CUDA_CHECK(cudaStreamCreate(&stream));
  compute_ = stream;
}

VirtualRing::~VirtualRing() {
  if (compute_) cudaStreamSynchronize(compute_);
  if (transport_) cudaStreamSynchronize(transport_->stream());
  for (auto& d : devices_)
    if (d->stream) {
      cudaStreamSynchronize(d->stream);
      cudaStreamDestroy(d->stream);
    }
  for (Event e : events_) cudaEventDestroy(e);
  if (compute_) cudaStreamDestroy(compute_);
}

Event VirtualRing::event(std::size_t index) {
  while (events_.size() <= index) {
    cudaEvent_t e = nullptr;
    RINGLAB_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    events_.push_back(e);
  }
  return events_[index];
}

std::size_t VirtualRing::bytes_per_device() const {
  const Device& d = *devices_.front();
  std::size_t total = 0;
  for (const DeviceBuffer* b : {&d.q, &d.k_home, &d.v_home, &d.k[0], &d.k[1], &d.v[0], &d.v[1], &d.acc, &d.out, &d.lse,
                                &d.partial_out, &d.partial_lse, &d.dout, &d.delta, &d.dq, &d.dk[0], &d.dk[1], &d.dv[0],
                                &d.dv[1], &d.dk_home, &d.dv_home})
    total += b->bytes();
  return total;
}

void VirtualRing::poison() {
  for (auto& device : devices_) {
    Device& d = *device;
    for (DeviceBuffer* b : {&d.q, &d.k_home, &d.v_home, &d.k[0], &d.k[1], &d.v[0], &d.v[1], &d.acc, &d.out, &d.lse,
                            &d.partial_out, &d.partial_lse, &d.dout, &d.delta, &d.dq, &d.dk[0], &d.dk[1], &d.dv[0],
                            &d.dv[1], &d.dk_home, &d.dv_home})
      RINGLAB_CUDA_CHECK(cudaMemsetAsync(b->data(), 0xFF, b->bytes(), compute_));
  }
}

void VirtualRing::load(ConstDeviceTensor q, ConstDeviceTensor k, ConstDeviceTensor v) {
  const i64 B = config_.batch, N = config_.seq, H = config_.heads, Hkv = config_.kv_heads, D = config_.head_dim;
  auto check = [&](const ConstDeviceTensor& t, i64 heads, const char* name) {
    if (t.dtype != dtype_ || t.batch != B || t.rows != N || t.heads != heads || t.head_dim != D)
      throw InputError(std::string("gpu::VirtualRing::load: ") + name + " does not match the ring's config and dtype");
  };
  check(q, H, "q");
  check(k, Hkv, "k");
  check(v, Hkv, "v");
  const auto es = static_cast<i64>(size_of(dtype_));
  for (auto& device : devices_) {
    copy_rows(device->positions, B, N, H * D * es, q.data, device->q.data(), true, compute_);
    copy_rows(device->positions, B, N, Hkv * D * es, k.data, device->k_home.data(), true, compute_);
    copy_rows(device->positions, B, N, Hkv * D * es, v.data, device->v_home.data(), true, compute_);
  }
}

void VirtualRing::load_output_gradient(ConstDeviceTensor dout) {
  const i64 B = config_.batch, N = config_.seq, H = config_.heads, D = config_.head_dim;
  if (dout.dtype != dtype_ || dout.batch != B || dout.rows != N || dout.heads != H || dout.head_dim != D)
    throw InputError("gpu::VirtualRing::load_output_gradient: dout does not match the ring's config and dtype");
  const auto es = static_cast<i64>(size_of(dtype_));
  for (auto& device : devices_)
    copy_rows(device->positions, B, N, H * D * es, dout.data, device->dout.data(), true, compute_);
}

// Every device's kernels run on its own stream (the virtual devices of one step overlap on the GPU, as on
// separate GPUs); the pass starts after the compute stream's earlier work and the compute stream waits
// for the pass. Events: kv_ready[s] (copy stream: the chunks of step s have arrived), computed[p][s].
void VirtualRing::begin_pass() {
  next_event_ = 0;
  Event start = event(next_event_++);
  RINGLAB_CUDA_CHECK(cudaEventRecord(start, compute_));
  for (auto& d : devices_) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(d->stream, start, 0));
  RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(transport_->stream(), start, 0));
}

void VirtualRing::end_pass() {
  for (auto& d : devices_) {
    Event done = event(next_event_++);
    RINGLAB_CUDA_CHECK(cudaEventRecord(done, d->stream));
    RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(compute_, done, 0));
  }
  Event copies = event(next_event_++);
  RINGLAB_CUDA_CHECK(cudaEventRecord(copies, transport_->stream()));
  RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(compute_, copies, 0));
}

void VirtualRing::forward() {
  const int ring = size();
  const i64 B = config_.batch, H = config_.heads, Hkv = config_.kv_heads, D = config_.head_dim;
  const auto es = static_cast<i64>(size_of(dtype_));
  const auto scale = static_cast<float>(config_.tau());
  begin_pass();
  // Step 0 reads the home chunk; step s ≥ 1 reads rotation buffer s mod 2.
  auto k_of = [&](Device& d, int s) { return s == 0 ? d.k_home.data() : d.k[s % 2].data(); };
  auto v_of = [&](Device& d, int s) { return s == 0 ? d.v_home.data() : d.v[s % 2].data(); };
  for (auto& device : devices_) {  // (O, LSE) = (0, −∞) in fp32
    Device& d = *device;
    RINGLAB_CUDA_CHECK(cudaMemsetAsync(d.acc.data(), 0, d.acc.bytes(), d.stream));
    fill(d.lse.as<float>(), B * H * d.rows, -INFINITY, d.stream);
  }
  std::vector<Event> kv_ready(ring + 1, nullptr), computed_before(ring, nullptr), computed_now(ring, nullptr);
  std::vector<void*> send(ring), recv(ring);
  std::vector<std::size_t> sizes(ring);
  for (int s = 0; s < ring; ++s) {
    if (s + 1 < ring) {
      // Prefetch step s + 1: buffer (s + 1) mod 2 of the next device was last read at step s − 1.
      for (int p = 0; p < ring; ++p) {
        sizes[p] = static_cast<std::size_t>(B * schedule_.at(p, s).kv_rows * Hkv * D * es);
        send[p] = k_of(*devices_[p], s);
        recv[p] = devices_[p]->k[(s + 1) % 2].data();
      }
      transport_->shift(send, recv, sizes, s == 0 ? std::span<const Event>() : std::span<const Event>(computed_before));
      for (int p = 0; p < ring; ++p) {
        send[p] = v_of(*devices_[p], s);
        recv[p] = devices_[p]->v[(s + 1) % 2].data();
      }
      transport_->shift(send, recv, sizes, {});
      kv_ready[s + 1] = event(next_event_++);
      RINGLAB_CUDA_CHECK(cudaEventRecord(kv_ready[s + 1], transport_->stream()));
    }
    for (int p = 0; p < ring; ++p) {
      Device& d = *devices_[p];
      if (s > 0) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(d.stream, kv_ready[s], 0));
      const RingStep& step = schedule_.at(p, s);
      if (!step.skipped) {
        const ConstDeviceTensor q(d.q.data(), dtype_, B, d.rows, H, D);
        const ConstDeviceTensor k(k_of(d, s), dtype_, B, step.kv_rows, Hkv, D);
        const ConstDeviceTensor v(v_of(d, s), dtype_, B, step.kv_rows, Hkv, D);
        block_attention_forward(q, d.positions, k, v, schedule_.chunk_positions[step.kv_owner], mask_, scale,
                                DeviceTensor{d.partial_out.data(), dtype_, B, d.rows, H, D},
                                d.partial_lse.as<float>(), d.stream);
        merge_f32(d.acc.as<float>(), d.lse.as<float>(), d.partial_out.data(), dtype_, d.partial_lse.as<float>(), B,
                  d.rows, H, D, d.stream);
      }
      computed_now[p] = event(next_event_++);
      RINGLAB_CUDA_CHECK(cudaEventRecord(computed_now[p], d.stream));
    }
    computed_before = computed_now;
  }
  for (auto& device : devices_) {  // O in the input dtype
    Device& d = *device;
    convert(ConstDeviceTensor(d.acc.data(), DType::f32, B, d.rows, H, D), DeviceTensor{d.out.data(), dtype_, B, d.rows, H, D},
            d.stream);
  }
  end_pass();
}

void VirtualRing::backward() {
  const int ring = size();
  const i64 B = config_.batch, H = config_.heads, Hkv = config_.kv_heads, D = config_.head_dim;
  const auto es = static_cast<i64>(size_of(dtype_));
  const auto scale = static_cast<float>(config_.tau());
  begin_pass();
  for (auto& device : devices_) {
    Device& d = *device;
    output_gradient_dot(ConstDeviceTensor(d.dout.data(), dtype_, B, d.rows, H, D),
                        ConstDeviceTensor(d.out.data(), dtype_, B, d.rows, H, D), d.delta.as<float>(), d.stream);
    RINGLAB_CUDA_CHECK(cudaMemsetAsync(d.dq.data(), 0, d.dq.bytes(), d.stream));
    RINGLAB_CUDA_CHECK(cudaMemsetAsync(d.dk[0].data(), 0, static_cast<std::size_t>(B * d.rows * Hkv * D * 4), d.stream));
    RINGLAB_CUDA_CHECK(cudaMemsetAsync(d.dv[0].data(), 0, static_cast<std::size_t>(B * d.rows * Hkv * D * 4), d.stream));
  }
  std::vector<Event> kv_ready(ring + 1, nullptr), grads_ready(ring + 1, nullptr);
  std::vector<Event> computed_before(ring, nullptr), computed_now(ring, nullptr);
  auto k_of = [&](Device& d, int s) { return s == 0 ? d.k_home.data() : d.k[s % 2].data(); };
  auto v_of = [&](Device& d, int s) { return s == 0 ? d.v_home.data() : d.v[s % 2].data(); };
  std::vector<void*> send(ring), recv(ring);
  std::vector<std::size_t> kv_sizes(ring), grad_sizes(ring);
  for (int s = 0; s < ring; ++s) {
    for (int p = 0; p < ring; ++p) {
      const RingStep& step = schedule_.at(p, s);
      kv_sizes[p] = static_cast<std::size_t>(B * step.kv_rows * Hkv * D * es);
      grad_sizes[p] = static_cast<std::size_t>(B * step.kv_rows * Hkv * D * 4);
    }
    if (s + 1 < ring) {  // prefetch K/V of step s + 1 during step s
      for (int p = 0; p < ring; ++p) {
        send[p] = k_of(*devices_[p], s);
        recv[p] = devices_[p]->k[(s + 1) % 2].data();
      }
      transport_->shift(send, recv, kv_sizes, s == 0 ? std::span<const Event>() : std::span<const Event>(computed_before));
      for (int p = 0; p < ring; ++p) {
        send[p] = v_of(*devices_[p], s);
        recv[p] = devices_[p]->v[(s + 1) % 2].data();
      }
      transport_->shift(send, recv, kv_sizes, {});
      kv_ready[s + 1] = event(next_event_++);
      RINGLAB_CUDA_CHECK(cudaEventRecord(kv_ready[s + 1], transport_->stream()));
    }
    for (int p = 0; p < ring; ++p) {
      Device& d = *devices_[p];
      if (s > 0) {
        RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(d.stream, kv_ready[s], 0));
        RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(d.stream, grads_ready[s], 0));
      }
      const RingStep& step = schedule_.at(p, s);
      if (!step.skipped) {
        const ConstDeviceTensor k(k_of(d, s), dtype_, B, step.kv_rows, Hkv, D);
        const ConstDeviceTensor v(v_of(d, s), dtype_, B, step.kv_rows, Hkv, D);
        block_attention_backward(ConstDeviceTensor(d.q.data(), dtype_, B, d.rows, H, D), d.positions, k, v,
                                 schedule_.chunk_positions[step.kv_owner], mask_, scale,
                                 ConstDeviceTensor(d.dout.data(), dtype_, B, d.rows, H, D), d.lse.as<float>(),
                                 d.delta.as<float>(), DeviceTensor{d.dq.data(), DType::f32, B, d.rows, H, D},
                                 DeviceTensor{d.dk[s % 2].data(), DType::f32, B, step.kv_rows, Hkv, D},
                                 DeviceTensor{d.dv[s % 2].data(), DType::f32, B, step.kv_rows, Hkv, D}, d.stream);
      }
      computed_now[p] = event(next_event_++);
      RINGLAB_CUDA_CHECK(cudaEventRecord(computed_now[p], d.stream));
    }
    computed_before = computed_now;
    // dK/dV of step s go on to the next device; after the last step, home to the owner.
    const bool last = s + 1 == ring;
    for (int p = 0; p < ring; ++p) {
      send[p] = devices_[p]->dk[s % 2].data();
      recv[p] = last ? devices_[p]->dk_home.data() : devices_[p]->dk[(s + 1) % 2].data();
    }
    transport_->shift(send, recv, grad_sizes, computed_now);
    for (int p = 0; p < ring; ++p) {
      send[p] = devices_[p]->dv[s % 2].data();
      recv[p] = last ? devices_[p]->dv_home.data() : devices_[p]->dv[(s + 1) % 2].data();
    }
    transport_->shift(send, recv, grad_sizes, {});
    grads_ready[s + 1] = event(next_event_++);
    RINGLAB_CUDA_CHECK(cudaEventRecord(grads_ready[s + 1], transport_->stream()));
  }
  end_pass();
}


void VirtualRing::gather_output(DeviceTensor out, float* lse) {
  const i64 B = config_.batch, N = config_.seq, H = config_.heads, D = config_.head_dim;
  if (out.dtype != dtype_ || out.batch != B || out.rows != N || out.heads != H || out.head_dim != D)
    throw InputError("gpu::VirtualRing::gather_output: out does not match the ring's config and dtype");
  const auto es = static_cast<i64>(size_of(dtype_));
  for (auto& device : devices_) {
    Device& d = *device;
    copy_rows(d.positions, B, N, H * D * es, d.out.data(), out.data, false, compute_);
    // LSE [B, H, n]: position is the last index; one strided copy of 4-byte rows per (b, h, run).
    for (i64 bh = 0; bh < B * H; ++bh) {
      i64 offset = 0;
      for (const PositionRun& run : d.positions.runs) {
        RINGLAB_CUDA_CHECK(cudaMemcpy2DAsync(lse + bh * N + run.start, static_cast<std::size_t>(run.stride * 4),
                                             d.lse.as<float>() + bh * d.rows + offset, 4, 4,
                                             static_cast<std::size_t>(run.count), cudaMemcpyDeviceToDevice, compute_));
        offset += run.count;
      }
    }
  }
}

void VirtualRing::gather_gradients(DeviceTensor dq, DeviceTensor dk, DeviceTensor dv) {
  const i64 B = config_.batch, N = config_.seq, H = config_.heads, Hkv = config_.kv_heads, D = config_.head_dim;
  auto check = [&](const DeviceTensor& t, i64 heads, const char* name) {
    if (t.dtype != DType::f32 || t.batch != B || t.rows != N || t.heads != heads || t.head_dim != D)
      throw InputError(std::string("gpu::VirtualRing::gather_gradients: ") + name +
                       " must be fp32 [B, N, heads, D] of the ring's config");
  };
  check(dq, H, "dq");
  check(dk, Hkv, "dk");
  check(dv, Hkv, "dv");
  for (auto& device : devices_) {
    Device& d = *device;
    copy_rows(d.positions, B, N, H * D * 4, d.dq.data(), dq.data, false, compute_);
    copy_rows(d.positions, B, N, Hkv * D * 4, d.dk_home.data(), dk.data, false, compute_);
    copy_rows(d.positions, B, N, Hkv * D * 4, d.dv_home.data(), dv.data, false, compute_);
  }
}

}  // namespace ringlab::gpu

// ---- NcclRing: one GPU per rank, one process, a thread per GPU ---------------------------------------------

#if RINGLAB_HAVE_NCCL
#include <nccl.h>

#include <mutex>
#include <thread>

#define RINGLAB_NCCL_CHECK(call)                                                                           \
  do {                                                                                                     \
    const ncclResult_t ringlab_nccl_status = (call);                                                       \
    if (ringlab_nccl_status != ncclSuccess)                                                                \
      throw ::ringlab::gpu::CudaError(std::string(#call) + " failed at " + __FILE__ + ":" +                \
                                      std::to_string(__LINE__) + ": " + ncclGetErrorString(ringlab_nccl_status)); \
  } while (false)

namespace ringlab::gpu {
namespace {

// One rank: its own buffers, a compute stream and a communication stream ordered by events; K/V double
// buffered, step s + 1's exchange overlapping step s's compute; dK/dV travel and take a last hop home.
void nccl_rank(const AttentionConfig& config, const RingSchedule& schedule, DType dtype, int rank, ncclComm_t comm,
               const NcclRingInputs& in, NcclRingOutputs& result, std::mutex& result_mutex) {
  RINGLAB_CUDA_CHECK(cudaSetDevice(rank));
  const int ring = schedule.ring_size, next = (rank + 1) % ring, prev = (rank + ring - 1) % ring;
  const i64 B = config.batch, N = config.seq, H = config.heads, Hkv = config.kv_heads, D = config.head_dim;
  const auto es = static_cast<i64>(size_of(dtype));
  const PositionSet& positions = schedule.chunk_positions[rank];
  const i64 n = positions.size();
  i64 max_rows = 0;
  for (const PositionSet& p : schedule.chunk_positions) max_rows = std::max(max_rows, p.size());
  auto bytes = [](i64 count) { return static_cast<std::size_t>(count); };
  const HeadMasks mask(MaskPredicate{BandMask::from(config), std::nullopt});
  const auto scale = static_cast<float>(config.tau());

  DeviceBuffer whole_q(bytes(B * N * H * D * es)), whole_k(bytes(B * N * Hkv * D * es)),
      whole_v(bytes(B * N * Hkv * D * es)), whole_dout(bytes(B * N * H * D * es));
  whole_q.upload(in.q, whole_q.bytes());
  whole_k.upload(in.k, whole_k.bytes());
  whole_v.upload(in.v, whole_v.bytes());
  whole_dout.upload(in.dout, whole_dout.bytes());
  DeviceBuffer q(bytes(B * n * H * D * es)), k_home(bytes(B * n * Hkv * D * es)), v_home(bytes(B * n * Hkv * D * es));
  DeviceBuffer kb[2], vb[2], dkb[2], dvb[2];
  for (int i = 0; i < 2; ++i) {
    kb[i] = DeviceBuffer(bytes(B * max_rows * Hkv * D * es));
    vb[i] = DeviceBuffer(bytes(B * max_rows * Hkv * D * es));
    dkb[i] = DeviceBuffer(bytes(B * max_rows * Hkv * D * 4));
    dvb[i] = DeviceBuffer(bytes(B * max_rows * Hkv * D * 4));
  }
  DeviceBuffer acc(bytes(B * n * H * D * 4)), out(bytes(B * n * H * D * es)), lse(bytes(B * H * n * 4));
  DeviceBuffer partial(bytes(B * n * H * D * es)), partial_lse(bytes(B * H * n * 4));
  DeviceBuffer dout(bytes(B * n * H * D * es)), delta(bytes(B * H * n * 4)), dq(bytes(B * n * H * D * 4));
  DeviceBuffer dk_home(bytes(B * n * Hkv * D * 4)), dv_home(bytes(B * n * Hkv * D * 4));

  cudaStream_t compute = nullptr, comm_stream = nullptr;
  RINGLAB_CUDA_CHECK(cudaStreamCreate(&compute));
  RINGLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&comm_stream, cudaStreamNonBlocking));
  std::vector<cudaEvent_t> events;
  auto new_event = [&] {
    cudaEvent_t e = nullptr;
    RINGLAB_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    events.push_back(e);
    return e;
  };
  copy_rows(positions, B, N, H * D * es, whole_q.data(), q.data(), true, compute);
  copy_rows(positions, B, N, Hkv * D * es, whole_k.data(), k_home.data(), true, compute);
  copy_rows(positions, B, N, Hkv * D * es, whole_v.data(), v_home.data(), true, compute);
  copy_rows(positions, B, N, H * D * es, whole_dout.data(), dout.data(), true, compute);
  auto k_of = [&](int s) { return s == 0 ? k_home.data() : kb[s % 2].data(); };
  auto v_of = [&](int s) { return s == 0 ? v_home.data() : vb[s % 2].data(); };
  auto kv_bytes = [&](int s) { return bytes(B * schedule.at(rank, s).kv_rows * Hkv * D * es); };
  auto grad_bytes = [&](int s) { return bytes(B * schedule.at(rank, s).kv_rows * Hkv * D * 4); };
  // One grouped exchange on the communication stream: send to next, receive from previous.
  auto exchange = [&](std::initializer_list<std::pair<const void*, void*>> buffers, std::size_t send_bytes,
                      std::size_t recv_bytes, cudaEvent_t after) {
    if (after) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(comm_stream, after, 0));
    RINGLAB_NCCL_CHECK(ncclGroupStart());
    for (const auto& [send, recv] : buffers) {
      RINGLAB_NCCL_CHECK(ncclSend(send, send_bytes, ncclUint8, next, comm, comm_stream));
      RINGLAB_NCCL_CHECK(ncclRecv(recv, recv_bytes, ncclUint8, prev, comm, comm_stream));
    }
    RINGLAB_NCCL_CHECK(ncclGroupEnd());
    cudaEvent_t done = new_event();
    RINGLAB_CUDA_CHECK(cudaEventRecord(done, comm_stream));
    return done;
  };

  // Forward.
  RINGLAB_CUDA_CHECK(cudaMemsetAsync(acc.data(), 0, acc.bytes(), compute));
  fill(lse.as<float>(), B * H * n, -INFINITY, compute);
  cudaEvent_t loaded = new_event();
  RINGLAB_CUDA_CHECK(cudaEventRecord(loaded, compute));
  std::vector<cudaEvent_t> computed(ring, nullptr), kv_ready(ring + 1, nullptr);
  for (int s = 0; s < ring; ++s) {
    if (s + 1 < ring)
      kv_ready[s + 1] = exchange({{k_of(s), kb[(s + 1) % 2].data()}, {v_of(s), vb[(s + 1) % 2].data()}}, kv_bytes(s),
                                 kv_bytes(s + 1), s == 0 ? loaded : computed[s - 1]);
    if (s > 0) RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(compute, kv_ready[s], 0));
    const RingStep& step = schedule.at(rank, s);
    if (!step.skipped) {
      block_attention_forward(ConstDeviceTensor(q.data(), dtype, B, n, H, D), positions,
                              ConstDeviceTensor(k_of(s), dtype, B, step.kv_rows, Hkv, D),
                              ConstDeviceTensor(v_of(s), dtype, B, step.kv_rows, Hkv, D),
                              schedule.chunk_positions[step.kv_owner], mask, scale,
                              DeviceTensor{partial.data(), dtype, B, n, H, D}, partial_lse.as<float>(), compute);
      merge_f32(acc.as<float>(), lse.as<float>(), partial.data(), dtype, partial_lse.as<float>(), B, n, H, D, compute);
    }
    computed[s] = new_event();
    RINGLAB_CUDA_CHECK(cudaEventRecord(computed[s], compute));
  }
  convert(ConstDeviceTensor(acc.data(), DType::f32, B, n, H, D), DeviceTensor{out.data(), dtype, B, n, H, D}, compute);

  // Backward.
  output_gradient_dot(ConstDeviceTensor(dout.data(), dtype, B, n, H, D), ConstDeviceTensor(out.data(), dtype, B, n, H, D),
                      delta.as<float>(), compute);
  RINGLAB_CUDA_CHECK(cudaMemsetAsync(dq.data(), 0, dq.bytes(), compute));
  RINGLAB_CUDA_CHECK(cudaMemsetAsync(dkb[0].data(), 0, bytes(B * n * Hkv * D * 4), compute));
  RINGLAB_CUDA_CHECK(cudaMemsetAsync(dvb[0].data(), 0, bytes(B * n * Hkv * D * 4), compute));
  cudaEvent_t started = new_event();
  RINGLAB_CUDA_CHECK(cudaEventRecord(started, compute));
  std::vector<cudaEvent_t> grads_ready(ring + 1, nullptr);
  for (int s = 0; s < ring; ++s) {
    if (s + 1 < ring)
      kv_ready[s + 1] = exchange({{k_of(s), kb[(s + 1) % 2].data()}, {v_of(s), vb[(s + 1) % 2].data()}}, kv_bytes(s),
                                 kv_bytes(s + 1), s == 0 ? started : computed[s - 1]);
    if (s > 0) {
      RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(compute, kv_ready[s], 0));
      RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(compute, grads_ready[s], 0));
    }
    const RingStep& step = schedule.at(rank, s);
    if (!step.skipped)
      block_attention_backward(ConstDeviceTensor(q.data(), dtype, B, n, H, D), positions,
                               ConstDeviceTensor(k_of(s), dtype, B, step.kv_rows, Hkv, D),
                               ConstDeviceTensor(v_of(s), dtype, B, step.kv_rows, Hkv, D),
                               schedule.chunk_positions[step.kv_owner], mask, scale,
                               ConstDeviceTensor(dout.data(), dtype, B, n, H, D), lse.as<float>(), delta.as<float>(),
                               DeviceTensor{dq.data(), DType::f32, B, n, H, D},
                               DeviceTensor{dkb[s % 2].data(), DType::f32, B, step.kv_rows, Hkv, D},
                               DeviceTensor{dvb[s % 2].data(), DType::f32, B, step.kv_rows, Hkv, D}, compute);
    computed[s] = new_event();
    RINGLAB_CUDA_CHECK(cudaEventRecord(computed[s], compute));
    const bool last = s + 1 == ring;
    grads_ready[s + 1] = exchange({{dkb[s % 2].data(), last ? dk_home.data() : dkb[(s + 1) % 2].data()},
                                   {dvb[s % 2].data(), last ? dv_home.data() : dvb[(s + 1) % 2].data()}},
                                  grad_bytes(s), last ? bytes(B * n * Hkv * D * 4) : grad_bytes(s + 1), computed[s]);
  }
  RINGLAB_CUDA_CHECK(cudaStreamWaitEvent(compute, grads_ready[ring], 0));
  RINGLAB_CUDA_CHECK(cudaStreamSynchronize(compute));

  // Gather this rank's rows into the whole host tensors.
  std::vector<unsigned char> out_host(out.bytes());
  std::vector<float> lse_host(B * H * n), dq_host(B * n * H * D), dk_host(B * n * Hkv * D), dv_host(B * n * Hkv * D);
  out.download(out_host.data(), out_host.size());
  lse.download(lse_host.data(), lse_host.size() * 4);
  dq.download(dq_host.data(), dq_host.size() * 4);
  dk_home.download(dk_host.data(), dk_host.size() * 4);
  dv_home.download(dv_host.data(), dv_host.size() * 4);
  for (cudaEvent_t e : events) cudaEventDestroy(e);
  cudaStreamDestroy(compute);
  cudaStreamDestroy(comm_stream);
  const auto rows = positions.expand();
  std::lock_guard<std::mutex> lock(result_mutex);
  for (i64 b = 0; b < B; ++b)
    for (i64 r = 0; r < n; ++r) {
      const i64 whole = b * N + rows[r], shard = b * n + r;
      std::copy_n(out_host.begin() + shard * H * D * es, H * D * es, result.out.begin() + whole * H * D * es);
      std::copy_n(dq_host.begin() + shard * H * D, H * D, result.dq.begin() + whole * H * D);
      std::copy_n(dk_host.begin() + shard * Hkv * D, Hkv * D, result.dk.begin() + whole * Hkv * D);
      std::copy_n(dv_host.begin() + shard * Hkv * D, Hkv * D, result.dv.begin() + whole * Hkv * D);
      for (i64 h = 0; h < H; ++h) result.lse[(b * H + h) * N + rows[r]] = lse_host[(b * H + h) * n + r];
    }
}

}  // namespace

bool nccl_ring_available() { return true; }

NcclRingOutputs run_nccl_ring(const AttentionConfig& config_in, DType dtype, const NcclRingInputs& inputs) {
  AttentionConfig config = config_in;
  config.validate();
  if (config.dilated() || config.q_replicated || config.kv_seq != config.seq || config.q_start != 0)
    throw ConfigError("config", describe(config), "the NCCL ring supports self-attention without dilation");
  const int ring = config.ring;
  if (ring > device_count())
    throw ConfigError("ring", std::to_string(ring), "at most the " + std::to_string(device_count()) + " local GPUs");
  const RingSchedule schedule = make_ring_schedule(config, ScheduleOptions{static_cast<i64>(size_of(dtype))});
  const i64 B = config.batch, N = config.seq, H = config.heads, Hkv = config.kv_heads, D = config.head_dim;
  NcclRingOutputs result;
  result.out.resize(static_cast<std::size_t>(B * N * H * D) * size_of(dtype));
  result.lse.resize(B * H * N);
  result.dq.resize(B * N * H * D);
  result.dk.resize(B * N * Hkv * D);
  result.dv.resize(B * N * Hkv * D);
  std::vector<ncclComm_t> comms(ring);
  std::vector<int> devices(ring);
  for (int r = 0; r < ring; ++r) devices[r] = r;
  RINGLAB_NCCL_CHECK(ncclCommInitAll(comms.data(), ring, devices.data()));
  std::mutex mutex;
  std::vector<std::string> errors(ring);
  std::vector<std::thread> threads;
  for (int r = 0; r < ring; ++r)
    threads.emplace_back([&, r] {
      try {
        nccl_rank(config, schedule, dtype, r, comms[r], inputs, result, mutex);
      } catch (const std::exception& error) {
        errors[r] = error.what();
        ncclCommAbort(comms[r]);  // no watchdog yet: peers blocked in NCCL kernels may still wait
      }
    });
  for (auto& t : threads) t.join();
  std::string message;
  for (int r = 0; r < ring; ++r) {
    if (errors[r].empty()) ncclCommDestroy(comms[r]);
    else message += "rank " + std::to_string(r) + ": " + errors[r] + "\n";
  }
  if (!message.empty()) throw CudaError("NCCL ring failed:\n" + message);
  return result;
}

}  // namespace ringlab::gpu

#else  // no NCCL at build time

namespace ringlab::gpu {
bool nccl_ring_available() { return false; }
NcclRingOutputs run_nccl_ring(const AttentionConfig&, DType, const NcclRingInputs&) {
  throw ConfigError("ring backend", "nccl", "this build has no NCCL (libnccl not found at configure time)");
}
}  // namespace ringlab::gpu

#endif
