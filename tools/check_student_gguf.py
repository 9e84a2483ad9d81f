#!/usr/bin/env python3
"""Opens a student GGUF written by `tracemark redteam train-student` with the gguf Python reader
(gguf-py, the reference implementation of the format) and checks what llama.cpp-style loaders
need: llama architecture keys, every tensor present with the expected shape and F32 type, the
tokenizer copied from the teacher (same tokens, token types, merges and special ids).
Not run in CI (needs the oracle venv):  /work/oracle/bin/python tools/check_student_gguf.py STUDENT.gguf TEACHER.gguf
"""
import sys

import gguf
import numpy as np


def field(r, key):
    f = r.fields[key]
    if f.types and f.types[0] == gguf.GGUFValueType.STRING and len(f.types) == 1:
        return bytes(f.parts[f.data[0]]).decode()
    if f.types and f.types[0] == gguf.GGUFValueType.ARRAY:
        return [f.parts[i].tolist() if not isinstance(f.parts[i], memoryview) else bytes(f.parts[i]) for i in f.data]
    return f.parts[f.data[0]].tolist()[0]


def main(student_path, teacher_path):
    s = gguf.GGUFReader(student_path)
    t = gguf.GGUFReader(teacher_path)
    assert field(s, "general.architecture") == "llama"
    d = field(s, "llama.embedding_length")
    layers = field(s, "llama.block_count")
    ff = field(s, "llama.feed_forward_length")
    tensors = {x.name: x for x in s.tensors}
    n_vocab = len(s.fields["tokenizer.ggml.tokens"].data)
    expect = {"token_embd.weight": (d, n_vocab), "output_norm.weight": (d,)}
    for i in range(layers):
        p = f"blk.{i}."
        expect.update({p + "attn_norm.weight": (d,), p + "ffn_norm.weight": (d,),
                       p + "attn_q.weight": (d, d), p + "attn_k.weight": (d, d), p + "attn_v.weight": (d, d),
                       p + "attn_output.weight": (d, d), p + "ffn_gate.weight": (d, ff),
                       p + "ffn_up.weight": (d, ff), p + "ffn_down.weight": (ff, d)})
    assert set(tensors) == set(expect), sorted(set(tensors) ^ set(expect))
    for name, shape in expect.items():
        x = tensors[name]
        assert tuple(int(v) for v in x.shape) == shape, (name, x.shape, shape)
        assert x.tensor_type == gguf.GGMLQuantizationType.F32, name
        assert np.all(np.isfinite(x.data)), name
    copied = [k for k in t.fields if k.startswith("tokenizer.")]
    for k in copied:
        a, b = t.fields[k], s.fields.get(k)
        assert b is not None, f"{k} not copied"
        assert a.types == b.types, k
        assert len(a.data) == len(b.data), k
        for i, j in zip(a.data, b.data):
            assert bytes(a.parts[i]) == bytes(b.parts[j]), k
    print(f"ok: {student_path}: llama d={d} layers={layers} ff={ff} vocab={n_vocab}, "
          f"{len(tensors)} F32 tensors, {len(copied)} tokenizer keys identical to the teacher's")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
