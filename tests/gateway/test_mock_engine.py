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
