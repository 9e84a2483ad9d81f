// A synthetic language model for watermark tests and benchmarks: every step draws a random
// next-token distribution (Zipf over a random support of the vocabulary, with a random exponent)
// and samples it through the real Sampler (model/sampler.h), with or without a watermark hook.
// This measures calibration and power without a model; real-model numbers come from the engine.
// Not thread-safe; one per thread.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tracemark/model/sampler.h"

namespace tracemark::watermark::sim {

struct SyntheticLmOptions {
  int32_t vocab_size = 49152;
  int32_t support = 1000;       // tokens with non-zero probability per step
  double zipf_min = 1.0;        // per-step Zipf exponent drawn uniformly in [min, max]
  double zipf_max = 3.0;
  float temperature = 1.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
};

class SyntheticLm {
 public:
  SyntheticLm(const SyntheticLmOptions& options, uint64_t seed);
  // Appends `n` sampled tokens to `tokens` (which also serves as the context / prompt).
  // Returns the mean entropy (nats) of the sampled steps' distributions after temperature; if
  // mean_nll is given, stores the mean negative log-likelihood of the sampled tokens under those
  // (unwatermarked) distributions: the synthetic perplexity.
  double Generate(std::vector<int32_t>& tokens, int n, SamplerHook* hook, uint64_t sampler_seed,
                  double* mean_nll = nullptr);

 private:
  void FillLogits();
  SyntheticLmOptions options_;
  Rng rng_;
  std::vector<float> logits_;
  std::vector<float> saved_;  // logits before sampling (the sampler uses them as scratch)
  std::vector<int32_t> support_ids_;
};

// Zipf-distributed i.i.d. token ids over a small vocabulary: human-like repetition of n-grams,
// never watermarked (calibration input).
void ZipfTokens(std::vector<int32_t>& out, int n, int32_t vocab, double exponent, Rng& rng);

}  // namespace tracemark::watermark::sim
