"""kill -9 under load: every request whose response the client saw complete (non-streaming 200,
or a stream that reached `data: [DONE]`) has exactly one usage record after a restart."""
import signal
import sqlite3
import threading
import time

import openai
import pytest

from conftest import MODEL, Server


@pytest.fixture()
def fresh_server(tmp_path):
    if not MODEL.exists():
        pytest.skip(f"model missing: {MODEL}")
    s = Server(tmp_path).start()
    yield s
    s.stop()


def test_kill_minus_nine_loses_no_acknowledged_record(fresh_server):
    s = fresh_server
    acct = s.create_account("load", "--rpm", "100000", "--tpm", "100000000")
    model = s.client(acct["api_key"]).models.list().data[0].id
    acked, lock, stop = [], threading.Lock(), threading.Event()

    def worker(i):
        c = s.client(acct["api_key"])
        n = 0
        while not stop.is_set():
            n += 1
            try:
                if (i + n) % 2:
                    r = c.completions.create(model=model, prompt=f"w{i} n{n}", max_tokens=4)
                    rid = r.id
                else:
                    rid, done = None, False
                    for chunk in c.completions.create(model=model, prompt=f"s{i} n{n}", max_tokens=4, stream=True):
                        rid = chunk.id
                    done = True  # the SDK returns only after data: [DONE]
                    if not done:
                        continue
                with lock:
                    acked.append(rid)
            except (openai.APIConnectionError, openai.APIStatusError):
                if stop.is_set():
                    return
                time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(4)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert len(acked) > 10, "no load reached the server"
    print(f"acknowledged before kill -9: {len(acked)}")
    # Restart: the journal is replayed into the ledger.
    s.start()
    deadline = time.time() + 10
    while True:
        db = sqlite3.connect(s.db[len("sqlite:"):])
        rows = db.execute("SELECT request_id FROM usage WHERE account_id = ?", (str(acct["id"]),)).fetchall()
        db.close()
        have = {r[0] for r in rows}
        missing = [a for a in acked if a not in have]
        if not missing or time.time() > deadline:
            break
        time.sleep(0.2)
    assert not missing, f"{len(missing)} acknowledged requests lost their usage record"
    assert len(rows) == len(have)  # request_id is unique: never two records
    assert len(set(acked)) == len(acked)
