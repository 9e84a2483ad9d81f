#include "tracemark/monitor/prompt_features.h"

#include <algorithm>
#include <string>
#include <bit>
#include <cstring>

namespace tracemark::monitor {
namespace {

constexpr uint64_t kDigitsPlaceholder = HashBytes("<#>");
constexpr uint64_t kQuotePlaceholder = HashBytes("<q>");
constexpr uint64_t kNamePlaceholder = HashBytes("<name>");
// Content words are at least this long and not stop words.
constexpr int kMinContentWordLength = 4;

constexpr std::array<std::string_view, 48> kStopWords = {
    "about", "above", "after", "again", "also", "because", "been", "before", "being", "below",
    "between", "both", "could", "does", "doing", "down", "during", "each", "from", "further",
    "have", "having", "here", "into", "just", "more", "most", "only", "other", "over", "same",
    "should", "some", "such", "than", "that", "their", "them", "then", "there", "these", "they",
    "this", "those", "very", "what", "when", "which"};

// Word hash, 8 bytes per step. `p` must have 8 readable bytes past p + len - 1 rounded down to
// a multiple of 8 (the analyzer's buffer is padded).
uint64_t HashWord(const char* p, size_t len) {
  uint64_t h = 0x9e3779b97f4a7c15ULL * (len + 1);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t c;
    std::memcpy(&c, p + i, 8);
    h = Mix64(h ^ c);
  }
  if (i < len) {
    uint64_t c;
    std::memcpy(&c, p + i, 8);
    c &= ~uint64_t{0} >> (8 * (8 - (len - i)));
    h = Mix64(h ^ c);
  }
  return h;
}

uint64_t HashWordOf(std::string_view w) {
  std::string padded(w);
  padded.resize(w.size() + 8, '\0');
  return HashWord(padded.data(), w.size());
}

const std::array<uint64_t, kStopWords.size()>& StopWordHashes() {
  static const std::array<uint64_t, kStopWords.size()> table = [] {
    std::array<uint64_t, kStopWords.size()> t{};
    for (size_t i = 0; i < kStopWords.size(); ++i) t[i] = HashWordOf(kStopWords[i]);
    std::sort(t.begin(), t.end());
    return t;
  }();
  return table;
}

bool IsStopWord(uint64_t h) {
  const auto& t = StopWordHashes();
  return std::binary_search(t.begin(), t.end(), h);
}

// Hash of a long byte string, 8 bytes per step (the exact-prompt hash for distinct counting).
uint64_t HashLong(const char* p, size_t n) {
  uint64_t h = 0x2545f4914f6cdd1dULL ^ n;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t chunk;
    std::memcpy(&chunk, p + i, 8);
    h = std::rotl(h ^ chunk, 29) * 0x9e3779b97f4a7c15ULL;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p + i, n - i);
  return Mix64(h ^ tail);
}

// Elicitation phrases are matched where a word starts whose hash equals the phrase's first word.
struct PhraseStart {
  uint64_t first_word_hash;
  uint32_t index;
};

const std::array<PhraseStart, kElicitationPhrases.size()>& PhraseStarts() {
  static const std::array<PhraseStart, kElicitationPhrases.size()> table = [] {
    std::array<PhraseStart, kElicitationPhrases.size()> t{};
    for (size_t i = 0; i < kElicitationPhrases.size(); ++i) {
      const std::string_view ph = kElicitationPhrases[i];
      t[i] = {HashWordOf(ph.substr(0, ph.find(' '))), static_cast<uint32_t>(i)};
    }
    return t;
  }();
  return table;
}

inline bool IsWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80 ||
         c == '_' || c == '-';
}

}  // namespace

void PromptAnalyzer::Analyze(std::string_view prompt, PromptFeatures* out) {
  const size_t n = std::min(prompt.size(), kMaxPromptBytesScanned);
  const char* p = prompt.data();
  out->prompt_hash = HashLong(p, n);
  out->content_word_count = 0;
  out->elicitation_mask = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = p[i];
    lower_[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  }
  const std::string_view lower(lower_.data(), n);
  std::memset(lower_.data() + n, 0, 8);
  const auto& phrase_starts = PhraseStarts();
  uint64_t phrase_filter = 0;  // bit (hash & 63) set for every phrase's first word
  for (const PhraseStart& ps : phrase_starts) phrase_filter |= uint64_t{1} << (ps.first_word_hash & 63);

  // Skeleton words.
  int nw = 0;
  bool sentence_start = true;
  size_t i = 0;
  while (i < n && nw < kMaxPromptWords) {
    const unsigned char c = static_cast<unsigned char>(p[i]);
    if (c == '"' || c == '`') {
      const size_t close = lower.find(static_cast<char>(c), i + 1);
      const size_t end = close == std::string_view::npos ? n : close + 1;
      words_[nw++] = kQuotePlaceholder;
      sentence_start = false;
      i = end;
      continue;
    }
    if (!IsWordByte(c)) {
      if (c == '.' || c == '!' || c == '?' || c == ':' || c == '\n') sentence_start = true;
      ++i;
      continue;
    }
    const size_t start = i;
    bool has_digit = false;
    while (i < n && IsWordByte(static_cast<unsigned char>(p[i]))) {
      has_digit |= p[i] >= '0' && p[i] <= '9';
      ++i;
    }
    const bool capitalized = c >= 'A' && c <= 'Z';
    uint64_t h = HashWord(lower_.data() + start, i - start);
    if ((phrase_filter >> (h & 63)) & 1) for (const PhraseStart& ps : phrase_starts) {
      if (ps.first_word_hash == h && lower.substr(start).starts_with(kElicitationPhrases[ps.index])) {
        out->elicitation_mask |= 1u << ps.index;
      }
    }
    if (has_digit) {
      h = kDigitsPlaceholder;
    } else if (capitalized && !sentence_start) {
      h = kNamePlaceholder;
    } else {
      if (static_cast<int>(i - start) >= kMinContentWordLength && out->content_word_count < kMaxContentWords &&
          !IsStopWord(h)) {
        out->content_words[out->content_word_count++] = static_cast<uint32_t>(h);
      }
    }
    words_[nw++] = h;
    sentence_start = false;
  }
  out->words = nw;

  uint64_t skeleton = 0x5bd1e995ULL;
  minhash_.Reset();
  for (int w = 0; w < nw; ++w) {
    skeleton = skeleton * 0x100000001b3ULL + words_[w];  // polynomial: one multiply per word
    if (w + 1 < nw && w + 1 < kMaxShingleWords) minhash_.Add(HashCombine(words_[w], words_[w + 1]));
  }
  if (nw == 1) minhash_.Add(words_[0]);
  out->skeleton_hash = Mix64(skeleton);
  out->signature = minhash_.signature();

  out->prefix_anchor = 0;
  out->suffix_anchor = 0;
  if (nw >= kAnchorWords) {
    uint64_t a = 0x9ae16a3b2f90404fULL;
    for (int w = 0; w < kAnchorWords; ++w) a = HashCombine(a, words_[w]);
    out->prefix_anchor = a | 1;
  }
  if (nw >= 2 * kAnchorWords) {
    uint64_t a = 0xc3a5c85c97cb3127ULL;
    for (int w = nw - kAnchorWords; w < nw; ++w) a = HashCombine(a, words_[w]);
    out->suffix_anchor = a | 1;
  }
}

}  // namespace tracemark::monitor
