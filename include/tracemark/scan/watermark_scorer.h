// The real document scorer: the model's tokenizer (text/) + the watermark detector (watermark/).
//
// WatermarkScoring loads the keyring and the GGUF tokenizer once; NewScorer() gives each worker
// thread its own Detector (scratch buffers), sharing the immutable Tokenizer and Keyring.
// Texts are encoded without special tokens; PII placeholders ("[EMAIL]", "<NAME>", ...) are
// masked so that tuples touching them are skipped; scoring stops at the first end-of-generation
// token. Every document also yields its pool tuples (provider and account lanes of every key
// version, same masking and context rule as watermark::CorpusDetector); NewLaneScorer() scores
// them at merge with the provider key or one account's key (exact detector word scores and
// tails). With max_token_prob set, the model's weights are mapped once and each scorer owns a
// TokenProbModel (one engine Context, one kernel thread) on them: a document's tuples whose token
// the model gives probability above max_token_prob are left out of its test and of the pool, a
// pure function of its tokens, so results stay the same for any thread count and sharding. The
// object must outlive its scorers; NewScorer/NewLaneScorer/Identity are safe to call from
// several threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/scan/scorer.h"

namespace tracemark {
class Model;
}
namespace tracemark::gguf {
class GgufFile;
}
namespace tracemark::text {
class Tokenizer;
}
namespace tracemark::watermark {
class Keyring;
}

namespace tracemark::scan {

struct WatermarkScoringOptions {
  std::string keyring_path;
  std::string model_path;
  double threshold = 1e-6;  // per-document; also the account threshold
  bool mask_placeholders = true;
  // Token-probability filter (watermark::DetectOptions::max_token_prob; `scan --max-token-prob`):
  // in (0, 1) to score only tokens the model (model_path, run over each document alone) gives
  // probability <= this, in the document test and in the pool; 0 = off. Recorded in Identity(),
  // so shards scanned with different settings never merge.
  double max_token_prob = 0.0;
  // Targeted detection against these accounts (watermark::DetectOptions::suspects); recorded in
  // Identity() as a count and a SHA-256 of the sorted list, so shards scanned with different
  // lists never merge.
  std::vector<uint64_t> suspects;
};

class WatermarkScoring : public ScorerFactory, public PoolFactory {
 public:
  static Result<std::unique_ptr<WatermarkScoring>> Create(const WatermarkScoringOptions& options);
  ~WatermarkScoring() override;

  Result<std::unique_ptr<DocumentScorer>> NewScorer() override;
  std::string Identity() const override { return identity_; }
  std::vector<uint64_t> PooledSuspects() const override;
  Result<std::unique_ptr<LaneScorer>> NewLaneScorer(int key_version,
                                                    std::optional<uint64_t> account) override;
  struct PoolVersion;

 private:
  WatermarkScoring() = default;
  WatermarkScoringOptions options_;
  std::unique_ptr<watermark::Keyring> keyring_;
  std::unique_ptr<gguf::GgufFile> gguf_;
  std::unique_ptr<text::Tokenizer> tokenizer_;
  std::unique_ptr<Model> model_;  // loaded only for the token-probability filter
  std::vector<int32_t> eos_ids_;
  std::vector<PoolVersion> versions_;
  std::string identity_;
};

}  // namespace tracemark::scan
