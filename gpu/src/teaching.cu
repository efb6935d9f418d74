// The teaching kernels: FlashAttention-2 in the paper's notation, fp32, one thread per row. They are the
// fp32 path of gpu::block_attention_* (checking precision) and the readable version of what
// forward_fast.cu and backward_fast.cu do with tensor cores.
//
// Forward, Algorithm 1 of Dao, "FlashAttention-2" (2023). One thread block per query tile Q_i (Br rows),
// thread t owns query row t. For each key tile K_j, V_j (Bc rows) that the mask does not exclude:
//   S_i^(j) = τ·Q_i·K_jᵀ                        (−∞ where the mask forbids the pair)
//   m_i^(j) = max(m_i^(j−1), rowmax S_i^(j))
//   P̃_i^(j) = exp(S_i^(j) − m_i^(j))
//   ℓ_i^(j) = e^{m_i^(j−1) − m_i^(j)}·ℓ_i^(j−1) + rowsum P̃_i^(j)
//   O_i^(j) = e^{m_i^(j−1) − m_i^(j)}·O_i^(j−1) + P̃_i^(j)·V_j
// and at the end O_i = O_i^(Tc) / ℓ_i, L_i = m_i + log ℓ_i; a row with no allowed key gets (0, −∞).
//
// Backward, Algorithm 2, with dQ in its own pass instead of atomics. For a key tile K_j, V_j (thread t
// owns key row t) and each query tile Q_i it can see:
//   S = τ·Q_i·K_jᵀ,  P = exp(S − L_i),  dV_j += Pᵀ·dO_i,  dP = dO_i·V_jᵀ,  dS = P ∘ (dP − δ_i),  dK_j += τ·dSᵀ·Q_i
// and for a query tile (thread t owns query row t), over the key tiles it can see: dQ_i += τ·dS·K_j.
//
// Limitations: fp32 only, head_dim ≤ 128, no tensor cores and no pipelining: about two orders of
// magnitude slower than the tensor-core kernels. Tiles live in shared memory with rows padded to d + 1
// floats, so the threads of a warp reading "their" rows hit different banks.
#include <cmath>

#include "cuda_check.cuh"
#include "kernels.cuh"

