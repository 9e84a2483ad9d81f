// Replays the committed fuzz seed corpus (fuzz/corpus/gguf) through the fuzz harness's entry
// point on every build, and checks each seed's expected outcome from its name: `valid_*` must
// parse, `bad_*` must be rejected (other names, e.g. minimized fuzzer findings, just must not
// crash).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "base/testing/fuzz_corpus.h"
#include "tracemark/model/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace tracemark::gguf {
namespace {

constexpr size_t kMinSeeds = 8;

TEST(GgufCorpus, ReplaysEverySeedThroughTheFuzzEntryPoint) {
  const std::filesystem::path dir =
      std::filesystem::path(TM_SOURCE_DIR) / "fuzz" / "corpus" / "gguf";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  const std::vector<std::filesystem::path> files = test_util::CorpusFiles(dir);
  ASSERT_GE(files.size(), kMinSeeds);
  int valid = 0, bad = 0;
  for (const auto& path : files) {
    const std::vector<uint8_t> bytes = test_util::ReadCorpusFile(path);
    SCOPED_TRACE(path.filename().string());
    EXPECT_EQ(LLVMFuzzerTestOneInput(test_util::FuzzData(bytes), bytes.size()), 0);
    const std::string name = path.filename().string();
    auto r = GgufFile::Parse(test_util::FuzzData(bytes), bytes.size());
    if (name.rfind("valid_", 0) == 0) {
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      ++valid;
    } else if (name.rfind("bad_", 0) == 0) {
      EXPECT_FALSE(r.ok());
      if (!r.ok()) {
        EXPECT_FALSE(r.status().message().empty());
      }
      ++bad;
    }
  }
  EXPECT_GE(valid, 2);
  EXPECT_GE(bad, 4);
}

}  // namespace
}  // namespace tracemark::gguf
