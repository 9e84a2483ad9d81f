#include "text/unicode.h"

#include <map>
#include <memory>
#include <vector>

namespace tracemark::text {
namespace internal {

namespace {
constexpr uint8_t L = kCpLetter;
constexpr uint8_t N = kCpNumber;
constexpr uint8_t S = kCpSpace;
}  // namespace

// ASCII classes: \t \n \v \f \r and space are White_Space; digits; letters.
const uint8_t kAsciiFlags[128] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, S, S, S, S, S, 0, 0,  // 0x00
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // 0x10
    S, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // 0x20
    N, N, N, N, N, N, N, N, N, N, 0, 0, 0, 0, 0, 0,  // 0x30
    0, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L,  // 0x40
    L, L, L, L, L, L, L, L, L, L, L, 0, 0, 0, 0, 0,  // 0x50
    0, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L,  // 0x60
    L, L, L, L, L, L, L, L, L, L, L, 0, 0, 0, 0, 0,  // 0x70
};

namespace {
struct TableStorage {
  CodepointTable table;
  std::vector<uint8_t> blocks;
};

TableStorage* BuildTable() {
  auto* storage = new TableStorage();
  constexpr size_t kBlocks = (kMaxCodepoint + 1) >> 8;
  std::vector<uint8_t> flat(kMaxCodepoint + 1, 0);
  for (size_t r = 0; r < kNumCodepointRanges; ++r) {
    for (uint32_t cp = kCodepointRanges[r].first; cp <= kCodepointRanges[r].last; ++cp) {
      flat[cp] = kCodepointRanges[r].flags;
    }
  }
  // Deduplicate 256-entry blocks.
  std::map<std::string, uint16_t> seen;
  for (size_t b = 0; b < kBlocks; ++b) {
    std::string block(reinterpret_cast<const char*>(flat.data()) + b * 256, 256);
    auto it = seen.find(block);
    if (it == seen.end()) {
      const auto index = static_cast<uint16_t>(seen.size());
      it = seen.emplace(std::move(block), index).first;
      for (const char c : it->first) storage->blocks.push_back(static_cast<uint8_t>(c));
    }
    storage->table.block_of[b] = it->second;
  }
  storage->table.blocks = storage->blocks.data();
  return storage;
}
}  // namespace

const CodepointTable& GetCodepointTable() {
  // Built once (thread-safe static init) and kept for the life of the process.
  static const TableStorage* const storage = BuildTable();
  return storage->table;
}

}  // namespace internal

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t CompleteUtf8Prefix(std::string_view s) {
  // Look at most 3 bytes back for a lead byte whose sequence is still incomplete.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = 0;
    if (c >= 0xC2 && c < 0xE0) need = 2;
    else if (c >= 0xE0 && c < 0xF0) need = 3;
    else if (c >= 0xF0 && c < 0xF5) need = 4;
    if (need > back) {
      // Incomplete so far; hold it back only if the bytes present could still become valid
      // (the second byte of E0/ED/F0/F4 sequences has a narrower range).
      if (back >= 2) {
        const auto c1 = static_cast<unsigned char>(s[n - back + 1]);
        if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
            (c == 0xF4 && c1 > 0x8F)) {
          return n;
        }
      }
      return n - back;
    }
    return n;
  }
  return n;
}

}  // namespace tracemark::text