namespace ringlab::gpu::detail {
namespace {

constexpr int Br = 32;  // query rows per tile = threads per block
constexpr int Bc = 32;  // key rows per tile

// Rows [first, first + count) of a RowMap from one head of a [B, rows, heads, d] tensor (`head_rows`
// points at that batch and head; consecutive rows are `row_stride` floats apart) into tile[count][d + 1].
// Rows past the map are zero.
__device__ void load_rows(float* tile, const float* head_rows, i64 row_stride, const RowMap& map, i64 first,
                          int count, int d) {
  for (int e = threadIdx.x; e < count * d; e += blockDim.x) {
    const int r = e / d, x = e % d;
    const i64 i = first + r;
    tile[r * (d + 1) + x] = i < map.rows ? head_rows[map.row(i) * row_stride + x] : 0.0f;
  }
}

__device__ float dot(const float* a, const float* b, int d) {
  float sum = 0.0f;
  for (int x = 0; x < d; ++x) sum += a[x] * b[x];
  return sum;
}

__global__ void teaching_forward(const AttentionParams p) {
  extern __shared__ float shared[];
  const int d = static_cast<int>(p.head_dim), ld = d + 1;
  float* Q_i = shared;         // [Br][d + 1]
  float* K_j = Q_i + Br * ld;  // [Bc][d + 1]
  float* V_j = K_j + Bc * ld;  // [Bc][d + 1]
  float* O_i = V_j + Bc * ld;  // [Br][d + 1], row t belongs to thread t

  const i64 h = blockIdx.y, b = blockIdx.z, h_kv = h * p.kv_heads / p.heads;
  const HeadView view = head_view(p, h);
  const i64 first = static_cast<i64>(blockIdx.x) * Br;
  if (first >= view.q.rows) return;
  const i64 last = (first + Br < view.q.rows ? first + Br : view.q.rows) - 1;
  const i64 q_stride = p.heads * d, kv_stride = p.kv_heads * d;
  const float* Q = static_cast<const float*>(p.q) + (b * p.rows_q * p.heads + h) * d;
  const float* K = static_cast<const float*>(p.k) + (b * p.rows_k * p.kv_heads + h_kv) * d;
  const float* V = static_cast<const float*>(p.v) + (b * p.rows_k * p.kv_heads + h_kv) * d;

  const int t = threadIdx.x;
  const i64 row = first + t;
  const bool active = row <= last;
  const i64 q_position = active ? view.q.position(row) : 0;
  const i64 q_min = view.q.position(first), q_max = view.q.position(last);
  load_rows(Q_i, Q, q_stride, view.q, first, Br, d);
  for (int x = 0; x < d; ++x) O_i[t * ld + x] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  const SegmentSpan span = segment_span(view, q_min, q_max);
  i64 j_begin, j_end;
  visible_tiles(view, span, view.k, Bc, /*fixed_is_query=*/true, q_min, q_max, j_begin, j_end);
  for (i64 j = j_begin; j < j_end; ++j) {
    i64 k_min, k_max;
    tile_positions(view.k, j, Bc, k_min, k_max);
    const Coverage coverage = classify(view, span, /*span_of_query=*/true, q_min, q_max, k_min, k_max).coverage;
    if (coverage == Coverage::empty) continue;
    __syncthreads();  // every thread is done with the previous K_j, V_j
    load_rows(K_j, K, kv_stride, view.k, j * Bc, Bc, d);
    load_rows(V_j, V, kv_stride, view.k, j * Bc, Bc, d);
    __syncthreads();
    if (!active) continue;

    float S[Bc];  // S_i^(j), this thread's row
    float m_new = m;
    for (int c = 0; c < Bc; ++c) {
      const i64 key = j * Bc + c;
      const bool allowed = key < view.k.rows && (coverage == Coverage::full || view.allows(q_position, view.k.position(key)));
      S[c] = allowed ? p.scale * dot(&Q_i[t * ld], &K_j[c * ld], d) : -INFINITY;
      m_new = fmaxf(m_new, S[c]);
    }
    if (m_new == -INFINITY) continue;        // no allowed key yet: (m, ℓ, O) stay (−∞, 0, 0)
    const float correction = expf(m - m_new);  // e^{m^(j−1) − m^(j)}; 0 while m = −∞
    l *= correction;
    for (int x = 0; x < d; ++x) O_i[t * ld + x] *= correction;
    for (int c = 0; c < Bc; ++c) {
      const float P = expf(S[c] - m_new);  // exactly 0 for masked entries
      l += P;
      for (int x = 0; x < d; ++x) O_i[t * ld + x] += P * V_j[c * ld + x];
    }
    m = m_new;
  }
  if (!active) return;
  float* O = static_cast<float*>(p.out) + ((b * p.rows_q + view.q.row(row)) * p.heads + h) * d;
  const float inverse = l > 0.0f ? 1.0f / l : 0.0f;
  for (int x = 0; x < d; ++x) O[x] = O_i[t * ld + x] * inverse;
  p.lse[(b * p.heads + h) * p.rows_q + view.q.row(row)] = l > 0.0f ? m + logf(l) : -INFINITY;
}

// P and dS of query row r of Q_i against key row c of K_j (0 where masked or L = −∞).
struct ProbabilityGradient {
  float P, dS;
};
__device__ ProbabilityGradient probability_gradient(const AttentionParams& p, const float* q_row, const float* do_row,
                                                    const float* k_row, const float* v_row, float L, float delta,
                                                    bool allowed, int d) {
  if (!allowed || L == -INFINITY) return {0.0f, 0.0f};
  const float P = expf(p.scale * dot(q_row, k_row, d) - L);
  const float dP = dot(do_row, v_row, d);
  return {P, P * (dP - delta)};
}

__global__ void teaching_backward_dkdv(const AttentionParams p) {
  extern __shared__ float shared[];
  const int d = static_cast<int>(p.head_dim), ld = d + 1;
  float* K_j = shared;           // [Bc][d + 1], row t belongs to thread t
  float* V_j = K_j + Bc * ld;
  float* dK_j = V_j + Bc * ld;
  float* dV_j = dK_j + Bc * ld;
  float* Q_i = dV_j + Bc * ld;   // [Br][d + 1]
  float* dO_i = Q_i + Br * ld;
  float* L_i = dO_i + Br * ld;   // [Br]
  float* delta_i = L_i + Br;     // [Br]

  const i64 h = blockIdx.y, b = blockIdx.z, h_kv = h * p.kv_heads / p.heads;
  const HeadView view = head_view(p, h);
  const i64 first = static_cast<i64>(blockIdx.x) * Bc;
  if (first >= view.k.rows) return;
  const i64 last = (first + Bc < view.k.rows ? first + Bc : view.k.rows) - 1;
  const i64 q_stride = p.heads * d, kv_stride = p.kv_heads * d;
  const i64 q_offset = (b * p.rows_q * p.heads + h) * d, kv_offset = (b * p.rows_k * p.kv_heads + h_kv) * d;
  const float* Q = static_cast<const float*>(p.q) + q_offset;
  const float* dO = static_cast<const float*>(p.dout) + q_offset;
  const float* L = p.lse_in + (b * p.heads + h) * p.rows_q;
  const float* delta = p.delta + (b * p.heads + h) * p.rows_q;

  const int t = threadIdx.x;
  const i64 key = first + t;
  const bool active = key <= last;
  const i64 k_position = active ? view.k.position(key) : 0;
  const i64 k_min = view.k.position(first), k_max = view.k.position(last);
  load_rows(K_j, static_cast<const float*>(p.k) + kv_offset, kv_stride, view.k, first, Bc, d);
  load_rows(V_j, static_cast<const float*>(p.v) + kv_offset, kv_stride, view.k, first, Bc, d);
  for (int x = 0; x < d; ++x) dK_j[t * ld + x] = dV_j[t * ld + x] = 0.0f;

  const SegmentSpan span = segment_span(view, k_min, k_max);
  i64 i_begin, i_end;
  visible_tiles(view, span, view.q, Br, /*fixed_is_query=*/false, k_min, k_max, i_begin, i_end);
  for (i64 i = i_begin; i < i_end; ++i) {
    i64 q_min, q_max;
    tile_positions(view.q, i, Br, q_min, q_max);
    const Coverage coverage = classify(view, span, /*span_of_query=*/false, q_min, q_max, k_min, k_max).coverage;
    if (coverage == Coverage::empty) continue;
    __syncthreads();
    load_rows(Q_i, Q, q_stride, view.q, i * Br, Br, d);
    load_rows(dO_i, dO, q_stride, view.q, i * Br, Br, d);
    if (t < Br) {
      const i64 query = i * Br + t;
      L_i[t] = query < view.q.rows ? L[view.q.row(query)] : -INFINITY;
      delta_i[t] = query < view.q.rows ? delta[view.q.row(query)] : 0.0f;
    }
    __syncthreads();
    if (!active) continue;
    for (int r = 0; r < Br; ++r) {
      const i64 query = i * Br + r;
      if (query >= view.q.rows) break;
      const bool allowed = coverage == Coverage::full || view.allows(view.q.position(query), k_position);
      const auto [P, dS] = probability_gradient(p, &Q_i[r * ld], &dO_i[r * ld], &K_j[t * ld], &V_j[t * ld], L_i[r],
                                                delta_i[r], allowed, d);
      if (P == 0.0f) continue;
      for (int x = 0; x < d; ++x) {
        dV_j[t * ld + x] += P * dO_i[r * ld + x];             // dV_j += Pᵀ·dO_i
        dK_j[t * ld + x] += p.scale * dS * Q_i[r * ld + x];   // dK_j += τ·dSᵀ·Q_i
      }
    }
  }
  if (!active) return;
  const i64 element = ((b * p.rows_k + view.k.row(key)) * p.kv_heads + h_kv) * d;
  const bool shared_kv = p.heads != p.kv_heads;  // query heads of a group add into the same dK, dV
  for (int x = 0; x < d; ++x) {
    if (shared_kv) {
      atomicAdd(&p.dk[element + x], dK_j[t * ld + x]);
      atomicAdd(&p.dv[element + x], dV_j[t * ld + x]);
    } else {
      p.dk[element + x] += dK_j[t * ld + x];
      p.dv[element + x] += dV_j[t * ld + x];
    }
  }
}

__global__ void teaching_backward_dq(const AttentionParams p) {
  extern __shared__ float shared[];
  const int d = static_cast<int>(p.head_dim), ld = d + 1;
  float* Q_i = shared;            // [Br][d + 1], row t belongs to thread t
  float* dO_i = Q_i + Br * ld;
  float* dQ_i = dO_i + Br * ld;
  float* K_j = dQ_i + Br * ld;    // [Bc][d + 1]
  float* V_j = K_j + Bc * ld;

  const i64 h = blockIdx.y, b = blockIdx.z, h_kv = h * p.kv_heads / p.heads;
  const HeadView view = head_view(p, h);
  const i64 first = static_cast<i64>(blockIdx.x) * Br;
  if (first >= view.q.rows) return;
  const i64 last = (first + Br < view.q.rows ? first + Br : view.q.rows) - 1;
  const i64 q_stride = p.heads * d, kv_stride = p.kv_heads * d;
  const i64 q_offset = (b * p.rows_q * p.heads + h) * d, kv_offset = (b * p.rows_k * p.kv_heads + h_kv) * d;
  const float* K = static_cast<const float*>(p.k) + kv_offset;
  const float* V = static_cast<const float*>(p.v) + kv_offset;

  const int t = threadIdx.x;
  const i64 query = first + t;
  const bool active = query <= last;
  const i64 q_position = active ? view.q.position(query) : 0;
  const i64 q_min = view.q.position(first), q_max = view.q.position(last);
  load_rows(Q_i, static_cast<const float*>(p.q) + q_offset, q_stride, view.q, first, Br, d);
  load_rows(dO_i, static_cast<const float*>(p.dout) + q_offset, q_stride, view.q, first, Br, d);
  for (int x = 0; x < d; ++x) dQ_i[t * ld + x] = 0.0f;
  const float L = active ? p.lse_in[(b * p.heads + h) * p.rows_q + view.q.row(query)] : -INFINITY;
  const float delta = active ? p.delta[(b * p.heads + h) * p.rows_q + view.q.row(query)] : 0.0f;

  const SegmentSpan span = segment_span(view, q_min, q_max);
  i64 j_begin, j_end;
  visible_tiles(view, span, view.k, Bc, /*fixed_is_query=*/true, q_min, q_max, j_begin, j_end);
  for (i64 j = j_begin; j < j_end; ++j) {
    i64 k_min, k_max;
    tile_positions(view.k, j, Bc, k_min, k_max);
    const Coverage coverage = classify(view, span, /*span_of_query=*/true, q_min, q_max, k_min, k_max).coverage;
    if (coverage == Coverage::empty) continue;
    __syncthreads();
    load_rows(K_j, K, kv_stride, view.k, j * Bc, Bc, d);
    load_rows(V_j, V, kv_stride, view.k, j * Bc, Bc, d);
    __syncthreads();
    if (!active) continue;
    for (int c = 0; c < Bc; ++c) {
      const i64 key = j * Bc + c;
      if (key >= view.k.rows) break;
      const bool allowed = coverage == Coverage::full || view.allows(q_position, view.k.position(key));
      const auto [P, dS] = probability_gradient(p, &Q_i[t * ld], &dO_i[t * ld], &K_j[c * ld], &V_j[c * ld], L, delta,
                                                allowed, d);
      if (P == 0.0f) continue;
      for (int x = 0; x < d; ++x) dQ_i[t * ld + x] += p.scale * dS * K_j[c * ld + x];  // dQ_i += τ·dS·K_j
    }
  }
  if (!active) return;
  float* dQ = p.dq + ((b * p.rows_q + view.q.row(query)) * p.heads + h) * d;
  for (int x = 0; x < d; ++x) dQ[x] += dQ_i[t * ld + x];
}

int tiles(i64 rows, int size) { return static_cast<int>((rows + size - 1) / size); }

}  // namespace

void launch_teaching_forward(const AttentionParams& params, i64 rows_q, cudaStream_t stream) {
  const int ld = static_cast<int>(params.head_dim) + 1;
  const int shared_bytes = static_cast<int>((2 * Br + 2 * Bc) * ld * sizeof(float));
  RINGLAB_CUDA_CHECK(cudaFuncSetAttribute(teaching_forward, cudaFuncAttributeMaxDynamicSharedMemorySize, shared_bytes));
  const dim3 grid(tiles(rows_q, Br), static_cast<unsigned>(params.heads), static_cast<unsigned>(params.batch));
  teaching_forward<<<grid, Br, shared_bytes, stream>>>(params);
  RINGLAB_CUDA_CHECK(cudaGetLastError());
}

void launch_teaching_backward(const AttentionParams& params, i64 rows_q, i64 rows_k, cudaStream_t stream) {
  const int ld = static_cast<int>(params.head_dim) + 1;
  const int dkdv_bytes = static_cast<int>(((4 * Bc + 2 * Br) * ld + 2 * Br) * sizeof(float));
  const int dq_bytes = static_cast<int>((3 * Br + 2 * Bc) * ld * sizeof(float));
  RINGLAB_CUDA_CHECK(cudaFuncSetAttribute(teaching_backward_dkdv, cudaFuncAttributeMaxDynamicSharedMemorySize, dkdv_bytes));
  RINGLAB_CUDA_CHECK(cudaFuncSetAttribute(teaching_backward_dq, cudaFuncAttributeMaxDynamicSharedMemorySize, dq_bytes));
  const unsigned heads = static_cast<unsigned>(params.heads), batch = static_cast<unsigned>(params.batch);
  teaching_backward_dkdv<<<dim3(tiles(rows_k, Bc), heads, batch), Bc, dkdv_bytes, stream>>>(params);
  RINGLAB_CUDA_CHECK(cudaGetLastError());
  teaching_backward_dq<<<dim3(tiles(rows_q, Br), heads, batch), Br, dq_bytes, stream>>>(params);
  RINGLAB_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ringlab::gpu::detail
