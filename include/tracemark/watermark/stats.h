// Exact null-distribution tails for watermark scores, computed in log space so that p-values far
// below 1e-300 are still represented (as log p) and a p-value is never rounded to 0:
//   - Gumbel / exponential-minimum scores: S = sum of n i.i.d. Exp(1) ~ Gamma(n, 1);
//     P(S >= s) = Q(n, s), the regularized upper incomplete gamma function.
//   - Green-list counts (KGW) and SynthID g-value counts: G ~ Binomial(n, p);
//     P(G >= k) = I_p(k, n - k + 1), the regularized incomplete beta function.
// Implemented from the textbook series / continued fractions (modified Lentz), with relative
// accuracy near 1e-13 in p across the range, checked against mpmath (tests/data/watermark).
// Pure functions; thread-safe.
#pragma once

#include <cstdint>

namespace tracemark::watermark {

// log P(Gamma(n, 1) >= x) for integer shape n >= 1 and x >= 0; 0 when n == 0.
double LogGammaUpperTail(int64_t n, double x);

// log P(Gamma(n, 1) <= x) for integer shape n >= 1; 0 when n == 0, -inf when x <= 0. The sum of
// n independent -log(u), u ~ U(0,1), is Gamma(n, 1); bench/watermark_power_bench compares this
// low-entropy direction with the shipped upper tail of -log(1-u) (it is weaker on real text).
double LogGammaLowerTail(int64_t n, double x);

// log P(Binomial(n, p) >= k); 0 when k <= 0; -inf only when k > n (impossible count).
double LogBinomialUpperTail(int64_t k, int64_t n, double p);

// min(1, m * exp(log_p)) in log space (Bonferroni over m tests).
double LogBonferroni(double log_p, double m);

// exp(log_p) clamped to the smallest positive double, so a reported p-value is never 0.
double PValueFromLog(double log_p);

}  // namespace tracemark::watermark
