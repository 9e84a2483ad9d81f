// Replays a libFuzzer seed corpus (every file under the folders given) through
// LLVMFuzzerTestOneInput, so the corpus runs as an ordinary test on every build.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "base/testing/fuzz_corpus.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  size_t count = 0;
  for (int i = 1; i < argc; ++i) {
    for (const auto& path : tracemark::test_util::CorpusFiles(argv[i])) {
      const std::vector<uint8_t> bytes = tracemark::test_util::ReadCorpusFile(path);
      LLVMFuzzerTestOneInput(tracemark::test_util::FuzzData(bytes), bytes.size());
      ++count;
    }
  }
  std::printf("replayed %zu inputs\n", count);
  return count > 0 ? 0 : 1;
}
