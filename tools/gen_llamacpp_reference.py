#!/usr/bin/env python3
"""Teacher-forced top-1 reference from llama.cpp (llama-cpp-python) on a real GGUF model.

For each of 10 prompts: tokenize with llama.cpp, let it generate 64 tokens greedily, then evaluate
the whole sequence once with logits_all=True and record, for each of the 64 generated positions,
the top-1 id and the top-5 (id, logit) pairs that llama.cpp predicts from the true prefix. The C++
test (src/model/real_model_test.cc) feeds the same token ids to our engine and requires >= 99%
top-1 agreement.

  /work/oracle/bin/python tools/gen_llamacpp_reference.py models/SmolLM2-135M-Instruct.Q4_1.gguf \
      tests/data/engine/smollm2_top1.json --chat
  /work/oracle/bin/python tools/gen_llamacpp_reference.py models/gemma-3-270m-q4_k_m.gguf \
      tests/data/engine/gemma3_top1.json
"""

import argparse
import json
import os

import numpy as np
from llama_cpp import Llama

PROMPTS = [
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "Explain how a bicycle works in simple terms.",
    "List three healthy breakfast ideas.",
    "Why is the sky blue?",
    "Give me a tip for learning a new language.",
    "Describe a cat to someone who has never seen one.",
    "What are the benefits of regular exercise?",
    "Tell me a fun fact about space.",
    "How do I make a cup of tea?",
]
N_GEN = 64
TOP_K = 5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--chat", action="store_true", help="wrap prompts in ChatML (SmolLM2)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    llm = Llama(model_path=args.model, n_ctx=512, n_batch=512, n_threads=args.threads, logits_all=True,
                verbose=False)
    records = []
    for p in PROMPTS:
        text = f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n" if args.chat else p
        prompt_ids = llm.tokenize(text.encode(), add_bos=True, special=True)
        llm.reset()
        gen = []
        for tok in llm.generate(prompt_ids, temp=0.0, top_k=1, reset=True):
            gen.append(int(tok))
            if len(gen) >= N_GEN:
                break
        seq = list(prompt_ids) + gen
        llm.reset()
        llm.eval(seq)
        logits = np.array(llm.scores[: len(seq)], dtype=np.float32)
        start = len(prompt_ids) - 1
        rows = logits[start: start + len(gen)]
        top = np.argsort(-rows, axis=1)[:, :TOP_K]
        records.append({
            "prompt": text,
            "tokens": [int(t) for t in seq],
            "start": start,
            "top1": [int(t[0]) for t in top],
            "top5_ids": top.tolist(),
            "top5_logits": [[round(float(rows[i, j]), 4) for j in top[i]] for i in range(len(rows))],
        })
        print(repr(llm.detokenize(gen).decode(errors="replace"))[:100])
    out = {"model": os.path.basename(args.model), "generator": "llama-cpp-python", "n_gen": N_GEN,
           "records": records}
    with open(args.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
