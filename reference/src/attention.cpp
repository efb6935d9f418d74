#include "ringlab/attention.hpp"

#include <cmath>
#include <limits>
#include <sstream>

#include "eigen_views.hpp"
#include "ringlab/dilation.hpp"
#include "ringlab/errors.hpp"
#include "ringlab/schedule.hpp"

namespace ringlab {
namespace {

using i64 = std::int64_t;
using detail::as_matrix;
using detail::Matrix;

std::string shape_text(const std::vector<i64>& shape) {
  std::ostringstream text;
  text << "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text << (i ? ", " : "") << shape[i];
  text << "]";
  return text.str();
}

template <class T>
void require_shape(const Tensor<T>& tensor, const std::vector<i64>& expected, const std::string& name) {
  if (tensor.shape != expected || tensor.size() != static_cast<i64>(tensor.data.size()))
    throw InputError(name + " has shape " + shape_text(tensor.shape) + " but the config needs " +
                     shape_text(expected));
}

i64 kv_head_of(i64 head, const AttentionConfig& config) { return head * config.kv_heads / config.heads; }

std::vector<i64> positions_from(i64 first, i64 count) {
  std::vector<i64> positions(static_cast<std::size_t>(count));
  for (i64 i = 0; i < count; ++i) positions[static_cast<std::size_t>(i)] = first + i;
  return positions;
}

// ---- dense: the textbook formulas on a materialised [n, m] score matrix ---------------------------------

// S = τ·Q·Kᵀ with disallowed entries −∞.
template <class T>
Matrix<T> dense_scores(MatrixView<const T> q, std::span<const i64> q_positions, MatrixView<const T> k,
                       std::span<const i64> k_positions, const MaskPredicate& mask, T scale) {
  Matrix<T> scores = scale * (as_matrix(q) * as_matrix(k).transpose());
  for (i64 i = 0; i < q.rows; ++i)
    for (i64 j = 0; j < k.rows; ++j)
      if (!mask.allows(q_positions[i], k_positions[j])) scores(i, j) = -std::numeric_limits<T>::infinity();
  return scores;
}

template <class T>
void round_all(Matrix<T>& matrix, RoundFunction<T> round) {
  if (round) matrix = matrix.unaryExpr(round);
}

template <class T>
void dense_head_forward(MatrixView<const T> q, std::span<const i64> q_positions, MatrixView<const T> k,
                        MatrixView<const T> v, std::span<const i64> k_positions, const MaskPredicate& mask, T scale,
                        MatrixView<T> out, std::span<T> lse, RoundFunction<T> round) {
  constexpr T minus_infinity = -std::numeric_limits<T>::infinity();
  Matrix<T> scores = dense_scores(q, q_positions, k, k_positions, mask, scale);  // S [n, m]
  auto out_matrix = as_matrix(out);
  for (i64 i = 0; i < q.rows; ++i) {
    const T row_max = k.rows > 0 ? scores.row(i).maxCoeff() : minus_infinity;
    if (row_max == minus_infinity) {  // no allowed key: O = 0, LSE = −∞
      out_matrix.row(i).setZero();
      scores.row(i).setZero();
      lse[i] = minus_infinity;
      continue;
    }
    // Scalar std::exp: exactly 0 for masked (−∞) entries.
    scores.row(i) = scores.row(i).unaryExpr([row_max](T s) { return std::exp(s - row_max); });  // unnormalised P
    const T row_sum = scores.row(i).sum();
    lse[i] = row_max + std::log(row_sum);
    scores.row(i) /= row_sum;  // P = softmax(S)
  }
  round_all(scores, round);
  out_matrix.noalias() = scores * as_matrix(v);  // O = P·V
}

template <class T>
void dense_head_backward(MatrixView<const T> q, std::span<const i64> q_positions, MatrixView<const T> k,
                         MatrixView<const T> v, std::span<const i64> k_positions, const MaskPredicate& mask, T scale,
                         MatrixView<const T> dout, std::span<const T> lse, std::span<const T> delta, MatrixView<T> dq,
                         MatrixView<T> dk, MatrixView<T> dv, RoundFunction<T> round) {
  Matrix<T> probs = dense_scores(q, q_positions, k, k_positions, mask, scale);  // S, then P = e^{S − LSE}
  for (i64 i = 0; i < q.rows; ++i) {
    if (lse[i] == -std::numeric_limits<T>::infinity())
      probs.row(i).setZero();
    else
      probs.row(i) = probs.row(i).unaryExpr([l = lse[i]](T s) { return std::exp(s - l); });
  }
  round_all(probs, round);
  const auto dout_matrix = as_matrix(dout);
  as_matrix(dv).noalias() += probs.transpose() * dout_matrix;          // dV = Pᵀ·dO
  Matrix<T> dscores = dout_matrix * as_matrix(v).transpose();          // dP = dO·Vᵀ
  for (i64 i = 0; i < q.rows; ++i)                                     // dS = P∘(dP − rowsum(dO∘O))
    dscores.row(i) = (probs.row(i).array() * (dscores.row(i).array() - delta[i])).matrix();
  round_all(dscores, round);
  as_matrix(dq).noalias() += scale * (dscores * as_matrix(k));               // dQ = τ·dS·K
  as_matrix(dk).noalias() += scale * (dscores.transpose() * as_matrix(q));   // dK = τ·dSᵀ·Q
}

// ---- one head, one mask: dense or blockwise ---------------------------------------------------------------

template <class T>
void head_forward(const AttentionOptions<T>& options, MatrixView<const T> q, std::span<const i64> q_positions,
                  MatrixView<const T> k, MatrixView<const T> v, std::span<const i64> k_positions,
                  const MaskPredicate& mask, T scale, MatrixView<T> out, std::span<T> lse) {
  if (options.algorithm == Algorithm::dense)
    dense_head_forward(q, q_positions, k, v, k_positions, mask, scale, out, lse, options.round_intermediates);
  else
    block_attention_forward(q, q_positions, k, v, k_positions, mask, scale, out, lse, options.tiles);
}

template <class T>
void head_backward(const AttentionOptions<T>& options, MatrixView<const T> q, std::span<const i64> q_positions,
                   MatrixView<const T> k, MatrixView<const T> v, std::span<const i64> k_positions,
                   const MaskPredicate& mask, T scale, MatrixView<const T> dout, std::span<const T> lse,
                   std::span<const T> delta, MatrixView<T> dq, MatrixView<T> dk, MatrixView<T> dv) {
  if (options.algorithm == Algorithm::dense)
    dense_head_backward(q, q_positions, k, v, k_positions, mask, scale, dout, lse, delta, dq, dk, dv,
                        options.round_intermediates);
  else
    block_attention_backward(q, q_positions, k, v, k_positions, mask, scale, dout, lse, delta, dq, dk, dv,
                             options.tiles);
}

// Runs every mask of a head's plan against one K/V block and ⊕-merges the results into (out, lse), which
// the caller initialised to the merge identity (0, −∞) or to earlier partial results.
template <class T>
void plan_forward(const AttentionOptions<T>& options, const HeadPlan& plan, MatrixView<const T> q,
                  std::span<const i64> q_positions, MatrixView<const T> k, MatrixView<const T> v,
                  std::span<const i64> k_positions, T scale, MatrixView<T> out, std::span<T> lse,
                  Matrix<T>& partial_out, std::vector<T>& partial_lse) {
  partial_out.resize(q.rows, q.cols);
  partial_lse.resize(static_cast<std::size_t>(q.rows));
  MatrixView<T> partial_view{partial_out.data(), q.rows, q.cols, q.cols};
  for (const MaskPredicate& mask : plan.masks) {
    head_forward<T>(options, q, q_positions, k, v, k_positions, mask, scale, partial_view, std::span<T>(partial_lse));
    lse_merge(out, lse, MatrixView<const T>(partial_view), std::span<const T>(partial_lse));
  }
}

// D_i = rowsum(dO ∘ O) of one head.
template <class T>
std::vector<T> output_gradient_dot(MatrixView<const T> dout, MatrixView<const T> out) {
  std::vector<T> delta(static_cast<std::size_t>(out.rows));
  for (i64 i = 0; i < out.rows; ++i) delta[i] = as_matrix(dout).row(i).dot(as_matrix(out).row(i));
  return delta;
}

// dO of the pattern outputs: the combined output is output_scale · (pattern output), so dO is scaled too.
template <class T>
Matrix<T> scaled_gradient(MatrixView<const T> dout, double output_scale) {
  return as_matrix(dout) * static_cast<T>(output_scale);
}

template <class T>
MatrixView<const T> view_of(const Matrix<T>& matrix) {
  return {matrix.data(), matrix.rows(), matrix.cols(), matrix.cols()};
}

// ---- ring: P virtual devices ------------------------------------------------------------------------------

// A K/V chunk as it travels round the ring; in backward it carries its dK, dV accumulators along.
template <class T>
struct TravellingChunk {
  int owner = 0;
  std::vector<i64> positions;
  Tensor<T> k, v, dk, dv;  // [B, m_c, Hkv, D]
};

// held[p] = index of the chunk device p holds; after a step every chunk moves one hop, p → p + 1.
void rotate(std::vector<int>& held) {
  std::vector<int> next(held.size());
  for (std::size_t p = 0; p < held.size(); ++p) next[(p + 1) % held.size()] = held[p];
  held = std::move(next);
}

void require_holds_scheduled_chunk(const RingSchedule& schedule, const std::vector<int>& held, int step) {
  for (int p = 0; p < schedule.ring_size; ++p)
    if (held[p] != schedule.at(p, step).kv_owner)
      throw Error("internal error: device " + std::to_string(p) + " holds chunk " + std::to_string(held[p]) +
                  " at step " + std::to_string(step) + " but the schedule says " +
                  std::to_string(schedule.at(p, step).kv_owner));
}

template <class T>
std::vector<TravellingChunk<T>> make_chunks(const RingSchedule& schedule, const Tensor<T>& k, const Tensor<T>& v,
                                            bool with_gradients) {
  std::vector<TravellingChunk<T>> chunks;
  for (int owner = 0; owner < schedule.ring_size; ++owner) {
    TravellingChunk<T> chunk;
    chunk.owner = owner;
    chunk.positions = schedule.chunk_positions[owner].expand();
    chunk.k = gather_rows(k, chunk.positions);
    chunk.v = gather_rows(v, chunk.positions);
    if (with_gradients) {
      chunk.dk = Tensor<T>(chunk.k.shape);
      chunk.dv = Tensor<T>(chunk.v.shape);
    }
    chunks.push_back(std::move(chunk));
  }
  return chunks;
}

// Devices whose queries the reference computes: all of them, or device 0 alone with replicated queries
// (every device would compute the same full output; the simulator accounts for that redundant work).
int computing_devices(const AttentionConfig& config) { return config.q_replicated ? 1 : config.ring; }

template <class T>
AttentionOutput<T> ring_forward(const AttentionConfig& config, const Tensor<T>& q, const Tensor<T>& k,
                                const Tensor<T>& v, const AttentionOptions<T>& options) {
  const RingSchedule schedule = make_ring_schedule(config);
  const auto plans = plan_heads(config);
  auto chunks = make_chunks(schedule, k, v, false);

  AttentionOutput<T> result{Tensor<T>(query_shape(config)), Tensor<T>(lse_shape(config))};
  for (int device = 0; device < computing_devices(config); ++device) {
    const std::vector<i64> q_positions = schedule.devices[device].query_positions.expand();
    const Tensor<T> local_q = gather_rows(q, q_positions);                              // [B, n_p, H, D]
    Tensor<T> local_out(local_q.shape);                                                 // [B, n_p, H, D]
    Tensor<T> local_lse({config.batch, config.heads, static_cast<i64>(q_positions.size())},
                        -std::numeric_limits<T>::infinity());                           // [B, H, n_p]
    std::vector<int> held(static_cast<std::size_t>(config.ring));
    for (int p = 0; p < config.ring; ++p) held[p] = p;
    for (int step = 0; step < config.ring; ++step) {
      require_holds_scheduled_chunk(schedule, held, step);
      const TravellingChunk<T>& chunk = chunks[held[device]];
      if (!schedule.at(device, step).skipped)
        chunk_forward(config, plans, local_q, q_positions, chunk.k, chunk.v, chunk.positions, local_out, local_lse,
                      options.tiles);
      rotate(held);
    }
    apply_output_scale(plans, local_out);
    scatter_rows(local_out, q_positions, result.out);
    scatter_columns(local_lse, q_positions, result.lse);
  }
  return result;
}

template <class T>
AttentionGradients<T> ring_backward(const AttentionConfig& config, const Tensor<T>& q, const Tensor<T>& k,
                                    const Tensor<T>& v, const Tensor<T>& out, const Tensor<T>& lse,
                                    const Tensor<T>& dout, const AttentionOptions<T>& options) {
  const RingSchedule schedule = make_ring_schedule(config);
  const auto plans = plan_heads(config);
  auto chunks = make_chunks(schedule, k, v, true);
  AttentionGradients<T> grads{Tensor<T>(query_shape(config)), Tensor<T>(kv_shape(config)),
                              Tensor<T>(kv_shape(config))};

  // One device's side of the ring: its queries against the chunks it is handed, steps [first, last].
  // compute_dq / compute_dkv say which accumulators are real (replicated queries split the two roles).
  auto run_device = [&](int device, int first_step, int last_step, bool compute_dq, bool compute_dkv) {
    const std::vector<i64> q_positions = schedule.devices[device].query_positions.expand();
    const Tensor<T> local_q = gather_rows(q, q_positions), local_out = gather_rows(out, q_positions);
    const Tensor<T> local_dout = gather_rows(dout, q_positions);
    const Tensor<T> local_lse = gather_columns(lse, q_positions);
    Tensor<T> local_dq(local_q.shape);
    std::vector<int> held(static_cast<std::size_t>(config.ring));
    for (int p = 0; p < config.ring; ++p) held[p] = p;
    for (int step = 0; step < config.ring; ++step) {
      require_holds_scheduled_chunk(schedule, held, step);
      TravellingChunk<T>& chunk = chunks[held[device]];
      if (step >= first_step && step <= last_step && !schedule.at(device, step).skipped) {
        Tensor<T> discard_dk, discard_dv;
        if (!compute_dkv) discard_dk = Tensor<T>(chunk.dk.shape), discard_dv = Tensor<T>(chunk.dv.shape);
        chunk_backward(config, plans, local_q, q_positions, chunk.k, chunk.v, chunk.positions, local_out, local_lse,
                       local_dout, local_dq, compute_dkv ? chunk.dk : discard_dk, compute_dkv ? chunk.dv : discard_dv,
                       options.tiles);
      }
      rotate(held);
    }
    // After P hops every chunk, with the dK, dV it gathered on the way, is back at its owner.
    for (int p = 0; p < config.ring; ++p)
      if (held[p] != p) throw Error("internal error: chunk " + std::to_string(held[p]) + " ended at device " +
                                    std::to_string(p) + ", not at its owner");
    if (compute_dq) scatter_rows(local_dq, q_positions, grads.dq);
  };

  if (config.q_replicated) {
    // Device 0 computes dQ of all queries over every step; each owner computes the dK, dV of its own chunk
    // from all queries at step 0, so dK, dV never travel.
    run_device(0, 0, config.ring - 1, true, false);
    for (int owner = 0; owner < config.ring; ++owner) run_device(owner, 0, 0, false, true);
  } else {
    for (int device = 0; device < config.ring; ++device) run_device(device, 0, config.ring - 1, true, true);
  }
  for (const auto& chunk : chunks) {
    scatter_rows(chunk.dk, chunk.positions, grads.dk);
    scatter_rows(chunk.dv, chunk.positions, grads.dv);
  }
  return grads;
}

// ---- single device: dense or blockwise --------------------------------------------------------------------

template <class T>
AttentionOutput<T> single_device_forward(const AttentionConfig& config, const Tensor<T>& q, const Tensor<T>& k,
                                         const Tensor<T>& v, const AttentionOptions<T>& options) {
  const auto plans = plan_heads(config);
  const T scale = static_cast<T>(config.tau());
  const auto q_positions = positions_from(config.q_start, config.seq);
  const auto k_positions = positions_from(0, config.kv_seq);
  AttentionOutput<T> result{Tensor<T>(query_shape(config)),
                            Tensor<T>(lse_shape(config), -std::numeric_limits<T>::infinity())};
  Matrix<T> partial_out;
  std::vector<T> partial_lse;
  for (i64 b = 0; b < config.batch; ++b)
    for (i64 h = 0; h < config.heads; ++h) {
      const i64 kvh = kv_head_of(h, config);
      const HeadPlan& plan = plans[h];
      if (plan.masks.size() == 1)  // one mask: write straight into the output, no merge buffer
        head_forward<T>(options, q.head(b, h), q_positions, k.head(b, kvh), v.head(b, kvh), k_positions, plan.masks[0],
                     scale, result.out.head(b, h), result.lse.row(b, h));
      else
        plan_forward<T>(options, plan, q.head(b, h), q_positions, k.head(b, kvh), v.head(b, kvh), k_positions, scale,
                     result.out.head(b, h), result.lse.row(b, h), partial_out, partial_lse);
      if (plan.output_scale != 1.0) as_matrix(result.out.head(b, h)) *= static_cast<T>(plan.output_scale);
    }
  return result;
}

template <class T>
AttentionGradients<T> single_device_backward(const AttentionConfig& config, const Tensor<T>& q, const Tensor<T>& k,
                                             const Tensor<T>& v, const Tensor<T>& out, const Tensor<T>& lse,
                                             const Tensor<T>& dout, const AttentionOptions<T>& options) {
  const auto plans = plan_heads(config);
  const T scale = static_cast<T>(config.tau());
  const auto q_positions = positions_from(config.q_start, config.seq);
  const auto k_positions = positions_from(0, config.kv_seq);
  AttentionGradients<T> grads{Tensor<T>(query_shape(config)), Tensor<T>(kv_shape(config)),
                              Tensor<T>(kv_shape(config))};
  for (i64 b = 0; b < config.batch; ++b)
    for (i64 h = 0; h < config.heads; ++h) {
      const i64 kvh = kv_head_of(h, config);
      const auto delta = output_gradient_dot(dout.head(b, h), out.head(b, h));
      const Matrix<T> dout_scaled = scaled_gradient(dout.head(b, h), plans[h].output_scale);
      for (const MaskPredicate& mask : plans[h].masks)
        head_backward<T>(options, q.head(b, h), q_positions, k.head(b, kvh), v.head(b, kvh), k_positions, mask, scale,
                      view_of(dout_scaled), lse.row(b, h), std::span<const T>(delta), grads.dq.head(b, h),
                      grads.dk.head(b, kvh), grads.dv.head(b, kvh));
    }
  return grads;
}

void require_algorithm_fits(const AttentionConfig& config, Algorithm algorithm) {
  config.validate();
  if (algorithm != Algorithm::ring && (config.ring > 1 || config.q_replicated))
    throw ConfigError("--algorithm", to_string(algorithm),
                      "a config with --ring " + std::to_string(config.ring) +
                          (config.q_replicated ? " --q-replicated" : "") + " runs with --algorithm ring");
}

}  // namespace

template <class T>
void chunk_forward(const AttentionConfig& config, const std::vector<HeadPlan>& plans, const Tensor<T>& q_shard,
                   std::span<const i64> q_positions, const Tensor<T>& k_chunk, const Tensor<T>& v_chunk,
                   std::span<const i64> k_positions, Tensor<T>& out, Tensor<T>& lse, TileSizes tiles) {
  const T scale = static_cast<T>(config.tau());
  const AttentionOptions<T> options{Algorithm::blockwise, tiles};
  Matrix<T> partial_out;
  std::vector<T> partial_lse;
  for (i64 b = 0; b < config.batch; ++b)
    for (i64 h = 0; h < config.heads; ++h)
      plan_forward<T>(options, plans[h], q_shard.head(b, h), q_positions, k_chunk.head(b, kv_head_of(h, config)),
                      v_chunk.head(b, kv_head_of(h, config)), k_positions, scale, out.head(b, h), lse.row(b, h),
                      partial_out, partial_lse);
}

template <class T>
void apply_output_scale(const std::vector<HeadPlan>& plans, Tensor<T>& out) {
  for (i64 b = 0; b < out.shape[0]; ++b)
    for (i64 h = 0; h < out.shape[2]; ++h)
      if (plans[h].output_scale != 1.0) as_matrix(out.head(b, h)) *= static_cast<T>(plans[h].output_scale);
}

template <class T>
void chunk_backward(const AttentionConfig& config, const std::vector<HeadPlan>& plans, const Tensor<T>& q_shard,
                    std::span<const i64> q_positions, const Tensor<T>& k_chunk, const Tensor<T>& v_chunk,
                    std::span<const i64> k_positions, const Tensor<T>& out_shard, const Tensor<T>& lse_shard,
                    const Tensor<T>& dout_shard, Tensor<T>& dq, Tensor<T>& dk, Tensor<T>& dv, TileSizes tiles) {
  const T scale = static_cast<T>(config.tau());
  const AttentionOptions<T> options{Algorithm::blockwise, tiles};
  for (i64 b = 0; b < config.batch; ++b)
    for (i64 h = 0; h < config.heads; ++h) {
      const i64 kvh = kv_head_of(h, config);
      const auto delta = output_gradient_dot(dout_shard.head(b, h), out_shard.head(b, h));
      const Matrix<T> dout_scaled = scaled_gradient(dout_shard.head(b, h), plans[h].output_scale);
      for (const MaskPredicate& mask : plans[h].masks)
        head_backward<T>(options, q_shard.head(b, h), q_positions, k_chunk.head(b, kvh), v_chunk.head(b, kvh),
                         k_positions, mask, scale, view_of(dout_scaled), lse_shard.row(b, h),
                         std::span<const T>(delta), dq.head(b, h), dk.head(b, kvh), dv.head(b, kvh));
    }
}

#define RINGLAB_INSTANTIATE_CHUNK(T)                                                                               \
  template void chunk_forward<T>(const AttentionConfig&, const std::vector<HeadPlan>&, const Tensor<T>&,           \
                                 std::span<const i64>, const Tensor<T>&, const Tensor<T>&, std::span<const i64>,    \
                                 Tensor<T>&, Tensor<T>&, TileSizes);                                                \
  template void apply_output_scale<T>(const std::vector<HeadPlan>&, Tensor<T>&);                                   \
  template void chunk_backward<T>(const AttentionConfig&, const std::vector<HeadPlan>&, const Tensor<T>&,          \
                                  std::span<const i64>, const Tensor<T>&, const Tensor<T>&, std::span<const i64>,   \
                                  const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, Tensor<T>&, Tensor<T>&,     \
                                  Tensor<T>&, TileSizes);
RINGLAB_INSTANTIATE_CHUNK(float)
RINGLAB_INSTANTIATE_CHUNK(double)
#undef RINGLAB_INSTANTIATE_CHUNK

std::vector<i64> query_shape(const AttentionConfig& c) { return {c.batch, c.seq, c.heads, c.head_dim}; }
std::vector<i64> kv_shape(const AttentionConfig& c) { return {c.batch, c.kv_seq, c.kv_heads, c.head_dim}; }
std::vector<i64> lse_shape(const AttentionConfig& c) { return {c.batch, c.heads, c.seq}; }

template <class T>
AttentionOutput<T> attention_forward(const AttentionConfig& config, const Tensor<T>& q, const Tensor<T>& k,
                                     const Tensor<T>& v, const AttentionOptions<T>& options) {
  require_algorithm_fits(config, options.algorithm);
  require_shape(q, query_shape(config), "q");
  require_shape(k, kv_shape(config), "k");
  require_shape(v, kv_shape(config), "v");
  if (options.algorithm == Algorithm::ring) return ring_forward(config, q, k, v, options);
  return single_device_forward(config, q, k, v, options);
}

template <class T>
AttentionGradients<T> attention_backward(const AttentionConfig& config, const Tensor<T>& q, const Tensor<T>& k,
                                         const Tensor<T>& v, const Tensor<T>& out, const Tensor<T>& lse,
                                         const Tensor<T>& dout, const AttentionOptions<T>& options) {
  require_algorithm_fits(config, options.algorithm);
  require_shape(q, query_shape(config), "q");
  require_shape(k, kv_shape(config), "k");
  require_shape(v, kv_shape(config), "v");
  require_shape(out, query_shape(config), "o");
  require_shape(lse, lse_shape(config), "lse");
  require_shape(dout, query_shape(config), "do");
  if (options.algorithm == Algorithm::ring) return ring_backward(config, q, k, v, out, lse, dout, options);
  return single_device_backward(config, q, k, v, out, lse, dout, options);
}

template AttentionOutput<float> attention_forward(const AttentionConfig&, const Tensor<float>&, const Tensor<float>&,
                                                  const Tensor<float>&, const AttentionOptions<float>&);
template AttentionOutput<double> attention_forward(const AttentionConfig&, const Tensor<double>&,
                                                   const Tensor<double>&, const Tensor<double>&,
                                                   const AttentionOptions<double>&);
template AttentionGradients<float> attention_backward(const AttentionConfig&, const Tensor<float>&,
                                                      const Tensor<float>&, const Tensor<float>&,
                                                      const Tensor<float>&, const Tensor<float>&,
                                                      const Tensor<float>&, const AttentionOptions<float>&);
template AttentionGradients<double> attention_backward(const AttentionConfig&, const Tensor<double>&,
                                                       const Tensor<double>&, const Tensor<double>&,
                                                       const Tensor<double>&, const Tensor<double>&,
                                                       const Tensor<double>&, const AttentionOptions<double>&);

}  // namespace ringlab
