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
#include <span>

namespace tracemark::watermark {

// log P(Gamma(n, 1) >= x) for integer shape n >= 1 and x >= 0; 0 when n == 0.
double LogGammaUpperTail(int64_t n, double x);

// log P(Gamma(n, 1) <= x) for integer shape n >= 1; 0 when n == 0, -inf when x <= 0. The sum of
// n independent -log(u), u ~ U(0,1), is Gamma(n, 1); bench/watermark_power_bench compares this
// low-entropy direction with the shipped upper tail of -log(1-u) (it is weaker on real text).
double LogGammaLowerTail(int64_t n, double x);

// log P(sum_j w_j G_j <= x) for independent G_j ~ Gamma(counts[j], 1) and weights w_j > 0: the
// lower tail of a weighted sum of i.i.d. Exp(1) scores (a likelihood-weighted Gumbel test, which
// bench/watermark_power_bench --stats compares with the shipped one; it is weaker on real answers,
// docs/watermark.md). Levels with count 0 are ignored; 0 (p = 1) when every count is 0, when x is
// NaN, when a counted level's weight is not finite and positive, when the spans differ in size or
// when more than kMaxWeightLevels levels have a count; -inf when x <= 0.
// Computed from the exact mixture series of Moschopoulos (1985) with the truncated remainder
// bounded from above, and, where the series would need more than kMaxWeightedSeriesTerms terms (long
// texts: about (x / min w) - sum(counts) terms), from the Chernoff bound
// min_t [t x - sum_j counts[j] log(1 + t w_j)]; the smaller of the bounds that were computed is
// returned. Either way the result is never below the true log p (a valid, conservative p-value)
// and, where the series converged, equal to it to about 1e-12 relative.
inline constexpr int kMaxWeightedSeriesTerms = 100000;
inline constexpr size_t kMaxWeightLevels = 64;
double LogWeightedGammaLowerTail(std::span<const double> weights, std::span<const int64_t> counts, double x);

// log P(Binomial(n, p) >= k); 0 when k <= 0; -inf only when k > n (impossible count).
double LogBinomialUpperTail(int64_t k, int64_t n, double p);

// min(1, m * exp(log_p)) in log space (Bonferroni over m tests).
double LogBonferroni(double log_p, double m);

// exp(log_p) clamped to the smallest positive double, so a reported p-value is never 0.
double PValueFromLog(double log_p);

}  // namespace tracemark::watermark
