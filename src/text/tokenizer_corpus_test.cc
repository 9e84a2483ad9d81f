// Replays the committed fuzz seed corpus (fuzz/corpus/tokenizer: ASCII, CJK, emoji ZWJ
// sequences, invalid UTF-8, encoded surrogates, digit and whitespace runs, special-token
// strings) through the tokenizer fuzz harness's entry point on every build. The harness aborts
// on any broken invariant (id range, round trip, StreamDecoder == Decode), so each seed must
// simply return. It always checks the committed Qwen2 vocabulary, and SmolLM2 / Gemma 3 when
// their model files are present.
#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "base/testing/fuzz_corpus.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace tracemark::text {
namespace {

constexpr size_t kMinSeeds = 20;

TEST(TokenizerCorpus, ReplaysEverySeedThroughTheFuzzEntryPoint) {
  const std::filesystem::path dir =
      std::filesystem::path(TM_SOURCE_DIR) / "fuzz" / "corpus" / "tokenizer";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  const std::vector<std::filesystem::path> files = test_util::CorpusFiles(dir);
  ASSERT_GE(files.size(), kMinSeeds);
  for (const auto& path : files) {
    const std::vector<uint8_t> bytes = test_util::ReadCorpusFile(path);
    SCOPED_TRACE(path.filename().string());
    EXPECT_EQ(LLVMFuzzerTestOneInput(test_util::FuzzData(bytes), bytes.size()), 0);
  }
}

}  // namespace
}  // namespace tracemark::text
