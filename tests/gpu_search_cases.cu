// Device side of the test "WarpSearch finds what SerialSearch finds" (test_gpu.cpp): one warp runs
// attention_params.cuh's WarpSearch on many (lo, hi, threshold) cases of the predicate t ≥ threshold, and
// every lane writes its answer, so that the test sees that all 32 lanes agree.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention_params.cuh"
#include "kernel_sends.cuh"

namespace {

using ringlab::gpu::detail::i64;

// answers[32i + lane]: the lane's answer, or −1 − answer if the lane evaluated the predicate outside [lo, hi)
// (a tile past the range would be read past its row map).
__global__ void warp_search_cases(const i64* cases, int count, i64* answers) {
  for (int i = 0; i < count; ++i) {
    const i64 lo = cases[3 * i], hi = cases[3 * i + 1], threshold = cases[3 * i + 2];
    bool outside = false;
    const i64 answer = ringlab::gpu::detail::WarpSearch{}(lo, hi, [&](i64 t) {
      outside = outside || t < lo || t >= hi;
      return t >= threshold;
    });
    answers[32 * i + threadIdx.x] = outside ? -1 - answer : answer;
  }
}

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

}  // namespace

namespace ringlab::testing {

// cases: (lo, hi, threshold) triples; returns 32 answers per case (one per lane; negative: it probed outside).
std::vector<std::int64_t> run_warp_search_cases(const std::vector<std::int64_t>& cases) {
  const int count = static_cast<int>(cases.size() / 3);
  i64 *device_cases = nullptr, *device_answers = nullptr;
  check(cudaMalloc(&device_cases, cases.size() * sizeof(i64)), "cudaMalloc");
  check(cudaMalloc(&device_answers, static_cast<std::size_t>(count) * 32 * sizeof(i64)), "cudaMalloc");
  check(cudaMemcpy(device_cases, cases.data(), cases.size() * sizeof(i64), cudaMemcpyHostToDevice), "upload");
  warp_search_cases<<<1, 32>>>(device_cases, count, device_answers);
  check(cudaGetLastError(), "launch");
  std::vector<std::int64_t> answers(static_cast<std::size_t>(count) * 32);
  check(cudaMemcpy(answers.data(), device_answers, answers.size() * sizeof(i64), cudaMemcpyDeviceToHost), "download");
  cudaFree(device_cases);
  cudaFree(device_answers);
  return answers;
}

// The host's answer for the same case (SerialSearch).
std::int64_t serial_search_case(std::int64_t lo, std::int64_t hi, std::int64_t threshold) {
  return ringlab::gpu::detail::SerialSearch{}(lo, hi, [&](i64 t) { return t >= threshold; });
}

// The kernels' integer helpers (host side; the same code runs on the device) against plain 64-bit
// arithmetic and brute force: divide_nonnegative / positive_mod on both sides of 2^31, and
// restrict_to_residue on small runs. Returns a description of the first mismatch, or "".
std::string check_row_arithmetic() {
  using namespace ringlab::gpu::detail;
  const i64 big = i64{1} << 33;
  const std::vector<i64> values = {0, 1, 2, 3, 7, 31, 32, 1023, 2147483646, 2147483647, 2147483648, 4294967295,
                                   4294967296, big + 5, 3 * big + 1};
  for (i64 a : values)
    for (i64 b : values) {
      if (b == 0) continue;
      if (divide_nonnegative(a, b) != a / b) return "divide_nonnegative(" + std::to_string(a) + ", " + std::to_string(b) + ")";
      for (i64 sign : {1, -1}) {
        const i64 x = sign * a, expected = ((x % b) + b) % b;
        if (positive_mod(x, b) != expected) return "positive_mod(" + std::to_string(x) + ", " + std::to_string(b) + ")";
      }
    }
  for (i64 first_position : {0, 1, 5, 12})
    for (i64 position_step : {1, 2, 3, 4, 6})
      for (i64 count : {1, 2, 7, 40})
        for (i64 modulus : {1, 2, 3, 4, 8})
          for (i64 residue = 0; residue < modulus; ++residue) {
            RowRun run{count, 100, 3, first_position, position_step};
            const RowRun got = restrict_to_residue(run, residue, modulus);
            std::vector<i64> expected_rows, got_rows;
            for (i64 i = 0; i < count; ++i)
              if ((first_position + i * position_step) % modulus == residue) expected_rows.push_back(100 + 3 * i);
            for (i64 i = 0; i < got.count; ++i) {
              got_rows.push_back(got.first_row + i * got.row_step);
              if ((got.first_position + i * got.position_step) % modulus != residue) return "restrict_to_residue position";
            }
            if (got_rows != expected_rows)
              return "restrict_to_residue(first " + std::to_string(first_position) + ", step " +
                     std::to_string(position_step) + ", count " + std::to_string(count) + ", residue " +
                     std::to_string(residue) + " mod " + std::to_string(modulus) + ")";
          }
  return "";
}

// The hops a virtual ring step's kernel does (kernel_sends.cuh), on the host: over a whole grid, every 16 bytes of
// K and V (and, backward, of the received dK/dV) go exactly once, to the same offset of the matching destination.
// Forward: the blocks' equal shares. Backward: each block's own key rows (one owner per row: Hkv = H), for the row
// maps of a contiguous chunk, a zigzag chunk (two runs) and a striped one. A unit sent twice or never, or to the
// wrong place, names itself. "" when all hold.
std::string check_send_coverage() {
  using namespace ringlab::gpu::detail;
  // Fake device addresses, far apart: only their differences are used.
  auto base = [](int tensor) { return reinterpret_cast<unsigned char*>(std::uintptr_t{1} << 40) + (i64{tensor} << 34); };
  for (i64 tensor_units : {1, 7, 1000, 12345})
    for (i64 blocks : {1, 3, 132, 2000}) {
      AttentionParams p;
      p.batch = 1, p.kv_heads = 1, p.head_dim = 8, p.rows_k = tensor_units;  // 8 bf16 = 16 bytes a row
      p.k = base(0), p.v = base(1), p.k_send = base(2), p.v_send = base(3);
      std::vector<int> sent(static_cast<std::size_t>(2 * tensor_units), 0);
      for (i64 block = 0; block < blocks; ++block) {
        i64 first, end;
        block_slice<2>(p, block, blocks, first, end);
        for (i64 g = first; g < end; ++g) {
          const SendUnit unit = slice_unit<2>(p, g);
          const bool value = g >= tensor_units;
          const auto* from = reinterpret_cast<const unsigned char*>(unit.from);
          const auto* to = reinterpret_cast<unsigned char*>(unit.to);
          if (from - base(value ? 1 : 0) != to - base(value ? 3 : 2) || (from - base(value ? 1 : 0)) % 16 != 0)
            return "forward send of unit " + std::to_string(g) + ": source and destination offsets differ";
          ++sent[static_cast<std::size_t>((value ? tensor_units : 0) + (from - base(value ? 1 : 0)) / 16)];
        }
      }
      for (std::size_t u = 0; u < sent.size(); ++u)
        if (sent[u] != 1)
          return "forward sends, T = " + std::to_string(tensor_units) + ", G = " + std::to_string(blocks) + ": unit " +
                 std::to_string(u) + " sent " + std::to_string(sent[u]) + " times";
    }
  constexpr int kBlockN = 128;
  const i64 batch = 2, heads = 3, head_dim = 64, rows = 300;  // 300 rows: a partial last key tile
  RowMap contiguous, zigzag, striped;
  contiguous.run[0] = {rows, 0, 1, 0, 1};
  contiguous.rows = rows;
  zigzag.run[0] = {150, 0, 1, 150, 1};
  zigzag.run[1] = {150, 150, 1, 1050, 1};
  zigzag.rows = rows;
  striped.run[0] = {rows, 0, 1, 2, 4};
  striped.rows = rows;
  for (const RowMap* map : {&contiguous, &zigzag, &striped})
    for (int which = 0; which < 3; ++which) {  // K/V only, dK/dV only, both
      AttentionParams p;
      p.batch = batch, p.heads = p.kv_heads = heads, p.head_dim = head_dim, p.rows_k = rows;
      p.k = base(0), p.v = base(1), p.dk = reinterpret_cast<float*>(base(2)), p.dv = reinterpret_cast<float*>(base(3));
      if (which != 1) p.k_send = base(4), p.v_send = base(5);
      if (which != 0) p.dk_from = reinterpret_cast<const float*>(base(6)), p.dv_from = reinterpret_cast<const float*>(base(7));
      // [tensor] → how often each 16 bytes went: K, V (bf16), dK, dV (fp32), by source.
      const i64 elements = batch * rows * heads * head_dim;
      std::vector<int> sent_count[4] = {std::vector<int>(elements * 2 / 16), std::vector<int>(elements * 2 / 16),
                                        std::vector<int>(elements * 4 / 16), std::vector<int>(elements * 4 / 16)};
      const unsigned char* sources[4] = {base(0), base(1), base(6), base(7)};
      const unsigned char* destinations[4] = {base(4), base(5), base(2), base(3)};
      for (i64 b = 0; b < batch; ++b)
        for (i64 h = 0; h < heads; ++h)
          for (i64 tile = 0; tile * kBlockN < rows; ++tile) {
            BlockPlan plan;
            plan.view.k = *map;
            plan.fixed_begin = tile * kBlockN;
            plan.fixed_end = std::min<i64>(rows, (tile + 1) * kBlockN);
            plan.kv_offset = (b * rows * heads + h) * head_dim;
            const i64 units = key_row_units<2>(p, plan);
            for (i64 u = 0; u < units; ++u) {
              const SendUnit unit = key_row_unit<2>(p, plan, u);
              const auto* from = reinterpret_cast<const unsigned char*>(unit.from);
              const auto* to = reinterpret_cast<const unsigned char*>(unit.to);
              int t = 0;
              while (t < 4 && !(from >= sources[t] && from < sources[t] + (i64{1} << 34))) ++t;
              if (t == 4 || from - sources[t] != to - destinations[t] || (from - sources[t]) % 16 != 0)
                return "backward send of block (" + std::to_string(tile) + ", " + std::to_string(h) + ", " +
                       std::to_string(b) + ") unit " + std::to_string(u) + ": wrong source or destination";
              const auto index = static_cast<std::size_t>((from - sources[t]) / 16);
              if (index >= sent_count[t].size()) return "backward send outside its tensor";
              ++sent_count[t][index];
            }
          }
      const bool kv = which != 1, grads = which != 0;
      for (int t = 0; t < 4; ++t)
        for (std::size_t i = 0; i < sent_count[t].size(); ++i)
          if (sent_count[t][i] != ((t < 2 ? kv : grads) ? 1 : 0))
            return std::string("backward sends (") + (map == &contiguous ? "contiguous" : map == &zigzag ? "zigzag" : "striped") +
                   "): 16 bytes " + std::to_string(i) + " of tensor " + std::to_string(t) + " sent " +
                   std::to_string(sent_count[t][i]) + " times";
    }
  return "";
}

}  // namespace ringlab::testing
