"""The official openai SDK against a real `tracemark serve`: chat and completions (streaming and
not), models, and the SDK exception classes for bad key, suspended, terminated, rate limit and
quota. max_tokens stays small to keep the suite fast."""
import http.client
import socket
import json
import sqlite3
import time

import openai
import pytest

MAX = 8


def test_models(client):
    models = client.models.list()
    assert len(models.data) == 1
    m = models.data[0]
    assert m.object == "model" and m.owned_by == "tracemark" and m.created > 0
    assert m.id.startswith("SmolLM2")


def test_chat_non_streaming(client, model_id):
    raw = client.chat.completions.with_raw_response.create(
        model=model_id, messages=[{"role": "user", "content": "Say hello."}], max_tokens=MAX)
    for h in ("limit-requests", "remaining-requests", "reset-requests", "limit-tokens", "remaining-tokens",
              "reset-tokens"):
        assert raw.headers.get("x-ratelimit-" + h) is not None, h
    r = raw.parse()
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    c = r.choices[0]
    assert c.message.role == "assistant"
    assert isinstance(c.message.content, str) and c.message.content
    assert c.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 5
    assert 0 < r.usage.completion_tokens <= MAX
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_streaming_with_usage(client, model_id):
    stream = client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "Count to five."}], max_tokens=MAX, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage.completion_tokens <= MAX
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals in (["stop"], ["length"])
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_streaming_without_usage(client, model_id):
    chunks = list(client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, stream=True))
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_completions(client, model_id):
    r = client.completions.create(model=model_id, prompt="The capital of France is", max_tokens=MAX,
                                  temperature=0.7, seed=3)
    assert r.object == "text_completion"
    assert r.choices[0].text
    assert r.usage.completion_tokens <= MAX
    chunks = list(client.completions.create(model=model_id, prompt="Once upon a time", max_tokens=MAX, stream=True,
                                            stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens <= MAX
    assert "".join(c.choices[0].text for c in chunks if c.choices)


def test_seed_makes_output_reproducible(client, model_id):
    kw = dict(model=model_id, prompt="Write a word:", max_tokens=6, temperature=1.0, seed=1234)
    assert client.completions.create(**kw).choices[0].text == client.completions.create(**kw).choices[0].text


def test_stop_strings(client, model_id):
    r = client.completions.create(model=model_id, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stop=[","])
    assert "," not in r.choices[0].text
    assert r.choices[0].finish_reason == "stop"


def test_bad_key_is_authentication_error(server, model_id):
    for key in ("tm-0000000000000000-" + "A" * 43, "sk-not-a-key"):
        with pytest.raises(openai.AuthenticationError) as e:
            server.client(key).chat.completions.create(
                model=model_id, messages=[{"role": "user", "content": "x"}], max_tokens=1)
        assert e.value.status_code == 401
        assert e.value.code == "invalid_api_key"


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}], max_tokens=1)
    assert e.value.code == "model_not_found"


def test_wrong_type_is_bad_request(client, model_id):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "x"}],
                                       max_tokens="five")
    assert e.value.code == "invalid_type" and e.value.param == "max_tokens"


def wait_until(fn, timeout=3.0):
    deadline = time.time() + timeout
    while True:
        try:
            return fn()
        except (AssertionError, openai.APIStatusError):
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def test_suspend_reinstate_terminate(server, model_id):
    acct = server.create_account("suspect")
    c = server.client(acct["api_key"])
    call = lambda: c.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "x"}], max_tokens=1)
    call()
    server.admin("suspend", acct["id"], "harvesting pattern")
    t0 = time.time()

    def suspended():
        try:
            call()
        except openai.PermissionDeniedError as e:
            assert e.status_code == 403 and e.code == "account_suspended"
            return
        raise AssertionError("still served")

    wait_until(suspended)
    assert time.time() - t0 < 1.5  # takes effect within the 500 ms refresh
    server.admin("reinstate", acct["id"], "cleared")
    wait_until(lambda: call())
    server.admin("terminate", acct["id"], "confirmed")

    def terminated():
        try:
            call()
        except openai.PermissionDeniedError as e:
            assert e.code == "account_deactivated"
            return
        raise AssertionError("still served")

    wait_until(terminated)


def test_rate_limit_is_rate_limit_error(server, model_id):
    acct = server.create_account("limited", "--rpm", "2")
    c = server.client(acct["api_key"])
    for _ in range(2):
        c.completions.create(model=model_id, prompt="a", max_tokens=1)
    with pytest.raises(openai.RateLimitError) as e:
        c.completions.create(model=model_id, prompt="a", max_tokens=1)
    assert e.value.code == "rate_limit_exceeded"
    assert e.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert e.value.response.headers["x-ratelimit-limit-requests"] == "2"


