"""Fixtures for the gateway suite: a real `tracemark serve` on the real default model, driven
with the official `openai` SDK. The binary comes from $TRACEMARK_BIN (set by ctest), else
build/tracemark. Tests skip when the model file is missing."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = Path(os.environ.get("TRACEMARK_MODEL", ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
STARTUP_TIMEOUT_S = 60


def tracemark_bin():
    b = os.environ.get("TRACEMARK_BIN") or str(ROOT / os.environ.get("TM_BUILD_DIR", "build") / "tracemark")
    if not Path(b).exists():
        pytest.skip(f"tracemark binary not found at {b}; build it or set TRACEMARK_BIN")
    return b


def run_cli(*args, check=True):
    p = subprocess.run([tracemark_bin(), *args], capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"tracemark {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


class Server:
    """One server process; restartable (same ledger, keyring and journal)."""

    def __init__(self, tmp: Path, extra=()):
        self.tmp = tmp
        self.keyring = tmp / "keyring"
        self.db = f"sqlite:{tmp / 'ledger.db'}"
        self.extra = list(extra)
        self.proc = None
        self.port = None
        self.log = tmp / "server.log"
        self.admin_token = "admin-token-for-tests-0123456789"
        self.admin_token_file = tmp / "admin-token"
        if not self.keyring.exists():
            run_cli("keyring", "init", str(self.keyring))
            self.admin_token_file.write_text(self.admin_token + "\n")

    def start(self):
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen(
            [tracemark_bin(), "serve", "--model", str(MODEL), "--keyring", str(self.keyring), "--db", self.db,
             "--host", "127.0.0.1", "--port", "0", "--slots", "8", "--slot-context", "512",
             "--admin-token-file", str(self.admin_token_file), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + STARTUP_TIMEOUT_S
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                if self.proc.poll() is not None:
                    raise AssertionError(f"server exited with {self.proc.returncode}")
                continue
            self.logf.write(line)
            m = re.search(r"listening on http://([\d.]+):(\d+)", line)
            if m:
                self.port = int(m.group(2))
                break
        else:
            raise AssertionError("server did not start")
        # Keep draining stderr so the server never blocks on a full pipe.
        import threading

        def drain(stream, out):
            for l in stream:
                out.write(l)
                out.flush()

        threading.Thread(target=drain, args=(self.proc.stderr, self.logf), daemon=True).start()
        return self

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def create_account(self, name, *limits):
        p = run_cli("accounts", "create", name, "--db", self.db, "--keyring", str(self.keyring), *limits)
        return json.loads(p.stdout)

    def admin(self, action, account_id, reason="test"):
        return run_cli("accounts", action, str(account_id), "--db", self.db, "--keyring", str(self.keyring),
                       "--reason", reason)

    def show(self, account_id):
        return json.loads(run_cli("accounts", "show", str(account_id), "--db", self.db).stdout)

    def client(self, api_key):
        import openai
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=api_key, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    if not MODEL.exists():
        pytest.skip(f"model missing: {MODEL}")
    s = Server(tmp_path_factory.mktemp("gateway")).start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def account(server):
    return server.create_account("main", "--rpm", "10000", "--tpm", "10000000")


@pytest.fixture(scope="session")
def client(server, account):
    return server.client(account["api_key"])


@pytest.fixture(scope="session")
def model_id(client):
    return client.models.list().data[0].id
