// Test-only helpers to replay a committed libFuzzer seed corpus through a harness's
// LLVMFuzzerTestOneInput on every ordinary build (fuzz/corpus/<name>/). Header-only; used by
// the *_corpus_test.cc files and the replay mains. Not thread-safe concerns: plain functions.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

namespace tracemark::test_util {

// Regular files under `dir` (recursively), sorted by path so replays are deterministic.
inline std::vector<std::filesystem::path> CorpusFiles(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The file's bytes in an exactly sized heap buffer, so sanitizer builds catch any overread.
inline std::vector<uint8_t> ReadCorpusFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A pointer libFuzzer would pass for these bytes (null for an empty input).
inline const uint8_t* FuzzData(const std::vector<uint8_t>& bytes) {
  return bytes.empty() ? nullptr : bytes.data();
}

}  // namespace tracemark::test_util
