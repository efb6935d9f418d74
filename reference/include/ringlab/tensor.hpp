// A dense row-major tensor and the views the kernels take of it. Q and O are [B, N, H, D]; K, V are
// [B, M, Hkv, D]; LSE is [B, H, N]. One head of a BNHD tensor is a [N, D] view with row stride H·D.
#pragma once

#include <cstdint>
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

}  // namespace ringlab
