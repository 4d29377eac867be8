#!/usr/bin/python3
"""
Time a full PyTorch training step of CRATE-LM (scripts/crate_torch.py): forward + backward +
AdamW(lr 6e-4, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on >= 2-D params) + zero_grad, float32
eager, plus a 1024^3 sgemm. This is the baseline the native backend is compared against
(shared/notes/CPU.md).

Run it as
    OPENBLAS_CORETYPE=SkylakeX OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/bench_torch.py
on a CPU with AVX-512 (OpenBLAS otherwise picks AVX2 kernels there), and as
    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/bench_torch.py
on one without (there OPENBLAS_CORETYPE=SkylakeX crashes OpenBLAS with "Illegal instruction").
If a variable is unset the script sets it (SkylakeX only when /proc/cpuinfo lists avx512f) and
re-executes itself (OpenBLAS reads OPENBLAS_CORETYPE when it is loaded, i.e. before
`import torch`); pass --no-reexec to measure the defaults. It calls
torch.set_num_threads(--threads, default 2). Debian's torch uses whatever libblas.so.3 is
installed: install libopenblas0-pthread, or sgemm runs at ~8 GFLOP/s.

FLOP/step = 3 * [2 V d + L (36 d^2 + 4 T d)] * B * T for CRATE (the ISTA weight is used four times
per forward; attention counted as full T x T), 3 * [2 V d + L (24 d^2 + 4 T d)] * B * T for GPT-2.

Configs (name: V, L, K heads, d, T, B):
  CPU:  C-char 256,2,4,128,128,16   C-small 50304,4,4,256,128,8   C-1L 50304,1,8,512,256,4
  GPU:  1L/2L/3L 50304,{1,2,3},4,128,1024,B   S 50304,6,12,768,1024,B   B 50304,12,12,768,1024,B
        (B = --batch, default 8)
  sgemm: 1024^3 float32 matrix product.
Defaults: the CPU configs and sgemm on --device cpu, the GPU configs and sgemm on --device cuda.
--json prints one JSON row per measurement: {"config", "backend", "msPerStep", "tokensPerSec",
"gflops"} (tokensPerSec is null for sgemm).

The machines are shared: anything else running disturbs the numbers; compare only runs made side by
side.
"""
import os
import sys


def cpu_has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return "avx512f" in line.split()
    except OSError:
        pass
    return False


# OPENBLAS_CORETYPE=SkylakeX on a CPU without AVX-512 kills the process with SIGILL, so it is only
# set where /proc/cpuinfo lists avx512f (elsewhere OpenBLAS's own detection is left alone).
ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
if cpu_has_avx512():
    ENV["OPENBLAS_CORETYPE"] = "SkylakeX"
if "--no-reexec" not in sys.argv and any(k not in os.environ for k in ENV):
    env = dict(os.environ)
    for k, v in ENV.items():
        env.setdefault(k, v)
    os.execve(sys.executable, [sys.executable] + sys.argv, env)
if os.environ.get("OPENBLAS_CORETYPE", "").lower() == "skylakex" and not cpu_has_avx512():
    print("warning: OPENBLAS_CORETYPE=SkylakeX but this CPU has no AVX-512; OpenBLAS may die with "
          "SIGILL (unset it)", file=sys.stderr)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crate_torch import CrateConfig, build_model, param_groups  # noqa: E402

CPU_CONFIGS = {
    # name: (V, L, heads, d, T, B)
    "C-char": (256, 2, 4, 128, 128, 16),
    "C-small": (50304, 4, 4, 256, 128, 8),
    "C-1L": (50304, 1, 8, 512, 256, 4),
}
GPU_CONFIGS = {  # B None = --batch
    "1L": (50304, 1, 4, 128, 1024, None),
    "2L": (50304, 2, 4, 128, 1024, None),
    "3L": (50304, 3, 4, 128, 1024, None),
    "S": (50304, 6, 12, 768, 1024, None),
    "B": (50304, 12, 12, 768, 1024, None),
}
ALL_CONFIGS = {**CPU_CONFIGS, **GPU_CONFIGS}


