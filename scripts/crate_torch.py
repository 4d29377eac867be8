#!/usr/bin/python3
"""
CRATE-LM (paper A: Bai & Ma, "Improving Neuron-level Interpretability with White-box Language
Models") and its GPT-2 baseline in PyTorch, written from the spec (docs/spec.md, sections 1-3 and
Appendix A). This is the *oracle* that the fixtures in fixtures/ are made with; it is a tool, not a
dependency of the TypeScript project.

    python3 scripts/crate_torch.py --golden      # reproduce spec Appendix A in float64, print PASS/FAIL

State_dict names follow spec 3.2 (CRATE) and 3.3 (GPT-2, nanoGPT with ReLU MLP, bias=False), so
checkpoints interoperate with the authors' code:

  CRATE                                            GPT-2 baseline
  transformer.wte.weight          (V, d)           transformer.wte.weight          (V, d)
  transformer.wpe.weight          (block, d)       transformer.wpe.weight          (block, d)
  transformer.h.{i}.prenorm_1.weight/.bias (d)     transformer.h.{i}.ln_1.weight   (d)
  transformer.h.{i}.attn.c_attn.weight (d, d)      transformer.h.{i}.attn.c_attn.weight (3d, d)
  transformer.h.{i}.attn.c_proj.weight (d, d)      transformer.h.{i}.attn.c_proj.weight (d, d)
  transformer.h.{i}.attn.c_proj.bias   (d)         transformer.h.{i}.ln_2.weight   (d)
  transformer.h.{i}.prenorm_2.weight/.bias (d)     transformer.h.{i}.mlp.c_fc.weight   (4d, d)
  transformer.h.{i}.ista.weight   (4d, d) = D^T    transformer.h.{i}.mlp.c_proj.weight (d, 4d)
  transformer.ln_f.weight/.bias   (d)              transformer.ln_f.weight         (d)
  lm_head.weight = transformer.wte.weight (tied)   lm_head.weight = transformer.wte.weight (tied)

Runs on old PyTorch (Debian's 1.13): attention is an explicit masked softmax, no SDPA, unless
`use_sdpa=True` is set on the config (benchmarks on a GPU with torch >= 2).
"""
import argparse
import json
import math
import sys
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------
# config

@dataclass
class CrateConfig:
    vocab_size: int = 50304   # V; GPT-2 BPE (50257) padded to a multiple of 64
    block_size: int = 1024    # maximum T (rows of wpe)
    n_layer: int = 12         # L
    n_head: int = 12          # K heads = K subspaces
    n_embd: int = 768         # d; head dim p = d / K
    overcomplete: int = 4     # ISTA code width h = overcomplete * d (GPT-2: MLP width factor)
    eta: float = 0.1          # ISTA step size (hard-coded in the authors' code)
    lam: float = 0.1          # ISTA sparsity weight lambda (threshold eta*lam = 0.01)
    ln_eps: float = 1e-5      # LayerNorm eps (inside the sqrt, biased variance)
    use_sdpa: bool = False    # use F.scaled_dot_product_attention when available (same math)

    def to_json(self):
        """The fixture metadata `config` (docs/FIXTURES.md)."""
        d = asdict(self)
        d.pop("use_sdpa")
        return json.dumps(d, sort_keys=False)


# ----------------------------------------------------------------------------------------------
# shared pieces

