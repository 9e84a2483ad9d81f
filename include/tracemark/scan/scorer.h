// The per-document scoring interface the scanner drives, and the corpus-level pool merge uses.
//
// The scanner knows nothing about tokenizers or keys: a ScorerFactory builds one DocumentScorer
// per worker thread (each owns its tokenizer scratch and detector state). Besides the document's
// own test, a scorer emits the document's pool tuples: every scorable (context, token) tuple on
// the provider and account lanes. The scanner de-duplicates them across the whole corpus (sorted
// runs per shard, a k-way union at merge), and at merge a PoolFactory scores each unique tuple
// once per lane key (provider, and each attributed account) for the corpus-level test. The real
// implementation (tokenizer + watermark detector) is in watermark_scorer.h; tests inject fakes.
// A DocumentScorer and a LaneScorer are used by one thread at a time; the factories' methods
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

inline constexpr uint8_t kPoolProviderLane = 0;
inline constexpr uint8_t kPoolAccountLane = 1;

// One scorable (context, token) tuple of the corpus-level pooled test: not masked, before the
// first end-of-sequence token, on the provider or account lane of one key version. 16 bytes,
// written as is (little-endian) to the shard's tuples file; ordered by (version, hash, token).
struct PoolTuple {
  uint64_t context_hash = 0;
  int32_t token = 0;
  uint16_t key_version = 0;
  uint8_t lane = kPoolProviderLane;
  uint8_t reserved = 0;
  friend bool operator==(const PoolTuple&, const PoolTuple&) = default;
};
static_assert(sizeof(PoolTuple) == 16);

inline bool PoolTupleLess(const PoolTuple& a, const PoolTuple& b) {
  if (a.key_version != b.key_version) return a.key_version < b.key_version;
  if (a.context_hash != b.context_hash) return a.context_hash < b.context_hash;
  if (a.token != b.token) return a.token < b.token;
  return a.lane < b.lane;
}

struct DocScore {
  int64_t tokens_scored = 0;
  double p_value = 1.0;
  double log10_p_value = 0.0;
  std::string scheme;
  int key_version = 0;
  std::optional<uint64_t> account;  // attributed account, when significant
  double account_p_value = 1.0;
  // Targeted detection (scan --suspects; watermark::DetectOptions::suspects): suspects tested
  // (0: off, the two fields below are then not written), the targeted presence test's log10 p
  // and its best-fitting suspect.
  int suspects_tested = 0;
  double targeted_log10_p = 0.0;
  std::optional<uint64_t> targeted_suspect;
  std::vector<ScoredSpan> spans;
  // Per token, non-zero when detection skipped it (masked placeholders); empty means none.
  std::vector<uint8_t> skip_mask;
  // The document's pool tuples, in any order, duplicates allowed (see PoolTuple).
  std::vector<PoolTuple> pool_tuples;
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

// Scores pool tuples under one lane key: the provider lane of a key version, or the account
// lane of one account. Merge adds up the scores of the unique tuples in PoolTupleLess order, so
// the sum is the same bytes for any sharding; Log10Tail turns (sum, count) into a p-value.
class LaneScorer {
 public:
  virtual ~LaneScorer() = default;
  virtual double Score(uint64_t context_hash, int32_t token) const = 0;
  // log10 P(S >= sum) for `count` independent null scores; never -inf.
  virtual double Log10Tail(double sum, int64_t count) const = 0;
};

class PoolFactory {
 public:
  virtual ~PoolFactory() = default;
  // account empty: the provider lane of key_version; else that account's lane.
  virtual Result<std::unique_ptr<LaneScorer>> NewLaneScorer(int key_version,
                                                            std::optional<uint64_t> account) = 0;
  // Must equal the ScorerFactory::Identity() of the job being merged (same keys and model).
  virtual std::string Identity() const = 0;
  // Accounts whose lane the corpus-level test pools whether or not a document was attributed to
  // them (the scan's suspect list), sorted; empty by default.
  virtual std::vector<uint64_t> PooledSuspects() const { return {}; }
};

}  // namespace tracemark::scan
