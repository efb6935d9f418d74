#!/usr/bin/env python3
"""The simulator's analytic predictions (H200 preset) beside NCCL ring times measured on H200s.

Runs `ringlab simulate --mode analytic --pass forward|backward --device-preset H200` for every row and prints a
markdown table: measured forward / backward ms, predicted, and predicted / measured. The measured numbers are
copied from the results files named in SOURCES (ringlab-ring --mode bench, rank 0, mean of 10 passes).

Usage: bench/simulator/compare_ring_predictions.py [PATH/TO/ringlab]   (default build/release/tools/ringlab)
"""
import json
import os
import subprocess
import sys
import tempfile

SOURCES = {
    "4x": "bench/results/gpu-ring-nccl-2026-11-22-4xH200-wgmma.md (dK/dV home in bf16; the forward before TMA)",
    "2x": "bench/results/gpu-ring-nccl-2026-11-22-2xH200-tma.md (mean of its two runs; the TMA forward)",
    "ce": "bench/results/gpu-ring-ipc-2026-11-23-2xH200.md (copy engines, one process per GPU, mean of two runs; "
          "the rows the preset is fitted to, bench/simulator/fit_preset.py)",
    "nccl": "bench/results/gpu-ring-ipc-2026-11-23-2xH200.md (NCCL, one process per GPU, mean of two runs)",
}
# How much older each source's kernels are than the ones the preset describes (the staged-merge forward with TMA
# copies, the backward with bulk reductions): their ratios are expected below 1 and are marked.
OLDER_KERNELS = {"4x": "before TMA", "2x": "before staged merges"}
PACKAGES = ("--preset", "dilated-attention-pytorch")
PAPER = ("--offset-rule", "paper")
LONGNET = "2048:1,4096:2,8192:4"
# source, P, tokens per GPU, layout, causal, H, Hkv, dilation, flags, measured forward ms, backward ms
ROWS = [
    ("4x", 4, 16384, "contiguous", False, 8, 8, None, (), 10.11, 32.04),
    ("4x", 4, 16384, "zigzag", True, 8, 8, None, (), 5.15, 17.31),
    ("4x", 4, 16384, "striped", True, 8, 8, None, (), 5.21, 17.05),
    ("4x", 4, 16384, "contiguous", True, 8, 8, None, (), 8.62, 28.09),
    ("4x", 4, 16384, "contiguous", False, 32, 8, None, (), 40.68, 123.05),
    ("4x", 4, 16384, "zigzag", True, 32, 8, None, (), 20.99, 61.71),
    ("4x", 2, 16384, "contiguous", False, 8, 8, None, (), 4.96, 16.07),
    ("4x", 2, 16384, "zigzag", True, 8, 8, None, (), 2.69, 8.40),
    ("2x", 2, 16384, "contiguous", False, 8, 8, None, (), 4.01, 15.97),
    ("2x", 2, 16384, "zigzag", True, 8, 8, None, (), 2.10, 8.30),
    ("2x", 2, 16384, "striped", True, 8, 8, None, (), 2.13, 8.41),
    ("2x", 2, 16384, "contiguous", True, 8, 8, None, (), 2.91, 12.04),
    ("2x", 2, 8192, "contiguous", False, 8, 8, None, (), 1.14, 4.24),
    ("2x", 2, 8192, "zigzag", True, 8, 8, None, (), 0.67, 2.73),
    ("2x", 2, 8192, "contiguous", True, 8, 8, None, (), 0.88, 3.44),
    ("2x", 2, 8192, "striped", True, 8, 8, None, (), 0.73, 2.77),
    ("ce", 2, 16384, "contiguous", False, 8, 8, None, (), 3.725, 15.545),
    ("ce", 2, 16384, "zigzag", True, 8, 8, None, (), 1.935, 7.97),
    ("ce", 2, 16384, "striped", True, 8, 8, None, (), 1.95, 8.00),
    ("ce", 2, 16384, "contiguous", True, 8, 8, None, (), 2.875, 11.845),
    ("ce", 2, 8192, "contiguous", False, 8, 8, None, (), 0.99, 4.13),
    ("ce", 2, 8192, "zigzag", True, 8, 8, None, (), 0.60, 2.425),
    ("nccl", 2, 16384, "contiguous", False, 8, 8, None, (), 3.95, 15.565),
    ("nccl", 2, 16384, "zigzag", True, 8, 8, None, (), 2.07, 8.22),
    ("nccl", 2, 16384, "striped", True, 8, 8, None, (), 2.035, 8.38),
    ("nccl", 2, 8192, "zigzag", True, 8, 8, None, (), 0.655, 2.725),
    ("4x", 4, 16384, "contiguous", False, 16, 16, LONGNET, PACKAGES, 0.61, 1.91),
    ("4x", 4, 16384, "zigzag", True, 16, 16, LONGNET, PACKAGES, 0.51, 1.44),
    ("4x", 4, 16384, "contiguous", False, 16, 16, LONGNET, PAPER, 1.49, 4.39),
    ("4x", 4, 16384, "zigzag", True, 16, 16, LONGNET, PAPER, 1.15, 3.02),
]


def predicted_ms(ringlab, ring, tokens, layout, causal, heads, kv_heads, dilation, flags, pass_):
    with tempfile.TemporaryDirectory() as scratch:
        report = os.path.join(scratch, "report.json")
        command = [ringlab, "simulate", "--mode", "analytic", "--seq", str(ring * tokens), "--ring", str(ring),
                   "--heads", str(heads), "--kv-heads", str(kv_heads), "--head-dim", "128", "--layout", layout,
                   "--causal" if causal else "--no-causal", "--pass", pass_, "--device-preset", "H200",
                   "--report-json", report, *flags]
        if dilation:
            command += ["--dilation", dilation]
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{run.stderr}")
        with open(report) as file:
            return json.load(file)["makespan_ns"] / 1e6


def main():
    ringlab = sys.argv[1] if len(sys.argv) > 1 else "build/release/tools/ringlab"
    print("| from | P | tokens/GPU | layout, mask | H/Hkv | dilation | measured fwd / bwd ms | predicted fwd / bwd ms "
          "| predicted/measured fwd / bwd |")
    print("|---|---|---|---|---|---|---|---|---|")
    for source, ring, tokens, layout, causal, heads, kv_heads, dilation, flags, fwd, bwd in ROWS:
        pf = predicted_ms(ringlab, ring, tokens, layout, causal, heads, kv_heads, dilation, flags, "forward")
        pb = predicted_ms(ringlab, ring, tokens, layout, causal, heads, kv_heads, dilation, flags, "backward")
        mark = f" ({OLDER_KERNELS[source]})" if source in OLDER_KERNELS else ""
        what = f"{dilation} {' '.join(flags).replace('--', '')}" if dilation else "-"
        print(f"| {source} | {ring} | {tokens} | {layout}, {'causal' if causal else 'full'} | {heads}/{kv_heads} | "
              f"{what} | {fwd:.2f} / {bwd:.2f} | {pf:.2f} / {pb:.2f} | {pf / fwd:.2f} / {pb / bwd:.2f}{mark} |")
    for key, source in SOURCES.items():
        print(f"\n{key}: {source}", end="")
    print()


if __name__ == "__main__":
    main()