def causal_attention(q, k, v, use_sdpa=False):
    """q, k, v: (B, H, T, p) -> (B, H, T, p). Row i attends to j <= i, scores / sqrt(p)."""
    T, p = q.size(-2), q.size(-1)
    if use_sdpa and hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(p))                    # (B, H, T, T)
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    att = att.masked_fill(~mask, float("-inf"))
    att = F.softmax(att, dim=-1)                                              # rows sum to 1 over j <= i
    return att @ v                                                            # (B, H, T, p)


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch 1.13's nn.LayerNorm cannot drop the bias)."""

    def __init__(self, ndim, bias, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


# ----------------------------------------------------------------------------------------------
# CRATE-LM (spec 3.1, E18-E20)

class CausalSelfAttention(nn.Module):
    """Causal MSSA (E18): q = k = v = U_k^T LN(x) per head, untied output projection with bias."""

    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, config.n_embd, bias=False)   # rows k*p.. = U_k^T
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=True)
        self.n_head = config.n_head
        self.use_sdpa = config.use_sdpa

    def forward(self, x):
        B, T, d = x.size()
        v = self.c_attn(x)                                                    # (B, T, d)
        v = v.view(B, T, self.n_head, d // self.n_head).transpose(1, 2)       # (B, K, T, p)
        y = causal_attention(v, v, v, self.use_sdpa)                          # (B, K, T, p)
        y = y.transpose(1, 2).contiguous().view(B, T, d)                      # heads side by side
        return self.c_proj(y)                                                 # (B, T, d)


class MLP(nn.Module):
    """Overcomplete ISTA (E19), two steps from zero, then decode; state_dict name `ista.weight`.

    weight: (h, d) = D^T with h = overcomplete * d. `self.relu` is the second ReLU, whose output is
    the sparse code a2 (the paper's "neurons"); hook it to read a2.
    """

    def __init__(self, config):
        super().__init__()
        h = config.overcomplete * config.n_embd
        self.weight = nn.Parameter(torch.empty(h, config.n_embd))
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.weight)     # a=0, fan_in=d: U(-sqrt(6/d), sqrt(6/d))
        self.eta = config.eta
        self.lam = config.lam
        self.relu = nn.ReLU()

    def forward(self, u):
        A = self.weight                                                       # (h, d) = D^T
        eta, lam = self.eta, self.lam
        a1 = F.relu(eta * (u @ A.t()) - eta * lam)                            # (B, T, h) step 1 from 0
        r = u - a1 @ A                                                        # (B, T, d) u - D a1
        a2 = self.relu(a1 + eta * (r @ A.t()) - eta * lam)                    # (B, T, h) step 2: code
        return a2 @ A                                                         # (B, T, d) decode D a2


class Block(nn.Module):
    """x <- x + MSSA(LN1 x);  x <- D ISTA(LN2 x)   (no residual around ISTA)."""

    def __init__(self, config):
        super().__init__()
        self.prenorm_1 = nn.LayerNorm(config.n_embd, eps=config.ln_eps)
        self.attn = CausalSelfAttention(config)
        self.prenorm_2 = nn.LayerNorm(config.n_embd, eps=config.ln_eps)
        self.ista = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.prenorm_1(x))
        x = self.ista(self.prenorm_2(x))
        return x


