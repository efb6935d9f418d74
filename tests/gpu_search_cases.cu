// Device side of the test "WarpSearch finds what SerialSearch finds" (test_gpu.cpp): one warp runs
// attention_params.cuh's WarpSearch on many (lo, hi, threshold) cases of the predicate t ≥ threshold, and
// every lane writes its answer, so that the test sees that all 32 lanes agree.
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention_params.cuh"

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

}  // namespace ringlab::testing
