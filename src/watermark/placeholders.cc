#include "tracemark/watermark/placeholders.h"

#include <algorithm>

namespace tracemark::watermark {
namespace {
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsBodyChar(char c) {
  return IsUpper(c) || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == ' ';
}
}  // namespace

std::vector<std::pair<size_t, size_t>> FindPlaceholders(std::string_view text) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t i = 0;
  while (i < text.size()) {
    std::string_view open, close;
    if (text[i] == '[') {
      open = "[", close = "]";
    } else if (text[i] == '<') {
      open = "<", close = ">";
    } else if (text.substr(i, 2) == "{{") {
      open = "{{", close = "}}";
    } else {
      ++i;
      continue;
    }
    const size_t body = i + open.size();
    size_t j = body;
    if (j < text.size() && IsUpper(text[j])) {
      while (j < text.size() && j - body < kMaxPlaceholderBody && IsBodyChar(text[j])) ++j;
      if (text.substr(j, close.size()) == close) {
        out.emplace_back(i, j + close.size());
        i = j + close.size();
        continue;
      }
    }
    ++i;
  }
  return out;
}

std::vector<uint8_t> MaskTokens(std::span<const size_t> token_offsets,
                                std::span<const std::pair<size_t, size_t>> ranges) {
  const size_t n = token_offsets.empty() ? 0 : token_offsets.size() - 1;
  std::vector<uint8_t> mask(n, 0);
  size_t r = 0;
  for (size_t t = 0; t < n; ++t) {
    const size_t b = token_offsets[t], e = token_offsets[t + 1];
    while (r < ranges.size() && ranges[r].second <= b) ++r;
    for (size_t k = r; k < ranges.size() && ranges[k].first < std::max(e, b + 1); ++k) {
      if (ranges[k].second > b) {
        mask[t] = 1;
        break;
      }
    }
  }
  return mask;
}

}  // namespace tracemark::watermark
