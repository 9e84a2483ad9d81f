#!/usr/bin/env python3
"""Aggregate decode throughput of N concurrent streams vs one stream through the real server
(continuous batching). Usage: bench_concurrency.py BASE_URL API_KEY [--max-tokens 64]
Prints one JSON line per concurrency level: streams, completion tokens, seconds, tokens/s."""
import argparse
import json
import threading
import time

import openai


def run(base_url, key, n, max_tokens):
    model = openai.OpenAI(base_url=base_url, api_key=key).models.list().data[0].id
    totals = []

    def one(i):
        c = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=600)
        chunks = c.completions.create(model=model, prompt=f"Story {i}: Once upon a time, in a land far away,",
                                      max_tokens=max_tokens, temperature=1.0, seed=i, stream=True,
                                      stream_options={"include_usage": True})
        for ch in chunks:
            if ch.usage:
                totals.append(ch.usage.completion_tokens)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    return {"streams": n, "completion_tokens": sum(totals), "seconds": round(dt, 3),
            "tokens_per_second": round(sum(totals) / dt, 1)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("base_url")
    ap.add_argument("api_key")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--levels", default="1,8")
    a = ap.parse_args()
    run(a.base_url, a.api_key, 1, 4)  # warm-up
    for n in [int(x) for x in a.levels.split(",")]:
        print(json.dumps(run(a.base_url, a.api_key, n, a.max_tokens)), flush=True)
