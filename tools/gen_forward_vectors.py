#!/usr/bin/env python3
"""Tiny random llama / qwen2 / gemma3 models and their fp32 reference logits.

For each architecture this builds a small Hugging Face transformers model from a config with
random weights (norm weights randomized too, so a doubled Gemma "+1" cannot hide), writes it as a
GGUF file with F32 weights applying the llama.cpp converter conventions (facts from
convert_hf_to_gguf.py: llama q/k rows permuted for "NORM" rope; Gemma norm weights stored as
w + 1; tensor dims innermost-first, i.e. the torch [out, in] matrix as is), and stores the
model's fp32 logits at every position for a few token sequences.

Outputs under tests/data/forward/:
  <arch>.tiny-gguf    the model in GGUF format (F32 weights, dummy byte-level gpt2 vocabulary)
  <arch>.json         {"vocab": V, "sequences": [[ids...], ...], "min_top1_margin": m}
  <arch>.logits.f32   float32 little-endian, the sequences' logits concatenated, [len, V] each

Run with the oracle venv:  /work/oracle/bin/python tools/gen_forward_vectors.py
"""

import json
import math
import os
import sys

import numpy as np
import torch
import gguf
from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "forward")
VOCAB = 320           # 256 byte tokens + bos + eos + 62 padding control tokens
BOS_ID = 256
EOS_ID = 257
SEQ_LENGTHS = (48, 33, 40)
WEIGHT_STD = 0.08
SEED = 1234


def byte_level_vocab():
    """GPT-2 style byte-to-unicode mapping of the 256 bytes, then the special tokens."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping = {}
    extra = 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    tokens = [mapping[b] for b in range(256)] + ["<|bos|>", "<|eos|>"]
    tokens += [f"<|extra_{i}|>" for i in range(VOCAB - len(tokens))]
    types = [1] * 256 + [3] * (VOCAB - 256)
    return tokens, types


def randomize(model, arch):
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                if arch == "gemma3":
                    # HF Gemma norms compute x * (1 + w): w in [-0.5, 0.5] gives scales in [0.5, 1.5].
                    p.copy_(torch.rand(p.shape, generator=g) - 0.5)
                else:
                    p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * WEIGHT_STD)


def permute_qk(w, n_head):
    """Row permutation of llama q/k weights so that rope pairs become adjacent (converter fact)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def add_tokenizer(writer, tokens, types):
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([])
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_add_bos_token(False)


