#!/usr/bin/env python3
"""The SAE recipe of `crate-ts sae train --arch relu` in PyTorch, for scripts/bench-sae.sh.

Same model and step as crate-ts (README "Sparse autoencoders"): h = relu((x - b_dec) W_enc + b_enc),
xhat = h W_dec + b_dec, loss = (sum |xhat - x|^2 + l1 * sum h) / sum |x - mean(x)|^2 per batch, the
decoder gradient's component along each row removed, Adam (0.9, 0.999, eps 1e-8), decoder rows
renormalised after each step; rows from the same float32 file through a shuffled buffer of the same
size. Prints one JSON line: tokens/s over the timed steps, peak RSS, and the BLAS library torch
loaded (scripts/bench-sae.sh points Debian's torch at OpenBLAS: its default libblas.so.3 is the
reference netlib one, ~10x slower than OpenBLAS on one matrix product here).
Done as one would in PyTorch: float32 throughout, the affine maps as fused addmm, the same thread
count as crate-ts (torch.set_num_threads), denormals flushed, Adam's multi-tensor (foreach) path.
--init DIR starts from the SAE in DIR (cfg.json + sae_weights.safetensors, the files `crate-ts sae
train` writes; read here with the safetensors layout: 8-byte little-endian header length, JSON header,
raw little-endian data) instead of the random initialisation, as scripts/bench-sae.mjs --init does.
Run with Debian's python3-torch (/usr/bin/python3)."""
import argparse
import json
import os
import struct
import sys
import resource
import time

import numpy as np
import torch


def blas_library():
    """The BLAS shared library this process mapped (what torch's matrix products run on)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {l.split()[-1] for l in f if "blas" in l.split()[-1].lower()}
        return sorted(libs)[0] if libs else "none mapped"
    except OSError:
        return "unknown"


def read_sae(d, D, S):
    """W_enc (D,S), b_enc (S), W_dec (S,D), b_dec (D) as float32 tensors from an SAE directory."""
    with open(os.path.join(d, "cfg.json")) as f:
        cfg = json.load(f)
    if cfg.get("d_in") != D or cfg.get("d_sae") != S:
        sys.exit(f"sae_torch.py: --init {d} is d_in {cfg.get('d_in')} x d_sae {cfg.get('d_sae')}, not {D} x {S}")
    with open(os.path.join(d, "sae_weights.safetensors"), "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    want = {"W_enc": [D, S], "b_enc": [S], "W_dec": [S, D], "b_dec": [D]}
    out = {}
    for name, shape in want.items():
        t = header.get(name)
        if t is None or t["dtype"] != "F32" or t["shape"] != shape:
            sys.exit(f"sae_torch.py: {name} in {d} is {t}, expected F32 {shape}")
        a, b = t["data_offsets"]
        arr = np.frombuffer(blob, dtype="<f4", count=(b - a) // 4, offset=8 + n + a).reshape(shape)
        out[name] = torch.from_numpy(arr.copy())
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--acts", required=True)
    p.add_argument("--d-in", type=int, default=512)
    p.add_argument("--expansion", type=int, default=16)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--buffer", type=int, default=32768)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--init", default=None)
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    D, S, N = a.d_in, a.d_in * a.expansion, a.batch
    acts = np.fromfile(a.acts, dtype=np.float32).reshape(-1, D)
    lr = 4e-4 * (8192 / S) ** 0.5
    l1 = 8e-5 * 4096
    if a.init:
        w = read_sae(a.init, D, S)
        W_enc, b_enc, W_dec, b_dec = (w[k].requires_grad_() for k in ("W_enc", "b_enc", "W_dec", "b_dec"))
    else:
        g = torch.Generator().manual_seed(0)
        W_enc = ((torch.rand(D, S, generator=g) * 2 - 1) * (6 / S) ** 0.5).requires_grad_()
        W_dec = (torch.rand(S, D, generator=g) * 2 - 1) * (6 / D) ** 0.5
        W_dec = (W_dec / W_dec.norm(dim=1, keepdim=True)).requires_grad_()
        b_enc = torch.zeros(S, requires_grad=True)
        b_dec = torch.zeros(D, requires_grad=True)
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=True)
    a.buffer = max(2 * N, a.buffer)
    rng = np.random.default_rng(1)
    buf = np.take(acts, np.arange(a.buffer) % len(acts), axis=0)
    at, pos = a.buffer % len(acts), 0
    perm = rng.permutation(a.buffer)

    def next_batch():
        nonlocal at, pos, perm
        if pos >= a.buffer // 2:
            idx = perm[:pos]
            take = np.take(acts, np.arange(at, at + pos) % len(acts), axis=0)
            buf[idx] = take
            at = (at + pos) % len(acts)
            perm = rng.permutation(a.buffer)
            pos = 0
        rows = buf[perm[pos : pos + N]]
        pos += N
        return torch.from_numpy(rows)

    t0 = None
    fvu = l0 = l0_timed = 0.0
    for step in range(1, a.warmup + a.steps + 1):
        if step == a.warmup + 1:
            t0 = time.perf_counter()
        x = next_batch()
        h = torch.relu(torch.addmm(b_enc, x - b_dec, W_enc))
        xhat = torch.addmm(b_dec, h, W_dec)
        den = ((x - x.mean(0)) ** 2).sum()
        rec = ((xhat - x) ** 2).sum() / den
        loss = rec + l1 * h.sum() / den
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            w = W_dec
            W_dec.grad -= (W_dec.grad * w).sum(1, keepdim=True) / (w * w).sum(1, keepdim=True) * w
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True)
        fvu = rec.item()
        l0 = (h > 0).float().sum(1).mean().item()
        if step > a.warmup:
            l0_timed += l0 / a.steps
    secs = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "impl": "pytorch",
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "blas": blas_library(),
                "init": "trained" if a.init else "random",
                "d_in": D,
                "d_sae": S,
                "batch": N,
                "steps": a.steps,
                "tokens_per_s": a.steps * N / secs,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "last_fvu": fvu,
                "last_l0": l0,
                "mean_l0": l0_timed,
            }
        )
    )


if __name__ == "__main__":
    main()
