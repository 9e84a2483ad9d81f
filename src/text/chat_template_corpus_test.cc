// Replays the committed fuzz seed corpus (fuzz/corpus/chat_template: every family template,
// every feature vector and some hostile inputs) through the fuzz harness's entry point on every
// build: each must finish without crashing, within the limits.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace tracemark {
namespace {

constexpr size_t kMinSeeds = 50;

TEST(ChatTemplateCorpus, ReplaysEverySeedThroughTheFuzzEntryPoint) {
  const std::filesystem::path dir = std::filesystem::path(TM_SOURCE_DIR) / "fuzz" / "corpus" / "chat_template";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), kMinSeeds);
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(path.filename().string());
    EXPECT_EQ(LLVMFuzzerTestOneInput(bytes.empty() ? nullptr : bytes.data(), bytes.size()), 0);
  }
}

}  // namespace
}  // namespace tracemark
