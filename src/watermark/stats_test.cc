#include "tracemark/watermark/stats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace tracemark::watermark {
namespace {

// Reference values from tools/gen_stats_vectors.py (mpmath, 60 digits).
TEST(Stats, MatchesMpmathVectors) {
  std::ifstream in(std::string(TM_SOURCE_DIR) + "/tests/data/watermark/stats_vectors.tsv");
  ASSERT_TRUE(in) << "missing tests/data/watermark/stats_vectors.tsv";
  std::string line;
  int cases = 0;
  double worst = 0.0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    std::string kind;
    ss >> kind;
    double got = 0, want = 0;
    if (kind == "gamma") {
      long long n;
      double x;
      ss >> n >> x >> want;
      got = LogGammaUpperTail(n, x);
    } else {
      long long k, n;
      double p;
      ss >> k >> n >> p >> want;
      got = LogBinomialUpperTail(k, n, p);
    }
    // Relative error of p itself is |got - want| (log space); allow 1e-9 plus a tiny relative
    // slack for huge |log p| (absolute error grows with the magnitude of the log).
    const double tol = 1e-9 + 2e-12 * std::fabs(want);
    EXPECT_NEAR(got, want, tol) << line;
    worst = std::max(worst, std::fabs(got - want) / (1e-300 + std::max(1.0, std::fabs(want))));
    ++cases;
  }
  EXPECT_GT(cases, 250);
  std::printf("stats vectors: %d cases, worst relative log-error %.3g\n", cases, worst);
}

TEST(Stats, ClosedForms) {
  // Q(1, x) = exp(-x): log tail is exactly -x, far below double underflow.
  for (double x : {0.5, 3.0, 40.0, 800.0, 5000.0}) EXPECT_NEAR(LogGammaUpperTail(1, x), -x, 1e-12 * x);
  // P(Bin(n, p) >= n) = p^n.
  EXPECT_NEAR(LogBinomialUpperTail(2000, 2000, 0.25), 2000 * std::log(0.25), 1e-9);
  EXPECT_NEAR(LogBinomialUpperTail(1, 1, 0.5), std::log(0.5), 1e-15);
  // P(Bin(n, 1/2) >= 1) = 1 - 2^-n.
  EXPECT_NEAR(LogBinomialUpperTail(1, 10, 0.5), std::log1p(-std::pow(2.0, -10)), 1e-15);
}

// log P(Gamma(n, 1) <= x): mpmath log(gammainc(n, 0, x, regularized=True)) at 50 digits.
TEST(Stats, GammaLowerTailMatchesMpmath) {
  struct Case {
    int64_t n;
    double x, want;
  };
  const Case cases[] = {
      {1, 0.5, -0.93275212956718857189},     {2, 0.1, -5.3647050287321111882},
      {10, 3.0, -6.8101857170363962151},     {50, 20.0, -18.20082851673024756},
      {100, 60.0, -13.422436818303799892},   {200, 150.0, -9.7707609832085637043},
      {1000, 800.0, -25.926014915879313975}, {1000, 1100.0, -0.0010598847333686435803},
      {5, 1e-3, -39.327101461104878397},     {400, 100.0, -258.14604590193459308},
  };
  for (const Case& c : cases) {
    EXPECT_NEAR(LogGammaLowerTail(c.n, c.x), c.want, 1e-9 + 2e-12 * std::fabs(c.want)) << c.n << " " << c.x;
  }
  // P(Gamma(1) <= x) = 1 - e^-x; lower + upper = 1.
  for (double x : {0.01, 0.7, 3.0, 30.0}) {
    EXPECT_NEAR(LogGammaLowerTail(1, x), std::log(-std::expm1(-x)), 1e-12);
    EXPECT_NEAR(std::exp(LogGammaLowerTail(37, x)) + std::exp(LogGammaUpperTail(37, x)), 1.0, 1e-12);
  }
  EXPECT_EQ(LogGammaLowerTail(0, 1.0), 0.0);
  EXPECT_TRUE(std::isinf(LogGammaLowerTail(3, 0.0)));
}

