// The per-document scoring interface the scanner drives, and the corpus-level pool merge uses.
//
// The scanner knows nothing about tokenizers or keys: a ScorerFactory builds one DocumentScorer
// per worker thread (each owns its tokenizer scratch and detector state), and a PoolFactory
// builds the de-duplicating corpus-level test per (account, key version) at merge time. The real
// implementation (tokenizer + watermark detector) is in watermark_scorer.h; tests inject fakes.
// A DocumentScorer and a CorpusPool are used by one thread at a time; the factories' methods
// must be safe to call from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tracemark/base/status.h"

namespace tracemark::scan {

struct ScoredSpan {
  uint64_t token_begin = 0;  // token offsets [begin, end) in the document's tokenization
  uint64_t token_end = 0;
  uint64_t byte_begin = 0;  // the same span as byte offsets [begin, end) in the document text
  uint64_t byte_end = 0;
  double log10_p = 0;
};

struct DocScore {
  int64_t tokens_scored = 0;
  double p_value = 1.0;
  double log10_p_value = 0.0;
  std::string scheme;
  int key_version = 0;
  std::optional<uint64_t> account;  // attributed account, when significant
  double account_p_value = 1.0;
  std::vector<ScoredSpan> spans;
  // The document's token ids (up to the first end-of-sequence token), kept for the corpus-level
  // pooled test. Scorers fill it; the scanner keeps it only for flagged documents.
  std::vector<int32_t> tokens;
  // Per token, non-zero when detection skipped it (masked placeholders); empty means none.
  std::vector<uint8_t> skip_mask;
};

class DocumentScorer {
 public:
  virtual ~DocumentScorer() = default;
  virtual Result<DocScore> Score(std::string_view text) = 0;
};

class ScorerFactory {
 public:
  virtual ~ScorerFactory() = default;
  virtual Result<std::unique_ptr<DocumentScorer>> NewScorer() = 0;
  // Identifies keys, model and detector settings: part of the job fingerprint, so a rerun with
  // another keyring or model never reuses old shard results. Never contains secrets.
  virtual std::string Identity() const = 0;
};

// A corpus-level test over the union of documents' tuples, each (context, token) tuple counted
// once across the corpus.
class CorpusPool {
 public:
  virtual ~CorpusPool() = default;
  // skip_mask: as DocScore::skip_mask (same length as tokens, or empty).
  virtual void AddDocument(std::span<const int32_t> tokens, std::span<const uint8_t> skip_mask) = 0;
  virtual int64_t tuples() const = 0;
  virtual double log10_p_value() const = 0;
};

class PoolFactory {
 public:
  virtual ~PoolFactory() = default;
  virtual Result<std::unique_ptr<CorpusPool>> NewPool(uint64_t account, int key_version) = 0;
  // Must equal the ScorerFactory::Identity() of the job being merged (same keys and model).
  virtual std::string Identity() const = 0;
};

}  // namespace tracemark::scan
