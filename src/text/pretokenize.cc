#include "text/pretokenize.h"

#include "text/unicode.h"

namespace tracemark::text {
namespace {

constexpr uint8_t kClassMask = kCpLetter | kCpNumber | kCpSpace;

struct Ch {
  uint32_t cp;
  uint32_t len;
  uint8_t flags;
};

// The character at s[i]; i < s.size(). ASCII fast path first.
inline Ch At(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return {c, 1, internal::kAsciiFlags[c]};
  size_t len = 1;
  const uint32_t cp = DecodeUtf8(s, i, &len);
  return {cp, static_cast<uint32_t>(len), CodepointFlags(cp)};
}

inline bool IsOther(uint8_t flags) { return (flags & kClassMask) == 0; }

// Ends of runs starting at i of characters whose flags satisfy the predicate.
template <typename Pred>
inline size_t RunEnd(std::string_view s, size_t i, Pred pred) {
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (!pred(internal::kAsciiFlags[c], c)) break;
      ++i;
      continue;
    }
    const Ch ch = At(s, i);
    if (!pred(ch.flags, ch.cp)) break;
    i += ch.len;
  }
  return i;
}

inline size_t LetterRun(std::string_view s, size_t i) {
  return RunEnd(s, i, [](uint8_t f, uint32_t) { return (f & kCpLetter) != 0; });
}
inline size_t NumberRun(std::string_view s, size_t i) {
  return RunEnd(s, i, [](uint8_t f, uint32_t) { return (f & kCpNumber) != 0; });
}
inline size_t OtherRun(std::string_view s, size_t i) {
  return RunEnd(s, i, [](uint8_t f, uint32_t) { return IsOther(f); });
}

// The whitespace alternatives shared by both regex families: \s+(?!\S)|\s+ at i (s[i] is
// whitespace). Returns the match end.
inline size_t WhitespaceMatch(std::string_view s, size_t i) {
  size_t j = i;
  size_t last_start = i;  // start of the last whitespace character in the run
  while (j < s.size()) {
    const Ch ch = At(s, j);
    if (!(ch.flags & kCpSpace)) break;
    last_start = j;
    j += ch.len;
  }
  if (j == s.size()) return j;               // \s+(?!\S) takes the whole run at the end
  if (last_start > i) return last_start;     // leave the last one to prefix the next word
  return j;                                  // \s+ (single whitespace before non-space)
}

// Contractions 's 't 're 've 'm 'll 'd at s[i] == '\''. Returns the match length or 0.
inline size_t Contraction(std::string_view s, size_t i, bool ignore_case) {
  if (i + 1 >= s.size()) return 0;
  auto lower = [&](size_t k) -> uint32_t {
    const Ch ch = At(s, k);
    if (!ignore_case) return ch.cp;
    if (ch.cp >= 'A' && ch.cp <= 'Z') return ch.cp + 32;
    if (ch.cp == 0x17F) return 's';  // LATIN SMALL LETTER LONG S case-folds to 's'
    return ch.cp;
  };
  const uint32_t c1 = lower(i + 1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
    return 1 + At(s, i + 1).len;
  }
  if (i + 2 >= s.size()) return 0;
  const auto raw1 = static_cast<unsigned char>(s[i + 1]);
  if (raw1 >= 0x80) return 0;
  const uint32_t c2 = lower(i + 2);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
    return 2 + At(s, i + 2).len;
  }
  return 0;
}

// One match of the gpt2 regex at i; returns its end.
size_t Gpt2Match(std::string_view s, size_t i) {
  const Ch c = At(s, i);
  if (c.cp == '\'') {
    const size_t n = Contraction(s, i, /*ignore_case=*/false);
    if (n) return i + n;
  }
  size_t j = i;
  uint8_t f = c.flags;
  if (c.cp == ' ' && i + 1 < s.size()) {
    const Ch next = At(s, i + 1);
    if (!(next.flags & kCpSpace)) {
      j = i + 1;
      f = next.flags;
    }
  }
  if (f & kCpLetter) return LetterRun(s, j);
  if (f & kCpNumber) return NumberRun(s, j);
  if (IsOther(f)) return OtherRun(s, j);
  return WhitespaceMatch(s, i);
}

