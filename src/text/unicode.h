// UTF-8 decoding and codepoint classes for the hand-written pre-tokenizers (internal to text/).
//
// Classes follow the regex semantics the Hugging Face pre-tokenizers use: letter = \p{L},
// number = \p{N}, space = Unicode White_Space (Oniguruma's \s). The class table is built once,
// on first use, from generated ranges (unicode_tables.cc); lookups are then lock-free and safe
// from any thread. Invalid UTF-8 bytes decode as single-byte "other" units so that byte-level
// tokenizers still cover every input byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tracemark::text {

inline constexpr uint8_t kCpLetter = 1;
inline constexpr uint8_t kCpNumber = 2;
inline constexpr uint8_t kCpSpace = 4;
inline constexpr uint8_t kCpNfcUnstable = 8;  // may change under NFC
inline constexpr uint32_t kMaxCodepoint = 0x10FFFF;
inline constexpr uint32_t kInvalidCodepoint = 0xFFFFFFFFu;  // an undecodable byte

namespace internal {
struct CodepointRange {
  uint32_t first;
  uint32_t last;
  uint8_t flags;
};
struct Decomposition {
  uint32_t cp;
  uint32_t first;
  uint32_t second;  // 0 for a singleton decomposition
};
struct CombiningClass {
  uint32_t cp;
  uint8_t ccc;
};
extern const CodepointRange kCodepointRanges[];
extern const Decomposition kDecompositions[];
extern const size_t kNumDecompositions;
extern const CombiningClass kCombiningClasses[];
extern const size_t kNumCombiningClasses;
extern const size_t kNumCodepointRanges;
// Two-level table: 4352 blocks of 256 codepoints.
struct CodepointTable {
  uint16_t block_of[(kMaxCodepoint + 1) >> 8];
  const uint8_t* blocks;
};
const CodepointTable& GetCodepointTable();
extern const uint8_t kAsciiFlags[128];
}  // namespace internal

// Class flags of a codepoint (0 for kInvalidCodepoint and unassigned/other codepoints).
inline uint8_t CodepointFlags(uint32_t cp) {
  if (cp < 128) return internal::kAsciiFlags[cp];
  if (cp > kMaxCodepoint) return 0;
  const internal::CodepointTable& t = internal::GetCodepointTable();
  return t.blocks[(static_cast<size_t>(t.block_of[cp >> 8]) << 8) | (cp & 0xFF)];
}

// Decodes the UTF-8 sequence starting at s[i] (i < s.size()). Sets *len to its byte length
// (1 for an invalid byte, which yields kInvalidCodepoint). Rejects overlongs, surrogates and
// values above U+10FFFF, like a strict UTF-8 decoder.
inline uint32_t DecodeUtf8(std::string_view s, size_t i, size_t* len) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  const size_t left = s.size() - i;
  const unsigned char c = p[0];
  if (c < 0x80) {
    *len = 1;
    return c;
  }
  *len = 1;
  if (c < 0xC2) return kInvalidCodepoint;
  if (c < 0xE0) {
    if (left < 2 || (p[1] & 0xC0) != 0x80) return kInvalidCodepoint;
    *len = 2;
    return ((c & 0x1Fu) << 6) | (p[1] & 0x3Fu);
  }
  if (c < 0xF0) {
    if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return kInvalidCodepoint;
    const uint32_t cp = ((c & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalidCodepoint;
    *len = 3;
    return cp;
  }
  if (c < 0xF5) {
    if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) {
      return kInvalidCodepoint;
    }
    const uint32_t cp = ((c & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) |
                        (p[3] & 0x3Fu);
    if (cp < 0x10000 || cp > kMaxCodepoint) return kInvalidCodepoint;
    *len = 4;
    return cp;
  }
  return kInvalidCodepoint;
}

// Appends the UTF-8 encoding of cp (cp <= U+10FFFF).
void AppendUtf8(uint32_t cp, std::string* out);

// Length of the longest prefix of s[0, n) that does not end inside an incomplete (but so far
// valid) UTF-8 sequence. Bytes that can never become valid are not held back.
size_t CompleteUtf8Prefix(std::string_view s);

}  // namespace tracemark::text
