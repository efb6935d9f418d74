// GPU tests: run for real on the GPU machines, skip with a message where there is no device (CI).
#include <random>

#include "catch_compat.hpp"
#include "ringlab/block_attention.hpp"
#include "ringlab/gpu/device.hpp"
#include "ringlab/gpu/lse_merge.hpp"

using namespace ringlab;

TEST_CASE("gpu::lse_merge equals reference::lse_merge", "[gpu]") {
  if (gpu::device_count() == 0) RINGLAB_SKIP("GPU test skipped: " + gpu::unavailable_reason());
  INFO("device: " << gpu::describe_device());
  const std::int64_t rows = 1025, head_dim = 97;
  std::mt19937 random(3);
  std::normal_distribution<float> normal;
  std::vector<float> out(rows * head_dim), other(rows * head_dim), lse(rows), other_lse(rows);
  for (auto* values : {&out, &other}) for (auto& x : *values) x = normal(random);
  for (std::int64_t i = 0; i < rows; ++i) {
    lse[i] = i % 7 == 0 ? -INFINITY : 3 * normal(random);
    other_lse[i] = i % 5 == 0 ? -INFINITY : 3 * normal(random);
    if (i % 7 == 0) std::fill_n(out.begin() + i * head_dim, head_dim, 0.0f);
    if (i % 5 == 0) std::fill_n(other.begin() + i * head_dim, head_dim, 0.0f);
  }
  std::vector<float> expected = out, expected_lse = lse, got = out, got_lse = lse;
  lse_merge(MatrixView<float>{expected.data(), rows, head_dim, head_dim}, std::span<float>(expected_lse),
            MatrixView<const float>{other.data(), rows, head_dim, head_dim}, std::span<const float>(other_lse));
  gpu::lse_merge(got, got_lse, other, other_lse, head_dim);
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::abs(got[i] - expected[i])));
  CHECK(worst < 1e-5);
  for (std::int64_t i = 0; i < rows; ++i) {
    if (std::isinf(expected_lse[i]))
      CHECK(got_lse[i] == expected_lse[i]);
    else
      CHECK(std::abs(got_lse[i] - expected_lse[i]) < 1e-5);
  }
}