void SplitGpt2(std::string_view s, size_t base, std::vector<PieceSpan>* out) {
  size_t i = 0;
  while (i < s.size()) {
    const size_t end = Gpt2Match(s, i);
    out->push_back({base + i, base + end});
    i = end;
  }
}

inline bool IsCrLf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

// One match of the llama3/qwen2 regex at i; returns its end.
size_t Llama3Match(std::string_view s, size_t i, size_t max_digits) {
  const Ch c = At(s, i);
  if (c.cp == '\'') {
    const size_t n = Contraction(s, i, /*ignore_case=*/true);
    if (n) return i + n;
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c.flags & kCpLetter) return LetterRun(s, i);
  if (!(c.flags & (kCpNumber)) && !IsCrLf(c.cp) && i + c.len < s.size()) {
    const Ch next = At(s, i + c.len);
    if (next.flags & kCpLetter) return LetterRun(s, i + c.len);
  }
  // \p{N}{1,max}
  if (c.flags & kCpNumber) {
    size_t j = i;
    for (size_t k = 0; k < max_digits && j < s.size(); ++k) {
      const Ch d = At(s, j);
      if (!(d.flags & kCpNumber)) break;
      j += d.len;
    }
    return j;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  {
    size_t j = i;
    uint8_t f = c.flags;
    if (c.cp == ' ' && i + 1 < s.size()) {
      j = i + 1;
      f = At(s, j).flags;
    }
    if (IsOther(f)) {
      j = OtherRun(s, j);
      while (j < s.size() && (s[j] == '\r' || s[j] == '\n')) ++j;
      return j;
    }
  }
  // \s*[\r\n]+ : the whitespace run up to its last \r or \n.
  size_t j = i;
  size_t after_last_newline = 0;
  while (j < s.size()) {
    const Ch ch = At(s, j);
    if (!(ch.flags & kCpSpace)) break;
    j += ch.len;
    if (IsCrLf(ch.cp)) after_last_newline = j;
  }
  if (after_last_newline) return after_last_newline;
  return WhitespaceMatch(s, i);
}

void SplitLlama3(std::string_view s, size_t max_digits, std::vector<PieceSpan>* out) {
  size_t i = 0;
  while (i < s.size()) {
    const size_t end = Llama3Match(s, i, max_digits);
    out->push_back({i, end});
    i = end;
  }
}

// Digits(individual_digits=true) isolates every \p{N} character; the gpt2 regex then runs on
// the text between them, each stretch being its own string (so (?!\S) sees its end as the end).
void SplitSmollm(std::string_view s, std::vector<PieceSpan>* out) {
  size_t seg = 0;
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      if (b >= '0' && b <= '9') {
        if (seg < i) SplitGpt2(s.substr(seg, i - seg), seg, out);
        out->push_back({i, i + 1});
        seg = ++i;
      } else {
        ++i;
      }
      continue;
    }
    const Ch ch = At(s, i);
    if (ch.flags & kCpNumber) {
      if (seg < i) SplitGpt2(s.substr(seg, i - seg), seg, out);
      out->push_back({i, i + ch.len});
      seg = i + ch.len;
    }
    i += ch.len;
  }
  if (seg < s.size()) SplitGpt2(s.substr(seg), seg, out);
}

}  // namespace

void PreTokenize(PreTokenizerKind kind, std::string_view text, std::vector<PieceSpan>* out) {
  switch (kind) {
    case PreTokenizerKind::kGpt2:
      SplitGpt2(text, 0, out);
      return;
    case PreTokenizerKind::kSmollm:
      SplitSmollm(text, out);
      return;
    case PreTokenizerKind::kLlama3:
      SplitLlama3(text, 3, out);
      return;
    case PreTokenizerKind::kQwen2:
      SplitLlama3(text, 1, out);
      return;
  }
}

}  // namespace tracemark::text
