"""Shared helpers of the ringlab Python tests: random BNHD inputs and a dense attention written in numpy
from docs/semantics.md (§2 masks, §3 block attention, §5 backward, §8.2 multiplicities), independent of the
C++ code it checks."""

import numpy as np
import pytest


def random_inputs(batch=1, seq=32, kv_seq=None, heads=4, kv_heads=None, head_dim=16, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    kv_seq = seq if kv_seq is None else kv_seq
    kv_heads = heads if kv_heads is None else kv_heads
    q = rng.standard_normal((batch, seq, heads, head_dim)).astype(dtype)
    k = rng.standard_normal((batch, kv_seq, kv_heads, head_dim)).astype(dtype)
    v = rng.standard_normal((batch, kv_seq, kv_heads, head_dim)).astype(dtype)
    do = rng.standard_normal((batch, seq, heads, head_dim)).astype(dtype)
    return q, k, v, do


def band_mask(seq, kv_seq, q_start=0, causal=False, window=(-1, -1)):
    """allowed[i, j] for query position q_start + i and key position j."""
    qpos = q_start + np.arange(seq)[:, None]
    kpos = np.arange(kv_seq)[None, :]
    d = kpos - qpos
    allowed = np.ones((seq, kv_seq), dtype=bool)
    left, right = window
    if left >= 0:
        allowed &= d >= -left
    if right >= 0:
        allowed &= d <= right
    if causal:
        allowed &= d <= 0
    return allowed


def numpy_attention(q, k, v, multiplicity=None, scale=None, **mask):
    """(o, lse) of dense attention; `multiplicity` [H, N, M] (counts per head) or a band mask from `mask`."""
    batch, seq, heads, dim = q.shape
    kv_seq, kv_heads = k.shape[1], k.shape[2]
    tau = 1.0 / np.sqrt(dim) if scale is None else scale
    if multiplicity is None:
        multiplicity = np.broadcast_to(band_mask(seq, kv_seq, **mask).astype(float), (heads, seq, kv_seq))
    o = np.zeros_like(q)
    lse = np.full((batch, heads, seq), -np.inf)
    for b in range(batch):
        for h in range(heads):
            g = h * kv_heads // heads
            s = tau * q[b, :, h, :] @ k[b, :, g, :].T
            m = multiplicity[h]
            rows = (m > 0).any(axis=1)
            s_masked = np.where(m > 0, s, -np.inf)
            mu = np.where(rows, s_masked.max(axis=1), 0.0)
            w = m * np.exp(np.where(m > 0, s - mu[:, None], -np.inf))
            ell = w.sum(axis=1)
            o[b, rows, h, :] = (w[rows] @ v[b, :, g, :]) / ell[rows, None]
            lse[b, h, rows] = mu[rows] + np.log(ell[rows])
    return o, lse


def numpy_attention_backward(q, k, v, o, lse, do, scale=None, **mask):
    batch, seq, heads, dim = q.shape
    kv_seq, kv_heads = k.shape[1], k.shape[2]
    tau = 1.0 / np.sqrt(dim) if scale is None else scale
    allowed = band_mask(seq, kv_seq, **mask)
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    for b in range(batch):
        for h in range(heads):
            g = h * kv_heads // heads
            s = tau * q[b, :, h, :] @ k[b, :, g, :].T
            p = np.where(allowed & np.isfinite(lse[b, h])[:, None],
                         np.exp(s - np.where(np.isfinite(lse[b, h]), lse[b, h], 0)[:, None]), 0.0)
            dv[b, :, g, :] += p.T @ do[b, :, h, :]
            dp = do[b, :, h, :] @ v[b, :, g, :].T
            delta = (do[b, :, h, :] * o[b, :, h, :]).sum(axis=1)
            ds = p * (dp - delta[:, None])
            dq[b, :, h, :] = tau * ds @ k[b, :, g, :]
            dk[b, :, g, :] += tau * ds.T @ q[b, :, h, :]
    return dq, dk, dv


def scaled_error(out, ref):
    """docs/semantics.md §11: max|out - ref| / max(max|ref| over finite entries, 1); -inf must match."""
    finite = np.isfinite(ref)
    assert np.array_equal(np.isfinite(out), finite), "finite/infinite entries differ"
    if not finite.any():
        return 0.0
    return float(np.abs(out[finite] - ref[finite]).max() / max(np.abs(ref[finite]).max(), 1.0))


@pytest.fixture
def inputs():
    return random_inputs()
