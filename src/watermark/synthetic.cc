#include "watermark/synthetic.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tracemark::watermark::sim {

SyntheticLm::SyntheticLm(const SyntheticLmOptions& options, uint64_t seed)
    : options_(options), rng_(seed), logits_(static_cast<size_t>(options.vocab_size)) {
  support_ids_.resize(static_cast<size_t>(options.support));
}

void SyntheticLm::FillLogits() {
  std::fill(logits_.begin(), logits_.end(), -std::numeric_limits<float>::infinity());
  const double s = options_.zipf_min + (options_.zipf_max - options_.zipf_min) * rng_.Uniform();
  for (int32_t r = 0; r < options_.support; ++r) {
    // Random ids; collisions just merge two ranks, harmless.
    const int32_t id = static_cast<int32_t>(rng_.Next() % static_cast<uint64_t>(options_.vocab_size));
    logits_[static_cast<size_t>(id)] = static_cast<float>(-s * std::log(1.0 + r));
  }
}

double SyntheticLm::Generate(std::vector<int32_t>& tokens, int n, SamplerHook* hook,
                             uint64_t sampler_seed, double* mean_nll) {
  double nll_sum = 0.0;
  SamplingParams sp;
  sp.temperature = options_.temperature;
  sp.top_p = options_.top_p;
  sp.top_k = options_.top_k;
  sp.seed = sampler_seed;
  Sampler sampler(sp, options_.vocab_size, hook);
  double entropy_sum = 0.0;
  std::vector<double> p;
  for (int step = 0; step < n; ++step) {
    FillLogits();
    // Entropy of softmax(logits / T) over the support.
    double mx = -std::numeric_limits<double>::infinity();
    p.clear();
    for (float l : logits_) {
      if (std::isfinite(l)) p.push_back(l / options_.temperature);
    }
    for (double v : p) mx = std::max(mx, v);
    double z = 0.0;
    for (double& v : p) z += (v = std::exp(v - mx));
    double h = 0.0;
    for (double v : p) {
      const double q = v / z;
      if (q > 0) h -= q * std::log(q);
    }
    entropy_sum += h;
    saved_ = logits_;  // the sampler uses the logits as scratch
    const int32_t tok = sampler.Sample(logits_, tokens);
    const float lt = saved_[static_cast<size_t>(tok)];
    if (std::isfinite(lt)) nll_sum -= lt / options_.temperature - mx - std::log(z);
    tokens.push_back(tok);
  }
  if (mean_nll != nullptr) *mean_nll = n > 0 ? nll_sum / n : 0.0;
  return n > 0 ? entropy_sum / n : 0.0;
}

void ZipfTokens(std::vector<int32_t>& out, int n, int32_t vocab, double exponent, Rng& rng) {
  // Inverse-CDF over a precomputed table is overkill here; rejection-free linear scan of a
  // cached CDF keeps it simple and exact.
  static thread_local std::vector<double> cdf;
  static thread_local int32_t cached_vocab = 0;
  static thread_local double cached_exp = 0;
  if (cached_vocab != vocab || cached_exp != exponent) {
    cdf.assign(static_cast<size_t>(vocab), 0.0);
    double acc = 0.0;
    for (int32_t i = 0; i < vocab; ++i) cdf[static_cast<size_t>(i)] = (acc += std::pow(1.0 + i, -exponent));
    for (double& c : cdf) c /= acc;
    cached_vocab = vocab;
    cached_exp = exponent;
  }
  for (int i = 0; i < n; ++i) {
    const double u = rng.Uniform();
    const auto it = std::lower_bound(cdf.begin(), cdf.end(), u);
    out.push_back(static_cast<int32_t>(std::min<ptrdiff_t>(it - cdf.begin(), vocab - 1)));
  }
}

}  // namespace tracemark::watermark::sim
