// Placeholders left by PII masking ("[EMAIL]", "<NAME>", "{{PHONE}}", "[REDACTED]") and the token
// mask they induce: detection skips every (context, token) tuple that touches a masked token,
// since those tokens were not produced by the model. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace tracemark::watermark {

// Longest placeholder body recognized (between the brackets).
inline constexpr size_t kMaxPlaceholderBody = 40;

// Byte ranges [begin, end) of placeholders: "[" / "<" / "{{" + an upper-case letter followed by
// upper-case letters, digits, '_', '-' or ' ' + the matching closer.
std::vector<std::pair<size_t, size_t>> FindPlaceholders(std::string_view text);

// token_offsets[i] = byte offset where token i starts, token_offsets[n] = end of the last token.
// Returns mask[i] = 1 when token i overlaps any range.
std::vector<uint8_t> MaskTokens(std::span<const size_t> token_offsets,
                                std::span<const std::pair<size_t, size_t>> ranges);

}  // namespace tracemark::watermark
