"""ringlab.attention / attention_backward against a numpy dense attention and against each other."""

import numpy as np
import pytest

import ringlab
from conftest import (numpy_attention, numpy_attention_backward, random_inputs, scaled_error)

MASKS = [
    dict(),
    dict(causal=True),
    dict(window=(5, 3)),
    dict(causal=True, window=(7, -1)),
]


@pytest.mark.parametrize("mask", MASKS, ids=["none", "causal", "window", "causal+window"])
@pytest.mark.parametrize("algorithm", ["dense", "blockwise"])
def test_matches_numpy_dense(mask, algorithm):
    q, k, v, _ = random_inputs(batch=2, seq=37, heads=4, kv_heads=2, head_dim=8)
    o, lse = ringlab.attention(q, k, v, algorithm=algorithm, tiles=(8, 16), **mask)
    o_ref, lse_ref = numpy_attention(q, k, v, **mask)
    assert o.dtype == np.float64 and o.shape == q.shape and lse.shape == (2, 4, 37)
    assert scaled_error(o, o_ref) <= 1e-12
    assert scaled_error(lse, lse_ref) <= 1e-12


def test_bottom_right_alignment_and_scale():
    q, k, v, _ = random_inputs(seq=12, kv_seq=30)
    o, lse = ringlab.attention(q, k, v, causal=True, q_start=18, scale=0.3)
    o_ref, lse_ref = numpy_attention(q, k, v, causal=True, q_start=18, scale=0.3)
    assert scaled_error(o, o_ref) <= 1e-12 and scaled_error(lse, lse_ref) <= 1e-12


def test_fully_masked_rows_are_zero_with_minus_infinite_lse():
    q, k, v, _ = random_inputs(seq=4, kv_seq=2)
    o, lse = ringlab.attention(q, k, v, causal=True, q_start=-2)
    assert np.all(o[:, :2] == 0) and np.all(np.isneginf(lse[:, :, :2]))
    assert np.all(np.isfinite(o)) and np.all(np.isfinite(lse[:, :, 2:]))


@pytest.mark.parametrize("layout", ["contiguous", "zigzag", "striped"])
@pytest.mark.parametrize("q_replicated", [False, True])
def test_ring_equals_dense(layout, q_replicated):
    q, k, v, do = random_inputs(batch=1, seq=97, heads=4, kv_heads=2, head_dim=16, seed=3)
    options = dict(causal=True, ring=4, layout=layout, q_replicated=q_replicated)
    o_ring, lse_ring = ringlab.attention(q, k, v, **options)
    o_dense, lse_dense = ringlab.attention(q, k, v, causal=True, algorithm="dense")
    assert scaled_error(o_ring, o_dense) <= 1e-12
    assert scaled_error(lse_ring, lse_dense) <= 1e-12
    grads_ring = ringlab.attention_backward(q, k, v, o_ring, lse_ring, do, **options)
    grads_dense = ringlab.attention_backward(q, k, v, o_dense, lse_dense, do, causal=True, algorithm="dense")
    for ring_grad, dense_grad in zip(grads_ring, grads_dense):
        assert scaled_error(ring_grad, dense_grad) <= 1e-12


@pytest.mark.parametrize("mask", MASKS, ids=["none", "causal", "window", "causal+window"])
def test_backward_matches_numpy(mask):
    q, k, v, do = random_inputs(batch=2, seq=29, heads=4, kv_heads=2, head_dim=8, seed=5)
    o, lse = ringlab.attention(q, k, v, **mask)
    dq, dk, dv = ringlab.attention_backward(q, k, v, o, lse, do, **mask)
    for got, expected in zip((dq, dk, dv), numpy_attention_backward(q, k, v, o, lse, do, **mask)):
        assert scaled_error(got, expected) <= 1e-12


def test_backward_is_the_gradient_by_finite_differences():
    q, k, v, do = random_inputs(seq=9, heads=2, head_dim=4, seed=11)
    o, lse = ringlab.attention(q, k, v, causal=True)
    dq, dk, dv = ringlab.attention_backward(q, k, v, o, lse, do, causal=True)

    def loss(q_, k_, v_):
        return float((ringlab.attention(q_, k_, v_, causal=True)[0] * do).sum())

    h = 1e-6
    for tensor, grad, which in ((q, dq, 0), (k, dk, 1), (v, dv, 2)):
        for index in [(0, 0, 0, 0), (0, 4, 1, 2), (0, 8, 1, 3)]:
            plus = [q.copy(), k.copy(), v.copy()]
            minus = [q.copy(), k.copy(), v.copy()]
            plus[which][index] += h
            minus[which][index] -= h
            numeric = (loss(*plus) - loss(*minus)) / (2 * h)
            assert abs(numeric - grad[index]) <= 1e-6 * max(1.0, abs(numeric))


