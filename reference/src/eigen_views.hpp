// Internal: MatrixView (row-major, row stride) seen as Eigen matrices, without copies. Used by the
// reference kernels only; nothing outside reference/src includes Eigen through this.
#pragma once

#include <Eigen/Dense>
#include <cstdint>

#include "ringlab/block_attention.hpp"

namespace ringlab::detail {

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using Vector = Eigen::Array<T, Eigen::Dynamic, 1>;
template <class T>
using ConstMap = Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using MutableMap = Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>>;

// Rows [first_row, first_row + row_count) of a view.
template <class T>
ConstMap<T> rows_of(MatrixView<const T> view, std::int64_t first_row, std::int64_t row_count) {
  return ConstMap<T>(view.row(first_row), row_count, view.cols, Eigen::OuterStride<>(view.row_stride));
}
template <class T>
MutableMap<T> rows_of(MatrixView<T> view, std::int64_t first_row, std::int64_t row_count) {
  return MutableMap<T>(view.row(first_row), row_count, view.cols, Eigen::OuterStride<>(view.row_stride));
}

// The whole view.
template <class T>
ConstMap<T> as_matrix(MatrixView<const T> view) {
  return rows_of(view, 0, view.rows);
}
template <class T>
MutableMap<T> as_matrix(MatrixView<T> view) {
  return rows_of(view, 0, view.rows);
}

}  // namespace ringlab::detail
