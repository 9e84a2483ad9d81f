#include "tracemark/watermark/stats.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace tracemark::watermark {
namespace {

constexpr double kEps = 1e-16;
constexpr double kTiny = 1e-300;
// Continued fractions and series converge in O(sqrt(n)) steps; this bounds shapes up to ~1e12.
constexpr int kMaxIterations = 4'000'000;
constexpr double kHalfLog2Pi = 0.91893853320467274178;  // 0.5 * log(2 pi)

// lgamma(a) - [(a - 1/2) log a - a + log(2 pi)/2], the Stirling remainder, without cancellation.
double StirlingRemainder(double a) {
  if (a < 10.0) return std::lgamma(a) - ((a - 0.5) * std::log(a) - a + kHalfLog2Pi);
  const double r = 1.0 / a, r2 = r * r;
  return r * (1.0 / 12 - r2 * (1.0 / 360 - r2 * (1.0 / 1260 - r2 * (1.0 / 1680))));
}

// log(x^a e^-x / Gamma(a)), accurate for large a (no cancellation between a log x and lgamma).
double LogGammaPrefactor(double a, double x) {
  if (a < 10.0) return a * std::log(x) - x - std::lgamma(a);
  const double d = (x - a) / a;
  return a * (std::log1p(d) - d) + 0.5 * std::log(a) - kHalfLog2Pi - StirlingRemainder(a);
}

// Series for the lower regularized gamma P(a, x) (x < a + 1); returns log P.
double LogLowerGammaSeries(double a, double x) {
  double ap = a, del = 1.0 / a, sum = del;
  for (int i = 0; i < kMaxIterations; ++i) {
    ap += 1.0;
    del *= x / ap;
    sum += del;
    if (std::fabs(del) < std::fabs(sum) * kEps) break;
  }
  // P = x^a e^-x / Gamma(a+1) * sum * a ... written with Gamma(a): prefactor / a * (a * sum).
  return LogGammaPrefactor(a, x) + std::log(sum);
}

// Continued fraction for Q(a, x) (x >= a + 1), modified Lentz; returns log Q.
double LogUpperGammaFraction(double a, double x) {
  double b = x + 1.0 - a, c = 1.0 / kTiny, d = 1.0 / b, h = d;
  for (int i = 1; i < kMaxIterations; ++i) {
    const double an = -static_cast<double>(i) * (i - a);
    b += 2.0;
    d = an * d + b;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < kEps) break;
  }
  return LogGammaPrefactor(a, x) + std::log(h);
}

// log(x^a (1-x)^b / B(a, b)).
double LogBetaPrefactor(double a, double b, double x) {
  if (a < 10.0 || b < 10.0) {
    return a * std::log(x) + b * std::log1p(-x) -
           (std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b));
  }
  const double s = a + b;
  // -(a log(a / (x s)) + b log(b / ((1-x) s))) + log(a b / s)/2 - log(2 pi)/2 - remainders.
  const double ta = a * std::log(a / (x * s));
  const double tb = b * std::log(b / ((1.0 - x) * s));
  return -(ta + tb) + 0.5 * std::log(a * b / s) - kHalfLog2Pi - StirlingRemainder(a) -
         StirlingRemainder(b) + StirlingRemainder(s);
}

// Continued fraction of I_x(a, b) without its prefactor (modified Lentz).
double BetaFraction(double a, double b, double x) {
  const double qab = a + b, qap = a + 1.0, qam = a - 1.0;
  double c = 1.0, d = 1.0 - qab * x / qap;
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m < kMaxIterations; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < kEps) break;
  }
  return h;
}

// log I_x(a, b), used where x < (a + 1) / (a + b + 2) so the fraction converges fast.
double LogIncompleteBetaDirect(double a, double b, double x) {
  return LogBetaPrefactor(a, b, x) + std::log(BetaFraction(a, b, x)) - std::log(a);
}

}  // namespace

double LogGammaUpperTail(int64_t n, double x) {
  if (n <= 0 || !(x > 0.0)) return 0.0;
  const double a = static_cast<double>(n);
  if (std::isinf(x)) return -std::numeric_limits<double>::infinity();
  if (x < a + 1.0) {
    const double log_p = LogLowerGammaSeries(a, x);
    return std::log1p(-std::exp(log_p));
  }
  return LogUpperGammaFraction(a, x);
}

double LogGammaLowerTail(int64_t n, double x) {
  if (n <= 0) return 0.0;
  if (!(x > 0.0)) return -std::numeric_limits<double>::infinity();
  const double a = static_cast<double>(n);
  if (std::isinf(x)) return 0.0;
  if (x < a + 1.0) return LogLowerGammaSeries(a, x);
  return std::log1p(-std::exp(LogUpperGammaFraction(a, x)));
}

namespace {

// log(exp(a) + exp(b)) without overflow.
double LogAdd(double a, double b) {
  if (a < b) std::swap(a, b);
  if (b == -std::numeric_limits<double>::infinity()) return a;
  return a + std::log1p(std::exp(b - a));
}

// Chernoff bound on log P(sum_j w_j G_j <= x): min over t >= 0 of t x - sum_j n_j log(1 + t w_j)
// (the moment generating function of -w G is (1 + t w)^-n). The objective is convex in t; its
// derivative x - sum n_j w_j / (1 + t w_j) increases from x - E[sum] to x, so for x below the mean
// the root is found by bisection on log t.
double LogWeightedChernoff(std::span<const double> w, std::span<const int64_t> n, double x) {
  double mean = 0;
  for (size_t j = 0; j < w.size(); ++j) mean += static_cast<double>(n[j]) * w[j];
  if (x >= mean) return 0.0;
  auto derivative = [&](double t) {
    double d = x;
    for (size_t j = 0; j < w.size(); ++j) d -= static_cast<double>(n[j]) * w[j] / (1.0 + t * w[j]);
    return d;
  };
  double lo = 0.0, hi = 1.0;
  while (derivative(hi) < 0.0 && hi < 1e300) hi *= 2.0;
  for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (derivative(mid) < 0.0 ? lo : hi) = mid;
  }
  const double t = hi;
  double v = t * x;
  for (size_t j = 0; j < w.size(); ++j) v -= static_cast<double>(n[j]) * std::log1p(t * w[j]);
  return std::min(v, 0.0);
}

}  // namespace