def test_quota_is_insufficient_quota(server, model_id):
    acct = server.create_account("quota", "--tokens-per-day", "1")
    c = server.client(acct["api_key"])
    c.completions.create(model=model_id, prompt="a", max_tokens=1)
    with pytest.raises(openai.RateLimitError) as e:
        c.completions.create(model=model_id, prompt="a", max_tokens=1)
    assert e.value.code == "insufficient_quota"


def raw_request(server, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data


def oversized_request(server, path, declared_length, headers):
    """Declares a body over the limit and sends none of it: the server must answer 413 from the
    Content-Length header alone. (Sending the body races the server's early close: the client
    then sees EPIPE or a reset instead of the answer, which made this test flaky.)"""
    head = "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n" % (path, declared_length)
    head += "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(head.encode())
        r = http.client.HTTPResponse(s)
        r.begin()
        return r.status, r.read()


def assert_openai_error(status, data, expected_status):
    assert status == expected_status, data
    j = json.loads(data)
    assert set(j) == {"error"} and set(j["error"]) == {"message", "type", "param", "code"}


def test_bad_input_gets_openai_errors_and_server_stays_up(server, account, model_id):
    auth = {"Authorization": "Bearer " + account["api_key"], "Content-Type": "application/json"}
    cases = [b"", b"{", b"[]", b'{"model":', b'{"model":"%s","messages":[{"role":"user","content":"\xff"}]}' % model_id.encode(),
             b'{"model":"%s","messages":[{"role":"user","content":"x"}],"temperature":"hot"}' % model_id.encode(),
             b'{"model":"%s","messages":' % model_id.encode() + b"[" * 100000 + b"]" * 100000 + b"}",
             b'{"model":"%s","prompt":"%s"}' % (model_id.encode(), b"word " * 1000)]
    for body in cases[:-1]:
        status, _, data = raw_request(server, "POST", "/v1/chat/completions", body, auth)
        assert_openai_error(status, data, 400)
    # Longer than the context: completions endpoint.
    status, _, data = raw_request(server, "POST", "/v1/completions", cases[-1], auth)
    assert_openai_error(status, data, 400)
    assert json.loads(data)["error"]["code"] == "context_length_exceeded"
    status, data = oversized_request(server, "/v1/chat/completions", 2 << 20, auth)
    assert_openai_error(status, data, 413)
    status, _, data = raw_request(server, "GET", "/v1/nothing", b"", auth)
    assert_openai_error(status, data, 404)
    status, _, data = raw_request(server, "POST", "/v1/chat/completions", b"{}", {})
    assert_openai_error(status, data, 401)
    status, _, data = raw_request(server, "GET", "/v1/models", b"", {"X-Big": "a" * 40000})
    assert_openai_error(status, data, 431)
    assert raw_request(server, "GET", "/healthz")[0] == 200


def test_metrics(server, client, model_id):
    client.completions.create(model=model_id, prompt="a", max_tokens=1)
    status, headers, data = raw_request(server, "GET", "/metrics")
    assert status == 200
    text = data.decode()
    for name in ("tracemark_decode_steps_total", "tracemark_http_requests_total", "tracemark_usage_records_committed_total"):
        assert f"\n{name} " in "\n" + text


def test_usage_is_metered_once_per_request(server, model_id):
    acct = server.create_account("metered")
    c = server.client(acct["api_key"])
    ids = []
    for i in range(3):
        r = c.completions.create(model=model_id, prompt=f"Item {i}:", max_tokens=3)
        ids.append(r.id)
    ids.append(c.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "x"}], max_tokens=2).id)

    def check():
        db = sqlite3.connect(server.db[len("sqlite:"):])
        rows = db.execute("SELECT request_id, key_id, prompt_tokens, completion_tokens, wm_scheme, wm_key_version "
                          "FROM usage WHERE account_id = ?", (str(acct["id"]),)).fetchall()
        db.close()
        assert sorted(r[0] for r in rows) == sorted(ids)
        for r in rows:
            assert r[1] == acct["key_id"] and r[2] > 0 and 0 < r[3] <= 3
            assert r[4] and r[5] >= 1  # watermark scheme and key version recorded (temperature 1)
    wait_until(check, timeout=5)
    assert server.show(acct["id"])["usage"]["requests"] == 4


