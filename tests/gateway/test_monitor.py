"""The distillation monitor wired into `tracemark serve`: with `--monitor suspend
--monitor-interval-s 1` a harvesting-like client (templated "step by step" / rubric prompts, swept
temperatures, many small requests) is suspended by the monitor and then gets 403
account_suspended, while a benign chat client in the same run is not; the audit log holds the
monitor's entry whose evidence JSON hashes to its evidence_sha256. The volume thresholds are
lowered through the documented --monitor-volume-tokens options so that a few hundred completion
tokens are enough (defaults unchanged)."""
import hashlib
import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from conftest import MODEL, Server, run_cli

MAX = 4
HARVEST_REQUESTS = 36
BENIGN_REQUESTS = 24
SUSPEND_WAIT_S = 15

HARVEST_TEMPLATES = [
    "Solve the following problem step by step and explain your reasoning. {}",
    "Here is a question and a candidate answer. Grade this answer with a rubric from 1 to 10. {}",
    "Imagine and write out step by step the internal reasoning behind the following completed response. {}",
]
PAYLOADS = ["apples cost 3 each, how much for 7", "a train leaves at 9 and travels 120 km", "prime numbers below 50",
            "the derivative of x squared", "why the sky is blue", "area of a circle of radius 4",
            "boiling point of water at altitude", "sorting a list of integers", "compound interest over 5 years"]

BENIGN_TOPICS = ["my garden tomatoes", "a birthday party for my niece", "learning to play guitar",
                 "a weekend trip to the coast", "what to cook tonight", "my cat sleeping all day",
                 "a good science fiction novel", "repainting the kitchen"]


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    if not MODEL.exists():
        pytest.skip(f"model missing: {MODEL}")
    s = Server(tmp_path_factory.mktemp("monitor"),
               extra=["--monitor", "suspend", "--monitor-interval-s", "1", "--monitor-min-requests", "20",
                      "--monitor-volume-tokens", "80", "--monitor-stream-volume-tokens", "60"]).start()
    yield s
    s.stop()


def admin_get(server, path):
    req = urllib.request.Request(server.base_url + path, headers={"Authorization": "Bearer " + server.admin_token})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_monitor_suspends_harvester_not_benign(monitored):
    harvester = monitored.create_account("harvester", "--rpm", "10000", "--tpm", "10000000")
    benign = monitored.create_account("benign", "--rpm", "10000", "--tpm", "10000000", "--org", "benign-co")
    assert monitored.show(benign["id"])["org"] == "benign-co"
    hc = monitored.client(harvester["api_key"])
    bc = monitored.client(benign["api_key"])
    model = hc.models.list().data[0].id
    t0 = time.time()

    def harvest(i):
        prompt = HARVEST_TEMPLATES[i % len(HARVEST_TEMPLATES)].format(PAYLOADS[i % len(PAYLOADS)] + f" case {i}")
        try:
            hc.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}], max_tokens=MAX,
                                       temperature=round(0.3 + 0.04 * i, 2), top_p=1.0)
            return "ok"
        except openai.PermissionDeniedError:
            return "403"

    def chat(i):
        topic = BENIGN_TOPICS[i % len(BENIGN_TOPICS)]
        messages = [{"role": "user", "content": f"Hi! Tell me something nice about {topic}."},
                    {"role": "assistant", "content": "Sure, happy to help with that."},
                    {"role": "user", "content": f"Thanks. Any quick tip about {topic}? (#{i})"}]
        bc.chat.completions.create(model=model, messages=messages, max_tokens=MAX, temperature=0.7)
        return "ok"

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(harvest, i) for i in range(HARVEST_REQUESTS)]
        futures += [pool.submit(chat, i) for i in range(BENIGN_REQUESTS)]
        results = [f.result() for f in futures]
    assert results[HARVEST_REQUESTS:] == ["ok"] * BENIGN_REQUESTS

    # The monitor evaluates every second; the harvester is suspended and refused from then on.
    deadline = time.time() + SUSPEND_WAIT_S
    err = None
    while time.time() < deadline:
        try:
            hc.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}], max_tokens=MAX)
        except openai.PermissionDeniedError as e:
            err = e
            break
        time.sleep(0.5)
    assert err is not None, "harvester was not suspended; see " + str(monitored.log)
    assert err.status_code == 403
    assert err.body["code"] == "account_suspended"
    assert monitored.show(harvester["id"])["state"] == "suspended"

    # The benign client in the same run keeps being served.
    r = bc.chat.completions.create(model=model, messages=[{"role": "user", "content": "What is a good tea?"}],
                                   max_tokens=MAX)
    assert r.choices[0].message.content is not None
    assert monitored.show(benign["id"])["state"] == "active"

    # The monitor's view through the admin API.
    hv = admin_get(monitored, f"/admin/v1/monitor/accounts/{harvester['id']}")
    bv = admin_get(monitored, f"/admin/v1/monitor/accounts/{benign['id']}")
    assert hv["mode"] == "suspend" and hv["score"] >= 0.65 and hv["level"] == "suspend"
    assert bv["score"] < 0.35 and bv["level"] == "none"
    assert hv["signals"]["requests"] > 20

    # The audit log: the monitor's suspension with evidence whose SHA-256 is recorded.
    rows = [json.loads(l) for l in run_cli("audit", "list", "--db", monitored.db).stdout.splitlines() if l.strip()]
    mine = [r for r in rows if r.get("actor") == "monitor"]
    assert mine, rows
    entry = mine[-1]
    assert str(entry["target"]) == str(harvester["id"])
    assert entry["action"] == "account.suspended"
    evidence = entry["reason"].split("; evidence ", 1)[1]
    assert hashlib.sha256(evidence.encode()).hexdigest() == entry["evidence_sha256"]
    ev = json.loads(evidence)
    assert ev["level"] == "suspend" and ev["signals"]["elicitation_share"] > 0.5
    assert not [r for r in mine if str(r["target"]) == str(benign["id"])]
    run_cli("audit", "verify", "--db", monitored.db, "--keyring", str(monitored.keyring))
    assert time.time() - t0 < 60


def test_admin_reinstate_resets_monitor(monitored):
    """After the suspension above, an admin reinstate clears the monitor's counters."""
    rows = [json.loads(l) for l in run_cli("audit", "list", "--db", monitored.db).stdout.splitlines() if l.strip()]
    suspended = [r for r in rows if r.get("actor") == "monitor" and r.get("action") == "account.suspended"]
    if not suspended:
        pytest.skip("needs the suspension from test_monitor_suspends_harvester_not_benign")
    account_id = str(suspended[-1]["target"])
    req = urllib.request.Request(monitored.base_url + f"/admin/v1/accounts/{account_id}/reinstate",
                                 data=json.dumps({"reason": "reviewed"}).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + monitored.admin_token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert json.loads(r.read())["state"] == "reinstated"
    v = admin_get(monitored, f"/admin/v1/monitor/accounts/{account_id}")
    assert v["score"] == 0 and v["signals"]["requests"] == 0
