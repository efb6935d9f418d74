"""ringlab.schedule against docs/semantics.md §7.4, and ringlab.simulate's report, trace and faults."""

import json

import numpy as np
import pytest

import ringlab


@pytest.mark.parametrize("layout, totals, critical", [
    ("contiguous", [10, 26], 26),
    ("zigzag", [18, 18], 18),
    ("striped", [16, 20], 20),
])
def test_semantics_example_p2_n8(layout, totals, critical):
    schedule = ringlab.schedule(8, 2, layout, causal=True, heads=1)
    assert [d["total_pairs"] for d in schedule["devices"]] == totals
    assert schedule["total_pairs"] == 36 and schedule["critical_path_pairs"] == critical
    assert schedule["devices"][0]["steps"][1]["kv_owner"] == 1
    if layout == "contiguous":
        assert schedule["devices"][0]["steps"][1]["skipped"] and schedule["skipped_steps"] == 1
    assert not schedule["local_only"]


def test_local_only_schedule_sends_nothing():
    # Segments of 16 inside contiguous chunks of 32: only step 0 computes anywhere, so nothing moves.
    schedule = ringlab.schedule(128, 4, "contiguous", heads=2, dilation="16:1,32:2")
    assert schedule["local_only"]
    assert all(s["forward_bytes_sent"] == 0 and s["backward_bytes_sent"] == 0
               for d in schedule["devices"] for s in d["steps"])


def test_layout_positions_partition_the_sequence():
    for layout in ("contiguous", "zigzag", "striped"):
        parts = ringlab.layout_positions(layout, 50, 4)
        assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(50))
    assert list(ringlab.layout_positions("zigzag", 8, 2)[0]) == [0, 1, 6, 7]


DOCUMENTED_KEYS = {"config", "devices", "makespan_ns", "skipped_steps", "selected_rows_bytes_saved",
                   "dense_reference", "max_abs_error_vs_dense", "summary"}
DEVICE_KEYS = {"id", "peak_bytes", "peak_bytes_by_category", "compute_ns", "comm_ns", "idle_ns",
               "exposed_comm_ns", "bytes_sent", "pairs"}


def test_simulate_compute_mode_report(tmp_path):
    trace = tmp_path / "run.json"
    report = ringlab.simulate(seq=512, ring=4, heads=4, head_dim=32, trace=trace, timeline=True)
    assert DOCUMENTED_KEYS | {"slices", "snapshots"} == set(report)
    assert len(report["devices"]) == 4 and DEVICE_KEYS == set(report["devices"][0])
    assert report["max_abs_error_vs_dense"] < 1e-12
    assert report["config"]["layout"] == "zigzag" and report["config"]["causal"] is True
    assert {"naive_peak_bytes", "flash_peak_bytes"} == set(report["dense_reference"])
    assert set(report["devices"][0]["peak_bytes_by_category"]) == {"q", "kv", "kv_recv", "out", "lse", "scratch",
                                                                    "grad"}
    assert {s["stream"] for s in report["slices"]} == {"compute", "send", "receive"}
    assert [s["step"] for s in report["snapshots"]] == [0, 1, 2, 3]
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e.get("ph") == "X" for e in events)
    assert "ringlab simulate" in report["summary"]


def test_simulate_analytic_mode_at_a_million_tokens():
    report = ringlab.simulate(mode="analytic", seq=1 << 20, ring=64, heads=12, head_dim=64, causal=False,
                              layout="contiguous", pass_="both")
    assert report["max_abs_error_vs_dense"] is None
    assert report["config"]["pass"] == "both" and len(report["devices"]) == 64


def test_injected_fault_raises_fault_detected():
    with pytest.raises(ringlab.FaultDetected) as raised:
        ringlab.simulate(seq=256, ring=4, heads=2, head_dim=16, inject="corrupt@1:0")
    assert raised.value.device == 2 and raised.value.step is not None
    assert "checksum" in str(raised.value)
    with pytest.raises(ringlab.FaultDetected, match="timeout|timed out|waited"):
        ringlab.simulate(seq=256, ring=4, heads=2, head_dim=16, inject=["drop@3:2"])


def test_memory_budget_raises_out_of_memory():
    with pytest.raises(ringlab.OutOfMemory, match="device"):
        ringlab.simulate(mode="analytic", seq=1 << 20, ring=2, memory_budget_gib=0.01)


def test_simulate_config_errors():
    with pytest.raises(ringlab.ConfigError, match="--mode"):
        ringlab.simulate(mode="fast", seq=64, ring=2)
    with pytest.raises(ringlab.ConfigError, match="--device-preset"):
        ringlab.simulate(device="TPU", seq=64, ring=2)
    with pytest.raises(ringlab.ConfigError, match="--inject"):
        ringlab.simulate(inject="drop@9:0", seq=64, ring=2)


def test_devices_presets():
    names = [d["name"] for d in ringlab.devices()]
    assert {"A100-80GB", "H100-SXM", "H200"} <= set(names)
    h100 = next(d for d in ringlab.devices() if d["name"] == "H100-SXM")
    assert h100["peak_flops"] > 0 and h100["intra_node_link"]["bandwidth"] > 0