def test_audit_log_verifies_and_detects_tampering(server, tmp_path):
    from conftest import run_cli
    acct = server.create_account("audited")
    server.admin("suspend", acct["id"], "evidence 1")
    server.admin("reinstate", acct["id"], "appeal granted")
    ok = run_cli("audit", "verify", "--db", server.db, "--keyring", str(server.keyring))
    report = json.loads(ok.stdout)
    assert report["ok"] and report["public_key_pinned"] and report["entries"] >= 4
    # Tamper with a copy of the database: alter one entry.
    import shutil
    src = server.db[len("sqlite:"):]
    copy = tmp_path / "tampered.db"
    sqlite3.connect(src).execute("PRAGMA wal_checkpoint(FULL)").close()
    shutil.copy(src, copy)
    db = sqlite3.connect(copy)
    db.execute("UPDATE audit_log SET body = replace(body, 'appeal granted', 'nothing here') WHERE body LIKE '%appeal granted%'")
    db.commit()
    db.close()
    bad = run_cli("audit", "verify", "--db", f"sqlite:{copy}", "--keyring", str(server.keyring), check=False)
    assert bad.returncode == 1
    assert not json.loads(bad.stdout)["ok"]
    # Delete an entry instead.
    shutil.copy(src, copy)
    db = sqlite3.connect(copy)
    db.execute("DELETE FROM audit_log WHERE idx = 1")
    db.commit()
    db.close()
    bad = run_cli("audit", "verify", "--db", f"sqlite:{copy}", "--keyring", str(server.keyring), check=False)
    assert bad.returncode == 1


def test_output_is_watermarked_for_the_calling_account(server, model_id, tmp_path):
    """End to end: an account's API output, run through `tracemark detect`, is watermarked and
    attributed to that account."""
    from conftest import MODEL, run_cli
    if "detect" not in run_cli("--help").stdout:
        pytest.skip("this build has no `tracemark detect`")
    acct = server.create_account("watermarked")
    c = server.client(acct["api_key"])
    texts = []
    for i in range(2):
        r = c.completions.create(model=model_id, prompt=f"Essay {i}. The history of the sea, in detail:",
                                 max_tokens=200, temperature=1.0)
        texts.append(r.choices[0].text)
    path = tmp_path / "out.txt"
    path.write_text("\n".join(texts))
    p = run_cli("detect", "--keyring", str(server.keyring), "--model", str(MODEL), str(path), "--json")
    j = json.loads(p.stdout)
    assert j["watermarked"], j
    assert j["account"] == acct["id"], j


