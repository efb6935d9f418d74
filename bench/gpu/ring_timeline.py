#!/usr/bin/env python3
"""What ran when in one process's Hopper kernel launches (a virtual ring's P streams side by side), from a
concurrent timeline (gpu/src/launch.cuh: a build with -DRINGLAB_KERNEL_TIMELINE=ON, run with
RINGLAB_KERNEL_TIMELINE=FILE RINGLAB_KERNEL_TIMELINE_CONCURRENT=1).

Usage: ring_timeline.py FILE [--sms 132] [--bins 40] [--gap 20] [--passes I,J,...]

Splits the launches into passes (groups separated by a moment when no block of any launch was resident and
more than --gap µs passed) and prints, per pass: its streams and launches, its span, how busy the SMs were
(block resident / in its main loop, over SMs × span), and the occupancy in --bins equal slices of the span;
with --passes, also each launch's start and end per stream. Only attention kernels record blocks: a pass whose
copies or other kernels hold the SMs for more than --gap µs is split there. Every number is from %globaltimer stamps, which
tick coarsely: spans and sums over many blocks are good, a single block's phases are not.
"""
import argparse
import collections


def read(path):
    blocks = []  # (launch, label, stream, sm, tiles, start, looped_start, looped_end, end)
    with open(path) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) < 13:
                continue  # a serialised timeline's line: no stream
            launch, label, _, sm, tiles, start, planned, landed, looped, ended = fields[:10]
            # A block that left early (no key tile to visit) has no later stamps: it ended at its last one.
            ended = ended if int(ended) else max(start, planned, landed, looped, key=int)
            blocks.append((int(launch), label + ("+merge" if int(tiles) >> 32 else ""), int(fields[12]), int(sm),
                           int(tiles) & 0xFFFFFFFF, int(start), int(landed), int(looped), int(ended)))
    return blocks


def passes(blocks, gap_ns):
    """Groups of blocks whose union of [start, end] has no hole longer than gap_ns."""
    groups, current, reach = [], [], None
    for b in sorted(blocks, key=lambda b: b[5]):
        if reach is not None and b[5] - reach > gap_ns:
            groups.append(current)
            current = []
        current.append(b)
        reach = b[8] if reach is None or not current[:-1] else max(reach, b[8])
    if current:
        groups.append(current)
    return groups


def describe(group, sms, bins, detail):
    t0, t1 = min(b[5] for b in group), max(b[8] for b in group)
    span = max(t1 - t0, 1)
    resident = sum(b[8] - b[5] for b in group)
    looping = sum(b[7] - b[6] for b in group if b[6] and b[7] >= b[6])
    launches = collections.defaultdict(list)
    for b in group:
        launches[(b[2], b[0], b[1])].append(b)
    streams = sorted({b[2] for b in group})
    print(f"- span {span / 1e3:.1f} µs, {len(launches)} launches on streams {streams}, {len(group)} blocks; "
          f"SMs with a block {resident / (sms * span):.0%}, in a main loop {looping / (sms * span):.0%}")
    occupancy = [0.0] * bins
    width = span / bins
    for b in group:
        for i in range(int((b[5] - t0) // width), min(bins - 1, int((b[8] - t0) // width)) + 1):
            lo, hi = t0 + i * width, t0 + (i + 1) * width
            occupancy[i] += max(0, min(hi, b[8]) - max(lo, b[5]))
    print("  occupancy by slice of the span (% of SMs): " +
          " ".join(f"{100 * o / (sms * width):.0f}" for o in occupancy))
    if detail:
        for stream in streams:
            row = []
            for (s, launch, label), bs in sorted(launches.items(), key=lambda kv: min(b[5] for b in kv[1])):
                if s != stream:
                    continue
                start, end = min(b[5] for b in bs) - t0, max(b[8] for b in bs) - t0
                tiles = sum(b[4] for b in bs) / len(bs)
                row.append(f"{start / 1e3:.0f}–{end / 1e3:.0f} ({len(bs)}×{tiles:.0f})")
            print(f"  stream {stream}: " + ", ".join(row))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file")
    parser.add_argument("--sms", type=int, default=132)
    parser.add_argument("--bins", type=int, default=40)
    parser.add_argument("--gap", type=float, default=20.0, help="µs with no block that separates two passes")
    parser.add_argument("--passes", default="", help="passes (by number) to list launch by launch")
    args = parser.parse_args()
    detail = {int(x) for x in args.passes.split(",") if x}
    for number, group in enumerate(passes(read(args.file), args.gap * 1e3)):
        labels = collections.Counter(b[1] for b in group)
        print(f"\n### pass {number}: " + ", ".join(f"{label} ({count} blocks)" for label, count in labels.items()))
        describe(group, args.sms, args.bins, number in detail)


if __name__ == "__main__":
    main()