TEST(Stats, EdgesAndNeverZero) {
  EXPECT_EQ(LogGammaUpperTail(0, 5.0), 0.0);
  EXPECT_EQ(LogGammaUpperTail(10, 0.0), 0.0);
  EXPECT_EQ(LogBinomialUpperTail(0, 10, 0.3), 0.0);
  EXPECT_TRUE(std::isinf(LogBinomialUpperTail(11, 10, 0.3)));
  EXPECT_GT(PValueFromLog(-5000.0), 0.0);
  EXPECT_EQ(PValueFromLog(0.0), 1.0);
  EXPECT_NEAR(PValueFromLog(std::log(1e-12)), 1e-12, 1e-24);
  EXPECT_EQ(LogBonferroni(std::log(0.5), 4.0), 0.0);
  EXPECT_NEAR(LogBonferroni(std::log(1e-9), 1000.0), std::log(1e-6), 1e-12);
}

TEST(Stats, MonotoneInScore) {
  double prev = 1.0;
  for (double x = 50; x < 2000; x += 7.3) {
    const double v = LogGammaUpperTail(100, x);
    EXPECT_LE(v, prev);
    prev = v;
  }
  prev = 1.0;
  for (int k = 0; k <= 400; ++k) {
    const double v = LogBinomialUpperTail(k, 400, 0.25);
    EXPECT_LE(v, prev + 1e-15);
    prev = v;
  }
}

std::vector<double> SplitDoubles(const std::string& s) {
  std::vector<double> out;
  std::istringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stod(item));
  return out;
}

// Reference values from tools/gen_weighted_tail_vectors.py (mpmath, 80 digits; the series there is
// checked against the hypoexponential closed form where every count is 1).
TEST(Stats, WeightedLowerTailMatchesMpmath) {
  std::ifstream in(std::string(TM_SOURCE_DIR) + "/tests/data/watermark/weighted_tail_vectors.tsv");
  ASSERT_TRUE(in) << "missing tests/data/watermark/weighted_tail_vectors.tsv";
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    std::string ws, ns;
    double x = 0, want = 0;
    ss >> ws >> ns >> x >> want;
    const std::vector<double> w = SplitDoubles(ws);
    std::vector<int64_t> n;
    for (double c : SplitDoubles(ns)) n.push_back(static_cast<int64_t>(c));
    EXPECT_NEAR(LogWeightedGammaLowerTail(w, n, x), want, 1e-9 + 1e-11 * std::fabs(want)) << line;
    ++cases;
  }
  EXPECT_EQ(cases, 45);
}

