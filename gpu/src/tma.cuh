// Tile copies by the Tensor Memory Accelerator (TMA, sm_90) for the Hopper kernels.
//
// Why: the forward's main loop ran 2.28 µs per 128-key tile at D = 128 with its producer warpgroup copying K and
// V by cp.async (16 bytes per thread per instruction); with those copies skipped (an experiment, same kernel)
// it ran at 659 instead of 455 TFLOP/s at N = 16384 (bench/results/gpu-tma-2026-11-22-H100.md). A TMA copy is one
// instruction for a whole [128 rows][64 values] box, issued by one thread, that lands in the 128-byte swizzle
// wgmma reads (tiles.cuh Swizzle128Blocks) and completes a transaction count on the stage's mbarrier.
//
// What a descriptor describes. A tensor [B, rows, heads, D] (BNHD, rows `heads·D` elements apart) whose tile
// rows advance by `row_step` tensor rows (1: dense, contiguous and zigzag chunks; r: a dilated head with rate r;
// striped chunks under dilation: the period): the 4-d view
//     dims (D, heads, row_step, ⌈B·rows / row_step⌉), strides (1, D, heads·D, row_step·heads·D) elements,
// in which global row R = b·rows + row is at coordinates (d, head, R mod row_step, R div row_step), and a box
// (64, 1, 1, Rows) is Rows rows spaced row_step apart: strided dilation is addressing here too, no gather. The
// last coordinate's extent rounds up, so a map describes a few rows past the tensor; a copy only ever asks for
// rows of a run the kernel visits (tile_in_run below), so those are never read.
#pragma once

#include <cuda.h>  // CUtensorMap
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "attention_params.cuh"

namespace ringlab::gpu::detail {

// Descriptors for the row steps a launch's heads use on one side, found by the host (encode_row_maps).
struct RowTileMaps {
  static constexpr int kMaxSteps = 4;  // LongNet's patterns use 1–4 rates; a head with a fifth falls back to cp.async
  CUtensorMap map[kMaxSteps];
  int row_step[kMaxSteps];
  int count = 0;

  // The descriptor for `step`, or nullptr (the caller copies with cp.async).
  __device__ const CUtensorMap* find(i64 step) const {
    for (int i = 0; i < count; ++i)
      if (row_step[i] == step) return &map[i];
    return nullptr;
  }
};

// Where rows [first, first + Rows) of `map` start, if they lie in one run: tensor row and step. A tile that
// crosses the two runs of a zigzag chunk or the end of the rows is copied by cp.async (load_tile_async).
struct TileRun {
  bool single = false;
  i64 first_row = 0, row_step = 1;
};
template <int Rows>
__host__ __device__ inline TileRun tile_in_run(const RowMap& map, i64 first) {
  const bool second = first >= map.run[0].count;
  const RowRun& run = second ? map.run[1] : map.run[0];
  const i64 run_begin = second ? map.run[0].count : 0;
  TileRun result;
  result.single = first + Rows <= run_begin + run.count;
  result.first_row = run.first_row + (first - run_begin) * run.row_step;
  result.row_step = run.row_step;
  return result;
}

// The box at coordinates (c0, c1, c2, c3) of `map` into shared memory at `destination` (1024-byte aligned for
// the 128-byte swizzle); the bytes complete on `barrier`. `map` is the generic address of a __grid_constant__
// kernel parameter.
__device__ __forceinline__ void copy_box_4d(std::uint32_t destination, const CUtensorMap* map, int c0, int c1, int c2,
                                            int c3, std::uint32_t barrier) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];\n" ::"r"(destination),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(barrier)
      : "memory");
}


// Rows row_step apart from global row `row` (= b·rows + tensor row) of head `head`, [Rows][HeadDim] into a
// Swizzle128Blocks<Rows> tile: one box per 64 columns. Called by one thread, which has announced the bytes
// (Rows·HeadDim·2) on `barrier`.
template <int Rows, int HeadDim>
__device__ __forceinline__ void copy_tile_tma(std::uint32_t tile, const CUtensorMap* map, int head, i64 row,
                                              i64 row_step, std::uint32_t barrier) {
  const int c2 = static_cast<int>(mod_nonnegative(row, row_step));
  const int c3 = static_cast<int>(divide_nonnegative(row, row_step));
#pragma unroll
  for (int block = 0; block < HeadDim / 64; ++block)
    copy_box_4d(tile + block * Rows * 128, map, block * 64, head, c2, c3, barrier);
}

// Host: the distinct row steps (at most kMaxSteps, in order of first use) of the runs that hold a whole tile of
// `min_rows` rows, over the heads of a launch, on the key side (`keys`) or the query side.
int collect_row_steps(const AttentionParams& params, bool keys, int min_rows, i64 (&steps)[RowTileMaps::kMaxSteps]);

// Host: descriptors for a [batch, rows, heads, head_dim] tensor of 2-byte elements at `base`, one per distinct
// row step among the runs of `steps` (each run long enough for a whole tile), boxes of `box_rows` rows. Leaves
// maps.count = 0 (every copy by cp.async) when the driver has no encoder or the rows do not fit TMA's 32-bit
// coordinates.
void encode_row_maps(RowTileMaps& maps, const void* base, bool bfloat16, i64 batch, i64 rows, i64 heads,
                     i64 head_dim, const i64* steps, int step_count, int box_rows);

// Descriptors encode_row_maps has made in this process (so that a test can see the TMA path was taken).
i64 tma_descriptors_encoded();

}  // namespace ringlab::gpu::detail
