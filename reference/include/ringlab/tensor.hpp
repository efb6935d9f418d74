// A dense row-major tensor and the views the kernels take of it. Q and O are [B, N, H, D]; K, V are
// [B, M, Hkv, D]; LSE is [B, H, N]. One head of a BNHD tensor is a [N, D] view with row stride H·D.
#pragma once

#include <cstdint>
#include <algorithm>
#include <functional>
#include <numeric>
#include <span>
#include <vector>

#include "ringlab/block_attention.hpp"

namespace ringlab {

template <class T>
struct Tensor {
  std::vector<std::int64_t> shape;
  std::vector<T> data;

  Tensor() = default;
  explicit Tensor(std::vector<std::int64_t> shape_, T fill = T(0))
      : shape(std::move(shape_)),
        data(static_cast<std::size_t>(
                 std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>())),
             fill) {}
  std::int64_t size() const { return static_cast<std::int64_t>(data.size()); }

  // [B, S, heads, D] tensor: the [S, D] rows of (batch, head).
  MatrixView<T> head(std::int64_t batch, std::int64_t head_index) {
    return {data.data() + (batch * shape[1] * shape[2] + head_index) * shape[3], shape[1], shape[3],
            shape[2] * shape[3]};
  }
  MatrixView<const T> head(std::int64_t batch, std::int64_t head_index) const {
    return {data.data() + (batch * shape[1] * shape[2] + head_index) * shape[3], shape[1], shape[3],
            shape[2] * shape[3]};
  }
  // [B, H, N] tensor: the N values of (batch, head).
  std::span<T> row(std::int64_t batch, std::int64_t head_index) {
    return {data.data() + (batch * shape[1] + head_index) * shape[2], static_cast<std::size_t>(shape[2])};
  }
  std::span<const T> row(std::int64_t batch, std::int64_t head_index) const {
    return {data.data() + (batch * shape[1] + head_index) * shape[2], static_cast<std::size_t>(shape[2])};
  }
};

template <class To, class From>
Tensor<To> tensor_cast(const Tensor<From>& from) {
  Tensor<To> to;
  to.shape = from.shape;
  to.data.assign(from.data.begin(), from.data.end());
  return to;
}

// Device shards: a device's rows of a global tensor and back (used by the ring and the simulator).
// Rows `positions` of a [B, S, heads, D] tensor, as a new [B, n, heads, D] tensor (a device's local shard).
template <class T>
Tensor<T> gather_rows(const Tensor<T>& tensor, const std::vector<std::int64_t>& positions) {
  const std::int64_t B = tensor.shape[0], S = tensor.shape[1], row = tensor.shape[2] * tensor.shape[3];
  const auto n = static_cast<std::int64_t>(positions.size());
  Tensor<T> shard({B, n, tensor.shape[2], tensor.shape[3]});
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = 0; i < n; ++i)
      std::copy_n(tensor.data.begin() + (b * S + positions[i]) * row, row, shard.data.begin() + (b * n + i) * row);
  return shard;
}

template <class T>
void scatter_rows(const Tensor<T>& shard, const std::vector<std::int64_t>& positions, Tensor<T>& tensor) {
  const std::int64_t B = tensor.shape[0], S = tensor.shape[1], row = tensor.shape[2] * tensor.shape[3];
  const auto n = static_cast<std::int64_t>(positions.size());
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = 0; i < n; ++i)
      std::copy_n(shard.data.begin() + (b * n + i) * row, row, tensor.data.begin() + (b * S + positions[i]) * row);
}

// The same along the last axis of a [B, H, S] tensor.
template <class T>
Tensor<T> gather_columns(const Tensor<T>& tensor, const std::vector<std::int64_t>& positions) {
  const std::int64_t rows = tensor.shape[0] * tensor.shape[1], S = tensor.shape[2];
  const auto n = static_cast<std::int64_t>(positions.size());
  Tensor<T> shard({tensor.shape[0], tensor.shape[1], n});
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t i = 0; i < n; ++i) shard.data[r * n + i] = tensor.data[r * S + positions[i]];
  return shard;
}

template <class T>
void scatter_columns(const Tensor<T>& shard, const std::vector<std::int64_t>& positions, Tensor<T>& tensor) {
  const std::int64_t rows = tensor.shape[0] * tensor.shape[1], S = tensor.shape[2];
  const auto n = static_cast<std::int64_t>(positions.size());
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t i = 0; i < n; ++i) tensor.data[r * S + positions[i]] = shard.data[r * n + i];
}

}  // namespace ringlab
