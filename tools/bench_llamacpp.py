#!/usr/bin/env python3
"""llama.cpp speed on the same GGUF, measured like bench/engine_bench.cc (llama-cpp-python).

Prefill: one eval() of N random tokens; decode: eval() of one token at a time from an empty
context, taking llama.cpp's argmax each step (forward passes only are timed). Prints one JSON
object. Run with the oracle venv: /work/oracle/bin/python tools/bench_llamacpp.py --model GGUF
"""

import argparse
import json
import random
import statistics
import time

import numpy as np
from llama_cpp import Llama


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prefill", type=int, default=512)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    n_ctx = args.prefill + args.decode + 16
    llm = Llama(model_path=args.model, n_ctx=n_ctx, n_batch=max(args.prefill, 1), n_ubatch=max(args.prefill, 1),
                n_threads=args.threads, n_threads_batch=args.threads, logits_all=False, verbose=False)
    vocab = llm.n_vocab()
    rng = random.Random(1234)
    llm.eval([1])  # warm-up
    pp, tg = [], []
    for _ in range(args.reps):
        toks = [rng.randrange(vocab) for _ in range(args.prefill)]
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(toks)
        pp.append(args.prefill / (time.perf_counter() - t0))
        llm.reset()
        tok = 1
        spent = 0.0
        for _ in range(args.decode):
            t0 = time.perf_counter()
            llm.eval([tok])
            spent += time.perf_counter() - t0
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        tg.append(args.decode / spent)
    print(json.dumps({"impl": "llama.cpp", "model": args.model, "threads": args.threads,
                      "prefill_tokens": args.prefill, "prefill_tok_s": round(statistics.median(pp), 2),
                      "decode_tokens": args.decode, "decode_tok_s": round(statistics.median(tg), 2)}))


if __name__ == "__main__":
    main()
