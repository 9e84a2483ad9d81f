// Test helpers for scan/: compression, temp folders, and a fake scorer and pool whose results
// are a pure function of the text (so determinism tests can compare bytes). Test-only.
#pragma once

#include <memory>
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
// error, and everything else as clean (p = 0.5). Tokens are the text's bytes.
class FakeScorerFactory : public ScorerFactory {
 public:
  Result<std::unique_ptr<DocumentScorer>> NewScorer() override;
  std::string Identity() const override { return "fake-scorer/1"; }
};

// Tuples = distinct (previous byte, byte) pairs over the pool; log10 p = -tuples / 100.
class FakePoolFactory : public PoolFactory {
 public:
  Result<std::unique_ptr<CorpusPool>> NewPool(uint64_t account, int key_version) override;
  std::string Identity() const override { return "fake-scorer/1"; }
};

}  // namespace tracemark::scan::testing
