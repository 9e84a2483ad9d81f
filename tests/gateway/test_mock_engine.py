"""`tracemark serve --engine mock` (no model file): the same API path with the fixed-latency fake
engine that bench/gateway drives. Checks the scripted reply, the per-token latency floor, n
choices, streaming, metering and that limits still apply."""
import time

import openai
import pytest

from conftest import Server

TOKEN_US = 2000
OUTPUT_TOKENS = 12


@pytest.fixture(scope="module")
def mock(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("mock"),
               extra=("--engine", "mock", "--mock-token-latency-us", str(TOKEN_US),
                      "--mock-output-tokens", str(OUTPUT_TOKENS))).start()
    yield s
    s.stop()


def test_mock_reply_latency_and_usage(mock):
    acct = mock.create_account("mock-user", "--rpm", "1000", "--tpm", "1000000")
    c = mock.client(acct["api_key"])
    assert [m.id for m in c.models.list().data] == ["mock"]
    t0 = time.monotonic()
    r = c.chat.completions.create(model="mock", messages=[{"role": "user", "content": "hi"}], max_tokens=64)
    elapsed = time.monotonic() - t0
    assert r.choices[0].message.content == "The quick br"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == OUTPUT_TOKENS
    assert elapsed >= OUTPUT_TOKENS * TOKEN_US / 1e6
    r = c.completions.create(model="mock", prompt="x", max_tokens=5, n=3)
    assert [x.text for x in r.choices] == ["The q"] * 3
    assert all(x.finish_reason == "length" for x in r.choices)
    assert r.usage.completion_tokens == 15
    chunks = list(c.chat.completions.create(model="mock", messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=64, stream=True, stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "The quick br"
    assert chunks[-1].usage.completion_tokens == OUTPUT_TOKENS


def test_mock_enforces_rate_limits(mock):
    acct = mock.create_account("mock-limited", "--rpm", "2", "--tpm", "1000000")
    c = mock.client(acct["api_key"])
    for _ in range(2):
        c.completions.create(model="mock", prompt="x", max_tokens=2)
    with pytest.raises(openai.RateLimitError):
        c.completions.create(model="mock", prompt="x", max_tokens=2)
    with pytest.raises(openai.AuthenticationError):
        mock.client("sk-wrong").completions.create(model="mock", prompt="x", max_tokens=2)


def test_mock_stop_text_held_back_is_sent_once(mock):
    # The reply ends in "br", a prefix of the stop string "brx": the stop matcher holds it back
    # and releases it with the final event. It used to be appended twice ("The quick brbr"), in
    # both the JSON reply and the SSE stream.
    acct = mock.create_account("mock-stop", "--rpm", "1000", "--tpm", "1000000")
    c = mock.client(acct["api_key"])
    msgs = [{"role": "user", "content": "hi"}]
    r = c.chat.completions.create(model="mock", messages=msgs, max_tokens=64, stop=["brx"])
    assert r.choices[0].message.content == "The quick br"
    r = c.completions.create(model="mock", prompt="x", max_tokens=64, stop=["brx"], n=2)
    assert [x.text for x in r.choices] == ["The quick br"] * 2
    chunks = list(c.chat.completions.create(model="mock", messages=msgs, max_tokens=64, stop=["brx"], stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "The quick br"
    assert chunks[-1].choices[0].finish_reason == "stop"


RPM = 60000  # refills one request per ms: a 24 ms reply would refill the bucket to full
TPM = 1000000
MAX_TOKENS = 64


def check_headers_count_this_request(server, name):
    """The first request of a fresh account reports the limits after it was counted (OpenAI's
    rule): one request and prompt + max_tokens tokens taken, not the bucket refilled since."""
    acct = server.create_account(name, "--rpm", str(RPM), "--tpm", str(TPM))
    c = server.client(acct["api_key"])
    raw = c.chat.completions.with_raw_response.create(
        model="mock", messages=[{"role": "user", "content": "hi"}], max_tokens=MAX_TOKENS)
    r = raw.parse()
    assert raw.headers["x-ratelimit-limit-requests"] == str(RPM)
    assert raw.headers["x-ratelimit-remaining-requests"] == str(RPM - 1)
    assert raw.headers["x-ratelimit-limit-tokens"] == str(TPM)
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(TPM - r.usage.prompt_tokens - MAX_TOKENS)
    # Streaming reports the same rule (its headers go out before generation).
    acct = server.create_account(name + "-stream", "--rpm", str(RPM), "--tpm", str(TPM))
    c = server.client(acct["api_key"])
    with c.chat.completions.with_streaming_response.create(
            model="mock", messages=[{"role": "user", "content": "hi"}], max_tokens=MAX_TOKENS, stream=True) as s:
        assert s.headers["x-ratelimit-remaining-requests"] == str(RPM - 1)
        assert s.headers["x-ratelimit-remaining-tokens"] == str(TPM - r.usage.prompt_tokens - MAX_TOKENS)


def test_rate_limit_headers_count_this_request(mock):
    check_headers_count_this_request(mock, "mock-headers")


@pytest.fixture(scope="module")
def mock_redis(tmp_path_factory):
    import shutil
    import subprocess
    from conftest import ROOT
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (scripts/setup.sh installs it)")
    tmp = tmp_path_factory.mktemp("mock-redis")
    script = str(ROOT / "tests" / "replicas" / "throwaway_servers.sh")
    url = subprocess.run([script, "redis-start", str(tmp / "redis")], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip().splitlines()[-1]
    s = Server(tmp, extra=("--engine", "mock", "--mock-token-latency-us", str(TOKEN_US),
                           "--mock-output-tokens", str(OUTPUT_TOKENS), "--redis", url)).start()
    yield s
    s.stop()
    subprocess.run([script, "redis-stop", str(tmp / "redis")], timeout=60)


def test_rate_limit_headers_count_this_request_redis(mock_redis):
    check_headers_count_this_request(mock_redis, "redis-headers")
