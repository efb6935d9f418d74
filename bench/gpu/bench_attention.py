#!/usr/bin/env python3
"""ringlab's GPU attention kernels beside PyTorch SDPA (flash and cuDNN backends), on the same tensors.

Loads libringlab_gpu_capi.so with ctypes, so ringlab's kernels and torch read the very same device
memory: Q, K, V, dO are [B, N, H, D] bf16 (ringlab's BNHD layout); torch gets their transposed views
[B, H, N, D] (both flash and cuDNN accept them). For every configuration it first checks correctness,
then times with CUDA events (warm-up, median of --repeats):

  check   ours and flash against an fp32 reference on --check-rows sampled query rows (forward), and ours
          against flash on every output (forward and backward); ours must be within 2x flash's error
          (+1e-4 absolute slack for bf16 ties) or the configuration is reported as FAILED and not timed.
  forward FLOPs 4*N^2*D*H (half for causal);  backward 2.5x that.
  ours    forward = one kernel; backward = delta = rowsum(dO*O), zeroing the fp32 dQ accumulator, the kernel
          (which writes dK, dV in bf16: GradientWrite::overwrite), and converting dQ to bf16 (what torch returns).
  torch   forward = F.scaled_dot_product_attention; backward = torch.autograd.grad of it.

Dilated: LongNet patterns 2048:1, 4096:2, 8192:4 at N = 32768 as the PyTorch dilated-attention packages
define them (offset rule `group`: head group g runs pattern g with offset g mod r_g, outputs summed, i.e.
ringlab's group_sum): ours is one launch with a per-head DilationSelect (strided addressing, no copies);
the baseline gathers each group's selected rows into contiguous segments, calls SDPA (flash) per pattern
and scatters the result back. FLOPs counted are the useful ones: sum over heads of 4*(N/r)*(w/r)*D.

Usage: bench_attention.py --lib build/gpu/gpu/libringlab_gpu_capi.so [--quick] [--results bench/results]
"""
import argparse
import ctypes
import datetime
import math
import os
import statistics
import platform
import subprocess
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

UNBOUNDED = 1 << 61
DTYPE_CODE = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


