// Replays the committed fuzz seed corpus (fuzz/corpus/gguf) through the fuzz harness's entry
// point on every build, and checks each seed's expected outcome from its name: `valid_*` must
// parse, `bad_*` must be rejected (other names, e.g. minimized fuzzer findings, just must not
// crash).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tracemark/model/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace tracemark::gguf {
namespace {

constexpr size_t kMinSeeds = 8;

TEST(GgufCorpus, ReplaysEverySeedThroughTheFuzzEntryPoint) {
  const std::filesystem::path dir =
      std::filesystem::path(TM_SOURCE_DIR) / "fuzz" / "corpus" / "gguf";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), kMinSeeds);
  int valid = 0, bad = 0;
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    // An exactly sized heap copy, so sanitizer builds catch any overread.
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    SCOPED_TRACE(path.filename().string());
    EXPECT_EQ(LLVMFuzzerTestOneInput(bytes.empty() ? nullptr : bytes.data(), bytes.size()), 0);
    const std::string name = path.filename().string();
    auto r = GgufFile::Parse(bytes.empty() ? nullptr : bytes.data(), bytes.size());
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