def write_gguf(path, arch, cfg, model):
    tokens, types = byte_level_vocab()
    w = gguf.GGUFWriter(path, arch)
    w.add_name(f"tiny-random-{arch}")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    w.add_rope_dimension_count(head_dim)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    rope = cfg.rope_parameters
    if arch == "gemma3":
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
        w.add_rope_freq_base(rope["full_attention"]["rope_theta"])
        w.add_rope_freq_base_swa(rope["sliding_attention"]["rope_theta"])
        w.add_sliding_window(cfg.sliding_window)
        w.add_sliding_window_pattern([t == "sliding_attention" for t in cfg.layer_types])
    else:
        w.add_rope_freq_base(rope["rope_theta"])
    add_tokenizer(w, tokens, types)

    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    tensors = {}
    tensors["token_embd.weight"] = sd["model.embed_tokens.weight"]
    tensors["output_norm.weight"] = sd["model.norm.weight"]
    if not cfg.tie_word_embeddings:
        tensors["output.weight"] = sd["lm_head.weight"]
    if arch == "llama" and rope.get("rope_type") == "llama3":
        tensors["rope_freqs.weight"] = llama3_rope_factors(cfg, head_dim)
    names = {
        "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    if arch == "gemma3":
        names.update({
            "post_attention_layernorm": "post_attention_norm", "pre_feedforward_layernorm": "ffn_norm",
            "post_feedforward_layernorm": "post_ffw_norm", "self_attn.q_norm": "attn_q_norm",
            "self_attn.k_norm": "attn_k_norm",
        })
    for il in range(cfg.num_hidden_layers):
        for hf, gg in names.items():
            for suffix in ("weight", "bias"):
                key = f"model.layers.{il}.{hf}.{suffix}"
                if key not in sd:
                    continue
                t = sd[key]
                if arch == "llama" and hf == "self_attn.q_proj":
                    t = permute_qk(t, cfg.num_attention_heads)
                if arch == "llama" and hf == "self_attn.k_proj":
                    t = permute_qk(t, cfg.num_key_value_heads)
                tensors[f"blk.{il}.{gg}.{suffix}"] = t
    if arch == "gemma3":
        for k in list(tensors):
            if k.endswith("norm.weight"):
                tensors[k] = tensors[k] + 1.0
    for k, t in tensors.items():
        w.add_tensor(k, np.ascontiguousarray(t, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama3_rope_factors(cfg, head_dim):
    """Per-frequency divisors of Llama 3.1 rope scaling, as the converter stores rope_freqs."""
    rp = cfg.rope_parameters
    base = rp["rope_theta"]
    factor = rp["factor"]
    low = rp["low_freq_factor"]
    high = rp["high_freq_factor"]
    orig = rp["original_max_position_embeddings"]
    low_wavelen = orig / low
    high_wavelen = orig / high
    out = []
    for i in range(0, head_dim, 2):
        freq = 1.0 / (base ** (i / head_dim))
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (orig / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def build(arch):
    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                  bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID)
    if arch == "llama":
        cfg = LlamaConfig(num_hidden_layers=2, tie_word_embeddings=False,
                          rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                           "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                           "original_max_position_embeddings": 16},
                          **common)
        model = LlamaForCausalLM(cfg)
    elif arch == "qwen2":
        cfg = Qwen2Config(num_hidden_layers=2, tie_word_embeddings=True,
                          rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, **common)
        model = Qwen2ForCausalLM(cfg)
    elif arch == "gemma3":
        common.update(intermediate_size=96, num_key_value_heads=1, rms_norm_eps=1e-6)
        cfg = Gemma3TextConfig(num_hidden_layers=4, head_dim=32, query_pre_attn_scalar=32, sliding_window=8,
                               layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                            "sliding_attention"],
                               rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                                                "sliding_attention": {"rope_type": "default",
                                                                      "rope_theta": 10000.0}},
                               hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                               final_logit_softcapping=None, attn_logit_softcapping=None, **common)
        model = Gemma3ForCausalLM(cfg)
    else:
        raise ValueError(arch)
    model = model.float().eval()
    model.config._attn_implementation = "eager"
    randomize(model, arch)
    return cfg, model


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    torch.manual_seed(SEED)
    for arch in ("llama", "qwen2", "gemma3"):
        cfg, model = build(arch)
        rng = np.random.default_rng(SEED + len(arch))
        seqs = [rng.integers(0, 256, size=n).tolist() for n in SEQ_LENGTHS]
        all_logits = []
        min_margin = float("inf")
        with torch.no_grad():
            for s in seqs:
                out = model(torch.tensor([s]), use_cache=False).logits[0].float().numpy()
                top2 = np.sort(out, axis=-1)[:, -2:]
                min_margin = min(min_margin, float((top2[:, 1] - top2[:, 0]).min()))
                all_logits.append(out.astype("<f4"))
        base = os.path.join(OUT_DIR, arch)
        write_gguf(base + ".tiny-gguf", arch, cfg, model)
        np.concatenate(all_logits).tofile(base + ".logits.f32")
        with open(base + ".json", "w") as f:
            json.dump({"arch": arch, "vocab": VOCAB, "sequences": seqs, "min_top1_margin": min_margin}, f)
        print(f"{arch}: {os.path.getsize(base + '.tiny-gguf')} bytes gguf, min top-1 margin {min_margin:.4g}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
