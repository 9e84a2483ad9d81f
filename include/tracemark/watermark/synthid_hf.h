// SynthID-Text as Hugging Face transformers implements it (scheme "synthid-hf"): the same
// g-values, context masks and tournament update as SynthIDTextWatermarkLogitsProcessor for the
// same keys, ngram_len, sampling-table seed and token ids (docs/watermark.md, "synthid-hf").
//
//   hash      h = 1; per int64 d: h = (h + d) * 6364136223846793005 + 1 (mod 2^64), folded over the
//             ngram_len - 1 context tokens, then the candidate, then one key per layer
//   g-value   table[h_layer mod 65536], the table HF draws with torch.randint on CPU, shipped as an
//             8 KiB asset (assets/watermark/) embedded at build time and pinned by SHA-256
//   masks     context repeated within the last context_history contexts (zero-initialized ring),
//             first ngram_len - 1 tokens, EOS onwards
//   sampling  per layer p <- p * (1 + g - sum_y p_y g_y) over the candidates (closed form)
// Because the table index keeps only the low 16 bits, g depends on the n-gram only through the
// low 16 bits of its hash; one 65,536-entry table of layer bitmasks per key set (512 KiB, built
// once and cached process-wide) makes each g-vector one lookup.
//
// Keys: "keys=derive" derives `layers` int64 keys per keyring version with HKDF; an explicit
// "keys=k1/k2/..." list interoperates with an existing HF deployment. HF's mode has no account
// lanes: detection answers "is it ours?" only and reports no account (docs/watermark.md).
// SynthIdHf values are immutable and thread-safe; a SynthIdHfHook belongs to one request.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/model/sampler.h"
#include "tracemark/watermark/detector.h"
#include "tracemark/watermark/keyring.h"
#include "tracemark/watermark/scheme.h"
#include "tracemark/watermark/tuple_set.h"

namespace tracemark::watermark {

// HF's accumulate_hash constants (the newlib/musl LCG) and its initial hash.
inline constexpr uint64_t kSynthIdHfMultiplier = 6364136223846793005ull;
inline constexpr uint64_t kSynthIdHfIncrement = 1;
inline constexpr uint64_t kSynthIdHfInitialHash = 1;
// HF's default sampling_table_size; the only size shipped (an 8 KiB packed-bit asset per seed).
inline constexpr size_t kSynthIdHfTableSize = size_t{1} << 16;
inline constexpr size_t kSynthIdHfTableBytes = kSynthIdHfTableSize / 8;
inline constexpr int kSynthIdHfMaxLayers = 64;  // one uint64 bitmask per n-gram
inline constexpr int kSynthIdHfDefaultLayers = 30;
inline constexpr int kSynthIdHfMinNgram = 2;
inline constexpr int kSynthIdHfMaxNgram = 16;
inline constexpr int kSynthIdHfDefaultHistory = 1024;  // HF's context_history_size default
inline constexpr int kSynthIdHfMaxHistory = 1 << 16;
// Key sets whose 512 KiB lookup tables are kept process-wide (least recently built evicted).
inline constexpr size_t kSynthIdHfCachedKeySets = 16;
// Token field of synthid-hf entries in a corpus TupleSet (no real token id is negative).
inline constexpr int32_t kSynthIdHfCorpusToken = -2;

struct SynthIdHfConfig {
  bool derive_keys = true;    // keys=derive: HKDF per keyring version
  std::vector<int64_t> keys;  // keys=k1/k2/...: HF's `keys`, one per layer
  int layers = kSynthIdHfDefaultLayers;  // depth when derived
  int ngram_len = 5;
  int table_seed = 0;
  int context_history = kSynthIdHfDefaultHistory;
  bool skip_first_ngram_calls = false;

