// Block attention and the LSE merge: the two operations every algorithm in ringlab is built from.
//
//   block_attention_forward:  Q block [n, D], K/V block [m, D], their global positions and a mask predicate
//                             → (O [n, D] normalised, LSE [n]); flash-style online softmax over key tiles,
//                             so it never holds more than a Br×Bc tile of scores.
//   lse_merge:                (O_a, L_a) ⊕ (O_b, L_b) = (e^{L_a−L} O_a + e^{L_b−L} O_b, L),  L = logaddexp(L_a, L_b)
//   block_attention_backward: accumulates dQ, dK, dV of one block pair from the saved global LSE and
//                             D = rowsum(dO ∘ O).
//
// A query with no allowed key gets O = 0 and LSE = −∞ (never NaN). Views are row-major with a row stride,
// so a head of a BNHD tensor is addressed in place (row stride H·D) without copies.
#pragma once

#include <cstdint>
#include <span>

#include "ringlab/mask.hpp"

namespace ringlab {

// rows × cols, row-major, `row_stride` elements between consecutive rows.
template <class T>
struct MatrixView {
  T* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t row_stride = 0;
  T* row(std::int64_t i) const { return data + i * row_stride; }
  operator MatrixView<const T>() const { return {data, rows, cols, row_stride}; }
};

struct TileSizes {
  std::int64_t query_rows = 64;  // Br
  std::int64_t key_rows = 128;   // Bc
};

template <class T>
void block_attention_forward(MatrixView<const T> q,                 // [n, D]
                             std::span<const std::int64_t> q_positions,  // [n]
                             MatrixView<const T> k,                 // [m, D]
                             MatrixView<const T> v,                 // [m, D]
                             std::span<const std::int64_t> k_positions,  // [m]
                             const MaskPredicate& mask, T scale,
                             MatrixView<T> out,       // [n, D]   written
                             std::span<T> lse,        // [n]      written
                             TileSizes tiles = {});

// In place: (out, lse) ← (out, lse) ⊕ (other_out, other_lse). Rows [n], D columns.
template <class T>
void lse_merge(MatrixView<T> out, std::span<T> lse, MatrixView<const T> other_out, std::span<const T> other_lse);

// log(e^a + e^b) with −∞ handled: logaddexp(−∞, −∞) = −∞.
template <class T>
T logaddexp(T a, T b);

template <class T>
void block_attention_backward(MatrixView<const T> q,                 // [n, D]
                              std::span<const std::int64_t> q_positions,
                              MatrixView<const T> k,                 // [m, D]
                              MatrixView<const T> v,                 // [m, D]
                              std::span<const std::int64_t> k_positions,
                              const MaskPredicate& mask, T scale,
                              MatrixView<const T> dout,              // [n, D]  dO (already scaled by any output factor)
                              std::span<const T> lse,                // [n]     the global LSE of these queries
                              std::span<const T> delta,              // [n]     D_i = rowsum(dO ∘ O), global O
                              MatrixView<T> dq,                      // [n, D]  accumulated (+=)
                              MatrixView<T> dk,                      // [m, D]  accumulated (+=)
                              MatrixView<T> dv,                      // [m, D]  accumulated (+=)
                              TileSizes tiles = {});

}  // namespace ringlab