class Ringlab:
    """ctypes binding of gpu/capi/ringlab_gpu_capi.cpp."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        ll, vp, i, d = ctypes.c_longlong, ctypes.c_void_p, ctypes.c_int, ctypes.c_double
        err = [ctypes.c_char_p, i]
        self.lib.ringlab_gpu_forward.argtypes = [i, vp, vp, vp, vp, vp] + [ll] * 9 + [i, vp, d, vp] + err
        self.lib.ringlab_gpu_output_gradient_dot.argtypes = [i, vp, vp, vp] + [ll] * 4 + [vp] + err
        self.lib.ringlab_gpu_backward.argtypes = [i] + [vp] * 9 + [ll] * 9 + [i, vp, d, vp] + err
        self.lib.ringlab_gpu_backward_overwrite.argtypes = [i] + [vp] * 9 + [i] + [ll] * 9 + [i, vp, d, vp] + err
        self.lib.ringlab_gpu_convert.argtypes = [i, vp, i, vp] + [ll] * 4 + [vp] + err
        self.error = ctypes.create_string_buffer(2048)

    def _check(self, status, what):
        if status != 0:
            raise RuntimeError(f"ringlab {what}: {self.error.value.decode()}")

    @staticmethod
    def _stream():
        return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)

    @staticmethod
    def _dilation(dilation):
        if not dilation:
            return 0, None
        flat = (ctypes.c_longlong * (3 * len(dilation)))(*[x for triple in dilation for x in triple])
        return len(dilation), ctypes.cast(flat, ctypes.c_void_p)  # the cast keeps `flat` alive

    def forward(self, q, k, v, out, lse, band, dilation=None, scale=None):
        b, n, h, d = q.shape
        m, hkv = k.shape[1], k.shape[2]
        count, table = self._dilation(dilation)
        scale = 1.0 / math.sqrt(d) if scale is None else scale
        self._check(self.lib.ringlab_gpu_forward(
            DTYPE_CODE[q.dtype], q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), lse.data_ptr(),
            b, n, m, h, hkv, d, 0, band[0], band[1], count, table, scale, self._stream(), self.error, 2048), "forward")

    def backward(self, q, k, v, out, dout, lse, delta, dq, dk, dv, dq16, dk16, dv16, band, dilation=None):
        """A full backward pass into q's dtype: delta, the zeroed fp32 dQ accumulator, the kernel writing dK and dV
        in the dtype (GradientWrite::overwrite; dk, dv unused), dQ converted."""
        b, n, h, d = q.shape
        m, hkv = k.shape[1], k.shape[2]
        code, stream = DTYPE_CODE[q.dtype], self._stream()
        self._check(self.lib.ringlab_gpu_output_gradient_dot(code, dout.data_ptr(), out.data_ptr(), delta.data_ptr(),
                                                             b, n, h, d, stream, self.error, 2048), "delta")
        dq.zero_()
        count, table = self._dilation(dilation)
        self._check(self.lib.ringlab_gpu_backward_overwrite(
            code, q.data_ptr(), k.data_ptr(), v.data_ptr(), dout.data_ptr(), lse.data_ptr(), delta.data_ptr(),
            dq.data_ptr(), dk16.data_ptr(), dv16.data_ptr(), code, b, n, m, h, hkv, d, 0, band[0], band[1], count,
            table, 1.0 / math.sqrt(d), stream, self.error, 2048), "backward")
        r = dq.shape
        self._check(self.lib.ringlab_gpu_convert(0, dq.data_ptr(), code, dq16.data_ptr(), r[0], r[1], r[2], r[3],
                                                 stream, self.error, 2048), "convert")


    def backward_kernel(self, q, k, v, dout, lse, delta, dq, dk, dv, band, dilation=None):
        """The backward kernel alone: dq, dk, dv (fp32) += this block pair's gradients."""
        b, n, h, d = q.shape
        m, hkv = k.shape[1], k.shape[2]
        count, table = self._dilation(dilation)
        self._check(self.lib.ringlab_gpu_backward(
            DTYPE_CODE[q.dtype], q.data_ptr(), k.data_ptr(), v.data_ptr(), dout.data_ptr(), lse.data_ptr(),
            delta.data_ptr(), dq.data_ptr(), dk.data_ptr(), dv.data_ptr(), b, n, m, h, hkv, d, 0, band[0], band[1],
            count, table, 1.0 / math.sqrt(d), self._stream(), self.error, 2048), "backward")


class environment:
    """Sets environment variables for a with-block (the library reads its measuring hooks at each launch)."""

    def __init__(self, **values):
        self.values, self.saved = values, {}

    def __enter__(self):
        for key, value in self.values.items():
            self.saved[key] = os.environ.get(key)
            os.environ[key] = value

    def __exit__(self, *exc):
        for key, value in self.saved.items():
            if value is None:
                del os.environ[key]
            else:
                os.environ[key] = value