  int depth() const { return derive_keys ? layers : static_cast<int>(keys.size()); }
  // Canonical parameter list (after "synthid-hf:"). Contains explicit keys: keyring file only.
  std::string ToParams() const;
  // The same with explicit keys replaced by their count, for results and reports.
  std::string ToPublicParams() const;
};

// Parses "keys=derive|k1/k2/...,layers=N,ngram=N,seed=N,history=N,skipfirst=0|1" (any order,
// all optional; default keys=derive, layers=30, ngram=5, seed=0, history=1024, skipfirst=0).
Result<SynthIdHfConfig> ParseSynthIdHfParams(std::string_view params);

// One LCG fold of HF's accumulate_hash, in uint64 (wrap-around; torch int64 wraps the same way).
inline uint64_t SynthIdHfAccumulate(uint64_t hash, int64_t value) {
  return (hash + static_cast<uint64_t>(value)) * kSynthIdHfMultiplier + kSynthIdHfIncrement;
}

// The packed table (bit i = byte i/8, bit i%8) for `seed`, verified against its pinned SHA-256.
Result<std::span<const uint8_t>> SynthIdHfSamplingTable(int seed);
// Checks `bytes` against the pin for `seed` (error names both digests when they differ).
Status VerifySynthIdHfTable(int seed, std::span<const uint8_t> bytes);

// Layer bitmasks of every n-gram hash class (low 16 bits) for one (seed, keys).
class SynthIdHfKeyedTable {
 public:
  // Cached: the same (seed, keys) returns the same table.
  static Result<std::shared_ptr<const SynthIdHfKeyedTable>> Get(int seed, std::span<const int64_t> keys);
  uint64_t GMask(uint64_t ngram_hash) const { return masks_[ngram_hash & (kSynthIdHfTableSize - 1)]; }
  int depth() const { return depth_; }
  double ones_fraction() const { return ones_fraction_; }  // of the base table: P(g = 1) under H0

 private:
  SynthIdHfKeyedTable() = default;
  std::vector<uint64_t> masks_;
  int depth_ = 0;
  double ones_fraction_ = 0.5;
};

// HF's masks and scores for one sequence (positions i >= ngram_len - 1, index i - (ngram_len - 1)).
struct SynthIdHfScore {
  int64_t hf_unmasked = 0;    // positions HF's detector keeps (repetition x EOS mask)
  double mean = 0;            // DeepMind/HF mean score over them (0 when none)
  double weighted_mean = 0;   // weights linspace(10, 1, depth) normalised to sum to depth
  int64_t units = 0;          // positions scored for the p-value (see Score)
  int64_t ones = 0;           // g = 1 count over units x layers
  int64_t trials = 0;         // units x depth
  double log_p = 0;           // ln P(Binomial(trials, ones_fraction) >= ones)
};

class SynthIdHf {
 public:
  static Result<SynthIdHf> Create(const SynthIdHfConfig& config, std::span<const int64_t> keys);
  // Keys from the config, or derived from the keyring version (keys=derive).
  static Result<SynthIdHf> FromKeyring(const Keyring& keyring, int version, const SynthIdHfConfig& config);
  // HKDF-Expand(PRK_version, "tracemark/v1/synthid-hf/keys|version=V|scheme=SPEC", 8 * layers),
  // read as little-endian int64s (docs/formats/keyring.md).
  static Result<std::vector<int64_t>> DeriveKeys(const Keyring& keyring, int version,
                                                 const SynthIdHfConfig& config);

  const SynthIdHfConfig& config() const { return config_; }
  int depth() const { return table_->depth(); }
  const SynthIdHfKeyedTable& table() const { return *table_; }

  // Hash of the ngram_len - 1 tokens before `end` (HF's hash_result_with_just_context).
  uint64_t ContextHash(std::span<const int32_t> tokens, size_t end) const;
  uint64_t GMask(uint64_t context_hash, int32_t token) const {
    return table_->GMask(SynthIdHfAccumulate(context_hash, token));
  }
  // HF compute_g_values: one layer bitmask per n-gram, tokens.size() - ngram_len + 1 of them.
  void ComputeGValues(std::span<const int32_t> tokens, std::vector<uint64_t>* out) const;
  // HF compute_context_repetition_mask: 1 = context not seen in the last context_history.
  void ComputeRepetitionMask(std::span<const int32_t> tokens, std::vector<uint8_t>* out) const;
  // HF compute_eos_token_mask: 1 before the first `eos_id`, 0 from it on (tokens.size() entries).
  static void ComputeEosMask(std::span<const int32_t> tokens, int32_t eos_id, std::vector<uint8_t>* out);

