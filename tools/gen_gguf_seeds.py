#!/work/oracle/bin/python
"""Writes the GGUF fuzz seed corpus (fuzz/corpus/gguf/), every file under 4 KiB.

Seed files have no extension on purpose: the repository's .gitignore ignores *.gguf.

valid_* files come from the PyPI `gguf` package's GGUFWriter (an independent writer, so the
seeds also pin interoperability) plus a hand-built version-2 file; bad_* files are valid files
with one field corrupted. tm_gguf_corpus_test replays them on every build and checks that
valid_* parse and bad_* are rejected.

Usage: /work/oracle/bin/python tools/gen_gguf_seeds.py [--out fuzz/corpus/gguf]
"""
import argparse
import pathlib
import struct
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES

MAX_SEED_BYTES = 4096


def write_with_gguf_writer(path, build, alignment=None):
    w = gguf.GGUFWriter(str(path), arch="llama")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def raw_blocks(qtype, n_blocks, rng):
    _, type_size = GGML_QUANT_SIZES[qtype]
    b = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint32).astype(np.uint8)
    off = {Q.Q6_K: 208}.get(qtype, 0)
    b[:, off:off + 2] = np.frombuffer(np.float16(0.5).tobytes(), dtype=np.uint8)  # finite d
    return b


def small_model(w):
    rng = np.random.default_rng(7)
    w.add_block_count(1)
    w.add_embedding_length(32)
    w.add_name("seed")
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["<s>", "</s>", "a", "b"])
    w.add_token_types([3, 3, 1, 1])
    w.add_token_scores([0.0, 0.0, -1.0, -2.0])
    w.add_array("test.nested", [[1, 2], [3]])
    w.add_uint64("test.u64", 1 << 40)
    w.add_int8("test.i8", -3)
    w.add_float64("test.f64", 0.5)
    w.add_tensor("norm.weight", rng.standard_normal(32).astype(np.float32))
    w.add_tensor("f16.weight", rng.standard_normal((2, 32)).astype(np.float16))
    for name, qtype, rows in [("q8.weight", Q.Q8_0, 2), ("q4.weight", Q.Q4_0, 1), ("q41.weight", Q.Q4_1, 1),
                              ("q50.weight", Q.Q5_0, 1), ("q51.weight", Q.Q5_1, 1)]:
        blocks = raw_blocks(qtype, rows, rng)
        w.add_tensor(name, blocks, raw_dtype=qtype)  # byte shape (rows, type_size)


def kquants(w):
    rng = np.random.default_rng(8)
    w.add_block_count(1)
    for name, qtype in [("q4k.weight", Q.Q4_K), ("q5k.weight", Q.Q5_K), ("q6k.weight", Q.Q6_K)]:
        w.add_tensor(name, raw_blocks(qtype, 1, rng), raw_dtype=qtype)
    w.add_tensor("bf16.weight", raw_blocks(Q.BF16, 16, rng).reshape(1, 32), raw_dtype=Q.BF16)


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def hand_built_v2():
    """Version 2 header (u64 counts, as v3), one u32 key, one F32 tensor [4]."""
    out = b"GGUF" + struct.pack("<IQQ", 2, 1, 1)
    out += gguf_string("general.architecture") + struct.pack("<I", 8) + gguf_string("llama")
    out += gguf_string("w") + struct.pack("<I", 1) + struct.pack("<Q", 4) + struct.pack("<IQ", 0, 0)
    out += b"\0" * (-len(out) % 32)
    return out + struct.pack("<4f", 1, 2, 3, 4)


def header_only(tensor_count, kv_count, kv=b"", version=3):
    return b"GGUF" + struct.pack("<IQQ", version, tensor_count, kv_count) + kv


def tensor_file(name, dims, type_id, offset, data_bytes=64, extra_kv=b"", n_kv=0):
    out = b"GGUF" + struct.pack("<IQQ", 3, 1, n_kv) + extra_kv
    out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
    out += struct.pack("<IQ", type_id, offset)
    out += b"\0" * (-len(out) % 32)
    return out + b"\x11" * data_bytes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="fuzz/corpus/gguf")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = pathlib.Path(tmp)
        seeds["valid_small_llama"] = write_with_gguf_writer(t / "a", small_model)
        seeds["valid_kquants_align64"] = write_with_gguf_writer(t / "b", kquants, alignment=64)
    small = seeds["valid_small_llama"]
    seeds["valid_v2"] = hand_built_v2()
    seeds["valid_header_only"] = header_only(0, 0)
    kv_u32 = gguf_string("general.alignment") + struct.pack("<II", 4, 3)
    seeds.update({
        "bad_magic": b"GGML" + small[4:],
        "bad_version1": small[:4] + struct.pack("<I", 1) + small[8:],
        "bad_big_endian": small[:4] + struct.pack(">I", 3) + small[8:],
        "bad_truncated_half": small[: len(small) // 2],
        "bad_truncated_data": small[:-33],  # GGUFWriter pads the end: cut into the last tensor
        "bad_huge_string": header_only(0, 1, gguf_string("k") + struct.pack("<IQ", 8, 1 << 62)),
        "bad_huge_array": header_only(0, 1, gguf_string("k") + struct.pack("<IIQ", 9, 8, 1 << 40)),
        "bad_nested_too_deep": header_only(
            0, 1, gguf_string("k") + struct.pack("<IIQIQIQI", 9, 9, 1, 9, 1, 4, 1, 7)),
        "bad_unknown_value_type": header_only(0, 1, gguf_string("k") + struct.pack("<II", 13, 0)),
        "bad_bool_value": header_only(0, 1, gguf_string("k") + struct.pack("<IB", 7, 2)),
        "bad_duplicate_key": header_only(0, 2, (gguf_string("k") + struct.pack("<II", 4, 1)) * 2),
        "bad_alignment_3": tensor_file("w", [4], 0, 0, extra_kv=kv_u32, n_kv=1),
        "bad_ndims5": tensor_file("w", [1, 1, 1, 1, 1], 0, 0),
        "bad_zero_dim": tensor_file("w", [4, 0], 0, 0),
        "bad_dim_overflow": tensor_file("w", [1 << 32, 1 << 32, 4], 0, 0),
        "bad_unknown_tensor_type": tensor_file("w", [32], 99, 0),
        "bad_block_multiple": tensor_file("w", [33], 2, 0),
        "bad_misaligned_offset": tensor_file("w", [4], 0, 4),
        "bad_data_past_eof": tensor_file("w", [64], 0, 0, data_bytes=16),
        "bad_duplicate_tensor": (lambda one: b"GGUF" + struct.pack("<IQQ", 3, 2, 0) + one + one
                                      + b"\0" * (-(24 + 2 * len(one)) % 32) + b"\0" * 64)(
            gguf_string("w") + struct.pack("<IQIQ", 1, 4, 0, 0)),
    })
    for old in out.iterdir():
        if old.is_file():
            old.unlink()
    for name, data in sorted(seeds.items()):
        assert len(data) < MAX_SEED_BYTES, (name, len(data))
        (out / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
