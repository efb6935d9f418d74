"""Bad input becomes a Python exception with a clear message, never a crash."""

import numpy as np
import pytest

import ringlab
from ringlab import _ringlab
from conftest import random_inputs


def test_error_classes():
    assert issubclass(ringlab.ConfigError, ValueError) and issubclass(ringlab.InputError, ValueError)
    assert issubclass(ringlab.FaultDetected, RuntimeError) and issubclass(ringlab.OutOfMemory, RuntimeError)
    for cls in (ringlab.ConfigError, ringlab.InputError, ringlab.FaultDetected, ringlab.OutOfMemory):
        assert issubclass(cls, ringlab.Error)


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.complex128, np.bool_])
def test_wrong_dtype(dtype):
    q, k, v, _ = random_inputs()
    with pytest.raises(ringlab.InputError, match=r"q has dtype .*float64 or float32"):
        ringlab.attention(q.astype(dtype), k, v)


def test_big_endian_is_a_wrong_dtype_not_garbage():
    q, k, v, _ = random_inputs()
    with pytest.raises(ValueError, match="dtype"):
        ringlab.attention(q.astype(">f8"), k, v)


def test_mixed_dtypes():
    q, k, v, _ = random_inputs()
    with pytest.raises(ValueError, match="share one dtype.*q float32, k float64"):
        ringlab.attention(q.astype(np.float32), k, v)


def test_wrong_rank():
    q, k, v, _ = random_inputs()
    with pytest.raises(ValueError, match=r"q has shape \(32, 4, 16\); expected 4 dimensions \[B, N, H, D\]"):
        ringlab.attention(q[0], k, v)


def test_non_contiguous():
    q, k, v, _ = random_inputs(seq=32)
    with pytest.raises(ValueError, match="not C-contiguous"):
        ringlab.attention(q[:, ::2], k, v)
    with pytest.raises(ValueError, match=r"k is not C-contiguous.*ascontiguousarray\(k\)"):
        ringlab.attention(q, np.asfortranarray(k), v)


def test_shape_mismatches_name_the_tensor():
    q, k, v, do = random_inputs(heads=4, head_dim=16)
    with pytest.raises(ringlab.InputError, match=r"k has shape \[1, 32, 4, 8\] but the config needs \[1, 32, 4, 16\]"):
        ringlab.attention(q, k[..., :8].copy(), v)
    with pytest.raises(ringlab.InputError, match=r"v has shape"):
        ringlab.attention(q, k, v[:, :31].copy())
    o, lse = ringlab.attention(q, k, v)
    with pytest.raises(ringlab.InputError, match=r"lse has shape"):
        ringlab.attention_backward(q, k, v, o, lse[:, :, :5].copy(), do)
    with pytest.raises(ringlab.InputError, match=r"expected 3 dimensions \[B, H, N\]"):
        ringlab.attention_backward(q, k, v, o, lse[0], do)


def test_empty_tensor_is_a_config_error():
    q, k, v, _ = random_inputs()
    with pytest.raises(ringlab.ConfigError, match=r"invalid --seq = 0"):
        ringlab.attention(q[:, :0], k, v)


def test_not_an_array():
    q, k, v, _ = random_inputs()
    with pytest.raises(ringlab.InputError, match="expected a numpy array"):
        ringlab.attention(object(), k, v)


@pytest.mark.parametrize("options, message", [
    (dict(kv_heads=3), r"invalid --kv-heads = 3: must divide --heads = 4"),
    (dict(layout="zig"), r"invalid --layout = 'zig': valid values are contiguous, zigzag, striped"),
    (dict(ring=4, layout="zigzag", seq=8, kv_seq=9), r"ring attention needs --kv-seq equal to --seq"),
    (dict(dilation="8:2,3"), r"each pattern is w:r"),
    (dict(dilation=[(4, 8)]), r"rate r must be in \[1, w = 4\]"),
    (dict(seq=10, dilation="4:1"), r"--segments ragged"),
    (dict(dilation="4:1", combine="group_mean"), r"need --offset-rule group"),
    (dict(preset="longnets"), r"valid presets are longnet, torchscale, dilated-attention-pytorch"),
    (dict(window="3"), r"expected L,R"),
    (dict(window=(-2, 0)), r"--window left"),
    (dict(scale=float("inf")), r"--scale"),
])
def test_config_errors_keep_the_reference_message(options, message):
    with pytest.raises(ringlab.ConfigError, match=message) as raised:
        ringlab.config(**options)
    assert raised.value.parameter.startswith("--")


def test_algorithm_must_fit_the_ring():
    q, k, v, _ = random_inputs()
    with pytest.raises(ringlab.ConfigError, match=r"runs with --algorithm ring"):
        ringlab.attention(q, k, v, ring=2, algorithm="dense")
    with pytest.raises(ringlab.ConfigError, match=r"invalid --algorithm = 'fast'"):
        ringlab.attention(q, k, v, algorithm="fast")
    with pytest.raises(ringlab.ConfigError, match=r"tile sizes"):
        ringlab.attention(q, k, v, tiles=(0, 4))


@pytest.mark.parametrize("options", [dict(seq="8"), dict(seq=8.0), dict(causal=1), dict(scale="x"),
                                     dict(dilation=[(4,)]), dict(window=[1, 2, 3])])
def test_wrong_python_types_are_type_errors(options):
    with pytest.raises(TypeError, match="ringlab: "):
        ringlab.config(**options)


def test_the_extension_itself_rejects_bad_arrays_without_crashing():
    q, k, v, _ = random_inputs()
    config = ringlab.config(seq=32, heads=4, head_dim=16)
    with pytest.raises(TypeError):
        _ringlab.forward_float64(config, q[:, ::2], k, v, None, 64, 128)
    with pytest.raises(TypeError):
        _ringlab.forward_float64(config, q.astype(np.float32), k, v, None, 64, 128)
    with pytest.raises(TypeError):
        _ringlab.forward_float64(config, q.tolist(), k, v, None, 64, 128)


def test_config_equality_and_repr():
    assert ringlab.config(seq=64) == ringlab.config(seq=64)
    assert ringlab.config(seq=64) != ringlab.config(seq=65)
    assert ringlab.config() != 3
    assert "N=64" in repr(ringlab.config(seq=64))
    assert ringlab.config(window="3,-1").window == (3, -1)
