#!/usr/bin/python3
"""
Make an end-to-end fixture (docs/FIXTURES.md): build a CRATE-LM (or the GPT-2
baseline) in PyTorch with a seeded init, run forward + backward on random tokens, and write one
.safetensors file holding

  <param name>          every parameter under its PyTorch state_dict name (lm_head.weight is tied
                        to transformer.wte.weight and is NOT stored)
  idx, targets          I64 [B, T]
  logits                [B, T, V]
  loss                  [] (mean cross-entropy over the non-ignored positions, ignore_index -1)
  grad.<param name>     d loss / d param for every parameter (the tied wte's is the total, embedding
                        lookup + head)

and metadata `config` (JSON: vocab_size, block_size, n_layer, n_head, n_embd, overcomplete, eta,
lam, ln_eps), `arch` ("crate" or "gpt2"), `generator` ("scripts/make_fixture.py torch <version>"),
and `args` (JSON of the options used). Float tensors are F64 (default) or F32 (--dtype f32).

Run with Debian's python (python3-torch), e.g.
  /usr/bin/python3 scripts/make_fixture.py --out fixtures/crate-small.safetensors --seed 1

The safetensors file is written by hand (8-byte little-endian u64 header length, JSON header padded
with spaces to a multiple of 8, then the tensors back to back, data_offsets relative to the end of
the header), so the `safetensors` Python package is not needed. `--check FILE` re-reads a file and
prints its contents (names, dtypes, shapes, metadata).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crate_torch import CrateConfig, build_model  # noqa: E402

DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.int64: "I64"}
NP_DTYPES = {"F64": "<f8", "F32": "<f4", "I64": "<i8"}

# tensors multiplied by --scale (suffix match on the state_dict name)
SCALED = {
    "crate": ("wte.weight", "wpe.weight", "attn.c_attn.weight", "attn.c_proj.weight",
              "attn.c_proj.bias", "ista.weight"),
    "gpt2": ("wte.weight", "wpe.weight", "attn.c_attn.weight", "attn.c_proj.weight",
             "mlp.c_fc.weight", "mlp.c_proj.weight"),
}


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, torch.Tensor) in file order; metadata: dict str -> str."""
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    blobs, offset = [], 0
    for name, t in tensors:
        t = t.detach().cpu().contiguous()
        dt = DTYPES[t.dtype]
        raw = t.numpy().astype(NP_DTYPES[dt], copy=False).tobytes(order="C")
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path):
    """Returns (dict name -> np.ndarray, metadata dict). Strict: offsets must tile the data."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = buf[8 + n:]
    meta = header.pop("__metadata__", {})
    out, spans = {}, []
    for name, info in header.items():
        s, e = info["data_offsets"]
        arr = np.frombuffer(data[s:e], dtype=NP_DTYPES[info["dtype"]])
        assert arr.size == int(np.prod(info["shape"], dtype=np.int64)), name
        out[name] = arr.reshape(info["shape"])
        spans.append((s, e))
    spans.sort()
    pos = 0
    for s, e in spans:
        assert s == pos, f"hole or overlap at {s}"
        pos = e
    assert pos == len(data), "trailing bytes"
    return out, meta


def make(args):
    dtype = {"f64": torch.float64, "f32": torch.float32}[args.dtype]
    torch.set_default_dtype(dtype)
    torch.manual_seed(args.seed)
    config = CrateConfig(vocab_size=args.vocab, block_size=args.block, n_layer=args.layers,
                         n_head=args.heads, n_embd=args.embd, overcomplete=args.overcomplete,
                         eta=args.eta, lam=args.lam)
    assert args.embd % args.heads == 0, "--embd must be a multiple of --heads"
    assert args.eta > 0 and args.lam >= 0, "--eta must be > 0 and --lam >= 0"
    assert 1 <= args.seq <= args.block, "--seq must be in 1..--block"
    model = build_model(args.arch, config).to(dtype)
    params = list(model.named_parameters())           # tied lm_head appears once, as wte
    assert "lm_head.weight" not in dict(params)
    if args.scale != 1.0:
        with torch.no_grad():
            for name, p in params:
                if name.endswith(SCALED[args.arch]):
                    p.mul_(args.scale)

    g = torch.Generator().manual_seed(args.seed + 1000)
    idx = torch.randint(0, args.vocab, (args.batch, args.seq), generator=g, dtype=torch.long)
    targets = torch.randint(0, args.vocab, (args.batch, args.seq), generator=g, dtype=torch.long)
    if args.ignore > 0:
        flat = torch.randperm(args.batch * args.seq, generator=g)[:args.ignore]
        targets.view(-1)[flat] = -1

    model.zero_grad(set_to_none=True)
    logits, loss = model(idx, targets)
    loss.backward()

    tensors = [(n, p.detach()) for n, p in params]
    tensors += [("idx", idx), ("targets", targets), ("logits", logits.detach()),
                ("loss", loss.detach().reshape(()))]
    tensors += [(f"grad.{n}", p.grad.detach()) for n, p in params]
    meta = {
        "config": config.to_json(),
        "arch": args.arch,
        "generator": f"scripts/make_fixture.py torch {torch.__version__}",
        "args": json.dumps({k: v for k, v in vars(args).items() if k not in ("out", "check")}),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_safetensors(args.out, tensors, meta)

    # read back and compare, then report
    back, _ = read_safetensors(args.out)
    for name, t in tensors:
        assert np.array_equal(back[name], t.cpu().numpy()), name
    lg = logits.detach()
    assert torch.isfinite(lg).all() and torch.isfinite(loss), "non-finite logits or loss"
    for n, p in params:
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {n}"
    print(f"wrote {args.out} ({os.path.getsize(args.out):,} bytes): arch {args.arch}, {args.dtype}, "
          f"{sum(p.numel() for _, p in params):,} params, B={args.batch} T={args.seq}")
    print(f"  loss {loss.item():.10g} (ln V = {np.log(args.vocab):.4f}), max |logit| "
          f"{lg.abs().max().item():.4g}, max |grad| "
          f"{max(p.grad.abs().max().item() for _, p in params):.4g}")
    print(f"  attention (layer 0): {attention_stats(model, idx)}")


@torch.no_grad()
def attention_stats(model, idx):
    """Mean over rows with >= 2 visible keys of the largest softmax probability, and the
    fraction of those rows whose largest probability is > 0.99 (saturated), in layer 0."""
    if not hasattr(model.transformer.h[0], "prenorm_1"):
        return "n/a (gpt2)"
    B, T = idx.shape
    if T < 2:
        return "n/a (T = 1)"
    pos = torch.arange(T)
    x = model.transformer.wte(idx) + model.transformer.wpe(pos)
    blk = model.transformer.h[0]
    u = blk.prenorm_1(x)
    v = blk.attn.c_attn(u)
    K = model.config.n_head
    v = v.view(B, T, K, -1).transpose(1, 2)
    att = (v @ v.transpose(-2, -1)) / (v.size(-1) ** 0.5)
    att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
    m = att.max(-1).values[:, :, 1:]
    return (f"mean max-prob {m.mean().item():.3f}, saturated rows {(m > 0.99).double().mean().item():.2f}, "
            f"max |score| {(v @ v.transpose(-2, -1)).abs().max().item() / (v.size(-1) ** 0.5):.3g}")


def check(path):
    tensors, meta = read_safetensors(path)
    for k, v in meta.items():
        print(f"meta {k}: {v}")
    for name, arr in tensors.items():
        print(f"{name:50s} {arr.dtype.str:4s} {list(arr.shape)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="fixtures/crate-small.safetensors", help="output .safetensors path")
    ap.add_argument("--arch", choices=["crate", "gpt2"], default="crate",
                    help="crate: CRATE-LM (spec 3.1/3.2); gpt2: the paper's GPT-2 baseline (spec 3.3)")
    ap.add_argument("--dtype", choices=["f64", "f32"], default="f64", help="float dtype of model and file")
    ap.add_argument("--seed", type=int, default=1,
                    help="torch.manual_seed for the init; tokens use seed + 1000")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="after the normal init, multiply the weight matrices by S: wte, wpe, "
                         "attn.c_attn, attn.c_proj (weight and bias), ista (crate) / mlp.c_fc, mlp.c_proj "
                         "(gpt2). LayerNorm weights/biases are not scaled. Large S saturates the "
                         "attention softmax and feeds LayerNorm / the ISTA ReLUs large values.")
    ap.add_argument("--batch", type=int, default=2, help="B")
    ap.add_argument("--seq", type=int, default=8, help="T (<= --block)")
    ap.add_argument("--vocab", type=int, default=64, help="V")
    ap.add_argument("--layers", type=int, default=2, help="L")
    ap.add_argument("--heads", type=int, default=2, help="K (divides --embd)")
    ap.add_argument("--embd", type=int, default=16, help="d")
    ap.add_argument("--block", type=int, default=16, help="block_size (rows of wpe)")
    ap.add_argument("--overcomplete", type=int, default=4, help="ISTA / MLP width factor")
    ap.add_argument("--eta", type=float, default=0.1,
                    help="ISTA step size eta (crate only; the authors' code has 0.1)")
    ap.add_argument("--lam", type=float, default=0.1,
                    help="ISTA sparsity weight lambda (crate only; the authors' code has 0.1). A value "
                         "other than --eta tells eta and lambda apart, which eta = lambda = 0.1 cannot")
    ap.add_argument("--ignore", type=int, default=0,
                    help="set this many random target positions to -1 (ignored by the loss)")
    ap.add_argument("--check", metavar="FILE", help="only read FILE back and list its contents")
    args = ap.parse_args()
    if args.check:
        check(args.check)
    else:
        make(args)


if __name__ == "__main__":
    main()
