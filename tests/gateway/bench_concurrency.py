#!/usr/bin/env python3
"""Aggregate decode throughput of N concurrent streams vs one stream through the real server
(continuous batching).

Usage: bench_concurrency.py BASE_URL API_KEY [--max-tokens 64] [--levels 1,8] [--rounds 1]
                            [--client openai|raw]

Every stream is a streamed /v1/completions request (temperature 1, its own seed). Per
concurrency level it prints one JSON line with
  - tokens_per_second: all completion tokens / wall time from the first request to the last
    stream's end (prefill, time to first token and SSE included);
  - decode_tokens_per_second: the sum over streams of (completion tokens - 1) / (last chunk time
    - first chunk time), i.e. the aggregate rate while the streams decode (prefill excluded);
  - client_cpu_seconds: CPU time this Python process used (it shares the machine with the
    server: the openai SDK costs much more per chunk than --client raw, which reads the SSE lines
    with http.client and parses only the final usage chunk).
With --rounds R the levels run R times, interleaved, and a "ratio" line per round divides the
highest level by the lowest (same round).
"""
import argparse
import http.client
import json
import threading
import time
import urllib.parse

PROMPT = "Story {i}: Once upon a time, in a land far away,"


def model_id(base_url, key):
    u = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
    conn.request("GET", u.path.rstrip("/") + "/models", headers={"Authorization": f"Bearer {key}"})
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body["data"][0]["id"]


def stream_openai(base_url, key, model, i, max_tokens, out):
    import openai  # imported lazily: --client raw needs only the standard library

    c = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=600)
    chunks = c.completions.create(model=model, prompt=PROMPT.format(i=i), max_tokens=max_tokens,
                                  temperature=1.0, seed=i, stream=True,
                                  stream_options={"include_usage": True})
    first = last = None
    for ch in chunks:
        now = time.time()
        if ch.choices and ch.choices[0].text:
            first = first or now
            last = now
        if ch.usage:
            out["tokens"] = ch.usage.completion_tokens
    out["first"], out["last"] = first, last


def stream_raw(base_url, key, model, i, max_tokens, out):
    u = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=600)
    body = json.dumps({"model": model, "prompt": PROMPT.format(i=i), "max_tokens": max_tokens,
                       "temperature": 1.0, "seed": i, "stream": True,
                       "stream_options": {"include_usage": True}})
    conn.request("POST", u.path.rstrip("/") + "/completions", body=body,
                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:200]!r}")
    first = last = None
    for line in resp:
        if not line.startswith(b"data: {"):
            continue
        now = time.time()
        if b'"usage":{' in line:
            out["tokens"] = json.loads(line[6:])["usage"]["completion_tokens"]
        if b'"text":""' not in line and b'"choices":[]' not in line:
            first = first or now
            last = now
    conn.close()
    out["first"], out["last"] = first, last


def run(base_url, key, model, n, max_tokens, client):
    fn = stream_raw if client == "raw" else stream_openai
    outs = [{} for _ in range(n)]
    errors = []

    def one(i):
        try:
            fn(base_url, key, model, i, max_tokens, outs[i])
        except Exception as e:  # reported below; a failed stream invalidates the level
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    cpu0 = time.process_time()
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    if errors:
        raise SystemExit(f"bench_concurrency: {len(errors)} stream(s) failed: {errors[0]}")
    tokens = sum(o.get("tokens", 0) for o in outs)
    decode = 0.0
    for o in outs:
        if o.get("first") and o["last"] > o["first"] and o.get("tokens", 0) > 1:
            decode += (o["tokens"] - 1) / (o["last"] - o["first"])
    return {"streams": n, "client": client, "completion_tokens": tokens, "seconds": round(dt, 3),
            "tokens_per_second": round(tokens / dt, 1),
            "decode_tokens_per_second": round(decode, 1),
            "client_cpu_seconds": round(time.process_time() - cpu0, 3)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("base_url")
    ap.add_argument("api_key")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--levels", default="1,8")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--client", choices=["openai", "raw"], default="openai")
    a = ap.parse_args()
    model = model_id(a.base_url, a.api_key)
    levels = [int(x) for x in a.levels.split(",")]
    run(a.base_url, a.api_key, model, 1, 4, a.client)  # warm-up
    for r in range(a.rounds):
        res = {}
        for n in levels:
            res[n] = run(a.base_url, a.api_key, model, n, a.max_tokens, a.client)
            print(json.dumps(res[n]), flush=True)
        lo, hi = res[min(levels)], res[max(levels)]
        if lo["tokens_per_second"] > 0 and lo["decode_tokens_per_second"] > 0:
            print(json.dumps({"round": r, "ratio_total": round(hi["tokens_per_second"] / lo["tokens_per_second"], 2),
                              "ratio_decode": round(hi["decode_tokens_per_second"] / lo["decode_tokens_per_second"], 2)}),
                  flush=True)
