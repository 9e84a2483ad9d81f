// Replays the committed fuzz seed corpus (fuzz/corpus/chat_template: every family template,
// every feature vector and some hostile inputs) through the fuzz harness's entry point on every
// build: each must finish without crashing, within the limits.
#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "base/testing/fuzz_corpus.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace tracemark {
namespace {

constexpr size_t kMinSeeds = 50;

TEST(ChatTemplateCorpus, ReplaysEverySeedThroughTheFuzzEntryPoint) {
  const std::filesystem::path dir = std::filesystem::path(TM_SOURCE_DIR) / "fuzz" / "corpus" / "chat_template";
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
}  // namespace tracemark
