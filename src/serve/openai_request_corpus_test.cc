// Replays the fuzz seed corpus (fuzz/corpus/openai_request) through the fuzz harness's entry
// point on every build: `valid_*` seeds must be accepted by one endpoint, `bad_*` by none.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "tracemark/serve/api_types.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace tracemark::serve {
namespace {

TEST(OpenAiRequestCorpus, ReplaysEverySeed) {
  const std::filesystem::path dir = std::filesystem::path(TM_SOURCE_DIR) / "fuzz" / "corpus" / "openai_request";
  ASSERT_TRUE(std::filesystem::is_directory(dir));
  int seeds = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(e.path().filename().string());
    EXPECT_EQ(LLVMFuzzerTestOneInput(bytes.data(), bytes.size()), 0);
    const std::string_view body(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    const bool accepted = ParseCompletionRequest(body, true).request.has_value() ||
                          ParseCompletionRequest(body, false).request.has_value();
    const std::string name = e.path().filename().string();
    if (name.rfind("valid_", 0) == 0) {
      EXPECT_TRUE(accepted);
    } else if (name.rfind("bad_", 0) == 0) {
      EXPECT_FALSE(accepted);
    }
    ++seeds;
  }
  EXPECT_GE(seeds, 8);
}

}  // namespace
}  // namespace tracemark::serve
