#!/usr/bin/env python3
"""Runs ringlab's forward and backward once on one configuration, for a profiler to look at:

  ncu --clock-control none -k regex:fast_ --launch-count 2 --section SpeedOfLight --section WarpStateStats \
      python3 bench/gpu/profile_one.py --lib build/gpu/gpu/libringlab_gpu_capi.so --heads 16 --dim 128 --seq 16384

--baselines also runs PyTorch SDPA's forward and backward with its flash and cuDNN backends on the same inputs, so
that one profile holds the three implementations' kernels side by side (filter them with
-k regex:"hopper_forward|flash|sdpa", or regex:"hopper_backward|flash_bwd|bprop" for the backward).

Same inputs and calls as bench_attention.py (B = 1, bf16, [B, N, H, D]).
"""
import argparse
import sys
import os

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attention import UNBOUNDED, Ringlab  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", required=True)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--seq", type=int, default=16384)
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--baselines", action="store_true", help="also SDPA forward (flash, then cuDNN)")
    args = parser.parse_args()
    lib = Ringlab(args.lib)
    b, n, h, d = 1, args.seq, args.heads, args.dim
    q, k, v, dout = (torch.randn(b, n, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    band = (-UNBOUNDED, 0 if args.causal else UNBOUNDED)
    out = torch.empty_like(q)
    lse = torch.empty(b, h, n, device="cuda", dtype=torch.float32)
    delta = torch.empty_like(lse)
    dq, dk, dv = (torch.empty(b, n, h, d, device="cuda", dtype=torch.float32) for _ in range(3))
    dq16, dk16, dv16 = (torch.empty_like(q) for _ in range(3))
    lib.forward(q, k, v, out, lse, band)
    lib.backward(q, k, v, out, dout, lse, delta, dq, dk, dv, dq16, dk16, dv16, band)
    if args.baselines:
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel
        qg, kg, vg = (x.detach().transpose(1, 2).requires_grad_(True) for x in (q, k, v))
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION):
            with sdpa_kernel(backend):
                o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=args.causal)
                torch.autograd.grad(o, (qg, kg, vg), dout.transpose(1, 2))
    torch.cuda.synchronize()
    print("done", tuple(out.shape))


if __name__ == "__main__":
    main()
