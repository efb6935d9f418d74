#!/usr/bin/env python3
"""Forward (or backward-kernel) TFLOP/s of several builds of libringlab_gpu_capi.so, and of the values of one of
the Hopper forward's switches (--vary, default RINGLAB_HOPPER_COPIES=cp.async,tma: how it copies K/V tiles;
RINGLAB_HOPPER_GRID=per-tile,persistent: one block per item or one per SM), on the same inputs in one process:
for A/B comparisons of a kernel change (bench_attention.py is the full table beside PyTorch).

Usage: compare_builds.py [--backward] [--vary NAME=A,B,...] [--rounds R] LIB [LIB ...]
Prints one row per configuration: H, D, N, mask, then TFLOP/s per (build folder, value): the median over R
rounds (default 5) that take every variant in turn, each round's rate the median of 10 timed calls after
warm-up (CUDA events), and in brackets the lowest and highest round. The backward column times the backward
kernel alone (FLOPs 2.5x).
"""
import argparse
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attention import UNBOUNDED, Ringlab, dilation_table, environment, head_groups, round_times  # noqa: E402

REPEATS = 10  # timed calls per variant and round (their median), after bench_attention.time_ms's warm-up
CASES = [  # H, D, N, causal, dilation patterns
    (16, 128, 16384, False, None),
    (16, 128, 16384, True, None),
    (16, 128, 4096, False, None),
    (32, 64, 16384, False, None),
    (16, 128, 32768, False, [(2048, 1), (4096, 2), (8192, 4)]),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backward", action="store_true", help="time the backward kernel instead of the forward")
    parser.add_argument("--vary", default="RINGLAB_HOPPER_COPIES=cp.async,tma",
                        help="an environment variable and the values to time it at (NAME=A,B,...)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over all variants (median reported)")
    parser.add_argument("libs", nargs="+", help="paths to libringlab_gpu_capi.so")
    args = parser.parse_args()
    variable, _, values = args.vary.partition("=")
    if not variable or not values:
        parser.error(f"--vary: '{args.vary}' is not NAME=A,B,... (for example RINGLAB_HOPPER_GRID=per-tile,persistent)")
    values = values.split(",")
    libs = [(os.path.basename(os.path.dirname(path)) or path, Ringlab(path)) for path in args.libs]
    for h, d, n, causal, patterns in CASES:
        q, k, v = (torch.randn(1, n, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        out, lse = torch.empty_like(q), torch.empty(1, h, n, device="cuda")
        band = (-UNBOUNDED, 0 if causal else UNBOUNDED)
        table = dilation_table(h, patterns) if patterns else None
        if patterns:
            flops = sum(4 * (n // r) * (w // r) * d * len(g) for (w, r), g in zip(patterns, head_groups(h, patterns)))
        else:
            flops = 4 * n * n * d * h / (2 if causal else 1)
        if args.backward:
            flops *= 2.5
        row = f"H={h} D={d} N={n} {'causal' if causal else 'full'}{' dilated' if patterns else ''}"
        if args.backward:
            dout, delta = torch.randn_like(q), torch.randn_like(lse)
            dq, dk, dv = (torch.zeros(1, n, h, d, device="cuda") for _ in range(3))

        def timed(lib, value):  # one variant's call, under its value of the switch
            def call():
                with environment(**{variable: value}):
                    if args.backward:
                        lib.backward_kernel(q, k, v, dout, lse, delta, dq, dk, dv, band, table)
                    else:
                        lib.forward(q, k, v, out, lse, band, dilation=table)
            return call

        if args.backward:
            libs[0][1].forward(q, k, v, out, lse, band, dilation=table)  # the LSE the backward reads
        times = round_times({f"{name} {value}": timed(lib, value) for name, lib in libs for value in values},
                            REPEATS, args.rounds)
        rates = {label: [flops / ms / 1e9 for ms in seen] for label, seen in times.items()}
        for label, values_seen in rates.items():
            row += f" | {label} {statistics.median(values_seen):.0f} ({min(values_seen):.0f}–{max(values_seen):.0f})"
        print(row, flush=True)


if __name__ == "__main__":
    main()
