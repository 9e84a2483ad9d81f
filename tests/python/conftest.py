"""Shared fixtures: the default model, a committed test keyring, the CLI binary, and a small
JSONL corpus of human text with documents generated under two accounts' watermarks."""

import json
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
ACCOUNTS = (4242, 77)

HUMAN = [
    "The committee met on Tuesday to review the budget for the coming year. After a long "
    "discussion about road repairs and the library's opening hours, the members agreed to "
    "postpone the vote until the auditors had finished their report on last year's spending.",
    "My grandmother kept bees behind the orchard. Every August we would help her lift the "
    "frames, slow and careful, while the smoke drifted over the grass and the dog hid under "
    "the porch.",
    "Trains to the coast run every hour on weekdays; on Sundays the first one leaves at nine. "
    "Bicycles travel free in the last carriage if there is room.",
    "Contact [EMAIL] or call <PHONE> to reschedule; the clinic closes early on Fridays.",
]


@pytest.fixture(scope="session")
def model():
    if not os.path.exists(MODEL):
        pytest.skip(f"{MODEL} missing (scripts/setup.sh fetches it)")
    return MODEL


@pytest.fixture(scope="session")
def tracemark_bin():
    path = os.environ.get("TRACEMARK_BIN") or shutil.which("tracemark")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("the tracemark CLI is needed to compare with (set TRACEMARK_BIN)")
    return path


@pytest.fixture(scope="session")
def keyring(tmp_path_factory):
    path = tmp_path_factory.mktemp("ring") / "test.keyring"
    shutil.copy(os.path.join(ROOT, "tests", "data", "cli", "test.keyring"), path)
    os.chmod(path, 0o600)
    return str(path)


def run_cli(bin_path, *args, stdin=None):
    r = subprocess.run([bin_path, *args], input=stdin, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{args}: exit {r.returncode}: {r.stderr}"
    return r.stdout


@pytest.fixture(scope="session")
def marked_texts(tracemark_bin, model, keyring):
    """{account: [texts]}: two generations per account, fixed seeds (deterministic)."""
    out = {}
    for account in ACCOUNTS:
        out[account] = []
        for seed in (1, 2):
            j = json.loads(run_cli(
                tracemark_bin, "generate", "--model", model, "--chat", "--keyring", keyring,
                "--account", str(account), "--seed", str(seed), "--temperature", "1",
                "--max-tokens", "160", "--json", "--prompt",
                "Write a short story about a lighthouse keeper and a storm."))
            out[account].append(j["text"])
    return out


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, marked_texts):
    """A JSONL file: 40 human documents with the 4 marked ones planted; ids doc-0 .. doc-43."""
    docs = []
    marked = [t for account in ACCOUNTS for t in marked_texts[account]]
    for i in range(44):
        text = marked[(i - 5) // 10] if i % 10 == 5 and (i - 5) // 10 < len(marked) else HUMAN[i % 4]
        docs.append({"id": f"doc-{i}", "text": text})
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return str(path), docs


@pytest.fixture(scope="session")
def cli_scan(tmp_path_factory, tracemark_bin, model, keyring, corpus):
    """`tracemark scan` on the corpus: (rows by doc_id, summary)."""
    out = tmp_path_factory.mktemp("cli_scan") / "out"
    run_cli(tracemark_bin, "scan", "--keyring", keyring, "--model", model, corpus[0],
            "--out", str(out), "--threads", "2", "--quiet")
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    return {r["doc_id"]: r for r in rows}, summary, out
