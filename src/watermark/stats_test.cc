#include "tracemark/watermark/stats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

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

}  // namespace
}  // namespace tracemark::watermark
