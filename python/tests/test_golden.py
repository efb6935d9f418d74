"""Golden cases from Python, and ringlab.check on directories and dicts, passing and failing."""

import json

import numpy as np
import pytest

import ringlab


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    directory = tmp_path_factory.mktemp("case")
    return ringlab.golden(directory, seq=33, heads=4, kv_heads=2, head_dim=8, causal=True, ring=3,
                          layout="zigzag", seed=7, force=True)


def test_golden_writes_and_loads(case):
    assert (case.dir / "case.json").exists()
    stored = json.loads((case.dir / "case.json").read_text())
    assert stored["seed"] == 7 and stored["algorithm"] == "ring"
    loaded = ringlab.load_case(case.dir)
    assert loaded.config == case.config and loaded.algorithm == "ring"
    for name in ringlab.OUTPUT_NAMES:
        assert np.array_equal(loaded.outputs[name], case.outputs[name])
    assert loaded.inputs["q"].shape == (1, 33, 4, 8) and loaded.inputs["k"].shape == (1, 33, 2, 8)
    assert loaded.tolerances["fp64"]["o"] == 1e-10 and loaded.tolerances["fp32"]["dq"] == 1e-5
    assert loaded.tolerances["bf16"]["o"] > loaded.tolerances["fp16"]["o"] > 0


def test_reference_outputs_pass(case):
    report = ringlab.check(case, dict(case.outputs))
    assert report.passed and not report.missing
    assert [t.name for t in report.tensors] == list(ringlab.OUTPUT_NAMES)
    assert all(t.scaled_error == 0 and t.tolerance == 1e-10 for t in report.tensors)
    assert "PASS: 5 of 5" in str(report)


def test_ringlab_reproduces_its_case_from_python(case):
    q, k, v, do = (case.inputs[n] for n in ("q", "k", "v", "do"))
    kwargs = case.attention_kwargs()
    o, lse = ringlab.attention(q, k, v, **kwargs)
    dq, dk, dv = ringlab.attention_backward(q, k, v, o, lse, do, **kwargs)
    report = ringlab.check(case.dir, dict(o=o, lse=lse, dq=dq, dk=dk, dv=dv))
    assert report.passed, report


def test_planted_bug_fails_and_is_located(case, tmp_path):
    o = case.outputs["o"].copy()
    o[0, 20, 3, 5] += 1e-6
    np.save(tmp_path / "o.npy", o)
    np.save(tmp_path / "lse.npy", case.outputs["lse"])
    report = ringlab.check(case.dir, tmp_path)
    assert not report.passed
    assert report["lse"].passed and not report["o"].passed
    assert report["o"].worst_index == (0, 20, 3, 5)
    assert report["o"].max_abs_error == pytest.approx(1e-6, rel=1e-6)
    assert report.missing == ["dq", "dk", "dv"]
    assert [t.name for t in report.failed()] == ["o"]
    assert "FAIL: 1 of 2" in report.table()


def test_float32_outputs_at_fp32_tolerance(case):
    outputs = {name: case.outputs[name].astype(np.float32) for name in ("o", "lse")}
    assert ringlab.check(case, outputs, dtype="fp32").passed
    report = ringlab.check(case, outputs, dtype="fp64")
    assert not report.passed and report["o"].file_dtype == "float32"


def test_check_errors(case, tmp_path):
    with pytest.raises(ringlab.InputError, match="named o, lse, dq, dk, dv"):
        ringlab.check(case, {"out": case.outputs["o"]})
    with pytest.raises(ringlab.InputError, match="dtype int64"):
        ringlab.check(case, {"o": case.outputs["o"].astype(np.int64)})
    with pytest.raises(ringlab.InputError, match="shape"):
        ringlab.check(case, {"o": case.outputs["o"][:, :5]})
    with pytest.raises(ringlab.InputError, match="case directory not found"):
        ringlab.check(tmp_path / "nowhere", {"o": case.outputs["o"]})
    with pytest.raises(ringlab.InputError):
        ringlab.check(case, tmp_path)  # no output files there
    with pytest.raises(ringlab.ConfigError, match="--dtype"):
        ringlab.check(case, dict(case.outputs), dtype="fp8")
    with pytest.raises(ringlab.InputError, match="not empty|non-empty|--force|force"):
        ringlab.golden(case.dir, seq=8)
