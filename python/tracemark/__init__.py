"""tracemark: detect per-account LLM output watermarks and scan corpora for them.

The heavy lifting is the C++ core (``tracemark._tracemark``); every call that scores text
releases the GIL. See docs/python.md.

    import tracemark
    ring = tracemark.Keyring.load("keyring")
    tok = tracemark.Tokenizer.from_gguf("models/SmolLM2-135M-Instruct.Q4_1.gguf")
    tracemark.Detector(ring, tok).detect("some text")        # the `tracemark detect --json` dict
    scanner = tracemark.Scanner("keyring", "model.gguf", threads=4)
    scanner.scan_batch(["text one", "text two"])              # one dict per text
    scanner.scan_shard(["corpus/*.jsonl.zst"], "out", rank=0, world_size=8)
"""

from ._tracemark import Detector, Keyring, Scanner, Tokenizer

__all__ = ["Detector", "Keyring", "Scanner", "Tokenizer", "scan_batch", "scan_shard"]
__version__ = "0.2.0"


def scan_batch(texts, keyring, model, threshold=1e-6, threads=1, mask_placeholders=True):
    """Scores `texts` with a one-off Scanner (build a Scanner to reuse the loaded model)."""
    return Scanner(keyring, model, threshold=threshold, mask_placeholders=mask_placeholders,
                   threads=threads).scan_batch(list(texts))


def scan_shard(paths, out, keyring, model, rank=0, world_size=1, threads=1, threshold=1e-6,
               field="text", format="auto", whole_file=False, all_roles=False,
               mask_placeholders=True):
    """One shard of `tracemark scan` (same outputs, byte for byte); see docs/formats/scan.md."""
    if isinstance(paths, str):
        paths = [paths]
    scanner = Scanner(keyring, model, threshold=threshold, mask_placeholders=mask_placeholders,
                      threads=threads)
    return scanner.scan_shard(list(paths), out, rank=rank, world_size=world_size, field=field,
                              format=format, whole_file=whole_file, all_roles=all_roles)
