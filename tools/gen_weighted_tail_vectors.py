#!/usr/bin/env python3
"""High-precision reference values for LogWeightedGammaLowerTail (src/watermark/stats.cc).

Run with /work/oracle/bin/python (mpmath). Writes tests/data/watermark/weighted_tail_vectors.tsv:
  weights(comma)  counts(comma)  x  ln P(sum_j w_j G_j <= x),  G_j ~ Gamma(counts_j, 1)
Computed at 80 significant digits from the Moschopoulos (1985) mixture series, summed until the
remaining terms are below 1e-70 of the total. Where every count is 1 the script first checks the
series against the closed form of the hypoexponential distribution,
  P(sum w_i E_i <= x) = 1 - sum_i prod_{j != i} w_i / (w_i - w_j) * exp(-x / w_i),
which is an independent formula, and stops if they differ.
"""
import os
import mpmath as mp

mp.mp.dps = 80
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "watermark", "weighted_tail_vectors.tsv")


def series(w, n, x):
    w = [mp.mpf(v) for v in w]
    b1 = min(w)
    rho = sum(n)
    c = mp.fprod([(b1 / wj) ** nj for wj, nj in zip(w, n)])
    y = mp.mpf(x) / b1
    g = [mp.mpf(0)]
    delta = [mp.mpf(1)]
    total = c * mp.gammainc(rho, 0, y, regularized=True)
    k = 0
    while True:
        k += 1
        g.append(mp.fsum(nj * (1 - b1 / wj) ** k for wj, nj in zip(w, n)))
        delta.append(mp.fsum(g[i] * delta[k - i] for i in range(1, k + 1)) / k)
        term = c * delta[k] * mp.gammainc(rho + k, 0, y, regularized=True)
        total += term
        rest = mp.gammainc(rho + k + 1, 0, y, regularized=True)
        if rho + k > y and rest < total * mp.mpf(10) ** -70:
            return total


def hypoexponential(w, x):
    w = [mp.mpf(v) for v in w]
    s = mp.mpf(0)
    for i, wi in enumerate(w):
        s += mp.fprod([wi / (wi - wj) for j, wj in enumerate(w) if j != i]) * mp.exp(-mp.mpf(x) / wi)
    return 1 - s


cases = []
# Distinct weights, one tuple each: checked against the closed form.
for w in ([0.5, 1.0, 2.0], [0.125, 1.0, 8.0, 32.0], [1.0, 1.5, 2.25, 3.5, 5.0, 7.5]):
    mean = sum(w)
    for frac in (0.02, 0.1, 0.3, 1.0, 2.0):
        cases.append((w, [1] * len(w), mean * frac, True))
# Grid levels as the detector uses them (2^(j/2)), with counts like a 200-token answer.
grid = [2 ** ((j - 6) / 2) for j in range(18)]
shapes = [
    ([grid[0], grid[6], grid[12]], [5, 10, 3]),
    ([grid[2], grid[4], grid[8], grid[10], grid[14]], [20, 15, 10, 8, 4]),
    ([grid[j] for j in range(0, 18, 2)], [12, 9, 8, 7, 6, 6, 5, 4, 3]),
    ([grid[6], grid[7]], [100, 50]),
    ([grid[1], grid[16]], [40, 2]),
]
for w, n in shapes:
    mean = sum(wj * nj for wj, nj in zip(w, n))
    for frac in (0.05, 0.2, 0.4, 0.7, 1.0, 1.5):
        cases.append((w, n, mean * frac, False))

with open(OUT, "w") as f:
    f.write("# weights\tcounts\tx\tln P(sum w_j Gamma(counts_j) <= x); tools/gen_weighted_tail_vectors.py\n")
    for w, n, x, check in cases:
        x = float(x)
        v = series(w, n, x)
        if check:
            h = hypoexponential(w, x)
            assert abs(v - h) <= mp.mpf(10) ** -40 * max(h, mp.mpf(10) ** -300), (w, x, v, h)
        f.write("%s\t%s\t%r\t%s\n" % (",".join(repr(float(v_)) for v_ in w), ",".join(str(c) for c in n), x,
                                      mp.nstr(mp.log(v), 25)))
print("wrote", len(cases), "cases to", OUT)
