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