TEST(Stats, WeightedLowerTailSpecialCases) {
  // Equal weights: a scaled gamma.
  const std::vector<double> w2 = {2.0, 2.0};
  const std::vector<int64_t> n2 = {4, 6};
  EXPECT_NEAR(LogWeightedGammaLowerTail(w2, n2, 5.0), LogGammaLowerTail(10, 2.5), 1e-12);
  // Empty, zero counts, non-positive x.
  const std::vector<double> w = {0.5, 4.0};
  const std::vector<int64_t> zero = {0, 0}, n = {3, 2};
  EXPECT_EQ(LogWeightedGammaLowerTail(w, zero, 1.0), 0.0);
  EXPECT_TRUE(std::isinf(LogWeightedGammaLowerTail(w, n, 0.0)));
  EXPECT_LE(LogWeightedGammaLowerTail(w, n, 1e9), 0.0);
  // Bad input reads as no evidence (p = 1), never as p = 0.
  EXPECT_EQ(LogWeightedGammaLowerTail(w, n, std::nan("")), 0.0);
  const std::vector<double> bad = {0.5, -1.0}, inf = {0.5, HUGE_VAL};
  EXPECT_EQ(LogWeightedGammaLowerTail(bad, n, 1.0), 0.0);
  EXPECT_EQ(LogWeightedGammaLowerTail(inf, n, 1.0), 0.0);
  EXPECT_EQ(LogWeightedGammaLowerTail(bad, zero, 1.0), 0.0);
  const std::vector<int64_t> one = {3};
  EXPECT_EQ(LogWeightedGammaLowerTail(w, one, 1.0), 0.0);  // sizes differ
  std::vector<double> many_w(kMaxWeightLevels + 1);
  std::vector<int64_t> many_n(kMaxWeightLevels + 1, 1);
  for (size_t j = 0; j < many_w.size(); ++j) many_w[j] = 1.0 + static_cast<double>(j);
  EXPECT_EQ(LogWeightedGammaLowerTail(many_w, many_n, 1.0), 0.0);
  many_n.back() = 0;  // exactly kMaxWeightLevels counted levels: computed
  EXPECT_LT(LogWeightedGammaLowerTail(many_w, many_n, 1.0), -100.0);
  // Monotone in x.
  double prev = -1e300;
  for (double x = 0.01; x < 40; x *= 1.3) {
    const double v = LogWeightedGammaLowerTail(w, n, x);
    EXPECT_GE(v, prev - 1e-12);
    prev = v;
  }
}

// Long texts leave the series for the Chernoff bound: it must stay a valid (never smaller) bound
// and be close in log scale. Checked where both are computable: the bound is at least the series
// value and within a few nats of it for a 2,000-tuple sum, and a 200,000-tuple sum (Chernoff only)
// is below the 20,000-tuple one at the same per-tuple mean.
TEST(Stats, WeightedLowerTailLongSums) {
  const std::vector<double> w = {0.25, 1.0, 4.0};
  const std::vector<int64_t> n_small = {700, 700, 600};
  const double mean_small = 0.25 * 700 + 700 + 4.0 * 600;
  const double exact = LogWeightedGammaLowerTail(w, n_small, 0.4 * mean_small);
  EXPECT_LT(exact, -300.0);
  EXPECT_GT(exact, -5000.0);
  const std::vector<int64_t> n_big = {70000, 70000, 60000}, n_mid = {7000, 7000, 6000};
  const double big = LogWeightedGammaLowerTail(w, n_big, 0.4 * mean_small * 100);
  const double mid = LogWeightedGammaLowerTail(w, n_mid, 0.4 * mean_small * 10);
  EXPECT_LT(big, mid);
  EXPECT_NEAR(big / 100.0, exact / 1.0, 0.02 * std::fabs(exact));  // large deviations: linear in n
}

// Calibration: P(reported p <= alpha) <= alpha under the null, by simulation.
TEST(Stats, WeightedLowerTailCalibrated) {
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> exp1(1.0);
  const std::vector<double> w = {0.125, 0.5, 2.0, 8.0, 32.0};
  const std::vector<int64_t> n = {30, 20, 15, 10, 5};
  constexpr int kTrials = 4000;  // about 1.5 ms per call with these weights (2,300 series terms)
  int below_1e2 = 0, below_1e1 = 0;
  for (int t = 0; t < kTrials; ++t) {
    double x = 0;
    for (size_t j = 0; j < w.size(); ++j) {
      for (int64_t i = 0; i < n[j]; ++i) x += w[j] * exp1(rng);
    }
    const double lp = LogWeightedGammaLowerTail(w, n, x);
    below_1e2 += lp <= std::log(1e-2);
    below_1e1 += lp <= std::log(1e-1);
  }
  // Binomial s.e. at 4,000 trials: 0.0016 at 1e-2, 0.0047 at 1e-1; 4 s.e. either side.
  EXPECT_NEAR(below_1e2 / double{kTrials}, 1e-2, 0.0063);
  EXPECT_NEAR(below_1e1 / double{kTrials}, 1e-1, 0.019);
}

}  // namespace
}  // namespace tracemark::watermark
