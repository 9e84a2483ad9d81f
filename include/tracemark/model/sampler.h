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
#include <utility>
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

// The candidates left after truncation. With any truncation (top-k, top-p or min-p) they are
// ordered by descending logit, ties by ascending id; with none they are the whole vocabulary in
// id order (a full 262144-entry sort per token would cost more than the draw).
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

// Top-k at or below this selects with a bounded heap in one pass; larger k uses nth_element.
inline constexpr int32_t kSamplerHeapTopKMax = 512;
// Top-p / min-p without top-k bucket the weights exp((logit - max) / T) in (0, 1] by their
// float bits above kSamplerBucketShift (exponent and 4 mantissa bits: 16 buckets per power of
// two, in weight order), find the bucket where the mass crosses top_p (one pass, cheaper than
// a heap pass), and sort only the tokens in and above it.
inline constexpr int kSamplerBucketShift = 19;
inline constexpr int32_t kSamplerNumBuckets = (0x3F800000 >> kSamplerBucketShift) + 1;  // 1.0f
// The multinomial draw skips whole blocks of this many candidates by their sums.
inline constexpr int32_t kSamplerDrawBlock = 256;

class Sampler {
 public:
  // `hook` may be null and is not owned; it must outlive the Sampler. vocab_size must be > 0.
  // Scratch buffers (16 bytes per vocabulary entry, 4 MiB for 262144; 24 with top-p or min-p and no top-k) are allocated here, once.
  Sampler(const SamplingParams& params, int32_t vocab_size, SamplerHook* hook = nullptr);

  // Picks the next token. `logits` has vocab_size entries and is used as scratch (modified).
  // NaN and -inf logits count as probability 0. If every logit is -inf or NaN, returns the
  // argmax rule's answer (token 0). A hook's Choose() answer outside [0, vocab_size) is ignored
  // and the sampler draws instead.
  int32_t Sample(std::span<float> logits, std::span<const int32_t> context);

  const SamplingParams& params() const { return params_; }

 private:
  // Fills ids_/cand_logits_/probs_ with the candidates; returns how many.
  int32_t BuildCandidates(std::span<const float> logits);
  // Sorts ids_[0, k) by descending logit (ties: ascending id) after selecting them as the k best.
  void SelectTopK(std::span<const float> logits, int32_t k);
  // Given ids_[0, n) sorted with exp-weights in weights_[0, n) (max 1) and the normalizer z,
  // returns the kept count after top-p and min-p.
  int32_t CutSorted(int32_t n, double z) const;
  // Turns weights_[0, n) into probs_ and fills cand_logits_; returns n, or 0 if no mass.
  int32_t Normalize(std::span<const float> logits, int32_t n, bool identity);

  SamplingParams params_;
  int32_t vocab_size_;
  SamplerHook* hook_;
  Rng rng_;
  std::vector<int32_t> ids_;          // candidate ids (vocab_size)
  std::vector<float> cand_logits_;    // candidate logits / temperature (vocab_size)
  std::vector<float> probs_;          // candidate probabilities (vocab_size)
  std::vector<float> weights_;        // exp((logit - max) / T), per vocab id or per candidate
  std::vector<std::pair<float, int32_t>> heap_;  // bounded top-k heap (kSamplerHeapTopKMax)
  std::vector<double> bucket_mass_;               // kSamplerNumBuckets (bucketed paths only)
  std::vector<uint64_t> keys_;                    // sort keys, vocab_size (bucketed paths only)
};

}  // namespace tracemark
