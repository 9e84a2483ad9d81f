#!/usr/bin/env python3
"""Test vectors for tracemark's Hugging Face-compatible SynthID-Text mode (synthid-hf).

Run with /work/oracle/bin/python (transformers + torch on CPU):
    tools/gen_synthid_vectors.py
Writes tests/data/watermark/synthid_hf/vectors.json.gz, read by src/watermark/synthid_hf_test.cc.

Everything comes from transformers' own SynthIDTextWatermarkLogitsProcessor on CPU:
  - g-values per (position, layer) of whole sequences (compute_g_values), as layer bitmasks;
  - the context-repetition mask (compute_context_repetition_mask) and the EOS mask
    (compute_eos_token_mask) HF's SynthIDTextWatermarkDetector combines;
  - g-values per (context, candidate, layer) for a slice of the vocabulary (_compute_keys +
    sample_g_values, the path __call__ takes at generation time), with the context hash;
  - the watermarked log-probabilities __call__ returns for given scores over a small vocabulary,
    step by step, including its own repeated-context skipping state.
The mean and weighted-mean scores are the formulas of google-deepmind/synthid-text
detector_mean.py (mean of unmasked g-values; weights linspace(10, 1, depth) normalised to sum to
depth), evaluated here in float64 on HF's g-values and combined mask.
"""
import gzip
import json
import os

import numpy as np
import torch
from transformers.generation.logits_process import SynthIDTextWatermarkLogitsProcessor

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "watermark", "synthid_hf", "vectors.json.gz")

rng = np.random.default_rng(20261127)


def int64_keys(n):
    # Full-range signed 64-bit keys (negative ones included).
    return [int(x) for x in rng.integers(-(2 ** 63), 2 ** 63 - 1, size=n, dtype=np.int64)]


CONFIGS = [
    # name, keys, ngram_len, table seed, context history, vocab for random tokens, eos id
    dict(name="default30_n5_seed0", keys=int64_keys(30), ngram_len=5, seed=0, history=1024,
         vocab=49152, eos=2),
    dict(name="hfdoc9_n3_seed0", keys=[654, 400, 836, 123, 340, 443, 597, 160, 57], ngram_len=3,
         seed=0, history=1024, vocab=49152, eos=0),
    dict(name="large4_n2_seed1_hist8", keys=int64_keys(4), ngram_len=2, seed=1, history=8,
         vocab=262144, eos=1),
]

SEQ_LEN = 160
SAMPLING_VOCAB = 256
SAMPLING_STEPS = 20
CANDIDATE_CONTEXTS = 3
CANDIDATES = 300


def make_sequences(vocab, eos):
    seqs = []
    # 1: uniform random ids.
    seqs.append(rng.integers(0, vocab, size=SEQ_LEN))
    # 2: few distinct ids, so contexts repeat (exercises the repetition mask and the ring).
    seqs.append(rng.integers(0, 6, size=SEQ_LEN) + 3)
    # 3: random ids with a copied block and an EOS near the end.
    s = rng.integers(0, vocab, size=SEQ_LEN)
    s[90:130] = s[10:50]
    s[140] = eos
    seqs.append(s)
    return [np.asarray(x, dtype=np.int64) for x in seqs]


def mean_scores(g, mask):
    # g: [T, depth] 0/1, mask: [T] 0/1.
    depth = g.shape[1]
    unmasked = mask.sum()
    mean = float((g * mask[:, None]).sum() / (depth * unmasked)) if unmasked else None
    w = np.linspace(10.0, 1.0, depth)
    w = w * (depth / w.sum())
    weighted = float(((g * w[None, :]) * mask[:, None]).sum() / (depth * unmasked)) if unmasked else None
    return mean, weighted


def bits_to_int(row):
    v = 0
    for layer, b in enumerate(row):
        if b:
            v |= 1 << layer
    return v


