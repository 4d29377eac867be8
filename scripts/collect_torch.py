#!/usr/bin/python3
"""
The paper's way of collecting neuron records, in PyTorch, for a side-by-side benchmark with
`crate-ts neurons collect` (spec 7.2): run the model over N tokens in windows of the block size,
materialise the whole (N, h) neuron tensor of each layer in float32, argsort it per neuron
(descending) for the top-50, draw 50 random positions, and compute the moments. Time and peak
memory are reported, with the bytes per token the materialised approach needs and the N at which
it no longer fits in a memory budget (default 24 GiB).

    /usr/bin/python3 scripts/collect_torch.py --collection DIR [--layers 0,1] [--batch 1] [--threads 2]
        [--budget-gib 24] [--check] [--json]

The checkpoint and the N tokens are those of a crate-ts collection directory (its manifest.json and
tokens.u32), so both tools see the same model and tokens; --check compares the top-50 positions
with the collection's positions.jsonl. Needs Debian's python3-torch; a tool, not a test dependency.
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_interop import load_checkpoint  # noqa: E402


def rss_peak_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_now_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def neuron_module(model, arch, layer):
    block = model.transformer.h[layer]
    return block.ista.relu if arch == "crate" else block.mlp.relu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", required=True, help="a crate-ts neuron collection directory (manifest.json, tokens.u32)")
    ap.add_argument("--layers", default=None, help="comma-separated layers (default: the collection's)")
    ap.add_argument("--batch", type=int, default=1, help="windows per forward")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget-gib", type=float, default=24.0)
    ap.add_argument("--check", action="store_true", help="compare the top-50 positions with the collection's")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    # Debian's torch calls whatever libblas.so.3 is installed; the reference BLAS makes its forward
    # several times slower than it is, which would flatter crate-ts in the comparison.
    blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    if os.path.exists(blas) and "openblas" not in blas:
        sys.exit(f"collect_torch.py: PyTorch would run on the reference BLAS ({blas}); "
                 "install libopenblas0-pthread first (apt-get install libopenblas0-pthread)")
    torch.set_num_threads(args.threads)

    with open(os.path.join(args.collection, "manifest.json")) as f:
        man = json.load(f)
    tokens = np.fromfile(os.path.join(args.collection, man.get("tokens_file", "tokens.u32")), dtype="<u4")
    if tokens.size != man["n_tokens"]:
        raise SystemExit(f"tokens.u32 holds {tokens.size} tokens, the manifest says {man['n_tokens']}")
    layers = [int(x) for x in args.layers.split(",")] if args.layers else man["layers"]
    model, config, arch = load_checkpoint(man["checkpoint"]["path"])
    model = model.float().eval()
    T, N = man["window"], tokens.size
    H = config.overcomplete * config.n_embd
    base_rss = rss_now_bytes()

    t0 = time.perf_counter()
    # the paper's activation tensor: (N, h) float32 per layer, filled window by window
    acts = {l: torch.empty((N, H), dtype=torch.float32) for l in layers}
    cursor = {"row": 0}
    captured = {}
    hooks = [neuron_module(model, arch, l).register_forward_hook(
        lambda m, i, o, l=l: captured.__setitem__(l, o.detach())) for l in layers]
    stop = max(layers) + 1
    idx_all = torch.from_numpy(tokens.astype(np.int64))
    with torch.no_grad():
        for w in range(0, N // T, args.batch):
            B = min(args.batch, N // T - w)
            idx = idx_all[w * T:(w + B) * T].view(B, T)
            pos = torch.arange(T, dtype=torch.long)
            x = model.transformer.wte(idx) + model.transformer.wpe(pos)
            for block in model.transformer.h[:stop]:          # no final LayerNorm, no head
                x = block(x)
            r = cursor["row"]
            for l in layers:
                acts[l][r:r + B * T] = captured[l].reshape(B * T, H)
            cursor["row"] = r + B * T
    for h in hooks:
        h.remove()
    t_forward = time.perf_counter() - t0

    t1 = time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    results = {}
    for l in layers:
        a = acts[l]
        order = torch.argsort(a, dim=0, descending=True)      # (N, h) int64: the paper's argsort
        top = order[:50].t().contiguous()                     # (h, 50)
        del order
        rand = torch.randint(0, N, (H, 50), generator=gen)
        # moments in float64 over row chunks (a float64 copy of the whole tensor would double the peak)
        step = 1 << 16
        mean = sum(a[r:r + step].double().sum(0) for r in range(0, N, step)) / N
        var = torch.zeros(H, dtype=torch.float64); m3 = torch.zeros_like(var); m4 = torch.zeros_like(var)
        for r in range(0, N, step):
            c = a[r:r + step].double() - mean
            c2 = c * c
            var += c2.sum(0); m3 += (c2 * c).sum(0); m4 += (c2 * c2).sum(0)
        var /= N; m3 /= N; m4 /= N
        results[l] = {"top": top, "random": rand, "mean": mean, "variance": var, "m3": m3, "m4": m4}
    t_select = time.perf_counter() - t1
    elapsed = time.perf_counter() - t0
    peak = rss_peak_bytes()
    per_token = max(0, peak - base_rss) / N
    budget = args.budget_gib * 2 ** 30
    n_max = int((budget - base_rss) / per_token) if per_token > 0 else None

    agree = None
    if args.check:
        same = total = 0
        for l in layers:
            with open(os.path.join(args.collection, f"layer-{l}", "positions.jsonl")) as f:
                for i, line in enumerate(f):
                    ours = json.loads(line)["top"]
                    theirs = results[l]["top"][i].tolist()
                    same += len(set(ours) & set(theirs))
                    total += len(ours)
        agree = same / max(1, total)

    out = {
        "tool": "scripts/collect_torch.py", "torch": torch.__version__, "threads": args.threads,
        "n_tokens": int(N), "layers": layers, "neurons": H, "arch": arch,
        "forward_s": round(t_forward, 3), "argsort_moments_s": round(t_select, 3), "elapsed_s": round(elapsed, 3),
        "tokens_per_s": round(N / elapsed, 1), "peak_rss_bytes": int(peak), "baseline_rss_bytes": int(base_rss),
        "bytes_per_token": round(per_token, 1), "budget_gib": args.budget_gib, "n_max_in_budget": n_max,
        "top50_overlap_with_crate_ts": agree,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"PyTorch {torch.__version__} ({args.threads} threads), {arch}, {N:,} tokens x layers {layers} ({H} neurons each):")
        print(f"  forward + materialise {t_forward:.1f} s, argsort + moments {t_select:.1f} s, total {elapsed:.1f} s = {N / elapsed:,.0f} tokens/s")
        print(f"  peak RSS {peak / 2 ** 20:,.0f} MiB ({per_token:,.0f} bytes per token above the {base_rss / 2 ** 20:,.0f} MiB baseline);"
              f" fits in {args.budget_gib:g} GiB up to N = {n_max:,} tokens")
        if agree is not None:
            print(f"  top-50 positions shared with the crate-ts collection: {100 * agree:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
