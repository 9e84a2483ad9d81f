// Test helpers for scan/: compression, temp folders, and a fake scorer and pool whose results
// are a pure function of the text (so determinism tests can compare bytes). Test-only.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tracemark/scan/scorer.h"

namespace tracemark::scan::testing {

std::string ZstdCompress(std::string_view data, int level = 3);
std::string GzipCompress(std::string_view data);
void WriteBytes(const std::string& path, std::string_view data);
std::string ReadBytes(const std::string& path);

// A fresh folder under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string Join(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// Scores "WATERMARK:<account>" texts as watermarked (p = 1e-12, attributed to <account>),
// "WATERMARK:?" as watermarked but unattributed, texts containing "SCOREFAIL" as a scorer
// error, and everything else as clean (p = 0.5). Pool tuples are the text's byte bigrams (see
// AddTuples).
class FakeScorerFactory : public ScorerFactory {
 public:
  Result<std::unique_ptr<DocumentScorer>> NewScorer() override;
  std::string Identity() const override { return "fake-scorer/1"; }
};

// The fake's pool tuples of a text: (previous byte, byte) of every position whose bytes are
// both unmasked, key version 1, lane = parity of their sum.
void AddTuples(std::string_view text, std::span<const uint8_t> skip_mask, DocScore* s);
// The fake lane score of a tuple; salt 0 = provider, account * 31 + 1 for an account.
double FakeTupleScore(uint64_t context_hash, int32_t token, uint64_t salt);

// Lane scores FakeTupleScore; log10 p = -(sum - count / 4) / 100.
class FakePoolFactory : public PoolFactory {
 public:
  Result<std::unique_ptr<LaneScorer>> NewLaneScorer(int key_version,
                                                    std::optional<uint64_t> account) override;
  std::string Identity() const override { return "fake-scorer/1"; }
};

}  // namespace tracemark::scan::testing
