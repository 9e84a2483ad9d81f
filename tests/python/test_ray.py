"""tracemark.ray on a local Ray cluster (ray.init(num_cpus=2)): a Ray Dataset read from JSONL
or Parquet, scanned with map_batches and the ScannerActor class, flags the same documents as
`tracemark scan` on the same data, with the same p-values, accounts and spans."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray")
import tracemark.ray  # noqa: E402
from conftest import run_cli  # noqa: E402

FIELDS = ("tokens_scored", "p_value", "log10_p_value", "account", "account_p_value",
          "key_version", "scheme", "spans")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False, ignore_reinit_error=True)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield
    ray.shutdown()


def check_equal(rows, rows_cli):
    by_id = {r["doc_id"]: r for r in rows}
    assert len(by_id) == len(rows)
    assert set(by_id) == set(rows_cli)
    for doc_id, r in by_id.items():
        for k in FIELDS:
            assert r[k] == rows_cli[doc_id][k], (doc_id, k, r[k], rows_cli[doc_id][k])
        assert r["flagged"] and r["error"] is None


def test_ray_jsonl_equals_cli(local_ray, keyring, model, corpus, cli_scan):
    rows_cli, _, _ = cli_scan
    ds = ray.data.read_json(corpus[0])
    # Two actors of half a CPU each: the read tasks need the other CPU of the 2-CPU cluster
    # (actors holding every CPU would starve them).
    out = tracemark.ray.scan_dataset(ds, keyring=keyring, model=model, concurrency=2,
                                     batch_size=8, num_cpus=0.5)
    rows = out.take_all()
    check_equal(rows, rows_cli)
    assert all(r["account"] is None or isinstance(r["account"], int) for r in rows)
    assert any(r["account"] is not None for r in rows)


def test_ray_parquet_pandas_equals_cli(local_ray, keyring, model, corpus, cli_scan, tmp_path):
    rows_cli, _, _ = cli_scan
    table = pa.Table.from_pylist(corpus[1])
    for i in range(2):
        pq.write_table(table.slice(i * 22, 22), tmp_path / f"part-{i}.parquet")
    ds = ray.data.read_parquet(str(tmp_path))
    out = ds.map_batches(
        tracemark.ray.ScannerActor,
        fn_constructor_kwargs=dict(keyring=keyring, model=model, flagged_only=False),
        concurrency=1, batch_size=16, batch_format="pandas")
    rows = out.take_all()
    assert len(rows) == len(corpus[1])
    flagged = [r for r in rows if r["flagged"]]
    # The pandas batches carry account as a nullable UInt64 column (exact; <NA> = null).
    import pandas as pd
    for r in flagged:
        r["account"] = None if pd.isna(r["account"]) else int(r["account"])
        r["spans"] = [dict(s) for s in r["spans"]]
    check_equal(flagged, rows_cli)


def test_ray_rows_carry_file_line_offset(local_ray, keyring, model, corpus, cli_scan, tmp_path,
                                        tracemark_bin):
    """read_jsonl_located + ScannerActor: file, line and offset equal the CLI's; without ids the
    doc_id falls back to FILE:LINE like the CLI's. A plain read_json(include_paths=True) gives
    the file only."""
    rows_cli, _, _ = cli_scan
    ds = tracemark.ray.read_jsonl_located(corpus[0])
    rows = tracemark.ray.scan_dataset(ds, keyring=keyring, model=model, concurrency=1,
                                      batch_size=8, num_cpus=0.5).take_all()
    check_equal(rows, rows_cli)
    for r in rows:
        cli = rows_cli[r["doc_id"]]
        assert (r["file"], r["line"], r["offset"]) == (cli["file"], cli["line"], cli["offset"])

    # The same corpus without ids, with a blank line: doc_id = FILE:LINE on both sides.
    no_ids = tmp_path / "no_ids.jsonl"
    no_ids.write_text("\n" + "".join(json.dumps({"text": d["text"]}) + "\n" for d in corpus[1]))
    out = tmp_path / "cli"
    run_cli(tracemark_bin, "scan", "--keyring", keyring, "--model", model, str(no_ids), "--out",
            str(out), "--threads", "2", "--quiet")
    cli_rows = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        cli_rows[r["doc_id"]] = r
    assert cli_rows and all(k.startswith(str(no_ids) + ":") for k in cli_rows)
    rows = tracemark.ray.scan_dataset(tracemark.ray.read_jsonl_located(str(no_ids)),
                                      keyring=keyring, model=model, concurrency=1, batch_size=8,
                                      num_cpus=0.5).take_all()
    assert {r["doc_id"]: (r["line"], r["offset"]) for r in rows} == \
        {k: (r["line"], r["offset"]) for k, r in cli_rows.items()}

    plain = ray.data.read_json(corpus[0], include_paths=True)
    rows = tracemark.ray.scan_dataset(plain, keyring=keyring, model=model, concurrency=1,
                                      batch_size=8, num_cpus=0.5).take_all()
    assert {r["doc_id"] for r in rows} == set(rows_cli)
    assert all(r["file"] and r["file"].endswith("corpus.jsonl") and r["line"] is None for r in rows)