def sampling_scores(step):
    v = np.arange(SAMPLING_VOCAB, dtype=np.float64)
    s = ((v * 7919 + step * 104729) % 1000) / 100.0 - 5.0
    s[(np.arange(SAMPLING_VOCAB) + step) % 7 == 0] = -np.inf  # truncated candidates
    return s.astype(np.float32)


def run_config(cfg):
    proc = SynthIDTextWatermarkLogitsProcessor(
        ngram_len=cfg["ngram_len"], keys=cfg["keys"], sampling_table_size=2 ** 16,
        sampling_table_seed=cfg["seed"], context_history_size=cfg["history"],
        device=torch.device("cpu"))
    n = cfg["ngram_len"]
    out = dict(name=cfg["name"], keys=[str(k) for k in cfg["keys"]], ngram_len=n,
               table_seed=cfg["seed"], context_history=cfg["history"], eos=cfg["eos"])

    seqs = []
    for s in make_sequences(cfg["vocab"], cfg["eos"]):
        ids = torch.tensor(s[None, :], dtype=torch.int64)
        g = proc.compute_g_values(ids)[0].numpy().astype(np.int64)           # [T-n+1, depth]
        rep = proc.compute_context_repetition_mask(ids)[0].numpy().astype(np.int64)
        eos = proc.compute_eos_token_mask(ids, cfg["eos"])[0].numpy().astype(np.int64)
        combined = rep * eos[n - 1:]
        mean, weighted = mean_scores(g.astype(np.float64), combined.astype(np.float64))
        seqs.append(dict(tokens=[int(x) for x in s],
                         g=[str(bits_to_int(row)) for row in g],
                         rep_mask="".join(str(int(x)) for x in rep),
                         eos_mask="".join(str(int(x)) for x in eos),
                         mean=mean, weighted_mean=weighted))
    out["sequences"] = seqs

    cands = []
    ids = np.concatenate([np.arange(CANDIDATES - 20), rng.integers(0, cfg["vocab"], size=20)])
    for _ in range(CANDIDATE_CONTEXTS):
        ctx = rng.integers(0, cfg["vocab"], size=n - 1)
        keys, ctx_hash = proc._compute_keys(torch.tensor(ctx[None, :], dtype=torch.int64),
                                            torch.tensor(ids[None, :], dtype=torch.int64))
        g = proc.sample_g_values(keys)[0].numpy()
        cands.append(dict(context=[int(x) for x in ctx], context_hash=str(int(ctx_hash[0])),
                          ids=[int(x) for x in ids], g=[str(bits_to_int(row)) for row in g]))
    out["candidates"] = cands

    # Generation: the processor's __call__ step by step on fixed scores; tokens fed back so that
    # contexts repeat (steps 12.. replay steps 0..).
    fed = list(rng.integers(0, SAMPLING_VOCAB, size=12))
    fed = fed + fed[:SAMPLING_STEPS - 12]
    prompt = [5, 6, 7]
    steps = []
    seq = list(prompt)
    for step in range(SAMPLING_STEPS):
        scores = torch.tensor(sampling_scores(step)[None, :])
        res = proc(torch.tensor([seq], dtype=torch.int64), scores.clone())[0]
        repeated = bool(torch.equal(res, scores[0]))
        probs = torch.exp(res.double()).numpy()
        steps.append(dict(repeated=repeated, probs=[float(f"{p:.9g}") for p in probs]))
        seq.append(int(fed[step]))
    out["sampling"] = dict(vocab=SAMPLING_VOCAB, prompt=prompt,
                           fed=[int(x) for x in fed[:SAMPLING_STEPS]], steps=steps)
    return out


def main():
    data = dict(generator="tools/gen_synthid_vectors.py",
                transformers=__import__("transformers").__version__, torch=torch.__version__,
                configs=[run_config(c) for c in CONFIGS])
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    raw = json.dumps(data, separators=(",", ":")).encode()
    with gzip.GzipFile(OUT, "wb", mtime=0) as f:
        f.write(raw)
    print(f"{OUT}: {len(raw)} bytes json, {os.path.getsize(OUT)} bytes gz")


if __name__ == "__main__":
    main()