  // The tournament update in place over candidates `ids` with probabilities `probs` (HF's
  // update_scores before the log). `masks` is scratch (grown to ids.size()).
  void Tournament(uint64_t context_hash, std::span<const int32_t> ids, std::span<double> probs,
                  std::vector<uint64_t>* masks) const;

  // Scores tokens[0, end): HF's mean scores (repetition x EOS masks as HF computes them, EOS = end)
  // and the exact test over "units": HF-unmasked positions whose n-gram touches no
  // skip_mask token, counting each n-gram hash class (low 16 bits, which fixes the whole
  // g-vector) once. Under H0 each unit's g-values are i.i.d. Bernoulli(ones_fraction).
  // With `corpus`, a class already in it (scored in an earlier document) is skipped and every
  // class scored is added (DetectOptions::corpus_tuples; entries (class, kSynthIdHfCorpusToken)).
  SynthIdHfScore Score(std::span<const int32_t> tokens, size_t end, std::span<const uint8_t> skip_mask,
                       TupleSet* corpus = nullptr) const;

 private:
  SynthIdHf(SynthIdHfConfig config, std::shared_ptr<const SynthIdHfKeyedTable> table)
      : config_(std::move(config)), table_(std::move(table)) {}
  SynthIdHfConfig config_;
  std::shared_ptr<const SynthIdHfKeyedTable> table_;
};

// Generation: HF's per-call state. The context is the last ngram_len - 1 *generated* tokens,
// zero-padded (HF's state starts at zeros and ignores the prompt); every call pushes the context
// hash into a zero-initialized ring of context_history hashes, and a context already in the ring
// is left unwatermarked. One hook per request; not thread-safe; no allocation after warm-up.
class SynthIdHfHook : public SamplerHook {
 public:
  explicit SynthIdHfHook(SynthIdHf wm);
  int32_t Choose(const TokenCandidates& candidates, std::span<const int32_t> context, Rng& rng) override;
  void Accept(int32_t token) override;

  int64_t watermarked_steps() const { return watermarked_steps_; }
  int64_t skipped_repeats() const { return skipped_repeats_; }
  // HF's state after the last call (tests): the current context hash and whether it repeated.
  uint64_t last_context_hash() const { return last_context_hash_; }
  bool last_repeated() const { return last_repeated_; }
  // Steps the generation state without sampling (what HF's __call__ does to its state);
  // returns true when the step is watermarked. Choose() calls it.
  bool BeginStep();
  // The watermarked distribution of the current step (after BeginStep returned true).
  void WatermarkedProbs(const TokenCandidates& candidates, std::vector<double>* probs);

 private:
  SynthIdHf wm_;
  std::vector<int32_t> context_;    // ngram_len - 1 tokens, oldest first
  std::vector<uint64_t> history_;   // ring of context hashes, zero-initialized
  size_t history_head_ = 0;
  int64_t calls_ = 0;
  uint64_t last_context_hash_ = 0;
  bool last_repeated_ = false;
  std::vector<double> probs_;
  std::vector<uint64_t> masks_;
  int64_t watermarked_steps_ = 0;
  int64_t skipped_repeats_ = 0;
};

// The scheme's entry points for hook.cc and detector.cc (params.kind == SchemeKind::kSynthIdHf).
Result<std::unique_ptr<SamplerHook>> MakeSynthIdHfHook(const Keyring& keyring, int version,
                                                       const SchemeParams& params);
// Detection for one key version: p_value from the exact binomial test above; account is null
// (account_note says why). `end` is the scoring end (first EOS or the token count).
Result<Detection> DetectSynthIdHfVersion(const Keyring& keyring, int version, const SchemeParams& params,
                                         std::span<const int32_t> tokens, const DetectOptions& options,
                                         size_t end);

}  // namespace tracemark::watermark
