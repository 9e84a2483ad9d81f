#!/work/oracle/bin/python
"""Writes dequantization test vectors for every block type tracemark supports.

Oracle: the PyPI `gguf` package (gguf.quants.dequantize, numpy float32). For each type it draws
random raw blocks (random bytes, but every fp16 scale field forced to a finite value drawn from a
mix of ordinary, zero, negative zero, subnormal, negative, tiny and maximal halves), adds edge
blocks (all zero bytes, all 0xFF payload with maximal/negative scales, minimum payload), runs the
oracle and writes tests/data/quant/<type>.bin. See tests/data/quant/README.md for the format.

Usage: /work/oracle/bin/python tools/gen_quant_vectors.py [--out tests/data/quant]
Deterministic: the same gguf/numpy versions give the same bytes.
"""
import argparse
import pathlib
import struct

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

MAGIC = b"TMQV"
FORMAT_VERSION = 1
SEED = 20261127

# Byte offsets of the fp16 scale fields inside one block (ggml-common.h layouts).
SCALE_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}
BLOCKS = {T.Q4_0: 64, T.Q4_1: 64, T.Q5_0: 64, T.Q5_1: 64, T.Q8_0: 64, T.Q4_K: 24, T.Q5_K: 24, T.Q6_K: 24}
ELEMENTS = {T.F32: 2048, T.F16: 4096, T.BF16: 4096}  # "blocks" of one element

EDGE_HALVES = [
    0x0000,  # +0
    0x8000,  # -0
    0x0001,  # smallest subnormal
    0x03FF,  # largest subnormal
    0x8200,  # negative subnormal
    0x0400,  # smallest normal
    0x3C00,  # 1.0
    0xBC00,  # -1.0
    0x7BFF,  # 65504, largest finite
    0xFBFF,  # -65504
    0x1400,  # 2^-10
    0x3555,  # ~1/3
]


def random_finite_halves(rng, n):
    """Finite fp16 bit patterns: 1/2 edge values, 1/2 random (exponent field != 31)."""
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    bits = np.where((bits & 0x7C00) == 0x7C00, bits & np.uint16(0xBFFF), bits).astype(np.uint16)
    edges = np.array(EDGE_HALVES, dtype=np.uint16)[rng.integers(0, len(EDGE_HALVES), size=n)]
    pick = rng.integers(0, 2, size=n).astype(bool)
    return np.where(pick, edges, bits).astype(np.uint16)


def quant_blocks(rng, qtype):
    n = BLOCKS[qtype]
    _, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n, type_size), dtype=np.uint32).astype(np.uint8)
    fields = SCALE_FIELDS[qtype]
    # Edge blocks: 0 = all zero bytes; 1 = all 0xFF payload (max nibbles/high bits, scales 63,
    # int8 -1) with max scales; 2 = all 0x80 payload (Q8_0/Q6_K int8 -128) with negative scales;
    # 3 = all 0x7F payload with subnormal scales; 4 = payload 0x00 with scale 1 and min -1.
    raw[0, :] = 0
    raw[1, :] = 0xFF
    raw[2, :] = 0x80
    raw[3, :] = 0x7F
    raw[4, :] = 0x00
    edge_scales = {1: [0x7BFF, 0x7BFF], 2: [0xBC00, 0xC000], 3: [0x0001, 0x83FF], 4: [0x3C00, 0xBC00]}
    halves = random_finite_halves(rng, n * len(fields)).reshape(n, len(fields))
    for b in range(n):
        for k, off in enumerate(fields):
            h = int(halves[b, k])
            if b == 0:
                h = 0
            elif b in edge_scales:
                h = edge_scales[b][k % 2]
            raw[b, off] = h & 0xFF
            raw[b, off + 1] = h >> 8
    return raw.reshape(-1)


def plain_elements(rng, qtype):
    n = ELEMENTS[qtype]
    if qtype == T.F32:
        raw = rng.integers(0, 1 << 32, size=n, dtype=np.uint64).astype(np.uint32)
        raw[:8] = [0, 0x80000000, 1, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0x3F800000]
        return raw.view(np.uint8)
    # F16 and BF16: every bit pattern class, NaNs (quiet and signalling) included.
    raw = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    specials = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00, 0x7C01, 0x7E00,
                0xFE01, 0x3C00, 0x7F80, 0xFF80, 0x7FC0, 0x7F81]
    raw[: len(specials)] = specials
    return raw.view(np.uint8)


def write(out_dir, qtype, raw):
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    n_blocks = raw.size // type_size
    expected = dequantize(raw, qtype).astype(np.float32, copy=False).reshape(-1)
    assert expected.size == n_blocks * block_size, (qtype.name, expected.size)
    header = MAGIC + struct.pack("<5I", FORMAT_VERSION, int(qtype), block_size, type_size, n_blocks)
    path = out_dir / f"{qtype.name.lower()}.bin"
    path.write_bytes(header + raw.tobytes() + expected.astype("<f4").tobytes())
    print(f"{path}: {n_blocks} blocks, {path.stat().st_size} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/data/quant")
    args = ap.parse_args()
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for qtype in [T.F32, T.F16, T.BF16]:
        write(out_dir, qtype, plain_elements(rng, qtype))
    for qtype in [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K]:
        write(out_dir, qtype, quant_blocks(rng, qtype))


if __name__ == "__main__":
    main()
