#!/usr/bin/env python3
"""Where a block of the Hopper attention kernels spends its time: the per-block cost that issue 4's dilated
rows and issue 6's virtual ring at 4096 tokens per device pay, measured two ways.

1. Fit (CUDA events, no instrumentation): launches whose grid is exactly `--waves` waves of blocks (one block
   per SM: SMs tiles × `--waves` heads), each block visiting t key tiles (forward) or query tiles (backward)
   of its head, shared with the head's other blocks through L2 as in real launches, for several t. Time per
   wave = c + t·x: x is the steady-state cost of one tile, c what a block costs beyond its tiles (start,
   plan, first copies, pipeline fill and drain, epilogue, the gap before the next block). c / x says how
   many tiles' worth of work a block's start and end cost, so a block of t tiles runs at t / (t + c/x).

2. Timeline (RINGLAB_KERNEL_TIMELINE, gpu/src/launch.cuh): %globaltimer stamps per block, summarised per
   phase (median over blocks): plan = start → plan published (of which view = the head's rows after
   dilation, visible = the search for the tiles to visit); first = plan → Q and the first tile landed;
   loop = main loop, per tile; tail = loop end → epilogue written; gap = a block's start minus the previous
   block's end on the same SM (the next block's launch). Launches are serialised while profiling.

Usage: profile_blocks.py --lib build/ring/gpu/libringlab_gpu_capi.so [--waves 4] [--repeats 20]
"""
import argparse
import math
import os
import statistics
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attention import UNBOUNDED, Ringlab, dilation_table, time_ms  # noqa: E402


