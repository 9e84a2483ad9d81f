#!/usr/bin/env python3
"""Writes tests/data/ledger/merkle_vectors.json: RFC 6962 tree hashes, audit paths and
consistency proofs computed independently of the C++ code (Python hashlib, written from the
RFC 6962 section 2.1 definitions). Leaves are the 8 inputs of the certificate-transparency
reference test data (empty, 00, 10, 2021, 3031, 40414243, 5051..57, 6061..6f) extended with
more deterministic leaves so trees up to 20 entries are covered."""
import hashlib
import json
import sys


def h(b):
    return hashlib.sha256(b).digest()


def mth(d):
    n = len(d)
    if n == 0:
        return h(b"")
    if n == 1:
        return h(b"\x00" + d[0])
    k = 1 << ((n - 1).bit_length() - 1)
    return h(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m, d):
    n = len(d)
    if n <= 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return path(m, d[:k]) + [mth(d[k:])]
    return path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m, d, b):
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


def main(out):
    leaves = [bytes.fromhex(x) for x in
              ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
               "606162636465666768696a6b6c6d6e6f"]]
    for i in range(8, 20):
        leaves.append(("leaf-%d" % i).encode())
    vec = {"leaves": [l.hex() for l in leaves], "roots": [], "inclusion": [], "consistency": []}
    for n in range(0, len(leaves) + 1):
        vec["roots"].append(mth(leaves[:n]).hex())
    for n in range(1, len(leaves) + 1):
        for m in range(n):
            vec["inclusion"].append({"size": n, "index": m,
                                     "path": [x.hex() for x in path(m, leaves[:n])]})
    for n in range(1, len(leaves) + 1):
        for m in range(1, n):
            vec["consistency"].append({"old": m, "new": n,
                                       "proof": [x.hex() for x in subproof(m, leaves[:n], True)]})
    with open(out, "w") as f:
        json.dump(vec, f, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/ledger/merkle_vectors.json")
