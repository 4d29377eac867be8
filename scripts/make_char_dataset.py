#!/usr/bin/env python3
"""Make a nanoGPT character-level dataset from a text file, exactly as nanoGPT's
data/shakespeare_char/prepare.py does (without its download): the sorted set of the text's
characters is the vocabulary, ids are uint16, the first 90% of the characters are train.bin and the
rest val.bin, and meta.pkl is pickle.dump({'vocab_size', 'itos', 'stoi'}) with Python's default
protocol.

  python3 scripts/make_char_dataset.py INPUT.txt OUT_DIR

crate-ts reads OUT_DIR with `crate-ts train --data OUT_DIR`: meta.pkl makes the tokenizer `char`,
and the vocabulary is recorded in the checkpoint.
"""
import os
import pickle
import sys

import numpy as np


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    with open(src, "r") as f:
        data = f.read()
    chars = sorted(list(set(data)))
    vocab_size = len(chars)
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = {i: ch for i, ch in enumerate(chars)}
    n = len(data)
    train_ids = np.array([stoi[c] for c in data[:int(n * 0.9)]], dtype=np.uint16)
    val_ids = np.array([stoi[c] for c in data[int(n * 0.9):]], dtype=np.uint16)
    os.makedirs(out, exist_ok=True)
    train_ids.tofile(os.path.join(out, "train.bin"))
    val_ids.tofile(os.path.join(out, "val.bin"))
    meta = {"vocab_size": vocab_size, "itos": itos, "stoi": stoi}
    with open(os.path.join(out, "meta.pkl"), "wb") as f:
        pickle.dump(meta, f)
    print(f"{out}: vocab {vocab_size}, train {len(train_ids):,} tokens, val {len(val_ids):,} tokens")


if __name__ == "__main__":
    main()
