// Token sampling: greedy, temperature, top-k, top-p, min-p with a seeded RNG, plus the hook
// through which a watermark sees the candidates and chooses the token.
//
// Pipeline for one step (mirrors llama.cpp's sampler chain, see docs/engine.md):
//   full-vocab logits -> hook->ProcessLogits (e.g. KGW green-list bias)
//   -> temperature == 0 ? argmax
//   -> top-k -> softmax with temperature -> top-p -> min-p -> renormalize
//   -> hook->Choose(candidates) (e.g. Gumbel-max / SynthID tournament) or multinomial draw
//   -> hook->Accept(token)
// A Sampler belongs to one sequence and is not thread-safe; it owns its scratch buffers, so
// Sample() does not allocate after the first call. The same params, seed, logits and context
// give the same token on every machine and thread count.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace tracemark {

struct SamplingParams {
  float temperature = 1.0f;  // 0 selects greedy decoding
  int32_t top_k = 0;         // 0 or >= vocab: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  uint64_t seed = 0;         // RNG seed; callers draw a random one when the user gives none
};

// Deterministic, portable RNG (splitmix64-seeded xoshiro256**). Not thread-safe.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { Seed(seed); }
  void Seed(uint64_t seed);
  uint64_t Next();
  // Uniform double in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_[4];
};

// The candidates left after truncation, ordered by descending probability.
struct TokenCandidates {
  std::span<const int32_t> ids;
  std::span<const float> logits;  // after ProcessLogits and temperature scaling
  std::span<const float> probs;   // normalized over the candidates, sums to 1
};

// A watermark (or any other sampling policy) plugs in here. `context` is every token of the
// sequence so far, prompt included, oldest first; the hook picks what it needs (the last h).
class SamplerHook {
 public:
  virtual ~SamplerHook() = default;
  // Sees the full-vocabulary logits before temperature and truncation; may modify them.
  virtual void ProcessLogits(std::span<float> logits, std::span<const int32_t> context) {}
  // Chooses the next token among the candidates; returns its id, or -1 to let the sampler draw
  // from `probs` with its own RNG. Called only when temperature > 0.
  virtual int32_t Choose(const TokenCandidates& candidates, std::span<const int32_t> context,
                         Rng& rng) {
    return -1;
  }
  // The token the sequence accepted (after Choose or greedy).
  virtual void Accept(int32_t token) {}
};

class Sampler {
 public:
  // `hook` may be null and is not owned; it must outlive the Sampler.
  Sampler(const SamplingParams& params, int32_t vocab_size, SamplerHook* hook = nullptr);

  // Picks the next token. `logits` has vocab_size entries and is used as scratch (modified).
  int32_t Sample(std::span<float> logits, std::span<const int32_t> context);

  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  int32_t vocab_size_;
  SamplerHook* hook_;
  Rng rng_;
  std::vector<int32_t> ids_;
  std::vector<float> cand_logits_;
  std::vector<float> probs_;
};

}  // namespace tracemark