def test_float32_computes_in_float():
    q, k, v, do = random_inputs(seq=40, seed=2)
    o64, lse64 = ringlab.attention(q, k, v, causal=True)
    o32, lse32 = ringlab.attention(*(x.astype(np.float32) for x in (q, k, v)), causal=True)
    assert o32.dtype == np.float32 and lse32.dtype == np.float32
    assert 0 < scaled_error(o32.astype(np.float64), o64) <= 1e-5
    grads = ringlab.attention_backward(*(x.astype(np.float32) for x in (q, k, v, o64, lse64, do)), causal=True)
    assert all(g.dtype == np.float32 for g in grads)


@pytest.mark.parametrize("offset_rule", ["paper", "torchscale"])
def test_dilated_lse_is_the_multiset_softmax(offset_rule):
    # docs/semantics.md §8.2: O_t = Σ m e^S v / Σ m e^S with m the multiplicity of (t, j) in the head's patterns.
    q, k, v, _ = random_inputs(seq=16, heads=4, head_dim=8, seed=7)
    options = dict(dilation=[(4, 1), (8, 2)], offset_rule=offset_rule, causal=True)
    o, lse = ringlab.attention(q, k, v, **options)
    m = np.stack([ringlab.mask(seq=16, heads=4, head=h, **options) for h in range(4)])
    o_ref, lse_ref = numpy_attention(q, k, v, multiplicity=m)
    assert scaled_error(o, o_ref) <= 1e-12 and scaled_error(lse, lse_ref) <= 1e-12


def test_dilated_group_mean_divides_by_the_number_of_patterns():
    q, k, v, _ = random_inputs(seq=16, heads=4, head_dim=8, seed=8)
    options = dict(dilation="4:1,8:2", preset="dilated-attention-pytorch")
    o, _ = ringlab.attention(q, k, v, **options)
    plans = ringlab.head_plans(seq=16, heads=4, **options)
    assert [p["group"] for p in plans] == [0, 0, 1, 1]
    assert all(p["output_scale"] == 0.5 for p in plans)
    m = np.stack([ringlab.mask(seq=16, heads=4, head=h, **options) for h in range(4)])
    o_ref, _ = numpy_attention(q, k, v, multiplicity=m)
    assert scaled_error(o, o_ref / 2) <= 1e-12


def test_dilated_ring_equals_single_device():
    q, k, v, do = random_inputs(seq=64, heads=4, head_dim=8, seed=9)
    options = dict(dilation="16:1,32:4", causal=True)
    o1, l1 = ringlab.attention(q, k, v, **options)
    o4, l4 = ringlab.attention(q, k, v, ring=4, layout="zigzag", **options)
    assert scaled_error(o4, o1) <= 1e-12 and scaled_error(l4, l1) <= 1e-12


def test_block_attention_and_lse_merge_compose_to_full_attention():
    rng = np.random.default_rng(4)
    q, k, v = rng.standard_normal((10, 8)), rng.standard_normal((20, 8)), rng.standard_normal((20, 8))
    o_full, lse_full = ringlab.block_attention(q, k, v, np.arange(10) + 10, np.arange(20), causal=True)
    a = ringlab.block_attention(q, k[:12], v[:12], np.arange(10) + 10, np.arange(12), causal=True)
    b = ringlab.block_attention(q, k[12:], v[12:], np.arange(10) + 10, np.arange(12, 20), causal=True)
    o, lse = ringlab.lse_merge(*a, *b)
    assert np.abs(o - o_full).max() <= 1e-14 and np.abs(lse - lse_full).max() <= 1e-14
    # the identity (0, -inf)
    o_id, lse_id = ringlab.lse_merge(o, lse, np.zeros_like(o), np.full(10, -np.inf))
    assert np.array_equal(o_id, o) and np.array_equal(lse_id, lse)


def test_dlpack_only_objects_are_accepted():
    class DLPackOnly:
        def __init__(self, array):
            self._array = array

        def __dlpack__(self, **kwargs):
            return self._array.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return self._array.__dlpack_device__()

    q, k, v, _ = random_inputs()
    o, lse = ringlab.attention(DLPackOnly(q), DLPackOnly(k), DLPackOnly(v))
    o_ref, _ = ringlab.attention(q, k, v)
    assert np.array_equal(o, o_ref)
