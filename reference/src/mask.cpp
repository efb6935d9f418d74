#include "ringlab/mask.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "ringlab/errors.hpp"
#include <tuple>

namespace ringlab {
namespace {

using i64 = std::int64_t;
__extension__ typedef __int128 i128;  // exact pair counts up to N² at N = 2^40

i64 floor_div(i64 a, i64 b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
i64 ceil_div(i64 a, i64 b) { return -floor_div(-a, b); }
i64 positive_mod(i64 a, i64 m) { return ((a % m) + m) % m; }

// Σ_{x=-∞..X} clamp(x, 0, m): the number of pairs (x', j) with x' ≤ X, 0 ≤ j < min(x', m).
i128 clamp_prefix_sum(i128 X, i128 m) {
  if (X <= 0) return 0;
  if (X <= m) return X * (X + 1) / 2;
  return m * (m + 1) / 2 + (X - m) * m;
}

// #{(i, j) : 0 ≤ i < n, 0 ≤ j < m, i + L ≤ j ≤ i + U}.
// Σ_i clamp(i + U + 1, 0, m) − clamp(i + L, 0, m), each a sum of clamp over consecutive integers.
i128 count_index_band(i64 n, i64 m, i64 L, i64 U) {
  if (n <= 0 || m <= 0 || U < L) return 0;
  L = std::clamp<i64>(L, -(n + 1), m + 1);
  U = std::clamp<i64>(U, -(n + 2), m + 1);
  if (U < L) return 0;
  auto sum_clamped = [&](i64 c) {  // Σ_{i=0}^{n-1} clamp(i + c, 0, m)
    return clamp_prefix_sum(i128{n} - 1 + c, m) - clamp_prefix_sum(i128{c} - 1, m);
  };
  return sum_clamped(U + 1) - sum_clamped(L);
}

// Pairs between two runs of the same stride s under a band: k − q = (b − a) + (j − i)·s.
i128 count_band_equal_stride(const PositionRun& q, const PositionRun& k, const BandMask& band) {
  const i64 s = q.stride, delta = k.start - q.start;
  const i64 L = band.lo <= -BandMask::kUnbounded ? -(q.count + 1) : ceil_div(band.lo - delta, s);
  const i64 U = band.hi >= BandMask::kUnbounded ? k.count + 1 : floor_div(band.hi - delta, s);
  return count_index_band(q.count, k.count, L, U);
}

// Split `run` into sub-runs of stride `target` (a multiple of its stride).
template <class Visit>
void for_each_subrun(const PositionRun& run, i64 target, Visit&& visit) {
  const i64 parts = target / run.stride;
  for (i64 r = 0; r < parts && r < run.count; ++r)
    visit(PositionRun{run.at(r), target, (run.count - r + parts - 1) / parts});
}

i128 count_band(const PositionRun& q, const PositionRun& k, const BandMask& band) {
  if (q.count == 0 || k.count == 0) return 0;
  // A single element has every stride; give it the other run's so the strides match.
  PositionRun qq = q, kk = k;
  if (qq.count == 1) qq.stride = kk.stride;
  if (kk.count == 1) kk.stride = qq.stride;
  if (qq.stride == kk.stride) return count_band_equal_stride(qq, kk, band);
  const i64 common = std::lcm(qq.stride, kk.stride);
  i128 total = 0;
  for_each_subrun(qq, common, [&](const PositionRun& qs) {
    for_each_subrun(kk, common, [&](const PositionRun& ks) { total += count_band_equal_stride(qs, ks, band); });
  });
  return total;
}

// Extended Euclid: returns g = gcd(a, b) and x with a·x ≡ g (mod b).
i64 inverse_mod(i64 a, i64 m) {
  i64 old_r = positive_mod(a, m), r = m, old_x = 1, x = 0;
  while (r != 0) {
    const i64 q = old_r / r;
    std::tie(old_r, r) = std::make_pair(r, old_r - q * r);
    std::tie(old_x, x) = std::make_pair(x, old_x - q * x);
  }
  return positive_mod(old_x, m);
}

// The elements of `run` that lie in [lo, hi] and are ≡ residue (mod modulus), as a run (maybe empty).
PositionRun restrict_run(const PositionRun& run, i64 lo, i64 hi, i64 residue, i64 modulus) {
  // Index range of run within [lo, hi].
  i64 i_begin = std::max<i64>(0, ceil_div(lo - run.start, run.stride));
  i64 i_end = std::min<i64>(run.count, floor_div(hi - run.start, run.stride) + 1);
  if (i_end <= i_begin) return {lo, 1, 0};
  // start + i·s ≡ residue (mod r)  ⇔  i·(s/g) ≡ (residue − start)/g (mod r/g), solvable iff g | (residue − start).
  const i64 g = std::gcd(run.stride, modulus);
  const i64 need = positive_mod(residue - run.start, modulus);
  if (need % g != 0) return {lo, 1, 0};
  const i64 period = modulus / g;
  const i64 i0 = period == 1 ? 0 : static_cast<i64>((i128{need / g} * inverse_mod(run.stride / g, period)) % period);
  const i64 first = i_begin + positive_mod(i0 - i_begin, period);
  if (first >= i_end) return {lo, 1, 0};
  return {run.at(first), run.stride * period, (i_end - 1 - first) / period + 1};
}

i128 count_dilated(const PositionRun& q, const PositionRun& k, const BandMask& band, const DilationSelect& d) {
  if (q.count == 0 || k.count == 0) return 0;
  const i64 w = d.segment_length;
  // Only segments both runs reach can hold pairs.
  const i64 first_segment = std::max(q.start / w, k.start / w);
  const i64 last_segment = std::min(q.last() / w, k.last() / w);
  i128 total = 0;
  for (i64 segment = first_segment; segment <= last_segment; ++segment) {
    const i64 begin = segment * w, end = begin + w - 1;
    const PositionRun qs = restrict_run(q, begin, end, begin + d.offset, d.rate);
    if (qs.count == 0) continue;
    const PositionRun ks = restrict_run(k, begin, end, begin + d.offset, d.rate);
    total += count_band(qs, ks, band);
  }
  return total;
}

}  // namespace

BandMask BandMask::from(bool causal, std::int64_t window_left, std::int64_t window_right) {
  BandMask band;
  if (window_left >= 0) band.lo = -window_left;
  if (window_right >= 0) band.hi = window_right;
  if (causal) band.hi = std::min<i64>(band.hi, 0);
  return band;
}

TileCoverage MaskPredicate::classify(std::int64_t q_min, std::int64_t q_max, std::int64_t k_min,
                                     std::int64_t k_max) const {
  // k − q over the tile ranges over [k_min − q_max, k_max − q_min].
  if (k_min - q_max > band.hi || k_max - q_min < band.lo) return TileCoverage::empty;
  const bool band_full = k_min - q_max >= band.lo && k_max - q_min <= band.hi;
  if (!dilation) return band_full ? TileCoverage::full : TileCoverage::partial;
  const i64 w = dilation->segment_length;
  if (q_max / w < k_min / w || k_max / w < q_min / w) return TileCoverage::empty;
  return TileCoverage::partial;
}

std::int64_t count_allowed_pairs(const PositionSet& queries, const PositionSet& keys, const MaskPredicate& mask) {
  i128 total = 0;
  for (const auto& q : queries.runs)
    for (const auto& k : keys.runs) total += mask.dilation ? count_dilated(q, k, mask.band, *mask.dilation)
                                                           : count_band(q, k, mask.band);
  if (total > std::numeric_limits<i64>::max())
    throw Error("pair count overflows 64 bits; use fewer tokens per device pair");
  return static_cast<i64>(total);
}

std::int64_t count_selected(const PositionSet& set, const DilationSelect& select) {
  const i64 w = select.segment_length;
  i64 total = 0;
  for (const auto& run : set.runs) {
    for (i64 segment = run.start / w; segment <= run.last() / w; ++segment) {
      const i64 begin = segment * w;
      total += restrict_run(run, begin, begin + w - 1, begin + select.offset, select.rate).count;
    }
  }
  return total;
}

}  // namespace ringlab
