#include "ringlab/block_attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "eigen_views.hpp"

namespace ringlab {
namespace {

using i64 = std::int64_t;
using detail::Matrix;
using detail::rows_of;
using detail::Vector;

// Position range [min, max] of each tile of `positions`, so a tile pair can be classified in O(1).
struct TileRange {
  i64 first_row, row_count, min_position, max_position;
};
std::vector<TileRange> tile_ranges(std::span<const i64> positions, i64 tile_rows) {
  std::vector<TileRange> tiles;
  const auto total = static_cast<i64>(positions.size());
  for (i64 first = 0; first < total; first += tile_rows) {
    const i64 count = std::min(tile_rows, total - first);
    const auto [lo, hi] = std::minmax_element(positions.begin() + first, positions.begin() + first + count);
    tiles.push_back({first, count, *lo, *hi});
  }
  return tiles;
}

// S [br, bc] ← τ·Q_t·K_tᵀ with disallowed entries set to −∞. Returns false when the tile is fully masked.
template <class T>
bool masked_scores(MatrixView<const T> q, std::span<const i64> q_positions, const TileRange& q_tile,
                   MatrixView<const T> k, std::span<const i64> k_positions, const TileRange& k_tile,
                   const MaskPredicate& mask, T scale, Matrix<T>& scores) {
  const TileCoverage coverage =
      mask.classify(q_tile.min_position, q_tile.max_position, k_tile.min_position, k_tile.max_position);
  if (coverage == TileCoverage::empty) return false;
  scores.noalias() = rows_of(q, q_tile.first_row, q_tile.row_count) *
                     rows_of(k, k_tile.first_row, k_tile.row_count).transpose();
  scores *= scale;
  if (coverage == TileCoverage::partial) {
    constexpr T minus_infinity = -std::numeric_limits<T>::infinity();
    for (i64 i = 0; i < q_tile.row_count; ++i) {
      const i64 query_position = q_positions[q_tile.first_row + i];
      for (i64 j = 0; j < k_tile.row_count; ++j)
        if (!mask.allows(query_position, k_positions[k_tile.first_row + j])) scores(i, j) = minus_infinity;
    }
  }
  return true;
}

}  // namespace

template <class T>
T logaddexp(T a, T b) {
  const T larger = std::max(a, b);
  if (larger == -std::numeric_limits<T>::infinity()) return larger;
  return larger + std::log1p(std::exp(std::min(a, b) - larger));
}

template <class T>
void block_attention_forward(MatrixView<const T> q, std::span<const i64> q_positions, MatrixView<const T> k,
                             MatrixView<const T> v, std::span<const i64> k_positions, const MaskPredicate& mask,
                             T scale, MatrixView<T> out, std::span<T> lse, TileSizes tile_sizes) {
  constexpr T minus_infinity = -std::numeric_limits<T>::infinity();
  const i64 head_dim = q.cols;
  const auto query_tiles = tile_ranges(q_positions, tile_sizes.query_rows);
  const auto key_tiles = tile_ranges(k_positions, tile_sizes.key_rows);

  Matrix<T> scores, accumulator;  // S [br, bc], Õ [br, D] (unnormalised output)
  Vector<T> row_max, row_sum, tile_max, safe_max, correction;
  for (const TileRange& q_tile : query_tiles) {
    const i64 br = q_tile.row_count;
    accumulator.setZero(br, head_dim);
    row_max.setConstant(br, minus_infinity);  // m
    row_sum.setZero(br);                      // ℓ
    for (const TileRange& k_tile : key_tiles) {
      if (!masked_scores(q, q_positions, q_tile, k, k_positions, k_tile, mask, scale, scores)) continue;
      // Online softmax: m' = max(m, rowmax S); P = e^{S − m'}; ℓ' = e^{m − m'}ℓ + rowsum P; Õ' = e^{m − m'}Õ + P·V.
      tile_max = scores.rowwise().maxCoeff().array();
      tile_max = tile_max.max(row_max);
      // A row with nothing allowed yet keeps m' = −∞; subtracting 0 instead keeps e^{S − m'} at 0, not NaN.
      safe_max = (tile_max == minus_infinity).select(Vector<T>::Zero(br), tile_max);
      // Eigen's vectorised exp returns ~1e-308, not 0, for −∞: masked entries are zeroed explicitly.
      correction = (row_max == minus_infinity).select(T(0), (row_max - safe_max).exp());
      scores.array() = (scores.array() == minus_infinity).select(T(0), (scores.array().colwise() - safe_max).exp());
      row_sum = row_sum * correction + scores.rowwise().sum().array();
      accumulator.array().colwise() *= correction;
      accumulator.noalias() += scores * rows_of(v, k_tile.first_row, k_tile.row_count);
      row_max = tile_max;
    }
    auto out_rows = rows_of(out, q_tile.first_row, br);
    for (i64 i = 0; i < br; ++i) {
      const bool any_key = row_sum(i) > T(0);
      if (any_key)
        out_rows.row(i) = accumulator.row(i) / row_sum(i);
      else
        out_rows.row(i).setZero();
      lse[q_tile.first_row + i] = any_key ? row_max(i) + std::log(row_sum(i)) : minus_infinity;
    }
  }
}

template <class T>
void lse_merge(MatrixView<T> out, std::span<T> lse, MatrixView<const T> other_out, std::span<const T> other_lse) {
  for (i64 i = 0; i < out.rows; ++i) {
    const T merged = logaddexp(lse[i], other_lse[i]);
    if (merged == -std::numeric_limits<T>::infinity()) continue;  // both empty: stays (0, −∞)
    const T weight_self = std::exp(lse[i] - merged), weight_other = std::exp(other_lse[i] - merged);
    T* row = out.row(i);
    const T* other_row = other_out.row(i);
    for (i64 d = 0; d < out.cols; ++d) row[d] = weight_self * row[d] + weight_other * other_row[d];
    lse[i] = merged;
  }
}

template <class T>
void block_attention_backward(MatrixView<const T> q, std::span<const i64> q_positions, MatrixView<const T> k,
                              MatrixView<const T> v, std::span<const i64> k_positions, const MaskPredicate& mask,
                              T scale, MatrixView<const T> dout, std::span<const T> lse, std::span<const T> delta,
                              MatrixView<T> dq, MatrixView<T> dk, MatrixView<T> dv, TileSizes tile_sizes) {
  constexpr T infinity = std::numeric_limits<T>::infinity();
  const auto query_tiles = tile_ranges(q_positions, tile_sizes.query_rows);
  const auto key_tiles = tile_ranges(k_positions, tile_sizes.key_rows);
  Matrix<T> scores, dprobs;  // S then P [br, bc]; dP then dS [br, bc]
  Vector<T> safe_lse;
  for (const TileRange& k_tile : key_tiles) {
    const auto k_rows = rows_of(k, k_tile.first_row, k_tile.row_count);
    const auto v_rows = rows_of(v, k_tile.first_row, k_tile.row_count);
    auto dk_rows = rows_of(dk, k_tile.first_row, k_tile.row_count);
    auto dv_rows = rows_of(dv, k_tile.first_row, k_tile.row_count);
    for (const TileRange& q_tile : query_tiles) {
      if (!masked_scores(q, q_positions, q_tile, k, k_positions, k_tile, mask, scale, scores)) continue;
      const i64 br = q_tile.row_count;
      const auto q_rows = rows_of(q, q_tile.first_row, br);
      const auto dout_rows = rows_of(dout, q_tile.first_row, br);
      // P = e^{S − LSE}, 0 where masked; a row with LSE = −∞ has no allowed key: subtracting +∞ keeps P = 0.
      Eigen::Map<const Vector<T>> lse_rows(lse.data() + q_tile.first_row, br);
      Eigen::Map<const Vector<T>> delta_rows(delta.data() + q_tile.first_row, br);
      safe_lse = (lse_rows == -infinity).select(Vector<T>::Constant(br, infinity), lse_rows);
      scores.array() = (scores.array() == -infinity).select(T(0), (scores.array().colwise() - safe_lse).exp());
      dv_rows.noalias() += scores.transpose() * dout_rows;                   // dV += Pᵀ·dO
      dprobs.noalias() = dout_rows * v_rows.transpose();                      // dP = dO·Vᵀ
      dprobs.array() = scores.array() * (dprobs.array().colwise() - delta_rows);  // dS = P∘(dP − D)
      rows_of(dq, q_tile.first_row, br).noalias() += scale * (dprobs * k_rows);  // dQ += τ·dS·K
      dk_rows.noalias() += scale * (dprobs.transpose() * q_rows);                 // dK += τ·dSᵀ·Q
    }
  }
}

#define RINGLAB_INSTANTIATE(T)                                                                                     \
  template T logaddexp<T>(T, T);                                                                                   \
  template void block_attention_forward<T>(MatrixView<const T>, std::span<const i64>, MatrixView<const T>,         \
                                           MatrixView<const T>, std::span<const i64>, const MaskPredicate&, T,     \
                                           MatrixView<T>, std::span<T>, TileSizes);                                \
  template void lse_merge<T>(MatrixView<T>, std::span<T>, MatrixView<const T>, std::span<const T>);                \
  template void block_attention_backward<T>(MatrixView<const T>, std::span<const i64>, MatrixView<const T>,        \
                                            MatrixView<const T>, std::span<const i64>, const MaskPredicate&, T,    \
                                            MatrixView<const T>, std::span<const T>, std::span<const T>,           \
                                            MatrixView<T>, MatrixView<T>, MatrixView<T>, TileSizes);
RINGLAB_INSTANTIATE(float)
RINGLAB_INSTANTIATE(double)
#undef RINGLAB_INSTANTIATE

}  // namespace ringlab
