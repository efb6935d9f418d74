#!/usr/bin/env python3
"""Clocks and power per phase of ringlab_gpu_ring_bench --soak: joins its stderr lines (soak,P,layout,mask,N/P,
phase,first,last,passes,mean ms) with nvidia-smi samples taken meanwhile by

    nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,clocks_event_reasons.sw_power_cap --format=csv,noheader -lms 100

(both in the machine's local time) and prints a markdown table: per phase, the mean pass time, the median SM clock, the mean power and the share of
samples in which the software power cap was holding the clock down. The first and last 0.3 s of a phase are left
out (the clock and power settle).

Usage: soak_clocks.py SOAK_LINES SMI_SAMPLES
"""
import datetime
import statistics
import sys


def parse_time(text):
    return datetime.datetime.strptime(text.strip(), "%Y/%m/%d %H:%M:%S.%f")


def main():
    soak_path, smi_path = sys.argv[1], sys.argv[2]
    samples = []
    for line in open(smi_path):
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4:
            continue
        try:
            samples.append((parse_time(fields[0]), float(fields[1].split()[0]), float(fields[2].split()[0]),
                            fields[3] == "Active"))
        except ValueError:
            continue
    settle = datetime.timedelta(seconds=0.3)
    print("| P | layout | mask | N/P | phase | passes | ms per pass | SM MHz (median) | power W (mean) | power cap active |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for line in open(soak_path):
        if not line.startswith("soak,"):
            continue
        _, p, layout, mask, n_per, phase, first, last, passes, ms = line.strip().split(",")
        lo, hi = parse_time(first) + settle, parse_time(last) - settle
        inside = [s for s in samples if lo <= s[0] <= hi]
        if not inside:
            print(f"| {p} | {layout} | {mask} | {n_per} | {phase} | {passes} | {float(ms):.3f} | – | – | – |")
            continue
        clock = statistics.median(s[1] for s in inside)
        power = statistics.mean(s[2] for s in inside)
        capped = sum(s[3] for s in inside) / len(inside)
        print(f"| {p} | {layout} | {mask} | {n_per} | {phase} | {passes} | {float(ms):.3f} | {clock:.0f} | "
              f"{power:.0f} | {capped:.0%} ({len(inside)} samples) |")


if __name__ == "__main__":
    main()
