#!/usr/bin/env python3
"""High-precision reference tails for src/watermark/stats.cc (run with /work/oracle/bin/python).

Writes tests/data/watermark/stats_vectors.tsv: one case per line,
  gamma  n  x  ln(P(Gamma(n,1) >= x))
  binom  k  n  p  ln(P(Binomial(n,p) >= k))
computed with mpmath at 60 significant digits (gammainc / betainc, regularized).
"""
import os
import mpmath as mp

mp.mp.dps = 60
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "watermark", "stats_vectors.tsv")

gamma_cases = []
for n in [1, 2, 5, 10, 25, 50, 100, 200, 400, 1000, 10000, 100000]:
    for mult in [0.2, 0.8, 1.0, 1.05, 1.2, 1.5, 2.0, 3.0, 6.0]:
        gamma_cases.append((n, n * mult))
gamma_cases += [(1, 30.0), (1, 700.0), (3, 900.0), (60, 260.0), (200, 1200.0), (5, 0.01)]

binom_cases = []
for n in [1, 10, 50, 100, 200, 400, 1000, 6000, 100000]:
    for p in [0.25, 0.5]:
        for frac in [0.0, 0.1, 0.25, 0.3, 0.5, 0.6, 0.75, 0.9, 1.0]:
            k = int(round(frac * n))
            binom_cases.append((k, n, p))
binom_cases += [(70, 200, 0.25), (80, 200, 0.25), (90, 200, 0.25), (1, 1, 0.25), (3000, 3000, 0.5),
                (30, 30, 0.5), (17, 30, 0.5), (600, 1000, 0.1)]


def ln_gamma_tail(n, x):
    return mp.log(mp.gammainc(n, x, mp.inf, regularized=True))


def ln_binom_tail(k, n, p):
    if k <= 0:
        return mp.mpf(0)
    # Direct sum of the binomial pmf from k upwards (term recurrence), stopping once terms
    # no longer matter at 60 digits.
    p = mp.mpf(p)
    q = 1 - p
    term = mp.exp(mp.loggamma(n + 1) - mp.loggamma(k + 1) - mp.loggamma(n - k + 1)) * p**k * q**(n - k)
    total = mp.mpf(0)
    j = k
    while True:
        total += term
        if j == n or (term < total * mp.mpf(10) ** -45 and j > n * p):
            break
        term = term * (n - j) / (j + 1) * p / q
        j += 1
    return mp.log(total)


with open(OUT, "w") as f:
    f.write("# kind\targs...\tln_tail  (mpmath %s, dps=60; tools/gen_stats_vectors.py)\n" % mp.__version__)
    for n, x in gamma_cases:
        f.write("gamma\t%d\t%r\t%s\n" % (n, float(x), mp.nstr(ln_gamma_tail(n, mp.mpf(float(x))), 20)))
    for k, n, p in binom_cases:
        f.write("binom\t%d\t%d\t%r\t%s\n" % (k, n, p, mp.nstr(ln_binom_tail(k, n, mp.mpf(p)), 20)))
print("wrote", OUT)
