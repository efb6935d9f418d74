"""ringlab: ring attention and LongNet dilated attention, exactly.

The Python face of ringlab's C++ reference (``reference/``) and simulator (``simulator/``), bound with
nanobind. Everything computes in the C++ library the CLI uses; this module converts arrays, fills in
defaults and turns the results into Python objects. docs/python.md is the guide, docs/semantics.md defines
what is computed.

Tensors are BNHD, as everywhere in ringlab::

    q, do, o, dq      [B, N, H, D]
    k, v, dk, dv      [B, M, Hkv, D]
    lse               [B, H, N]      natural log; -inf for a query with no allowed key

Arrays are numpy arrays or anything with ``__array__`` or ``__dlpack__`` (torch CPU tensors, JAX CPU
arrays); torch tensors that require grad are detached. float64 inputs are computed in double, float32 inputs in
float (the reference is templated on both); the outputs have the input dtype. Other dtypes, arrays that are
not C-contiguous and wrong shapes raise ``ringlab.InputError`` (a ``ValueError``) naming the tensor.

Configuration errors raise ``ringlab.ConfigError`` (a ``ValueError``) with the reference's own message,
which names the parameter as the CLI flag (``--kv-seq`` is the keyword ``kv_seq``).
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import pathlib
import tempfile
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

try:
    from . import _ringlab
except ImportError as error:  # the source tree (python/ringlab) shadows the installed package, or no build
    raise ImportError(
        "ringlab: the compiled extension ringlab._ringlab is missing next to " + os.path.dirname(__file__) +
        ". Install the package with `python3 -m pip install ./python` from the repository root, and run Python "
        "(and pytest) from outside python/ so that the source directory does not shadow the installed "
        "package.") from error

__all__ = [
    "Error", "ConfigError", "InputError", "FaultDetected", "OutOfMemory",
    "Config", "config", "attention", "attention_backward", "block_attention", "lse_merge",
    "head_plans", "mask", "schedule", "layout_positions", "golden", "load_case", "Case", "check",
    "CheckReport", "TensorCheck", "simulate", "devices", "OUTPUT_NAMES", "__version__",
]

__version__ = _ringlab.version()

#: The outputs a golden case stores and ``check`` compares, in order.
OUTPUT_NAMES = ("o", "lse", "dq", "dk", "dv")

# Br x Bc of the reference's flash-style tiles (ringlab::TileSizes).
_DEFAULT_TILES = (64, 128)


# ---- errors -------------------------------------------------------------------------------------------------

class Error(Exception):
    """Base of every error ringlab raises (a ringlab::Error in C++)."""


class ConfigError(Error, ValueError):
    """An invalid configuration; ``.parameter`` names it (as the CLI flag, e.g. ``--kv-seq``)."""

    def __init__(self, message: str, parameter: str | None = None):
        super().__init__(message)
        self.parameter = parameter


class InputError(Error, ValueError):
    """Unusable input: a tensor of the wrong dtype, shape or layout; a missing or malformed file."""


class FaultDetected(Error, RuntimeError):
    """The simulator detected an injected fault (lost, duplicated, stale or corrupted message, dead device).

    ``.device`` and ``.step`` name where it was detected.
    """

    def __init__(self, message: str, device: int | None = None, step: int | None = None):
        super().__init__(message)
        self.device = device
        self.step = step


class OutOfMemory(Error, RuntimeError):
    """A simulated device exceeded ``memory_budget_gib``; the message names device, buffer and bytes."""


_ringlab.set_exception_types(Error, ConfigError, InputError, FaultDetected, OutOfMemory)

Config = _ringlab.Config


# ---- argument normalisation ---------------------------------------------------------------------------------

def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"ringlab: {name} must be an integer, got {value!r}")
    return int(value)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"ringlab: {name} must be True or False, got {value!r}")
    return bool(value)


def _optional_str(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"ringlab: {name} must be a string or None, got {value!r}")
    return value


def _window(window: Any) -> tuple[int, int]:
    """None -> unbounded; "L,R" or (L, R) with -1 = unbounded side (flash-attn's window_size)."""
    if window is None:
        return -1, -1
    if isinstance(window, str):
        return tuple(_ringlab.parse_window(window))
    if isinstance(window, Sequence) and len(window) == 2:
        return _int("window[0]", window[0]), _int("window[1]", window[1])
    raise TypeError(f"ringlab: window must be None, 'L,R' or (L, R), got {window!r}")


def _dilation(dilation: Any) -> str:
    """None, "w:r,w:r" or [(w, r), ...] -> the reference's text form (parsed and checked in C++)."""
    if dilation is None:
        return ""
    if isinstance(dilation, str):
        return dilation
    if isinstance(dilation, Iterable):
        parts = []
        for pattern in dilation:
            if not (isinstance(pattern, Sequence) and len(pattern) == 2):
                raise TypeError(f"ringlab: dilation patterns are (w, r) pairs, got {pattern!r}")
            parts.append(f"{_int('dilation w', pattern[0])}:{_int('dilation r', pattern[1])}")
        if not parts:
            return ""
        return ",".join(parts)
    raise TypeError(f"ringlab: dilation must be None, 'w:r,...' or a list of (w, r), got {dilation!r}")


def _tiles(tiles: Any) -> tuple[int, int]:
    if tiles is None:
        return _DEFAULT_TILES
    if isinstance(tiles, Sequence) and len(tiles) == 2:
        return _int("tiles[0]", tiles[0]), _int("tiles[1]", tiles[1])
    raise TypeError(f"ringlab: tiles must be (Br, Bc), got {tiles!r}")


def config(*, batch: int = 1, seq: int = 128, kv_seq: int | None = None, q_start: int = 0, heads: int = 4,
           kv_heads: int | None = None, head_dim: int = 32, scale: float | None = None, causal: bool = False,
           window: Any = None, ring: int = 1, layout: str = "contiguous", q_replicated: bool = False,
           dilation: Any = None, offset_rule: str | None = None, combine: str | None = None,
           segments: str | None = None, preset: str | None = None) -> Config:
    """A validated attention configuration (ringlab::AttentionConfig; docs/semantics.md).

    kv_seq and kv_heads default to seq and heads. window is None, "L,R" or (L, R) (-1 = unbounded side).
    dilation is None, "w:r,w:r" or [(w, r), ...]. preset (longnet | torchscale | dilated-attention-pytorch)
    sets offset_rule, combine and segments; an explicit offset_rule/combine/segments overrides it.
    """
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise TypeError(f"ringlab: scale must be a number or None, got {scale!r}")
        scale = float(scale)
    if not isinstance(layout, str):
        raise TypeError(f"ringlab: layout must be a string, got {layout!r}")
    window_left, window_right = _window(window)
    seq = _int("seq", seq)
    heads = _int("heads", heads)
    return _ringlab.make_config(
        batch=_int("batch", batch), seq=seq, kv_seq=seq if kv_seq is None else _int("kv_seq", kv_seq),
        q_start=_int("q_start", q_start), heads=heads,
        kv_heads=heads if kv_heads is None else _int("kv_heads", kv_heads), head_dim=_int("head_dim", head_dim),
        scale=scale, causal=_bool("causal", causal), window_left=window_left, window_right=window_right,
        ring=_int("ring", ring), layout=layout, q_replicated=_bool("q_replicated", q_replicated),
        dilation=_dilation(dilation), offset_rule=_optional_str("offset_rule", offset_rule),
        combine=_optional_str("combine", combine), segments=_optional_str("segments", segments),
        preset=_optional_str("preset", preset))


# ---- arrays -------------------------------------------------------------------------------------------------

def _as_array(name: str, value: Any) -> np.ndarray:
    """numpy array of `value` without copying where possible (torch CPU tensors share their memory)."""
    if isinstance(value, np.ndarray):
        return value
    module = type(value).__module__ or ""
    if module.startswith("torch"):
        device = getattr(value, "device", None)
        if device is not None and getattr(device, "type", "cpu") != "cpu":
            raise InputError(f"{name} is a torch tensor on {device}; ringlab computes on the CPU: pass {name}.cpu()")
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":
            raise InputError(f"{name} is torch.bfloat16, which numpy cannot hold: pass {name}.double() "
                             "(or .float(); widening is exact)")
        if hasattr(value, "detach"):
            value = value.detach()  # a tensor that requires grad cannot become a numpy array otherwise
    try:
        if hasattr(value, "__array__") or isinstance(value, (list, tuple, numbers.Number)):
            return np.asarray(value)
        if hasattr(value, "__dlpack__"):
            return np.from_dlpack(value)
    except (TypeError, ValueError, RuntimeError, BufferError) as error:
        raise InputError(f"{name} cannot be read as a numpy array: {error}") from error
    raise InputError(f"{name} is a {type(value).__name__}; expected a numpy array or an object with __array__ "
                     "or __dlpack__ (a torch CPU tensor, say)")


def _tensor(name: str, value: Any, shape_text: str, ndim: int = 4) -> np.ndarray:
    array = _as_array(name, value)
    if array.dtype not in (np.float64, np.float32):
        raise InputError(f"{name} has dtype {array.dtype}; ringlab computes in float64 or float32: convert it, "
                         f"e.g. {name}.astype(numpy.float64)")
    if array.ndim != ndim:
        raise InputError(f"{name} has shape {tuple(array.shape)}; expected {ndim} dimensions {shape_text}")
    if not array.flags.c_contiguous:
        raise InputError(f"{name} is not C-contiguous (shape {tuple(array.shape)}, strides {array.strides}); "
                         f"pass numpy.ascontiguousarray({name}) (torch: {name}.contiguous())")
    return array


def _same_dtype(**arrays: np.ndarray) -> np.dtype:
    dtypes = {name: array.dtype for name, array in arrays.items()}
    if len(set(dtypes.values())) != 1:
        listed = ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
        raise InputError(f"the tensors must share one dtype (float64 or float32); got {listed}")
    return next(iter(dtypes.values()))


_Q = "[B, N, H, D]"
_KV = "[B, M, Hkv, D]"
_LSE = "[B, H, N]"


def _config_from_tensors(q: np.ndarray, k: np.ndarray, options: dict) -> Config:
    batch, seq, heads, head_dim = q.shape
    return config(batch=batch, seq=seq, kv_seq=k.shape[1], heads=heads, kv_heads=k.shape[2], head_dim=head_dim,
                  **options)


# ---- attention ----------------------------------------------------------------------------------------------

def attention(q: Any, k: Any, v: Any, *, causal: bool = False, window: Any = None, scale: float | None = None,
              q_start: int = 0, algorithm: str | None = None, ring: int = 1, layout: str = "contiguous",
              q_replicated: bool = False, dilation: Any = None, offset_rule: str | None = None,
              combine: str | None = None, segments: str | None = None, preset: str | None = None,
              tiles: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Attention forward: returns (o [B, N, H, D], lse [B, H, N]).

    q [B, N, H, D], k, v [B, M, Hkv, D]; the shapes give B, N, M, H, Hkv and D. algorithm is "dense"
    (materialised scores), "blockwise" (flash-style tiles of ``tiles`` = (Br, Bc), default (64, 128)) or
    "ring" (``ring`` virtual devices, ``layout`` contiguous | zigzag | striped, ``q_replicated`` for the
    seed documents' variant); None picks "ring" when ring > 1 or q_replicated, else "blockwise".
    Masks: ``causal`` (k <= q on global positions, query i at q_start + i), ``window`` (L, R) as flash-attn.
    Dilation (LongNet): ``dilation`` [(w, r), ...] or "w:r,...", with ``offset_rule`` paper | torchscale |
    group, ``combine`` lse | group_mean | group_sum, ``segments`` error | ragged, or a ``preset``.
    """
    q = _tensor("q", q, _Q)
    k = _tensor("k", k, _KV)
    v = _tensor("v", v, _KV)
    dtype = _same_dtype(q=q, k=k, v=v)
    cfg = _config_from_tensors(q, k, dict(causal=causal, window=window, scale=scale, q_start=q_start, ring=ring,
                                          layout=layout, q_replicated=q_replicated, dilation=dilation,
                                          offset_rule=offset_rule, combine=combine, segments=segments,
                                          preset=preset))
    rows, columns = _tiles(tiles)
    forward = _ringlab.forward_float64 if dtype == np.float64 else _ringlab.forward_float32
    return forward(cfg, q, k, v, _optional_str("algorithm", algorithm), rows, columns)


def attention_backward(q: Any, k: Any, v: Any, o: Any, lse: Any, do: Any, *, causal: bool = False,
                       window: Any = None, scale: float | None = None, q_start: int = 0,
                       algorithm: str | None = None, ring: int = 1, layout: str = "contiguous",
                       q_replicated: bool = False, dilation: Any = None, offset_rule: str | None = None,
                       combine: str | None = None, segments: str | None = None, preset: str | None = None,
                       tiles: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attention backward: returns (dq [B, N, H, D], dk, dv [B, M, Hkv, D]).

    o and lse are the outputs of ``attention`` with the same options; do is dL/dO [B, N, H, D]. The
    gradient of lse is taken as zero (docs/semantics.md §5). Options as for ``attention``.
    """
    q = _tensor("q", q, _Q)
    k = _tensor("k", k, _KV)
    v = _tensor("v", v, _KV)
    o = _tensor("o", o, _Q)
    lse = _tensor("lse", lse, _LSE, ndim=3)
    do = _tensor("do", do, _Q)
    dtype = _same_dtype(q=q, k=k, v=v, o=o, lse=lse, do=do)
    cfg = _config_from_tensors(q, k, dict(causal=causal, window=window, scale=scale, q_start=q_start, ring=ring,
                                          layout=layout, q_replicated=q_replicated, dilation=dilation,
                                          offset_rule=offset_rule, combine=combine, segments=segments,
                                          preset=preset))
    rows, columns = _tiles(tiles)
    backward = _ringlab.backward_float64 if dtype == np.float64 else _ringlab.backward_float32
    return backward(cfg, q, k, v, o, lse, do, _optional_str("algorithm", algorithm), rows, columns)


def _float64(name: str, value: Any, ndim: int, shape_text: str) -> np.ndarray:
    array = _as_array(name, value)
    if array.dtype != np.float64:
        raise InputError(f"{name} has dtype {array.dtype}; this primitive takes float64")
    if array.ndim != ndim:
        raise InputError(f"{name} has shape {tuple(array.shape)}; expected {shape_text}")
    return np.ascontiguousarray(array)


def block_attention(q: Any, k: Any, v: Any, q_positions: Any = None, k_positions: Any = None, *,
                    causal: bool = False, window: Any = None, scale: float | None = None,
                    dilation: tuple[int, int, int] | None = None,
                    tiles: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The one primitive (docs/semantics.md §3), float64, one head: returns (o [n, D], lse [n]).

    q [n, D], k, v [m, D]; q_positions [n] and k_positions [m] are global positions (default 0, 1, ...);
    the mask is causal/window on positions and, with ``dilation`` = (w, r, offset), one LongNet selection.
    A query with no allowed key gets o = 0 and lse = -inf.
    """
    q = _float64("q", q, 2, "[n, D]")
    k = _float64("k", k, 2, "[m, D]")
    v = _float64("v", v, 2, "[m, D]")
    positions = []
    for name, value, count in (("q_positions", q_positions, q.shape[0]), ("k_positions", k_positions, k.shape[0])):
        array = np.arange(count, dtype=np.int64) if value is None else np.asarray(value)
        if array.dtype.kind not in "iu":
            raise InputError(f"{name} must hold integers, got dtype {array.dtype}")
        positions.append(np.ascontiguousarray(array, dtype=np.int64))
    window_left, window_right = _window(window)
    if dilation is not None:
        if not (isinstance(dilation, Sequence) and len(dilation) == 3):
            raise TypeError(f"ringlab: dilation must be (w, r, offset), got {dilation!r}")
        dilation = tuple(_int("dilation", x) for x in dilation)
    rows, columns = _tiles(tiles)
    return _ringlab.block_attention(q, k, v, positions[0], positions[1], _bool("causal", causal), window_left,
                                    window_right, None if scale is None else float(scale), dilation, rows, columns)


def lse_merge(o_a: Any, lse_a: Any, o_b: Any, lse_b: Any) -> tuple[np.ndarray, np.ndarray]:
    """(o_a, lse_a) ⊕ (o_b, lse_b) for rows o [n, D], lse [n], float64 (docs/semantics.md §4)."""
    return _ringlab.lse_merge(_float64("o_a", o_a, 2, "[n, D]"), _float64("lse_a", lse_a, 1, "[n]"),
                              _float64("o_b", o_b, 2, "[n, D]"), _float64("lse_b", lse_b, 1, "[n]"))


def head_plans(**options: Any) -> list[dict]:
    """What each head computes under a config's dilation: per head ``masks`` (pattern index, w, r, offset),
    ``output_scale`` (1/k for group_mean) and ``group`` (offset rule group). Keywords as ``config``."""
    return _ringlab.head_plans(config(**options))


def mask(*, head: int = 0, **options: Any) -> np.ndarray:
    """The multiplicity m_h(t, j) of one head as an int32 [N, M] matrix: in how many of the head's
    (pattern, offset) masks query t and key j interact (0 = masked; 1 everywhere allowed without dilation;
    2 where two patterns overlap). Keywords as ``config`` (seq, causal, window, dilation, ...)."""
    return _ringlab.multiplicity(config(**options), _int("head", head))


# ---- schedule -----------------------------------------------------------------------------------------------

def schedule(seq: int = 128, ring: int = 1, layout: str = "contiguous", *, bytes_per_element: int = 2,
             **options: Any) -> dict:
    """The RingSchedule (docs/semantics.md §7.6) as a dict, the fields of ``ringlab schedule --json``:

    ``devices[p]["steps"][s]`` has step, kv_owner, pairs (unmasked score entries of one batch element,
    summed over heads and dilation patterns), skipped, kv_rows, selected_rows, forward_bytes_sent,
    backward_bytes_sent; each device also has total_pairs, skipped_steps, share, query_positions (text),
    query_count and query_runs [(start, stride, count)]. At the top: total_pairs, skipped_steps,
    critical_path_pairs (sum over steps of the busiest device: devices run in lockstep), mean_pairs,
    imbalance (max/mean pairs per device), selected_rows_bytes_saved, chunk_runs, kv_bytes_per_row,
    gradient_bytes_per_row (the fp32 dK/dV accumulators), returned_gradient_bytes_per_row (the hop home),
    local_only (every step after 0 skipped everywhere: nothing is sent). Other keywords as
    ``config`` (heads, causal, window, dilation, q_replicated, ...).
    """
    cfg = config(seq=seq, ring=ring, layout=layout, **options)
    result = _ringlab.schedule(cfg, _int("bytes_per_element", bytes_per_element))
    devices = result["devices"]
    total = result["total_pairs"]
    for device in devices:
        device["share"] = device["total_pairs"] / total if total else 0.0
    steps = len(devices[0]["steps"]) if devices else 0
    result["critical_path_pairs"] = sum(max(d["steps"][s]["pairs"] for d in devices) for s in range(steps))
    result["mean_pairs"] = total / len(devices)
    most = max(d["total_pairs"] for d in devices)
    result["imbalance"] = most / result["mean_pairs"] if result["mean_pairs"] > 0 else 1.0
    return result


def layout_positions(layout: str, seq: int, ring: int) -> list[np.ndarray]:
    """The token positions each of ``ring`` devices owns under ``layout`` (contiguous | zigzag | striped)."""
    if not isinstance(layout, str):
        raise TypeError(f"ringlab: layout must be a string, got {layout!r}")
    return _ringlab.layout_positions(layout, _int("seq", seq), _int("ring", ring))


# ---- golden cases and the checker ---------------------------------------------------------------------------

@dataclasses.dataclass
class Case:
    """A golden case (docs/semantics.md §11): config, inputs q, k, v, do and exact fp64 outputs o, lse, dq,
    dk, dv (numpy float64), tolerances per dtype ("fp64", "fp32", "bf16", "fp16") and tensor."""

    dir: pathlib.Path | None
    config: Config
    seed: int
    algorithm: str
    ringlab_version: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    tolerances: dict[str, dict[str, float]]
    baseline_errors: dict[str, dict[str, float]]
    max_scaled_difference_from_dense: dict[str, float]

    def attention_kwargs(self) -> dict:
        """The keyword arguments of ``attention``/``attention_backward`` that reproduce this case."""
        c = self.config
        kwargs = dict(causal=c.causal, window=c.window, q_start=c.q_start, ring=c.ring, layout=c.layout,
                      q_replicated=c.q_replicated, algorithm=self.algorithm)
        if c.to_dict()["scale_given"]:
            kwargs["scale"] = c.scale
        if c.dilation:
            kwargs.update(dilation=c.dilation, offset_rule=c.offset_rule, combine=c.combine, segments=c.segments)
        return kwargs

    def __repr__(self) -> str:
        where = f" at {self.dir}" if self.dir else ""
        return (f"<ringlab.Case{where}: {self.config.describe()} | algorithm {self.algorithm} | seed {self.seed}>")


def _case(raw: dict, directory: Any) -> Case:
    return Case(dir=pathlib.Path(directory), **raw)


def golden(out_dir: str | os.PathLike, *, algorithm: str | None = None, seed: int = 0, force: bool = False,
           **options: Any) -> Case:
    """Write a golden case into ``out_dir`` (as ``ringlab golden --out``) and return it.

    Keywords as ``config`` (batch, seq, heads, kv_heads, head_dim, causal, ring, layout, dilation, ...).
    algorithm None = ring when ring > 1, else blockwise. Inputs are N(0,1) from ringlab's portable
    generator with ``seed``. ``force`` overwrites the case files of a non-empty directory.
    """
    cfg = config(**options)
    seed = _int("seed", seed)
    if seed < 0:
        raise ConfigError(f"invalid --seed = {seed}: must be an integer in [0, 18446744073709551615]", "--seed")
    raw = _ringlab.golden(os.fspath(out_dir), cfg, _optional_str("algorithm", algorithm), seed,
                          _bool("force", force))
    return _case(raw, out_dir)


def load_case(directory: str | os.PathLike) -> Case:
    """Read a golden case directory (case.json and the nine .npy files)."""
    return _case(_ringlab.load_case(os.fspath(directory)), directory)


@dataclasses.dataclass
class TensorCheck:
    """One tensor's verdict. scaled_error = max|out - ref| / max(max|ref|, 1); passed iff <= tolerance."""

    name: str
    file: str
    file_dtype: str
    max_abs_error: float
    scaled_error: float
    tolerance: float
    passed: bool
    worst_index: tuple
    worst_output: float
    worst_reference: float
    worst_relative_error: float


def _number(value: float) -> str:
    if np.isnan(value):
        return "nan"
    if np.isinf(value):
        return "inf" if value > 0 else "-inf"
    return "0" if value == 0 else f"{value:.3e}"


@dataclasses.dataclass
class CheckReport:
    """The checker's verdict (``ringlab check``): one TensorCheck per submitted output, the outputs not
    submitted, the precision whose tolerances applied, and ``passed`` (every submitted tensor passed).
    ``report["o"]`` is the TensorCheck of o; ``print(report)`` shows the CLI's table."""

    precision: str
    tensors: list[TensorCheck]
    missing: list[str]
    passed: bool

    def __getitem__(self, name: str) -> TensorCheck:
        for tensor in self.tensors:
            if tensor.name == name:
                return tensor
        raise KeyError(f"{name!r} was not checked; checked: {[t.name for t in self.tensors]}")

    def failed(self) -> list[TensorCheck]:
        return [tensor for tensor in self.tensors if not tensor.passed]

    def table(self) -> str:
        lines = [f"checked at {self.precision} tolerances; scaled err = max|out - ref| / max(max|ref|, 1)",
                 f"{'tensor':<6} {'file':<8} {'max abs err':>12} {'scaled err':>12} {'tolerance':>12} "
                 f"{'verdict':<7} {'worst index':<22} {'rel err there':>13}"]
        for t in self.tensors:
            index = "[" + ", ".join(str(i) for i in t.worst_index) + "]"
            lines.append(f"{t.name:<6} {t.file_dtype:<8} {_number(t.max_abs_error):>12} {_number(t.scaled_error):>12} "
                         f"{_number(t.tolerance):>12} {'pass' if t.passed else 'FAIL':<7} {index:<22} "
                         f"{_number(t.worst_relative_error):>13}")
        if self.missing:
            lines.append("not submitted: " + ", ".join(self.missing))
        failed = len(self.failed())
        count = len(self.tensors)
        lines.append(f"PASS: {count} of {count} tensors within {self.precision} tolerance" if failed == 0 else
                     f"FAIL: {failed} of {count} tensors outside {self.precision} tolerance")
        return "\n".join(lines)

    __str__ = table

    def __repr__(self) -> str:
        return self.table()


def _write_outputs(outputs: Mapping[str, Any], directory: pathlib.Path) -> None:
    unknown = sorted(set(outputs) - set(OUTPUT_NAMES))
    if unknown:
        raise InputError(f"outputs has {unknown}; the checked outputs are named {', '.join(OUTPUT_NAMES)}")
    for name, value in outputs.items():
        array = _as_array(f"outputs[{name!r}]", value)
        if array.dtype.kind != "f" or array.dtype.itemsize not in (2, 4, 8):
            raise InputError(f"outputs[{name!r}] has dtype {array.dtype}; submit float16, float32 or float64 "
                             "(bf16 widened to float32 is exact)")
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
        np.save(directory / f"{name}.npy", array)


def check(case: str | os.PathLike | Case, outputs: str | os.PathLike | Mapping[str, Any],
          dtype: str = "fp64") -> CheckReport:
    """Compare outputs with a golden case (``ringlab check``): returns a CheckReport.

    case is a case directory or a Case (from ``golden``/``load_case``). outputs is a directory holding any
    of o.npy, lse.npy, dq.npy, dk.npy, dv.npy, or a dict {name: array} of them (float16/32/64, the case's
    shapes; written to a temporary directory and read by the same C++ checker). dtype (fp64 | fp32 | bf16 |
    fp16) is the precision the outputs were computed in; it picks the tolerances.
    """
    if isinstance(case, Case):
        if case.dir is None:
            raise InputError("the Case has no directory; write it with ringlab.golden(out_dir, ...)")
        case = case.dir
    case_dir = os.fspath(case)
    if not isinstance(dtype, str):
        raise TypeError(f"ringlab: dtype must be a string (fp64, fp32, bf16, fp16), got {dtype!r}")
    if isinstance(outputs, Mapping):
        with tempfile.TemporaryDirectory(prefix="ringlab-outputs-") as temporary:
            _write_outputs(outputs, pathlib.Path(temporary))
            raw = _ringlab.check(case_dir, temporary, dtype)
        for tensor in raw["tensors"]:
            tensor["file"] = f"outputs[{tensor['name']!r}]"
    else:
        raw = _ringlab.check(case_dir, os.fspath(outputs), dtype)
    return CheckReport(precision=raw["precision"], tensors=[TensorCheck(**t) for t in raw["tensors"]],
                       missing=list(raw["missing"]), passed=raw["passed"])


# ---- the simulator ------------------------------------------------------------------------------------------

def simulate(*, mode: str = "compute", scheme: str = "ring", pass_: str = "forward", device: str = "H100-SXM",
             device_file: str | os.PathLike | None = None, devices_per_node: int = 8, overlap: bool = True,
             bytes_per_element: int = 2, send_selected_rows: bool = False, memory_budget_gib: float | None = None,
             inject: str | Iterable[str] = (), timeout_ms: float = 100.0, delay_us: float = 1000.0,
             tiles: tuple[int, int] | None = None, seed: int = 0, trace: str | os.PathLike | None = None,
             timeline: bool = False, batch: int = 1, seq: int = 8192, kv_seq: int | None = None, q_start: int = 0,
             heads: int = 8, kv_heads: int | None = None, head_dim: int = 64, scale: float | None = None,
             causal: bool = True, window: Any = None, ring: int = 8, layout: str = "zigzag",
             q_replicated: bool = False, dilation: Any = None, offset_rule: str | None = None,
             combine: str | None = None, segments: str | None = None, preset: str | None = None) -> dict:
    """Run P virtual devices (``ringlab simulate``; docs/simulator.md) and return the report as a dict.

    The defaults are the CLI's teaching scenario: causal, N = 8192, P = 8, H = 8, D = 64, zigzag, compute
    mode (real fp64 tensors, checked against single-device attention). mode compute | analytic (no
    tensors, N up to 2^30); scheme ring | flash | dense; pass_ forward | backward | both; device a preset
    (A100-80GB, H100-SXM, H200) or a name from ``device_file``; inject "KIND@DEVICE:STEP" strings (drop,
    duplicate, corrupt, stale, delay, kill): a detected fault raises FaultDetected, an exceeded
    ``memory_budget_gib`` OutOfMemory. ``trace`` writes the Chrome/Perfetto trace there (overwriting).

    Keys (report_json): config, devices [{id, peak_bytes, peak_bytes_by_category, compute_ns, comm_ns,
    idle_ns, exposed_comm_ns, bytes_sent, pairs}], makespan_ns, skipped_steps, selected_rows_bytes_saved,
    dense_reference {naive_peak_bytes, flash_peak_bytes}, max_abs_error_vs_dense (None in analytic mode);
    plus summary (the CLI's text tables) and, with ``timeline=True``, slices [{device, stream, name,
    begin_ns, end_ns, pass, step, message}] and snapshots [{pass, step, time_ns, kv_owner, pairs, skipped,
    memory_bytes}] (recorded for P <= 256).
    """
    cfg = config(batch=batch, seq=seq, kv_seq=kv_seq, q_start=q_start, heads=heads, kv_heads=kv_heads,
                 head_dim=head_dim, scale=scale, causal=causal, window=window, ring=ring, layout=layout,
                 q_replicated=q_replicated, dilation=dilation, offset_rule=offset_rule, combine=combine,
                 segments=segments, preset=preset)
    if isinstance(inject, str):
        inject = [inject]
    inject = list(inject)
    for item in inject:
        if not isinstance(item, str):
            raise TypeError(f"ringlab: inject takes 'KIND@DEVICE:STEP' strings, got {item!r}")
    budget = None
    if memory_budget_gib is not None:
        if isinstance(memory_budget_gib, bool) or not isinstance(memory_budget_gib, numbers.Real):
            raise TypeError(f"ringlab: memory_budget_gib must be a number or None, got {memory_budget_gib!r}")
        if not memory_budget_gib > 0:
            raise ConfigError(f"invalid --memory-budget = {memory_budget_gib}: must be > 0 GiB (None = no budget)",
                              "--memory-budget")
        budget = int(memory_budget_gib * (1 << 30))
    for name, value in (("timeout_ms", timeout_ms), ("delay_us", delay_us)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"ringlab: {name} must be a number, got {value!r}")
    if not timeout_ms > 0:
        raise ConfigError(f"invalid --timeout-ms = {timeout_ms}: must be > 0", "--timeout-ms")
    seed = _int("seed", seed)
    if seed < 0:
        raise ConfigError(f"invalid --seed = {seed}: must be an integer in [0, 18446744073709551615]", "--seed")
    rows, columns = _tiles(tiles)
    for name, value in (("mode", mode), ("scheme", scheme), ("pass_", pass_), ("device", device)):
        if not isinstance(value, str):
            raise TypeError(f"ringlab: {name} must be a string, got {value!r}")
    return _ringlab.simulate(
        cfg, mode, scheme, pass_, device, None if device_file is None else os.fspath(device_file),
        _int("devices_per_node", devices_per_node), _bool("overlap", overlap),
        _int("bytes_per_element", bytes_per_element), _bool("send_selected_rows", send_selected_rows), budget,
        inject, int(timeout_ms * 1e6), int(delay_us * 1e3), rows, columns, seed,
        None if trace is None else os.fspath(trace), _bool("timeline", timeline))


def devices(device_file: str | os.PathLike | None = None) -> list[dict]:
    """The simulator's device presets (simulator/data/devices.json) or those of ``device_file``: name,
    peak_flops (FLOP/s), memory_bytes, memory_bandwidth (B/s), attention_efficiency, intra_node_link and
    inter_node_link ({bandwidth B/s, latency_ns})."""
    return _ringlab.devices(None if device_file is None else os.fspath(device_file))