def fit_line(xs, ys):
    """Least squares y = c + x·slope: (c, slope)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def fit_section(lib, d, waves, repeats, sms):
    """Forward: 128·SMs query rows per head (one wave of blocks per head), H = waves, keys 128·t.
    Backward: 128·SMs keys per head, queries 128·t."""
    h = waves
    band = (-UNBOUNDED, UNBOUNDED)
    tiles = [4, 8, 16, 32, 64]
    print(f"\n## Fit: D = {d}, {waves} waves of {sms} blocks (H = {h}, {sms} blocks per head), bf16, non-causal\n")
    print("| pass | tiles t | time per wave µs | per tile µs |")
    print("|---|---|---|---|")
    results = {}
    for direction in ("forward", "backward"):
        times = []
        for t in tiles:
            fixed, visited = 128 * sms, 128 * t
            n, m = (fixed, visited) if direction == "forward" else (visited, fixed)
            q = torch.randn(1, n, h, d, device="cuda", dtype=torch.bfloat16)
            k, v = (torch.randn(1, m, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
            out = torch.empty_like(q)
            lse = torch.empty(1, h, n, device="cuda", dtype=torch.float32)
            if direction == "forward":
                ms = time_ms(lambda: lib.forward(q, k, v, out, lse, band), repeats)
            else:
                lib.forward(q, k, v, out, lse, band)
                dout = torch.randn_like(q)
                delta = torch.empty_like(lse)
                dq = torch.zeros(1, n, h, d, device="cuda", dtype=torch.float32)
                dk, dv = (torch.zeros(1, m, h, d, device="cuda", dtype=torch.float32) for _ in range(2))
                dq16, dk16, dv16 = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
                lib.backward(q, k, v, out, dout, lse, delta, dq, dk, dv, dq16, dk16, dv16, band)  # δ
                # The kernel alone (it adds into dq, dk, dv again each time: the values do not matter here).
                ms = time_ms(lambda: lib.backward_kernel(q, k, v, dout, lse, delta, dq, dk, dv, band), repeats)
            per_wave = ms * 1e3 / waves
            times.append(per_wave)
            print(f"| {direction} | {t} | {per_wave:.1f} | {per_wave / t:.2f} |", flush=True)
        c, x = fit_line(tiles, times)
        results[direction] = (c, x)
    print()
    for direction, (c, x) in results.items():
        print(f"- {direction}: per block c = {c:.1f} µs beyond its tiles, per tile x = {x:.2f} µs: c/x = {c / x:.1f} "
              f"tiles; a block of 16 tiles runs at {16 / (16 + c / x):.0%} of the steady state, 32 at "
              f"{32 / (32 + c / x):.0%}, 128 at {128 / (128 + c / x):.0%}")
    return results


def summarise(path, title):
    """Per kernel (a forward merging into a ring's accumulator apart): median phases over the blocks of all
    its launches but the first (a warm-up); span, blocks and busy of its last launch."""
    by_label = {}
    with open(path) as f:
        for line in f:
            launch, label, block, sm, tiles, start, planned, landed, looped, ended, viewed, searched = \
                line.strip().split(",")[:12]  # (a 13th field, the stream, in the concurrent mode)
            tiles = int(tiles)
            if tiles >> 32:
                label += "+merge"
            by_label.setdefault(label, []).append(
                (int(launch), int(block), int(sm), tiles & 0xFFFFFFFF, int(start), int(planned), int(landed),
                 int(looped), int(ended), int(viewed), int(searched)))
    print(f"\n### {title}\n")
    print("| kernel | blocks (working), last launch | span µs | plan µs (view, visible) | first µs | loop µs/tile | "
          "tail µs | gap µs | block µs (tiles) | busy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, all_records in by_label.items():
        launches = sorted({r[0] for r in all_records})
        later = [r for r in all_records if r[0] != launches[0]] or all_records
        records = [r for r in all_records if r[0] == launches[-1]]
        working = [r for r in later if r[6] > 0 and r[8] > 0]
        med = lambda xs: statistics.median(xs) if xs else float("nan")
        plan = med([(r[5] - r[4]) / 1e3 for r in later if r[5] > 0])
        view = med([(r[9] - r[4]) / 1e3 for r in later if r[9] > 0])
        search = med([(r[10] - r[9]) / 1e3 for r in later if r[10] > 0])
        first = med([(r[6] - r[5]) / 1e3 for r in working])
        loop = med([(r[7] - r[6]) / 1e3 / max(r[3], 1) for r in working])
        tail = med([(r[8] - r[7]) / 1e3 for r in working])
        block = med([(r[8] - r[4]) / 1e3 for r in working])
        tiles = med([r[3] for r in working])
        start = min(r[4] for r in records)
        end = max(max(r[8], r[5]) for r in records)
        # Per SM, in start order: the gap from a block's last stamp to the next block's start.
        gaps, per_sm = [], {}
        for r in records:
            per_sm.setdefault(r[2], []).append(r)
        busy = 0.0
        for blocks in per_sm.values():
            blocks.sort(key=lambda r: r[4])
            for previous, following in zip(blocks, blocks[1:]):
                gaps.append((following[4] - max(previous[8], previous[5])) / 1e3)
            busy += sum(r[7] - r[6] for r in blocks if r[6] > 0 and r[7] > 0)
        busy_fraction = busy / (len(per_sm) * (end - start)) if end > start else float("nan")
        working_last = sum(1 for r in records if r[6] > 0 and r[8] > 0)
        print(f"| {label} ({len(launches)} launches) | {len(records)} ({working_last}) | {(end - start) / 1e3:.0f} | {plan:.2f} ({view:.2f}, {search:.2f}) | {first:.2f} | "
              f"{loop:.2f} | {tail:.2f} | {med(gaps):.2f} | {block:.1f} ({tiles:.0f}) | {busy_fraction:.0%} |")
    print("\nbusy = time inside main loops / (SMs × span): the rest is start, plan, first copies, tail and gaps.")


def timeline_section(lib, args):
    cases = []
    torch.manual_seed(3)

    def dense(h, d, n, causal):
        q, k, v, dout = (torch.randn(1, n, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(4))
        band = (-UNBOUNDED, 0 if causal else UNBOUNDED)
        return f"H={h} D={d} N={n} {'causal' if causal else 'full'}", q, k, v, dout, band, None

    def dilated(h, d, n, patterns):
        q, k, v, dout = (torch.randn(1, n, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(4))
        table = dilation_table(h, patterns)
        name = f"dilated H={h} D={d} N={n} " + ",".join(f"{w}:{r}" for w, r in patterns)
        return name, q, k, v, dout, (-UNBOUNDED, UNBOUNDED), table

    cases = [dense(16, 128, 4096, False), dense(16, 128, 16384, False), dense(16, 128, 16384, True),
             dilated(16, 128, 32768, [(2048, 1), (4096, 2), (8192, 4)])]
    print("\n## Timelines (%globaltimer per block; medians over the blocks of the last launch)")
    for name, q, k, v, dout, band, table in cases:
        out = torch.empty_like(q)
        lse = torch.empty(1, q.shape[2], q.shape[1], device="cuda", dtype=torch.float32)
        delta = torch.empty_like(lse)
        dq, dk, dv = (torch.zeros(q.shape, device="cuda", dtype=torch.float32) for _ in range(3))
        dq16, dk16, dv16 = (torch.empty_like(q) for _ in range(3))
        with tempfile.NamedTemporaryFile(suffix=".csv", delete=False) as f:
            path = f.name
        os.environ["RINGLAB_KERNEL_TIMELINE"] = path
        try:
            for _ in range(2):  # the second launch of each kernel is the one summarised
                lib.forward(q, k, v, out, lse, band, dilation=table)
                lib.backward(q, k, v, out, dout, lse, delta, dq, dk, dv, dq16, dk16, dv16, band, dilation=table)
            torch.cuda.synchronize()
        finally:
            del os.environ["RINGLAB_KERNEL_TIMELINE"]
        summarise(path, name)
        os.unlink(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lib", required=True)
    parser.add_argument("--waves", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-fit", action="store_true")
    parser.add_argument("--skip-timeline", action="store_true")
    parser.add_argument("--summarise", metavar="CSV", help="only summarise a timeline written by another program "
                        "(e.g. RINGLAB_KERNEL_TIMELINE=CSV ringlab_gpu_ring_bench ...)")
    args = parser.parse_args()
    if args.summarise:
        summarise(args.summarise, args.summarise)
        return 0
    if not torch.cuda.is_available():
        print("profile_blocks.py: no CUDA device; nothing to measure", file=sys.stderr)
        return 2
    lib = Ringlab(args.lib)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    print(f"# Block profile: {torch.cuda.get_device_name(0)} ({sms} SMs)")
    if not args.skip_fit:
        for d in (128, 64):
            fit_section(lib, d, args.waves, args.repeats, sms)
    if not args.skip_timeline:
        timeline_section(lib, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
