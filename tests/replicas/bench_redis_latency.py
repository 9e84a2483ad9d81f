"""Added latency of the shared (Redis) rate-limit path, measured end to end: two replicas on one
throwaway PostgreSQL ledger, one with --redis and one without, each sent the same sequential
requests. Not part of ctest (timings are not assertions); run it by hand:

    .venv-test/bin/python tests/replicas/bench_redis_latency.py [TRACEMARK_BIN] [N]

Three paths per replica: 429 (auth, parse, tokenize, admission; no generation), an admitted
1-token completion, and GET /v1/models (no admission: the baseline of the HTTP path)."""
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_two_replicas as t  # noqa: E402


def percentiles(xs):
    xs = sorted(xs)
    return statistics.median(xs) * 1000, xs[int(len(xs) * 0.99)] * 1000


def main():
    import os
    import openai
    if len(sys.argv) > 1:
        os.environ["TRACEMARK_BIN"] = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    with tempfile.TemporaryDirectory() as d:
        c = t.Cluster(Path(d))
        try:
            c.db = t.start_backing_server("pg", c.pg_dir)
            c.redis = t.start_backing_server("redis", c.redis_dir)
            t.run_cli("keyring", "init", str(c.keyring))
            c.token_file.write_text(t.ADMIN_TOKEN + "\n")
            shared = t.Replica("redis", c.tmp, c.keyring, c.db, c.redis, c.token_file).start()
            local = t.Replica("local", c.tmp, c.keyring, c.db, None, c.token_file).start()
            c.replicas = [shared, local]
            model = None
            for r in (shared, local):
                acct_429 = t.new_account(c, f"bench429-{r.name}", rpm=1, via=0)
                acct_ok = t.new_account(c, f"benchok-{r.name}", via=0)
                c429, cok = r.client(acct_429["api_key"]), r.client(acct_ok["api_key"])
                model = model or cok.models.list().data[0].id
                t.chat(c429, model)  # takes the only request of the minute
                for _ in range(20):  # warm-up
                    cok.models.list()
                lat = {"429": [], "admitted": [], "models": []}
                for _ in range(n):
                    t0 = time.perf_counter()
                    try:
                        t.chat(c429, model)
                    except openai.RateLimitError:
                        pass
                    lat["429"].append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    t.chat(cok, model)
                    lat["admitted"].append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    cok.models.list()
                    lat["models"].append(time.perf_counter() - t0)
                print(f"{r.name:6s} " + "  ".join(
                    f"{k}: p50 {percentiles(v)[0]:.2f} ms p99 {percentiles(v)[1]:.2f} ms" for k, v in lat.items()))
        finally:
            c.stop()


if __name__ == "__main__":
    main()
