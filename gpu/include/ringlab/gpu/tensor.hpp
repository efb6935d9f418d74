// A view of a [batch, rows, heads, head_dim] ("BNHD") tensor in device memory, contiguous and row-major,
// the GPU counterpart of reference/include/ringlab/tensor.hpp. Q, O, dO, dQ have `heads` = H, K, V, dK,
// dV have `heads` = Hkv; rows are the block's tokens (their global positions are given separately).
#pragma once

#include <cstdint>

#include "ringlab/gpu/dtype.hpp"

namespace ringlab::gpu {

// Written by the call.
struct DeviceTensor {
  void* data = nullptr;
  DType dtype = DType::bf16;
  std::int64_t batch = 1;
  std::int64_t rows = 0;
  std::int64_t heads = 1;
  std::int64_t head_dim = 0;
  std::int64_t size() const { return batch * rows * heads * head_dim; }
};

// Only read; a DeviceTensor converts to it.
struct ConstDeviceTensor {
  const void* data = nullptr;
  DType dtype = DType::bf16;
  std::int64_t batch = 1;
  std::int64_t rows = 0;
  std::int64_t heads = 1;
  std::int64_t head_dim = 0;

  ConstDeviceTensor() = default;
  ConstDeviceTensor(const void* data_, DType dtype_, std::int64_t batch_, std::int64_t rows_, std::int64_t heads_,
                    std::int64_t head_dim_)
      : data(data_), dtype(dtype_), batch(batch_), rows(rows_), heads(heads_), head_dim(head_dim_) {}
  ConstDeviceTensor(const DeviceTensor& t)  // NOLINT: implicit, like T* → const T*
      : ConstDeviceTensor(t.data, t.dtype, t.batch, t.rows, t.heads, t.head_dim) {}
  std::int64_t size() const { return batch * rows * heads * head_dim; }
};

}  // namespace ringlab::gpu
