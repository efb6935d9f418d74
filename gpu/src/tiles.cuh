// Shared-memory tiles of the tensor-core kernels: the swizzled layout and the asynchronous row copies.
#pragma once

#include <cstdint>

#include "attention_params.cuh"
#include "ptx.cuh"

namespace ringlab::gpu::detail {

// Byte offset of 16-byte chunk `chunk` of row `row` in a tile of `Chunks` chunks per row (Chunks ≥ 8).
// The chunk index is XORed with row mod 8: the 8 rows one ldmatrix matrix reads (same logical chunk)
// land in 8 different bank groups, for ldmatrix and ldmatrix.trans alike, and so do the 4-byte stores
// of an mma C fragment (8 rows × 4 lanes of one chunk).
template <int Chunks>
__device__ __forceinline__ std::uint32_t swizzle(int row, int chunk) {
  static_assert(Chunks >= 8, "the XOR swizzle needs at least 8 chunks (64 fp16/bf16 values) per row");
  return static_cast<std::uint32_t>(row * Chunks * 16 + ((chunk ^ (row & 7)) * 16));
}

// The layouts a tile copy can write. SwizzledRows: rows of HeadDim values one after the other, swizzled as
// above (the mma.sync kernels). Swizzle128Blocks: the layout wgmma's 128-byte-swizzle descriptors read
// (forward_hopper.cu, backward_hopper.cu; wgmma::k_major / mn_major): the tile split into column blocks of
// 64 values (one block when it is 64 wide), block after block, each block [Rows][128 bytes] with chunk c of
// row r at c XOR (r mod 8); the tile must start 1024-byte aligned.
template <int Chunks>
struct SwizzledRows {
  __device__ __forceinline__ static std::uint32_t offset(int row, int chunk) { return swizzle<Chunks>(row, chunk); }
};
template <int Rows>
struct Swizzle128Blocks {
  __device__ __forceinline__ static std::uint32_t offset(int row, int chunk) {
    return static_cast<std::uint32_t>((chunk / 8) * Rows * 128 + row * 128 + (((chunk % 8) ^ (row & 7)) * 16));
  }
};

// cp.async of rows [first, first + Rows) of `map` from one head of a [B, rows, heads, HeadDim] tensor
// (`head_rows`: that batch and head at row 0; consecutive rows `row_stride` elements apart) into a
// [Rows][HeadDim] tile laid out by `Layout`. Rows past the map are zero-filled. Threads 0 .. Threads − 1 of
// the block copy (threadIdx.x picks the row and chunk): a warp-specialised kernel's copying warpgroup is
// warpgroup 0. Strided dilation and zigzag/striped
// chunks are just other row maps: no gather copy exists anywhere.
template <class Element, int Rows, int HeadDim, int Threads, class Layout = SwizzledRows<HeadDim / 8>>
__device__ __forceinline__ void load_tile_async(std::uint32_t tile, const Element* head_rows, i64 row_stride,
                                                const RowMap& map, i64 first) {
  constexpr int Chunks = HeadDim / 8;
  constexpr int RowsPerPass = Threads / Chunks;
  static_assert(Threads % Chunks == 0 && Rows % RowsPerPass == 0, "tile copy shape");
  const int chunk = static_cast<int>(threadIdx.x) % Chunks;
  const int row0 = static_cast<int>(threadIdx.x) / Chunks;
  // Usually the whole tile lies in one run: row(first + r) = row(first) + r·row_step, one multiply-add
  // per row. A tile across the two runs of a zigzag chunk (or past the end) takes the general path.
  const RowRun& run = first < map.run[0].count ? map.run[0] : map.run[1];
  const i64 run_begin = first < map.run[0].count ? 0 : map.run[0].count;
  if (first + Rows <= run_begin + run.count) {
    const Element* base = head_rows + (run.first_row + (first - run_begin) * run.row_step) * row_stride + chunk * 8;
    const i64 step = run.row_step * row_stride;
#pragma unroll
    for (int pass = 0; pass < Rows / RowsPerPass; ++pass) {
      const int r = row0 + pass * RowsPerPass;
      ptx::cp_async_16(tile + Layout::offset(r, chunk), base + r * step, true);
    }
    return;
  }
#pragma unroll
  for (int pass = 0; pass < Rows / RowsPerPass; ++pass) {
    const int r = row0 + pass * RowsPerPass;
    const i64 i = first + r;
    const bool valid = i < map.rows;
    const Element* source = valid ? head_rows + map.row(i) * row_stride + chunk * 8 : head_rows;
    ptx::cp_async_16(tile + Layout::offset(r, chunk), source, valid);
  }
}

// Masking of a warp's [16·MTiles × 8·NTiles] score C fragments (lane holds rows g, g+8 of each m16 tile and
// columns 2c, 2c+1 of each n8 tile; g = lane/4, c = lane%4). `first_query` / `first_key` are the row and
// column indices, in the head's row maps, of the fragment's top-left entry. Entries whose pair the mask
// forbids, or whose row or column lies past the block, become −∞. Only partial tiles are masked.
//
// Two versions. The band alone (no dilation, or strided dilation on a tile inside one segment, where
// selection is done by addressing and the segment test is true) is a few integer compares per entry and
// stays inline. Everything else (tiles across a segment border, rates that do not divide the segment)
// calls HeadView::allows per entry, with 64-bit divisions: it lives in a separate function that returns
// the allowed entries as a bit mask, so that its code and registers stay out of the kernel's main loop.

// Positions of rows [first, first + count) of a row map when they lie in one run: base + i·step.
struct AffinePositions {
  bool valid = false;
  i64 base = 0, step = 0;
};
__device__ __forceinline__ AffinePositions affine_positions(const RowMap& map, i64 first, int count) {
  AffinePositions affine;
  const i64 split = map.run[0].count;
  if (first + count <= split) {
    affine = {true, map.run[0].first_position + first * map.run[0].position_step, map.run[0].position_step};
  } else if (first >= split && first + count <= map.rows) {
    affine = {true, map.run[1].first_position + (first - split) * map.run[1].position_step, map.run[1].position_step};
  }
  return affine;
}

template <int MTiles, int NTiles>
__device__ __forceinline__ void mask_band(float (&s)[MTiles][NTiles][4], const HeadView& view, i64 first_query,
                                          i64 first_key, int lane) {
  const int g = lane / 4, c = lane % 4;
  const BandMask band{view.band_lo, view.band_hi};
  const AffinePositions q_affine = affine_positions(view.q, first_query, 16 * MTiles);
  const AffinePositions k_affine = affine_positions(view.k, first_key, 8 * NTiles);
  if (q_affine.valid && k_affine.valid) {  // the usual case: both fragments inside one run each
#pragma unroll
    for (int nt = 0; nt < NTiles; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const i64 k_position = k_affine.base + (nt * 8 + 2 * c + e) * k_affine.step;
#pragma unroll
        for (int mt = 0; mt < MTiles; ++mt)
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const i64 q_position = q_affine.base + (mt * 16 + g + 8 * half) * q_affine.step;
            if (!band.allows(q_position, k_position)) s[mt][nt][2 * half + e] = -INFINITY;
          }
      }
    return;
  }
  const i64 q_rows = view.q.rows, k_rows = view.k.rows;
  i64 q_position[MTiles][2];
#pragma unroll
  for (int mt = 0; mt < MTiles; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const i64 query = first_query + mt * 16 + g + 8 * half;
      // A row past the block gets a position no key can reach, so that its entries are masked too.
      q_position[mt][half] = query < q_rows ? view.q.position(query) : BandMask::kUnbounded * 2;
    }
#pragma unroll
  for (int nt = 0; nt < NTiles; ++nt)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const i64 key = first_key + nt * 8 + 2 * c + e;
      const bool k_valid = key < k_rows;
      const i64 k_position = k_valid ? view.k.position(key) : 0;
#pragma unroll
      for (int mt = 0; mt < MTiles; ++mt)
#pragma unroll
        for (int half = 0; half < 2; ++half)
          if (!(k_valid && band.allows(q_position[mt][half], k_position))) s[mt][nt][2 * half + e] = -INFINITY;
    }
}