class CRATE(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=config.ln_eps),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight                     # tied
        self.apply(_init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        # ISTA weights keep their kaiming_uniform_ init (bare Parameters, not touched by apply)

    def forward(self, idx, targets=None, full_logits=False):
        """idx: (B, T) int64. Returns (logits, loss): logits (B, T, V) if targets is given or
        full_logits, else (B, 1, V) for the last position; loss = mean CE, ignore_index -1."""
        B, T = idx.size()
        assert T <= self.config.block_size, f"T={T} > block_size={self.config.block_size}"
        pos = torch.arange(T, dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)             # (B, T, d)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None or full_logits:
            logits = self.lm_head(x)                                          # (B, T, V)
        else:
            logits = self.lm_head(x[:, [-1], :])                              # (B, 1, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                   ignore_index=-1)
        return logits, loss

    def get_num_params(self, non_embedding=True):
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n


# ----------------------------------------------------------------------------------------------
# GPT-2 baseline (spec 3.3): nanoGPT, ReLU MLP, bias=False everywhere, separate q, k, v

class GPTCausalSelfAttention(nn.Module):

    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.n_head = config.n_head
        self.use_sdpa = config.use_sdpa

    def forward(self, x):
        B, T, d = x.size()
        q, k, v = self.c_attn(x).split(d, dim=2)                             # 3 x (B, T, d)
        q = q.view(B, T, self.n_head, d // self.n_head).transpose(1, 2)       # (B, H, T, p)
        k = k.view(B, T, self.n_head, d // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, d // self.n_head).transpose(1, 2)
        y = causal_attention(q, k, v, self.use_sdpa)
        y = y.transpose(1, 2).contiguous().view(B, T, d)
        return self.c_proj(y)


class GPTMLP(nn.Module):

    def __init__(self, config):
        super().__init__()
        h = config.overcomplete * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, h, bias=False)
        self.relu = nn.ReLU()                                                 # "neurons"
        self.c_proj = nn.Linear(h, config.n_embd, bias=False)

    def forward(self, x):
        return self.c_proj(self.relu(self.c_fc(x)))


class GPTBlock(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=False, eps=config.ln_eps)
        self.attn = GPTCausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=False, eps=config.ln_eps)
        self.mlp = GPTMLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            h=nn.ModuleList([GPTBlock(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=False, eps=config.ln_eps),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight                     # tied
        self.apply(_init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    forward = CRATE.forward
    get_num_params = CRATE.get_num_params


def _init_weights(module):
    """nanoGPT init: Linear and Embedding weights N(0, 0.02^2), Linear biases 0 (LN: 1 / 0)."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)


def build_model(arch, config):
    return {"crate": CRATE, "gpt2": GPT}[arch](config)


def param_groups(model, weight_decay):
    """AdamW groups as in the authors' train.py: decay every parameter with >= 2 dims."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


# ----------------------------------------------------------------------------------------------
# spec Appendix A: deterministic fill and golden vector

def golden_param_order(model):
    """CRATE tensor names in Appendix A order (ordinal t = position in this list)."""
    names = ["transformer.wte.weight", "transformer.wpe.weight"]
    for i in range(model.config.n_layer):
        names += [f"transformer.h.{i}.{s}" for s in (
            "prenorm_1.weight", "prenorm_1.bias", "attn.c_attn.weight", "attn.c_proj.weight",
            "attn.c_proj.bias", "prenorm_2.weight", "prenorm_2.bias", "ista.weight")]
    names += ["transformer.ln_f.weight", "transformer.ln_f.bias"]
    return names


@torch.no_grad()
def golden_init(model):
    """Spec Appendix A fill: tensor t, row-major flat index k, g = sin(1.7 k + 0.3 t + 0.1);
    LN weights 1 + 0.1 g, biases 0.1 g, wte/wpe 0.5 g, c_attn/c_proj/ista weights 0.35 g.
    Computed in float64, then cast to the parameter dtype. lm_head is tied and gets no ordinal."""
    params = dict(model.named_parameters())
    names = golden_param_order(model)
    assert sorted(names) == sorted(params), "golden_init is defined for the CRATE model only"
    for t, name in enumerate(names):
        p = params[name]
        k = torch.arange(p.numel(), dtype=torch.float64)
        g = torch.sin(1.7 * k + 0.3 * t + 0.1)
        if name.endswith(".bias"):
            val = 0.1 * g
        elif "prenorm" in name or "ln_f" in name:
            val = 1.0 + 0.1 * g
        elif "wte" in name or "wpe" in name:
            val = 0.5 * g
        else:                                           # c_attn, c_proj, ista weights
            val = 0.35 * g
        p.copy_(val.view(p.shape).to(p.dtype))
    return model


GOLDEN = dict(
    config=dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8),
    idx=[1, 5, 2, 7, 3],
    targets=[5, 2, 7, 3, 0],
    logits4=[-2.167185, -2.404140, -0.293231, 2.104045, 2.446528, 0.399751, -2.037419, -2.484862,
             -0.505608, 1.967418, 2.519080],
    logits0=[1.896765, 2.697440, 0.863817, -1.813403, -2.719668, -0.969927, 1.727037, 2.737390,
             1.074430, -1.637810, -2.750578],
    loss=4.137583910916936,
    nnz=[14, 15, 16, 17, 17],
    sums=[2.353829, 1.544161, 3.274990, 2.911137, 2.629464],
    zero_frac=0.50625,
)


def golden_check(verbose=True):
    torch.set_default_dtype(torch.float64)
    model = CRATE(CrateConfig(**GOLDEN["config"])).double()
    golden_init(model)
    model.eval()
    codes = []
    h = model.transformer.h[0].ista.relu.register_forward_hook(lambda m, i, o: codes.append(o))
    idx = torch.tensor([GOLDEN["idx"]], dtype=torch.long)
    tgt = torch.tensor([GOLDEN["targets"]], dtype=torch.long)
    with torch.no_grad():
        logits, loss = model(idx, tgt)
    h.remove()
    a2 = codes[0][0]                                                          # (5, 32)
    got = dict(
        logits4=logits[0, 4].tolist(), logits0=logits[0, 0].tolist(), loss=loss.item(),
        nnz=(a2 > 0).sum(dim=1).tolist(), sums=a2.sum(dim=1).tolist(),
        zero_frac=(a2 == 0).double().mean().item())

    def maxerr(a, b):
        return max(abs(x - y) for x, y in zip(a, b))

    checks = [
        ("logits[4] (6 dp)", maxerr(got["logits4"], GOLDEN["logits4"]), 5.01e-7),
        ("logits[0] (6 dp)", maxerr(got["logits0"], GOLDEN["logits0"]), 5.01e-7),
        ("loss", abs(got["loss"] - GOLDEN["loss"]), 1e-13),
        ("a2 nnz per token", maxerr(got["nnz"], GOLDEN["nnz"]), 0),
        ("a2 sum per token (6 dp)", maxerr(got["sums"], GOLDEN["sums"]), 5.01e-7),
        ("a2 zero fraction", abs(got["zero_frac"] - GOLDEN["zero_frac"]), 1e-15),
    ]
    ok = True
    if verbose:
        print(f"torch {torch.__version__}, float64, spec Appendix A golden vector")
        print("logits[4] =", " ".join(f"{v:.6f}" for v in got["logits4"]))
        print("logits[0] =", " ".join(f"{v:.6f}" for v in got["logits0"]))
        print(f"loss      = {got['loss']!r}")
        print(f"layer-0 a2: nnz {got['nnz']}, sums", " ".join(f"{v:.6f}" for v in got["sums"]),
              f", zero fraction {got['zero_frac']!r}")
    for name, err, tol in checks:
        good = err <= tol
        ok &= good
        if verbose:
            print(f"  {'ok  ' if good else 'FAIL'} {name}: max |err| = {err:.3g} (tol {tol:g})")
    print("PASS" if ok else "FAIL")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--golden", action="store_true",
                    help="reproduce spec Appendix A (float64) and print PASS/FAIL (exit 1 on FAIL)")
    ap.add_argument("--params", action="store_true",
                    help="print parameter counts of the paper's configs (spec 5.2)")
    args = ap.parse_args()
    if args.params:
        for name, L, d, K in [("1L", 1, 128, 4), ("2L", 2, 128, 4), ("3L", 3, 128, 4),
                              ("S", 6, 768, 12), ("B", 12, 768, 12)]:
            cfg = CrateConfig(vocab_size=50304, block_size=1024, n_layer=L, n_head=K, n_embd=d)
            print(name, "CRATE", f"{CRATE(cfg).get_num_params():,}",
                  "GPT-2", f"{GPT(cfg).get_num_params():,}")
    if args.golden or not args.params:
        sys.exit(0 if golden_check() else 1)


if __name__ == "__main__":
    main()
