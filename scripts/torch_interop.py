#!/usr/bin/env python3
"""Interop between crate-ts checkpoints and the PyTorch CRATE definition (scripts/crate_torch.py).

  /usr/bin/python3 scripts/torch_interop.py check CKPT|RUN_DIR [--tokens 12,40,7,...]
      Loads a crate-ts checkpoint (safetensors, PyTorch state_dict names; a run directory means its
      model.safetensors, or ckpt.safetensors for runs of crate-ts before 0.2) into the PyTorch CRATE
      (or GPT-2) module, computes the logits of a token sequence, has crate-ts compute the same
      logits with its float64 reference (node, dist/), and prints the largest difference.
      Exit code 0 when they agree to 1e-9 (relative to max |logit|).

  /usr/bin/python3 scripts/torch_interop.py convert IN.pt OUT.safetensors [--arch crate|gpt2]
      Converts a PyTorch checkpoint (a torch.save pickle of a state_dict, or of a dict with
      'model' and 'model_args' as the authors' train.py writes) to safetensors that crate-ts loads:
      the `_orig_mod.` prefix is stripped, the tied lm_head and the attn.bias mask buffers dropped,
      and the model config written as metadata.

Needs Debian's python3-torch (and node for `check`).
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crate_torch import CrateConfig, build_model  # noqa: E402
from make_fixture import read_safetensors, write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def resolve_checkpoint(path):
    """The weights file a path names, as crate-ts's resolveCheckpointPath: a run directory's
    model.safetensors (or its pre-0.2 ckpt.safetensors), and RUN/ckpt.safetensors -> RUN/model.safetensors
    when only the latter exists."""
    if os.path.isdir(path):
        for name in ("model.safetensors", "ckpt.safetensors"):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise SystemExit(f"{path}: a directory without a checkpoint (model.safetensors, or ckpt.safetensors of crate-ts before 0.2)")
    if not os.path.exists(path):
        renamed = os.path.join(os.path.dirname(path), "model.safetensors")
        if os.path.basename(path) == "ckpt.safetensors" and os.path.isfile(renamed):
            return renamed
        raise SystemExit(f"{path}: no such file")
    return path


def load_checkpoint(path):
    tensors, meta = read_safetensors(path)
    if "config" not in meta:
        raise SystemExit(f"{path}: no 'config' metadata: not a crate-ts checkpoint or fixture")
    cfg_json = json.loads(meta["config"])
    arch = meta.get("arch", cfg_json.get("arch", "crate"))
    if arch not in ("crate", "gpt2"):
        raise SystemExit(f"{path}: arch '{arch}' has no PyTorch definition in scripts/crate_torch.py")
    keys = {f.name for f in CrateConfig.__dataclass_fields__.values()}
    config = CrateConfig(**{k: v for k, v in cfg_json.items() if k in keys})
    model = build_model(arch, config).double()
    state = {k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in tensors.items()
             if not k.startswith("optimizer.")}
    state["lm_head.weight"] = state["transformer.wte.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("attn.bias")]
    if missing or unexpected:
        raise SystemExit(f"{path}: missing {missing}, unexpected {unexpected}")
    return model.eval(), config, arch


def crate_ts_logits(path, tokens):
    js = f"""
      const {{ loadCheckpoint, modelFromCheckpoint }} = await import('{ROOT}/dist/checkpoint/checkpoint.js');
      const {{ ReferenceBackend }} = await import('{ROOT}/dist/backend/reference.js');
      const m = modelFromCheckpoint(loadCheckpoint(process.argv[1]), new ReferenceBackend());
      const toks = JSON.parse(process.argv[2]);
      console.log(JSON.stringify(Array.from(m.forward(toks, 1, toks.length).logits)));
    """
    out = subprocess.run(["node", "--input-type=module", "-e", js, path, json.dumps(tokens)],
                         check=True, capture_output=True, text=True).stdout
    return np.array(json.loads(out), dtype=np.float64)


def cmd_check(args):
    args.checkpoint = resolve_checkpoint(args.checkpoint)
    model, config, arch = load_checkpoint(args.checkpoint)
    if args.tokens:
        tokens = [int(t) for t in args.tokens.split(",")]
    else:
        rng = np.random.default_rng(0)
        tokens = rng.integers(0, config.vocab_size, size=min(16, config.block_size)).tolist()
    with torch.no_grad():
        logits, _ = model(torch.tensor([tokens]), full_logits=True)
    ours = torch_logits = logits.reshape(-1).numpy()
    theirs = crate_ts_logits(args.checkpoint, tokens)
    err = float(np.max(np.abs(ours - theirs)) / max(1e-300, np.max(np.abs(ours))))
    print(f"{args.checkpoint}: {arch}, L={config.n_layer}, d={config.n_embd}, V={config.vocab_size}; "
          f"{len(tokens)} tokens; torch {torch.__version__} float64 vs crate-ts reference: "
          f"max |diff| / max |logit| = {err:.3e}")
    del torch_logits
    return 0 if err <= 1e-9 else 1


def cmd_convert(args):
    obj = torch.load(args.input, map_location="cpu")
    state = obj.get("model", obj) if isinstance(obj, dict) else obj
    margs = obj.get("model_args", {}) if isinstance(obj, dict) else {}
    tensors = []
    for k, v in state.items():
        name = k[len("_orig_mod."):] if k.startswith("_orig_mod.") else k
        if name == "lm_head.weight" or (name.endswith("attn.bias") and v.dim() == 4):
            continue
        tensors.append((name, v.float()))
    wte = dict(tensors)["transformer.wte.weight"]
    cfg = {"vocab_size": int(margs.get("vocab_size", wte.shape[0])),
           "block_size": int(margs.get("block_size", dict(tensors)["transformer.wpe.weight"].shape[0])),
           "n_layer": int(margs.get("n_layer", 1 + max(int(n.split(".")[2]) for n, _ in tensors if n.startswith("transformer.h.")))),
           "n_head": int(margs["n_head"]) if "n_head" in margs else int(args.n_head),
           "n_embd": int(wte.shape[1]), "overcomplete": 4, "eta": 0.1, "lam": 0.1, "ln_eps": 1e-5,
           "arch": args.arch}
    write_safetensors(args.output, tensors, {"config": json.dumps(cfg), "arch": args.arch,
                                             "tokenizer": "gpt2", "generator": "scripts/torch_interop.py convert"})
    print(f"wrote {args.output}: {len(tensors)} tensors, config {json.dumps(cfg)}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("checkpoint")
    c.add_argument("--tokens")
    v = sub.add_parser("convert")
    v.add_argument("input")
    v.add_argument("output")
    v.add_argument("--arch", default="crate", choices=["crate", "gpt2"])
    v.add_argument("--n-head", default=None, help="heads, when the pickle has no model_args")
    args = p.parse_args()
    sys.exit(cmd_check(args) if args.cmd == "check" else cmd_convert(args))


if __name__ == "__main__":
    main()
