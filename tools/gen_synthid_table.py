#!/usr/bin/env python3
"""Exports Hugging Face's SynthID-Text sampling table as a packed-bit asset.

Run with /work/oracle/bin/python (torch on CPU):
    tools/gen_synthid_table.py [--seed 0 ...]

transformers' SynthIDTextWatermarkLogitsProcessor builds its g-value table as
    torch.randint(0, 2, (sampling_table_size,), generator=torch.Generator(device).manual_seed(seed))
(generation/logits_process.py, SynthIDTextWatermarkLogitsProcessor.__init__; defaults
sampling_table_size = 2**16, sampling_table_seed = 0 in configuration_utils.py). The CPU and CUDA
generators give different tables, so we export the CPU one once and ship it: 65,536 bits = 8 KiB.

Layout of assets/watermark/synthid_sampling_table_<seed>.bin: entry i is bit (i % 8) of byte
(i // 8), least significant bit first. The script builds the table through HF's own processor
class (so it is the table HF uses, not a re-derivation) and prints the file's SHA-256, which
src/watermark/synthid_hf.cc pins.
"""
import argparse
import hashlib
import os

import numpy as np
import torch
from transformers.generation.logits_process import SynthIDTextWatermarkLogitsProcessor

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "..", "assets", "watermark")
TABLE_SIZE = 2 ** 16


def table_bits(seed: int) -> np.ndarray:
    proc = SynthIDTextWatermarkLogitsProcessor(
        ngram_len=5, keys=[1], sampling_table_size=TABLE_SIZE, sampling_table_seed=seed,
        context_history_size=1024, device=torch.device("cpu"))
    table = proc.sampling_table.cpu().numpy().astype(np.uint8)
    # The same thing spelled out, to catch a change in how HF seeds its generator.
    direct = torch.randint(0, 2, (TABLE_SIZE,), generator=torch.Generator(device="cpu").manual_seed(seed))
    assert np.array_equal(table, direct.numpy().astype(np.uint8))
    assert set(np.unique(table).tolist()) <= {0, 1}
    return table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, action="append", help="table seeds (default: 0 and 1)")
    args = ap.parse_args()
    os.makedirs(OUT_DIR, exist_ok=True)
    for seed in args.seed or [0, 1]:
        bits = table_bits(seed)
        packed = np.packbits(bits, bitorder="little").tobytes()
        assert len(packed) == TABLE_SIZE // 8
        path = os.path.join(OUT_DIR, f"synthid_sampling_table_{seed}.bin")
        with open(path, "wb") as f:
            f.write(packed)
        digest = hashlib.sha256(packed).hexdigest()
        print(f"seed {seed}: {path} ones={int(bits.sum())}/{TABLE_SIZE} sha256={digest}")


if __name__ == "__main__":
    main()
