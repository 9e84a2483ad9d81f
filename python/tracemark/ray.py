"""Scan a Ray Dataset for watermarked documents (Parquet, JSONL, anything Ray reads).

    import ray, tracemark.ray
    ds = ray.data.read_json("corpus/")            # or read_parquet, from_items, ...
    rows = tracemark.ray.scan_dataset(ds, keyring="keyring", model="model.gguf", concurrency=4)
    rows.write_json("out/")                         # flagged rows, the fields of `tracemark scan`

`ScannerActor` loads the keyring and the model's tokenizer once per worker (Ray builds one per
actor) and scores whole batches in C++ with the GIL released. Each output row has the fields of
a `tracemark scan` results.jsonl row (doc_id, file, line, offset, tokens_scored, p_value,
log10_p_value, account, account_p_value, key_version, scheme, spans) plus `flagged` and, when
the scorer failed on a document, `error`. doc_id is the record's id column (as text, like the
CLI) when it has one, else FILE:LINE when both are known, else null.

Locations: Ray's readers know the source file (`include_paths=True` adds a `path` column) but
not the line. `file` is that column when present; `line` (1-based) and `offset` (byte offset of
the line) come from `line`/`offset` columns when the dataset has them, else null.
`read_jsonl_located(paths)` reads JSONL files (one read task per file, whole file in memory)
into rows that carry all three exactly as `tracemark scan` reports them. The corpus-level pooled
test needs the shard protocol (`tracemark scan`, or `tracemark.Scanner.scan_shard` per Ray task)
and is not computed here.
"""

import json

import pyarrow as pa

from . import Scanner

# The output schema: fixed, so that batches with and without spans or accounts concatenate.
SPAN_TYPE = pa.struct([
    ("token_begin", pa.uint64()),
    ("token_end", pa.uint64()),
    ("byte_begin", pa.uint64()),
    ("byte_end", pa.uint64()),
    ("log10_p", pa.float64()),
])
ROW_SCHEMA = pa.schema([
    ("doc_id", pa.string()),
    ("file", pa.string()),
    ("line", pa.uint64()),
    ("offset", pa.uint64()),
    ("tokens_scored", pa.int64()),
    ("p_value", pa.float64()),
    ("log10_p_value", pa.float64()),
    ("account", pa.uint64()),
    ("account_p_value", pa.float64()),
    ("key_version", pa.int64()),
    ("scheme", pa.string()),
    ("spans", pa.list_(SPAN_TYPE)),
    ("flagged", pa.bool_()),
    ("error", pa.string()),
])


def _doc_id(value):
    """The CLI's doc_id for a record's `id`: a string as is, a number as written."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _column(table, name, n):
    """The values of column `name`, or n Nones when the table has no such column."""
    if name and name in table.column_names:
        return table.column(name).to_pylist()
    return [None] * n


def _located_rows(item, text_column, id_column):
    """read_binary_files row {path, bytes} -> one row per JSONL record with the CLI's locators:
    line (1-based; blank and bad lines count) and offset (byte offset of the line)."""
    path, data = item["path"], item["bytes"]
    rows = []
    offset = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        start = offset
        offset += len(raw) + 1
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the CLI reports it as an error row (bad_json); it is not scored
        if not isinstance(record, dict):
            continue
        text = record.get(text_column)
        rows.append({id_column: _doc_id(record.get(id_column)),
                     text_column: text if isinstance(text, str) else None,
                     "path": path, "line": number, "offset": start})
    return rows


def read_jsonl_located(paths, text_column="text", id_column="id", **read_args):
    """A Dataset of the JSONL records in `paths` (file, folder or list; uncompressed): columns
    `id_column` (as text, like the CLI's doc_id), `text_column` (null unless a string), `path`,
    `line` and `offset`, so ScannerActor rows carry file/line/offset exactly like the CLI's.
    One read task per file (the whole file is held in memory)."""
    import ray
    ds = ray.data.read_binary_files(paths, include_paths=True, **read_args)
    return ds.flat_map(_located_rows, fn_kwargs=dict(text_column=text_column, id_column=id_column))


class ScannerActor:
    """A Ray Data callable class: builds a tracemark Scanner once, then scores batches.

    Use with ``ds.map_batches(ScannerActor, fn_constructor_kwargs={...}, concurrency=N,
    batch_format="pyarrow")`` (``"pandas"`` works too: the output follows the input format).
    """

    def __init__(self, keyring, model, text_column="text", id_column="id", threshold=1e-6,
                 threads=1, mask_placeholders=True, flagged_only=False, path_column="path",
                 line_column="line", offset_column="offset"):
        self._scanner = Scanner(keyring, model, threshold=threshold,
                                mask_placeholders=mask_placeholders, threads=threads)
        self._text_column = text_column
        self._id_column = id_column
        self._flagged_only = flagged_only
        self._locators = (path_column, line_column, offset_column)

    def __call__(self, batch):
        is_pandas = not isinstance(batch, pa.Table)
        table = pa.Table.from_pandas(batch, preserve_index=False) if is_pandas else batch
        if self._text_column not in table.column_names:
            raise ValueError(f"the dataset has no {self._text_column!r} column "
                             f"(columns: {table.column_names})")
        texts = table.column(self._text_column).to_pylist()
        ids = _column(table, self._id_column, len(texts))
        files, lines, offsets = (_column(table, c, len(texts)) for c in self._locators)
        # Records without text (null, not a string) are skipped, like the CLI's missing_field.
        keep = [i for i, t in enumerate(texts) if isinstance(t, str)]
        scored = self._scanner.scan_batch([texts[i] for i in keep])
        rows = []
        for i, row in zip(keep, scored):
            if self._flagged_only and not row["flagged"]:
                continue
            row["doc_id"] = _doc_id(ids[i])
            row["file"] = None if files[i] is None else str(files[i])
            row["line"] = None if lines[i] is None else int(lines[i])
            row["offset"] = None if offsets[i] is None else int(offsets[i])
            if row["doc_id"] is None and row["file"] is not None and row["line"] is not None:
                row["doc_id"] = f"{row['file']}:{row['line']}"
            row.setdefault("error", None)
            rows.append(row)
        out = pa.Table.from_pylist(rows, schema=ROW_SCHEMA)
        if not is_pandas:
            return out
        # Nullable integers stay exact (a plain pandas column would turn them into floats).
        import pandas as pd
        ints = {pa.uint64(): pd.UInt64Dtype(), pa.int64(): pd.Int64Dtype()}
        return out.to_pandas(types_mapper=ints.get)


def scan_dataset(ds, keyring, model, text_column="text", id_column="id", threshold=1e-6,
                 concurrency=1, threads_per_actor=1, batch_size=256, flagged_only=True,
                 batch_format="pyarrow", num_cpus=None):
    """Maps `ds` through ScannerActor; returns a Dataset of scan rows (flagged ones by default)."""
    return ds.map_batches(
        ScannerActor,
        fn_constructor_kwargs=dict(keyring=keyring, model=model, text_column=text_column,
                                   id_column=id_column, threshold=threshold,
                                   threads=threads_per_actor, flagged_only=flagged_only),
        concurrency=concurrency,
        batch_size=batch_size,
        batch_format=batch_format,
        num_cpus=num_cpus if num_cpus is not None else threads_per_actor,
    )