double LogWeightedGammaLowerTail(std::span<const double> weights, std::span<const int64_t> counts, double x) {
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  std::array<double, kMaxWeightLevels> w{};
  std::array<int64_t, kMaxWeightLevels> n{};
  size_t levels = 0;
  int64_t rho = 0;
  if (weights.size() != counts.size()) return 0.0;  // invalid input: p = 1
  for (size_t j = 0; j < weights.size(); ++j) {
    if (counts[j] <= 0) continue;
    // An invalid level, or more levels than the arrays hold: no evidence (p = 1), never p = 0.
    if (!(weights[j] > 0.0) || std::isinf(weights[j]) || levels == kMaxWeightLevels) return 0.0;
    w[levels] = weights[j];
    n[levels] = counts[j];
    rho += counts[j];
    ++levels;
  }
  if (levels == 0 || std::isnan(x)) return 0.0;
  if (x <= 0.0) return kNegInf;
  if (std::isinf(x)) return 0.0;
  const std::span<const double> ws(w.data(), levels);
  const std::span<const int64_t> ns(n.data(), levels);
  const double b1 = *std::min_element(ws.begin(), ws.end());
  const double y = x / b1;
  // Mixture form: sum_j w_j G_j = b1 * Gamma(rho + K, 1) with P(K = k) = pi_k, pi_k = C delta_k,
  // C = prod (b1 / w_j)^n_j, delta_0 = 1, delta_k = (1/k) sum_{i=1..k} g_i delta_{k-i} and
  // g_i = sum_j n_j r_j^i, r_j = 1 - b1 / w_j. So P(sum <= x) = sum_k pi_k P(Gamma(rho + k) <= y),
  // every term positive, and the remainder after k terms is at most P(Gamma(rho + k + 1) <= y)
  // (the lower tail falls with the shape; the pi_k sum to 1). Since g is a sum of geometric
  // sequences, sum_i g_i delta_{k-i} = sum_j n_j s_j(k) with s_j(k) = r_j (s_j(k-1) + delta_{k-1}):
  // O(levels) per term instead of O(k).
  double log_c = 0;
  std::array<double, kMaxWeightLevels> r{}, sj{};
  bool all_equal = true;
  for (size_t j = 0; j < levels; ++j) {
    log_c += static_cast<double>(n[j]) * std::log(b1 / w[j]);
    r[j] = 1.0 - b1 / w[j];
    all_equal = all_equal && r[j] == 0.0;
  }
  if (all_equal) return LogGammaLowerTail(rho, y);
  const double chernoff = LogWeightedChernoff(ws, ns, x);
  // Terms needed: until the shape rho + k passes y by a margin (then the gamma tail falls fast).
  if (y - static_cast<double>(rho) > 0.8 * kMaxWeightedSeriesTerms) return chernoff;
  constexpr double kRescale = 1e200;
  const double log_rescale = std::log(kRescale);
  double delta = 1.0;    // delta_{k-1}, stored divided by exp(log_scale)
  double log_scale = 0;  // and so is every s_j
  double log_sum = log_c + LogGammaLowerTail(rho, y);
  double bound = 0;
  for (int k = 1; k <= kMaxWeightedSeriesTerms; ++k) {
    double dk = 0;
    for (size_t j = 0; j < levels; ++j) {
      sj[j] = r[j] * (sj[j] + delta);
      dk += static_cast<double>(n[j]) * sj[j];
    }
    delta = dk / k;
    if (delta > kRescale) {
      delta /= kRescale;
      for (size_t j = 0; j < levels; ++j) sj[j] /= kRescale;
      log_scale += log_rescale;
    }
    if (delta > 0.0) {
      log_sum = LogAdd(log_sum, log_c + std::log(delta) + log_scale + LogGammaLowerTail(rho + k, y));
    }
    bound = LogGammaLowerTail(rho + k + 1, y);
    if (static_cast<double>(rho + k) > y && bound < log_sum - 40.0) break;
  }
  const double series = std::min(0.0, LogAdd(log_sum, bound));
  return std::min(series, chernoff);
}

double LogBinomialUpperTail(int64_t k, int64_t n, double p) {
  if (k <= 0) return 0.0;
  if (k > n) return -std::numeric_limits<double>::infinity();
  if (p <= 0.0) return -std::numeric_limits<double>::infinity();
  if (p >= 1.0) return 0.0;
  const double a = static_cast<double>(k), b = static_cast<double>(n - k + 1);
  if (p < (a + 1.0) / (a + b + 2.0)) return LogIncompleteBetaDirect(a, b, p);
  // Upper tail >= about one half here: 1 - I_{1-p}(b, a).
  return std::log1p(-std::exp(LogIncompleteBetaDirect(b, a, 1.0 - p)));
}

double LogBonferroni(double log_p, double m) {
  if (m <= 1.0) return log_p;
  const double v = log_p + std::log(m);
  return v > 0.0 ? 0.0 : v;
}

double PValueFromLog(double log_p) {
  const double p = std::exp(log_p);
  return p > 0.0 ? (p > 1.0 ? 1.0 : p) : std::numeric_limits<double>::denorm_min();
}

}  // namespace tracemark::watermark