def time_ms(fn, repeats, warmup=5):
    """Median of `repeats` CUDA-event timings after `warmup` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def round_times(fns, repeats, rounds):
    """Per function, its time_ms(fn, repeats) in each of `rounds` rounds that take the functions in turn: the GPU's
    clocks drift over a run (one kernel, timed once, read 35 % slower than in the runs before and after), and
    interleaving spreads the drift over every function alike."""
    seen = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            seen[name].append(time_ms(fn, repeats))
    return seen


def time_rounds(fns, repeats, rounds):
    """Per function, the median of its round_times."""
    return {name: statistics.median(times) for name, times in round_times(fns, repeats, rounds).items()}


def scaled_error(x, ref):
    """max|x - ref| / max(max|ref|, 1), the metric of docs/semantics.md §11."""
    ref = ref.float()
    return ((x.float() - ref).abs().max() / max(ref.abs().max().item(), 1.0)).item()


def sampled_reference(q, k, v, rows, causal):
    """fp32 attention output of the sampled query rows: [B, len(rows), H, D]."""
    d = q.shape[-1]
    qs = q[:, rows].float().transpose(1, 2)                       # [B, H, r, D]
    s = torch.matmul(qs, k.float().permute(0, 2, 3, 1)) / math.sqrt(d)  # [B, H, r, N]
    if causal:
        keys = torch.arange(k.shape[1], device=q.device)
        s = s.masked_fill(keys[None, None, None, :] > rows[None, None, :, None], float("-inf"))
    return torch.matmul(torch.softmax(s, dim=-1), v.float().transpose(1, 2)).transpose(1, 2)


def sdpa(q, k, v, causal, backend):
    with sdpa_kernel(backend):
        return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                              is_causal=causal).transpose(1, 2)


def dense_config(lib, h, d, n, causal, args, rows_out):
    """One (H, D, N, causal) row of the table: check, then time ours, flash, cuDNN; fwd and bwd."""
    torch.manual_seed(n + h + d + int(causal))
    b = 1
    q, k, v, dout = (torch.randn(b, n, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    band = (-UNBOUNDED, 0 if causal else UNBOUNDED)
    out = torch.empty_like(q)
    lse = torch.empty(b, h, n, device="cuda", dtype=torch.float32)
    delta = torch.empty_like(lse)
    dq, dk, dv = (torch.empty(b, n, h, d, device="cuda", dtype=torch.float32) for _ in range(3))
    dq16, dk16, dv16 = (torch.empty_like(q) for _ in range(3))
    fwd_flops = 4 * n * n * d * h * (0.5 if causal else 1.0)
    name = f"H={h} D={d} N={n} {'causal' if causal else 'full'}"

    # Correctness first.
    out.fill_(float("nan"))
    lib.forward(q, k, v, out, lse, band)
    flash_out = sdpa(q, k, v, causal, SDPBackend.FLASH_ATTENTION)
    rows = torch.randint(0, n, (args.check_rows,), device="cuda")
    ref = sampled_reference(q, k, v, rows, causal)
    err_ours, err_flash = scaled_error(out[:, rows], ref), scaled_error(flash_out[:, rows], ref)
    lib.backward(q, k, v, out, dout, lse, delta, dq, dk, dv, dq16, dk16, dv16, band)
    qg, kg, vg = (x.detach().clone().requires_grad_(True) for x in (q, k, v))
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        o = F.scaled_dot_product_attention(qg.transpose(1, 2), kg.transpose(1, 2), vg.transpose(1, 2),
                                           is_causal=causal).transpose(1, 2)
        gq, gk, gv = torch.autograd.grad(o, (qg, kg, vg), dout)
    diff_bwd = max(scaled_error(x, y) for x, y in ((dq16, gq), (dk16, gk), (dv16, gv)))
    grad_scale = max(x.abs().max().item() for x in (gq, gk, gv))
    ok = math.isfinite(err_ours) and err_ours <= 2 * err_flash + 1e-4 and math.isfinite(diff_bwd)
    check = (f"{name}: fwd err vs fp32 (sampled rows) ours {err_ours:.2e} flash {err_flash:.2e}; "
             f"bwd max|ours-flash|/max(|flash|,1) {diff_bwd:.2e} (max|grad| {grad_scale:.2f})")
    print(("ok      " if ok else "FAILED  ") + check, flush=True)
    if not ok:
        rows_out.append((name, None, None, None, None, None, None, "FAILED: " + check))
        return

    notes = []
    if args.variants:  # the measured alternatives the library keeps behind RINGLAB_FORWARD_VARIANT
        for variant in (("mma", "n64") if d == 128 else ("mma",)):
            with environment(RINGLAB_FORWARD_VARIANT=variant):
                out.fill_(float("nan"))
                lib.forward(q, k, v, out, lse, band)
                err = scaled_error(out[:, rows], ref)
                t = time_ms(lambda: lib.forward(q, k, v, out, lse, band), args.repeats)
            notes.append(f"fwd {variant}: {fwd_flops / (t * 1e-3) / 1e12:.0f} (err {err:.1e})")
        lib.forward(q, k, v, out, lse, band)  # the default's O and LSE again, for the backward
    run_backward = lambda: lib.backward(q, k, v, out, dout, lse, delta, dq, dk, dv, dq16, dk16, dv16, band)
    if args.variants:  # the mma.sync backward (the wgmma one is the default on Hopper)
        with environment(RINGLAB_BACKWARD_VARIANT="mma"):
            t = time_ms(run_backward, args.repeats)
        notes.append(f"bwd mma: {2.5 * fwd_flops / (t * 1e-3) / 1e12:.0f}")
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
    graphs = {}
    for label, backend in backends.items():
        with sdpa_kernel(backend):
            graphs[label] = F.scaled_dot_product_attention(qg.transpose(1, 2), kg.transpose(1, 2),
                                                           vg.transpose(1, 2), is_causal=causal)

    def torch_backward(label):
        def run():
            with sdpa_kernel(backends[label]):
                torch.autograd.grad(graphs[label], (qg, kg, vg), dout.transpose(1, 2), retain_graph=True)
        return run

    t = time_rounds({"ours": lambda: lib.forward(q, k, v, out, lse, band),
                     "flash": lambda: sdpa(q, k, v, causal, SDPBackend.FLASH_ATTENTION),
                     "cudnn": lambda: sdpa(q, k, v, causal, SDPBackend.CUDNN_ATTENTION),
                     "ours_b": run_backward, "flash_b": torch_backward("flash"), "cudnn_b": torch_backward("cudnn")},
                    args.repeats, args.rounds)
    t_ours, t_flash, t_cudnn, t_ours_b = t["ours"], t["flash"], t["cudnn"], t["ours_b"]
    t_torch_b = {"flash": t["flash_b"], "cudnn": t["cudnn_b"]}
    tf = lambda ms, flops: flops / (ms * 1e-3) / 1e12
    rows_out.append((name, tf(t_ours, fwd_flops), tf(t_flash, fwd_flops), tf(t_cudnn, fwd_flops),
                     tf(t_ours_b, 2.5 * fwd_flops), tf(t_torch_b["flash"], 2.5 * fwd_flops),
                     tf(t_torch_b["cudnn"], 2.5 * fwd_flops),
                     "; ".join(notes)))
    print(f"        times ms: fwd ours {t_ours:.3f} flash {t_flash:.3f} cudnn {t_cudnn:.3f}; bwd ours {t_ours_b:.3f} "
          f"flash {t_torch_b['flash']:.3f} cudnn {t_torch_b['cudnn']:.3f}" + ("; " + "; ".join(notes) if notes else ""),
          flush=True)


def head_groups(h, patterns):
    """Offset rule `group` (docs/semantics.md §8.1): consecutive groups, the first H mod k one larger."""
    k = len(patterns)
    base, larger = divmod(h, k)
    groups, start = [], 0
    for g in range(k):
        size = base + (1 if g < larger else 0)
        groups.append(range(start, start + size))
        start += size
    return groups


def dilation_table(h, patterns):
    """The per-head (w, r, offset) table of offset rule `group`: head group g runs pattern g at offset g mod r."""
    table = []
    for g, heads in enumerate(head_groups(h, patterns)):
        w, r = patterns[g]
        table += [(w, r, g % r)] * len(heads)
    return table


def dilated_config(lib, h, d, n, patterns, args, rows_out):
    torch.manual_seed(7)
    b = 1
    q, k, v = (torch.randn(b, n, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    groups = head_groups(h, patterns)
    table = dilation_table(h, patterns)
    band = (-UNBOUNDED, UNBOUNDED)
    out = torch.empty_like(q)
    lse = torch.empty(b, h, n, device="cuda", dtype=torch.float32)
    name = f"dilated H={h} D={d} N={n} " + ",".join(f"{w}:{r}" for w, r in patterns)

    def gather_sdpa(q, k, v):
        # As the dilated-attention packages do: per pattern, gather the selected rows of the group's heads
        # into [B·N/w, w/r, Hg, D] segments, SDPA, scatter back into a zeroed output.
        result = torch.zeros(q.shape, device=q.device, dtype=q.dtype)
        for g, heads in enumerate(groups):
            w, r = patterns[g]
            o = g % r
            hs = slice(heads.start, heads.stop)
            seg = lambda x: x[:, :, hs].reshape(b, n // w, w, len(heads), d)[:, :, o::r].reshape(
                b * (n // w), w // r, len(heads), d)
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                y = F.scaled_dot_product_attention(seg(q).transpose(1, 2), seg(k).transpose(1, 2),
                                                   seg(v).transpose(1, 2)).transpose(1, 2)
            # In place, as the packages do (autograd records the copy into the zeroed output).
            result.view(b, n // w, w, h, d)[:, :, o::r, hs] = y.reshape(b, n // w, w // r, len(heads), d)
        return result

    out.fill_(float("nan"))
    lib.forward(q, k, v, out, lse, band, dilation=table)
    expected = gather_sdpa(q, k, v)
    diff = scaled_error(out, expected)
    # Backward: ours with the same per-head table; the baseline differentiates through gather + SDPA + scatter.
    dout = torch.randn_like(q)
    delta = torch.empty_like(lse)
    dq, dk, dv = (torch.empty(b, n, h, d, device="cuda", dtype=torch.float32) for _ in range(3))
    dq16, dk16, dv16 = (torch.empty_like(q) for _ in range(3))
    run_backward = lambda: lib.backward(q, k, v, out, dout, lse, delta, dq, dk, dv, dq16, dk16, dv16, band,
                                        dilation=table)
    run_backward()
    qg, kg, vg = (x.detach().clone().requires_grad_(True) for x in (q, k, v))
    og = gather_sdpa(qg, kg, vg)
    gq, gk, gv = torch.autograd.grad(og, (qg, kg, vg), dout, retain_graph=True)
    diff_bwd = max(scaled_error(x, y) for x, y in ((dq16, gq), (dk16, gk), (dv16, gv)))
    ok = math.isfinite(diff) and diff < 2e-2 and math.isfinite(diff_bwd) and diff_bwd < 5e-2
    print(("ok      " if ok else "FAILED  ") + f"{name}: max|ours-gather+SDPA|/max(|.|,1) fwd {diff:.2e} bwd {diff_bwd:.2e}",
          flush=True)
    if not ok:
        rows_out.append((name, None, None, None, None, None, None, f"FAILED: diff {diff:.2e} / {diff_bwd:.2e}"))
        return
    flops = sum(4 * (n // r) * (w // r) * d * len(heads) for (w, r), heads in zip(patterns, groups))
    variant_note = ""
    if args.variants:
        with environment(RINGLAB_FORWARD_VARIANT="mma"):
            t = time_ms(lambda: lib.forward(q, k, v, out, lse, band, dilation=table), args.repeats)
        variant_note = f"; fwd mma: {flops / (t * 1e-3) / 1e12:.0f}"
        lib.forward(q, k, v, out, lse, band, dilation=table)
        with environment(RINGLAB_BACKWARD_VARIANT="mma"):
            t = time_ms(run_backward, args.repeats)
        variant_note += f"; bwd mma: {2.5 * flops / (t * 1e-3) / 1e12:.0f}"
    t = time_rounds({"ours": lambda: lib.forward(q, k, v, out, lse, band, dilation=table),
                     "base": lambda: gather_sdpa(q, k, v), "ours_b": run_backward,
                     "base_b": lambda: torch.autograd.grad(og, (qg, kg, vg), dout, retain_graph=True)},
                    args.repeats, args.rounds)
    t_ours, t_base, t_ours_b, t_base_b = t["ours"], t["base"], t["ours_b"], t["base_b"]
    tf = lambda ms, f=flops: f / (ms * 1e-3) / 1e12
    print(f"        times ms: fwd ours {t_ours:.3f} gather+SDPA {t_base:.3f} (speed-up {t_base / t_ours:.2f}x); "
          f"bwd ours {t_ours_b:.3f} gather+SDPA {t_base_b:.3f} (speed-up {t_base_b / t_ours_b:.2f}x)", flush=True)
    rows_out.append((name, tf(t_ours), tf(t_base), None, tf(t_ours_b, 2.5 * flops), tf(t_base_b, 2.5 * flops), None,
                     f"speed-up vs gather+SDPA(flash): fwd {t_base / t_ours:.2f}x, bwd {t_base_b / t_ours_b:.2f}x" + variant_note))


class ClockSampler:
    """nvidia-smi's SM clock, power draw and active clock-event reasons every 200 ms while the benchmark runs.

    An H100 at full tensor-core load reaches its power limit and lowers its clock (bench/results/
    gpu-virtual-ring-links-2026-11-23-H100.md), so two tables of the same kernels can differ by what the card did;
    the summary goes into the results file. Without nvidia-smi it records nothing and says so.
    """

    QUERY = "clocks.sm,power.draw,power.limit,clocks_event_reasons.active"

    def __init__(self):
        self.process = None
        try:
            props = torch.cuda.get_device_properties(torch.cuda.current_device())
            target = ["-i", f"{props.pci_domain_id:08X}:{props.pci_bus_id:02X}:{props.pci_device_id:02X}.0"]
        except AttributeError:
            target = ["-i", "0"]
        try:
            self.process = subprocess.Popen(["nvidia-smi", f"--query-gpu={self.QUERY}", "--format=csv,noheader,nounits",
                                             "-lms", "200"] + target, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self.process = None

    def summary(self):
        if self.process is None:
            return "not recorded (nvidia-smi unavailable)"
        self.process.terminate()
        output, _ = self.process.communicate()
        return summarize_clock_samples(output.splitlines())


def summarize_clock_samples(lines):
    """One line from nvidia-smi rows 'clock MHz, draw W, limit W, 0xREASONS' (reason bit 0x4: software power cap)."""
    clocks, draws, limit, capped = [], [], None, 0
    for line in lines:
        fields = [x.strip() for x in line.split(",")]
        if len(fields) != 4:
            continue
        try:
            clock, draw, limit, reasons = float(fields[0]), float(fields[1]), float(fields[2]), int(fields[3], 16)
        except ValueError:
            continue
        clocks.append(clock)
        draws.append(draw)
        capped += bool(reasons & 0x4)
    if not clocks:
        return "not recorded (no samples)"
    return (f"{len(clocks)} samples: SM clock median {statistics.median(clocks):.0f} MHz ({min(clocks):.0f}–"
            f"{max(clocks):.0f}); power draw median {statistics.median(draws):.0f} W, highest {max(draws):.0f} W "
            f"(limit {limit:.0f} W); software power cap active in {capped} samples ({100 * capped / len(clocks):.0f} %)")


def results_path(folder, date, slug):
    """bench/results/gpu-<date>-<gpu>.md, or -2, -3, ... after it: an earlier table is never overwritten."""
    path = os.path.join(folder, f"gpu-{date}-{slug}.md")
    run = 2
    while os.path.exists(path):
        path = os.path.join(folder, f"gpu-{date}-{slug}-{run}.md")
        run += 1
    return path


def fmt(x):
    return "-" if x is None else f"{x:.0f}"


def ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}"


def table(rows):
    lines = ["| config | fwd ours | fwd flash | fwd cuDNN | ours/flash | ours/cuDNN | bwd ours | bwd flash | bwd cuDNN "
             "| ours/flash | ours/cuDNN | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, fo, ff, fc, bo, bf, bc, note in rows:
        lines.append(f"| {name} | {fmt(fo)} | {fmt(ff)} | {fmt(fc)} | {ratio(fo, ff)} | {ratio(fo, fc)} | {fmt(bo)} | "
                     f"{fmt(bf)} | {fmt(bc)} | {ratio(bo, bf)} | {ratio(bo, bc)} | {note} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lib", required=True, help="path to libringlab_gpu_capi.so")
    parser.add_argument("--results", default="bench/results", help="folder for gpu-<date>-<gpu>.md")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per round (their median)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over ours and the baselines in turn (the median round is reported)")
    parser.add_argument("--check-rows", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="N = 4096 only, plus the dilated case")
    parser.add_argument("--variants", action="store_true", help="also time the alternatives behind RINGLAB_FORWARD_VARIANT (mma: the mma.sync kernel; n64: it with BlockN = 64 at D = 128)")
    parser.add_argument("--command", default=" ".join(sys.argv), help="the command line to record")
    args = parser.parse_args()

    lib = Ringlab(args.lib)
    gpu = torch.cuda.get_device_name()
    clocks = ClockSampler()
    print(f"{gpu}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}", flush=True)
    rows = []
    sizes = [4096] if args.quick else [4096, 16384, 32768]
    for h, d in ((16, 128), (32, 64)):
        for n in sizes:
            for causal in (False, True):
                dense_config(lib, h, d, n, causal, args, rows)
    for h, d in ((16, 128), (32, 64)):
        dilated_config(lib, h, d, 32768, [(2048, 1), (4096, 2), (8192, 4)], args, rows)

    text = table(rows)
    print("\nTFLOP/s (forward 4·N²·D·H, half for causal; backward 2.5× forward; B = 1, bf16); ratios ours/torch\n")
    print(text, flush=True)
    date = datetime.date.today().isoformat()
    slug = gpu.replace("NVIDIA ", "").replace(" ", "-").replace("/", "-")
    os.makedirs(args.results, exist_ok=True)
    path = results_path(args.results, date, slug)
    card = clocks.summary()
    print(f"GPU during the run: {card}")
    with open(path, "w") as f:
        f.write(f"# ringlab GPU attention vs PyTorch SDPA — {gpu}\n\n")
        f.write(f"- date: {date}\n- GPU: {gpu}\n- host: {platform.node()}\n")
        f.write(f"- torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, CUDA {torch.version.cuda}\n")
        f.write(f"- commit: {os.environ.get('RINGLAB_COMMIT', 'unknown')}\n")
        f.write(f"- command: `{args.command}`\n- timing: CUDA events; {args.rounds} rounds taking ours and the baselines in turn, each round "
                f"the median of {args.repeats} calls after 5 warm-up; the median round; "
                "B = 1, bf16, random N(0,1) inputs shared by all implementations\n")
        f.write(f"- GPU during the run (nvidia-smi every 200 ms): {card}\n\n")
        f.write("TFLOP/s: forward 4·N²·D·H (half for causal), backward 2.5× forward (ours includes δ, zeroing "
                "the fp32 dQ and converting it to bf16; the kernel writes dK, dV in bf16). Dilated rows: useful FLOPs Σ 4·(N/r)·(w/r)·D per head, "
                "`fwd flash` column = gather + SDPA(flash) + scatter baseline.\n\n")
        f.write(text + "\n")
    print(f"\nwrote {path}")
    if any(r[1] is None for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