def flop_per_step(arch, V, L, d, T, B):
    per_layer = (36 if arch == "crate" else 24) * d * d + 4 * T * d
    return 3 * (2 * V * d + L * per_layer) * B * T


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_model(name, args, device):
    V, L, K, d, T, B = ALL_CONFIGS[name]
    if args.batch is not None:
        B = args.batch
    elif B is None:
        B = 8
    torch.manual_seed(1337)
    cfg = CrateConfig(vocab_size=V, block_size=max(T, 1024), n_layer=L, n_head=K, n_embd=d,
                      use_sdpa=args.sdpa)
    model = build_model(args.arch, cfg).to(device=device, dtype=torch.float32)
    model.train()
    extra = {}
    if device.type == "cuda":
        try:
            torch.optim.AdamW([torch.zeros(1, device=device)], fused=True)
            extra["fused"] = True
        except (TypeError, RuntimeError):
            pass
    elif args.foreach:
        extra["foreach"] = True
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=6e-4, betas=(0.9, 0.95), eps=1e-8, **extra)
    fwd = model
    if args.compile:
        if not hasattr(torch, "compile"):
            sys.exit(f"--compile needs torch >= 2.0 (this is {torch.__version__})")
        fwd = torch.compile(model)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, V, (B, T), generator=g).to(device)
    y = torch.randint(0, V, (B, T), generator=g).to(device)
    amp = args.amp == "bf16"

    def step():
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            _, loss = fwd(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=not args.zero_fill)
        return loss

    for _ in range(args.warmup):
        step()
    sync(device)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        sync(device)
        times.append(time.perf_counter() - t0)
    assert torch.isfinite(loss).item()
    ms = statistics.median(times) * 1e3
    flop = flop_per_step(args.arch, V, L, d, T, B)
    label = name if args.arch == "crate" else f"gpt2:{name}"
    return dict(config=label, ms=ms, tok=B * T / (ms / 1e3), gflops=flop / (ms / 1e3) / 1e9,
                detail=f"V={V} L={L} K={K} d={d} T={T} B={B}, {flop / 1e9:.2f} GFLOP/step, "
                       f"min {min(times) * 1e3:.1f} max {max(times) * 1e3:.1f} ms")


def bench_sgemm(args, device, n=1024, reps=20):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    for _ in range(3):
        a @ b
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1e3
    return dict(config=f"sgemm-{n}", ms=ms, tok=None, gflops=2 * n ** 3 / (ms / 1e3) / 1e9,
                detail=f"{n}^3 float32, min {min(times) * 1e3:.2f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append",
                    help="config name (repeatable or comma-separated): " + ", ".join(ALL_CONFIGS)
                         + ", sgemm")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--arch", choices=["crate", "gpt2"], default="crate")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--batch", type=int, help="override B (GPU configs default to 8)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (torch >= 2)")
    ap.add_argument("--sdpa", action="store_true",
                    help="use F.scaled_dot_product_attention (torch >= 2) instead of the explicit "
                         "masked softmax")
    ap.add_argument("--amp", choices=["none", "bf16"], default="none",
                    help="bf16 autocast (the paper's training precision); default float32")
    ap.add_argument("--foreach", action="store_true", help="CPU: AdamW(foreach=True)")
    ap.add_argument("--zero-fill", action="store_true",
                    help="zero_grad(set_to_none=False): fill gradients with zeros instead of freeing them")
    ap.add_argument("--json", action="store_true", help="one JSON row per measurement")
    ap.add_argument("--no-reexec", action="store_true",
                    help="do not set OPENBLAS_CORETYPE / OMP_WAIT_POLICY and re-exec")
    args = ap.parse_args()

    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False      # float32 means float32
        torch.backends.cudnn.allow_tf32 = False
    names = [n for c in (args.config or []) for n in c.split(",") if n]
    if not names:
        names = list(CPU_CONFIGS if device.type == "cpu" else GPU_CONFIGS) + ["sgemm"]
    for n in names:
        if n not in ALL_CONFIGS and n != "sgemm":
            sys.exit(f"unknown config {n!r}; choose from {', '.join(ALL_CONFIGS)}, sgemm")

    backend = f"torch-{device.type}" + ("-compile" if args.compile else "") + \
        ("-bf16" if args.amp == "bf16" else "")
    if not args.json:
        print(f"torch {torch.__version__}, device {device}"
              + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
              + f", threads {torch.get_num_threads()}, OPENBLAS_CORETYPE="
              f"{os.environ.get('OPENBLAS_CORETYPE')}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    for n in names:
        r = bench_sgemm(args, device) if n == "sgemm" else bench_model(n, args, device)
        if args.json:
            print(json.dumps(dict(config=r["config"], backend=backend, msPerStep=round(r["ms"], 3),
                                  tokensPerSec=None if r["tok"] is None else round(r["tok"], 1),
                                  gflops=round(r["gflops"], 2))), flush=True)
        else:
            tok = "" if r["tok"] is None else f"{r['tok']:10.0f} tok/s"
            print(f"{r['config']:12s} {r['ms']:10.2f} ms/step {tok:>16s} {r['gflops']:8.1f} GFLOP/s"
                  f"   ({r['detail']})", flush=True)


if __name__ == "__main__":
    main()
