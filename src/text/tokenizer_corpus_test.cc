// Replays the committed fuzz seed corpus (fuzz/corpus/tokenizer: ASCII, CJK, emoji ZWJ
// sequences, invalid UTF-8, encoded surrogates, digit and whitespace runs, special-token
// strings) through the tokenizer fuzz harness's entry point on every build. The harness aborts
// on any broken invariant (id range, round trip, StreamDecoder == Decode), so each seed must
// simply return. It always checks the committed Qwen2 vocabulary, and SmolLM2 / Gemma 3 when
// their model files are present.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace tracemark::text {
namespace {

constexpr size_t kMinSeeds = 20;

TEST(TokenizerCorpus, ReplaysEverySeedThroughTheFuzzEntryPoint) {
  const std::filesystem::path dir =
      std::filesystem::path(TM_SOURCE_DIR) / "fuzz" / "corpus" / "tokenizer";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), kMinSeeds);
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    // An exactly sized heap copy, so sanitizer builds catch any overread.
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    SCOPED_TRACE(path.filename().string());
    EXPECT_EQ(LLVMFuzzerTestOneInput(bytes.empty() ? nullptr : bytes.data(), bytes.size()), 0);
  }
}

}  // namespace
}  // namespace tracemark::text