def test_committed_bad_input_suite_against_the_server(server, model_id):
    """>= 300 committed bad requests (tools/gen_bad_requests.py): every one gets its 4xx in
    OpenAI's shape, nothing is metered, the server stays up."""
    import base64
    from pathlib import Path
    acct = server.create_account("fuzzed", "--rpm", "100000")
    auth = {"Authorization": "Bearer " + acct["api_key"], "Content-Type": "application/json"}
    cases = [json.loads(l) for l in (Path(__file__).parents[1] / "data/serve/bad_requests.jsonl").read_text().splitlines()]
    assert len(cases) >= 300
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    for c in cases:
        body = base64.b64decode(c["body_b64"]).replace(b"MODEL", model_id.encode())
        path = "/v1/chat/completions" if c["endpoint"] == "chat" else "/v1/completions"
        try:
            conn.request("POST", path, body=body, headers=auth)
            r = conn.getresponse()
        except (ConnectionError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            conn.request("POST", path, body=body, headers=auth)
            r = conn.getresponse()
        data = r.read()
        assert r.status == c["status"], (c["name"], data)
        j = json.loads(data)
        assert set(j) == {"error"} and set(j["error"]) == {"message", "type", "param", "code"}, c["name"]
        if c["code"]:
            assert j["error"]["code"] == c["code"], (c["name"], j)
        if r.getheader("connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.close()
    assert raw_request(server, "GET", "/healthz")[0] == 200
    time.sleep(0.5)
    assert server.show(acct["id"])["usage"]["requests"] == 0


def test_slowloris_connection_is_dropped_at_the_header_deadline(server):
    """A client that never finishes its header is disconnected after kHeaderTimeoutSeconds (10 s)."""
    import socket
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    s.settimeout(20)
    t0 = time.time()
    try:
        data = s.recv(1)
    except ConnectionResetError:
        data = b""
    elapsed = time.time() - t0
    s.close()
    assert data == b"" and 8 < elapsed < 13, elapsed
    assert raw_request(server, "GET", "/healthz")[0] == 200


def test_revoked_and_rotated_keys(server, model_id):
    from conftest import run_cli
    acct = server.create_account("rotating")
    new = json.loads(run_cli("accounts", "rotate-key", str(acct["id"]), "--db", server.db, "--keyring",
                             str(server.keyring)).stdout)
    old_c, new_c = server.client(acct["api_key"]), server.client(new["api_key"])
    call = lambda c: c.completions.create(model=model_id, prompt="a", max_tokens=1)
    call(old_c)
    call(new_c)
    run_cli("accounts", "revoke-key", acct["key_id"], "--db", server.db, "--keyring", str(server.keyring),
            "--reason", "rotated")

    def old_rejected():
        try:
            call(old_c)
        except openai.AuthenticationError as e:
            assert e.code == "invalid_api_key"
            return
        raise AssertionError("revoked key still works")

    wait_until(old_rejected)
    call(new_c)


def test_admin_api(server, model_id):
    h = {"Authorization": "Bearer " + server.admin_token, "Content-Type": "application/json"}
    status, _, data = raw_request(server, "POST", "/admin/v1/accounts",
                                  json.dumps({"name": "via-admin", "limits": {"requests_per_minute": 50}}).encode(), h)
    assert status == 201, data
    acct = json.loads(data)
    assert acct["limits"]["requests_per_minute"] == 50 and acct["api_key"].startswith("tm-")
    c = server.client(acct["api_key"])
    c.completions.create(model=model_id, prompt="a", max_tokens=1)
    status, _, data = raw_request(server, "POST", f"/admin/v1/accounts/{acct['id']}/suspend",
                                  json.dumps({"reason": "admin test"}).encode(), h)
    assert status == 200 and json.loads(data)["state"] == "suspended"
    with pytest.raises(openai.PermissionDeniedError):  # immediate: the admin API refreshes the cache
        c.completions.create(model=model_id, prompt="a", max_tokens=1)
    # Suspended -> active is not an allowed transition.
    status, _, data = raw_request(server, "POST", f"/admin/v1/accounts/{acct['id']}/activate", b"{}", h)
    assert_openai_error(status, data, 400)
    # Wrong token, API keys and no token are refused.
    for bad in ({"Authorization": "Bearer wrong"}, {"Authorization": "Bearer " + acct["api_key"]}, {}):
        status, _, data = raw_request(server, "GET", "/admin/v1/accounts", b"", bad)
        assert_openai_error(status, data, 401)


def test_n_choices_non_streaming(server, client, model_id):
    # n independent samples: usage counts every choice, each choice is its own watermarked sample.
    r = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Name a color."}],
                                       max_tokens=MAX, n=3, temperature=1.0, seed=77)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.message.role == "assistant" and c.message.content for c in r.choices)
    assert all(c.finish_reason in ("stop", "length") for c in r.choices)
    assert r.usage.completion_tokens <= 3 * MAX and r.usage.completion_tokens >= 3
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    # Same seed, same n: the same three samples (choice i uses seed + i).
    again = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Name a color."}],
                                           max_tokens=MAX, n=3, temperature=1.0, seed=77)
    assert [c.message.content for c in again.choices] == [c.message.content for c in r.choices]
    one = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Name a color."}],
                                         max_tokens=MAX, temperature=1.0, seed=77)
    assert one.choices[0].message.content == r.choices[0].message.content
    c = client.completions.create(model=model_id, prompt="Once upon a time", max_tokens=MAX, n=2, seed=5)
    assert [x.index for x in c.choices] == [0, 1] and all(x.text for x in c.choices)
    # One metering record per request, with the tokens of all choices.
    rows = sqlite3.connect(str(server.tmp / "ledger.db"))
    deadline = time.time() + 10
    while time.time() < deadline:
        got = rows.execute("SELECT completion_tokens FROM usage WHERE request_id = ?", (r.id,)).fetchall()
        if got:
            break
        time.sleep(0.2)
    # The journal may not have reached the database yet; when it has, the count is exact.
    if got:
        assert got[0][0] == r.usage.completion_tokens


def test_n_choices_streaming(client, model_id):
    chunks = list(client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "Count to three."}], max_tokens=MAX, n=2,
        stream=True, stream_options={"include_usage": True}))
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage.completion_tokens <= 2 * MAX
    roles = [c.choices[0].index for c in chunks if c.choices and c.choices[0].delta.role == "assistant"]
    assert sorted(roles) == [0, 1]
    texts = {0: "", 1: ""}
    finals = {}
    for c in chunks:
        for ch in c.choices:
            texts[ch.index] += ch.delta.content or ""
            if ch.finish_reason:
                finals[ch.index] = ch.finish_reason
    assert texts[0] and texts[1]
    assert set(finals) == {0, 1}


def test_n_above_the_limit_is_bad_request(client, model_id):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "x"}], max_tokens=2, n=17)
