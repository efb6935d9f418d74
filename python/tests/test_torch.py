"""torch CPU tensors are accepted (skipped where torch is not installed)."""

import numpy as np
import pytest

import ringlab
from conftest import random_inputs, scaled_error

torch = pytest.importorskip("torch")


def test_torch_tensors_in_numpy_out():
    q, k, v, _ = random_inputs(seq=24)
    tq, tk, tv = (torch.from_numpy(x).requires_grad_() for x in (q, k, v))
    o, lse = ringlab.attention(tq, tk, tv, causal=True)
    o_ref, _ = ringlab.attention(q, k, v, causal=True)
    assert isinstance(o, np.ndarray) and np.array_equal(o, o_ref)


def test_torch_sdpa_equals_ringlab_in_float64():
    q, k, v, _ = random_inputs(seq=24, heads=4, head_dim=8)
    t = [torch.from_numpy(x).transpose(1, 2) for x in (q, k, v)]  # BNHD -> BHND
    expected = torch.nn.functional.scaled_dot_product_attention(*t, is_causal=True).transpose(1, 2).numpy()
    o, _ = ringlab.attention(q, k, v, causal=True)
    assert scaled_error(o, expected) <= 1e-12


def test_torch_rejections():
    q, k, v, _ = random_inputs()
    with pytest.raises(ringlab.InputError, match="bfloat16"):
        ringlab.attention(torch.from_numpy(q).bfloat16(), k, v)
    with pytest.raises(ringlab.InputError, match="not C-contiguous.*contiguous"):
        ringlab.attention(torch.from_numpy(q).transpose(1, 2), k, v)
