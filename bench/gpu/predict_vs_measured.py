#!/usr/bin/env python3
"""The simulator's prediction beside a measured ringlab-ring bench table (issue 6: "the simulator's predicted
step time within 15% of the measured one once its H200 preset is calibrated").

    python3 bench/gpu/predict_vs_measured.py TABLE.txt --ranks 4 [--preset H200] [--ringlab build/release/tools/ringlab]

TABLE.txt is ringlab-ring --mode bench output (rank 0's lines, "[rank 0] " prefixes allowed). For every row
it runs `ringlab simulate --mode analytic` (B = 1, H = Hkv and D given, bf16) for the forward and the
backward pass on the preset as it is now and prints predicted / measured per pass; the prediction in the
table itself used the preset of the time of the run.
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("table")
    parser.add_argument("--ranks", type=int, required=True, help="P of the run")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--preset", default="H200")
    parser.add_argument("--ringlab", default="build/release/tools/ringlab")
    args = parser.parse_args()
    row = re.compile(r"^\|\s*(contiguous|zigzag|striped), (full|causal), (\d+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|")
    print(f"| layout, mask, tokens/GPU | fwd measured ms | fwd predicted ms | pred/meas | bwd measured ms | "
          f"bwd predicted ms | pred/meas |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for line in open(args.table):
        match = row.match(re.sub(r"^\[rank \d+\] ", "", line))
        if not match:
            continue
        layout, mask, tokens, fwd, bwd = match.groups()
        predicted = {}
        for pass_name in ("forward", "backward"):
            with tempfile.NamedTemporaryFile(suffix=".json") as report:
                command = [args.ringlab, "simulate", "--mode", "analytic", "--pass", pass_name, "--device-preset",
                           args.preset, "--seq", str(int(tokens) * args.ranks), "--ring", str(args.ranks), "--heads",
                           str(args.heads), "--head-dim", str(args.head_dim), "--layout", layout, "--bytes-per-element",
                           "2", "--report-json", report.name, "--force"]
                command.append("--causal" if mask == "causal" else "--no-causal")  # simulate's default is causal
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
                predicted[pass_name] = json.load(open(report.name))["makespan_ns"] * 1e-6
        ratios = (predicted["forward"] / float(fwd), predicted["backward"] / float(bwd))
        worst = max(worst, *(abs(r - 1) for r in ratios))
        print(f"| {layout}, {mask}, {tokens} | {float(fwd):.2f} | {predicted['forward']:.2f} | {ratios[0]:.2f} | "
              f"{float(bwd):.2f} | {predicted['backward']:.2f} | {ratios[1]:.2f} |")
    print(f"\nlargest |predicted/measured − 1|: {worst:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