// Bit (mt·NTiles + nt)·4 + e of the result: entry s[mt][nt][e] is allowed.
template <int MTiles, int NTiles>
__device__ __noinline__ unsigned long long allowed_entries(const HeadView& view, i64 first_query, i64 first_key,
                                                           int lane) {
  static_assert(MTiles * NTiles * 4 <= 64, "one bit per entry");
  const int g = lane / 4, c = lane % 4;
  unsigned long long bits = 0;
  for (int mt = 0; mt < MTiles; ++mt)
    for (int half = 0; half < 2; ++half) {
      const i64 query = first_query + mt * 16 + g + 8 * half;
      if (query >= view.q.rows) continue;
      const i64 q_position = view.q.position(query);
      for (int nt = 0; nt < NTiles; ++nt)
        for (int e = 0; e < 2; ++e) {
          const i64 key = first_key + nt * 8 + 2 * c + e;
          if (key < view.k.rows && view.allows(q_position, view.k.position(key)))
            bits |= 1ull << ((mt * NTiles + nt) * 4 + 2 * half + e);
        }
    }
  return bits;
}

template <int MTiles, int NTiles>
__device__ __forceinline__ void mask_general(float (&s)[MTiles][NTiles][4], const HeadView& view, i64 first_query,
                                             i64 first_key, int lane) {
  const unsigned long long bits = allowed_entries<MTiles, NTiles>(view, first_query, first_key, lane);
#pragma unroll
  for (int mt = 0; mt < MTiles; ++mt)
#pragma unroll
    for (int nt = 0; nt < NTiles; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (!((bits >> ((mt * NTiles + nt) * 4 + e)) & 1u)) s[mt][nt][e] = -INFINITY;
}

// Masks a partial tile; `band_only` comes from classify().
template <int MTiles, int NTiles>
__device__ __forceinline__ void mask_scores(float (&s)[MTiles][NTiles][4], const HeadView& view, i64 first_query,
                                            i64 first_key, int lane, bool band_only) {
  if (band_only)
    mask_band<MTiles, NTiles>(s, view, first_query, first_key, lane);
  else
    mask_general<MTiles, NTiles>(s, view, first_query, first_key, lane);
}

}  // namespace ringlab::gpu::detail
