#include "tracemark/watermark/stats.h"

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
