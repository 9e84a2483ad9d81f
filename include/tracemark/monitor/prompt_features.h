// Per-request prompt features for the distillation monitor, computed in one pass over at most
// kMaxPromptBytesScanned bytes with no allocation: the prompt "skeleton" (lower-cased words with
// digits, quoted spans and capitalized names replaced by placeholders), a MinHash signature of
// skeleton word bigrams, prefix/suffix anchor hashes that identify wrapper templates
// ("Solve the following problem step by step: ..."), hashed content words for topical focus,
// and which chain-of-thought / rubric elicitation phrases occur.
// A PromptAnalyzer owns scratch buffers: one instance per thread (not synchronized).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "tracemark/monitor/sketch.h"

namespace tracemark::monitor {

// Only the first kMaxPromptBytesScanned bytes of a prompt are analyzed (bounds the hot path).
inline constexpr size_t kMaxPromptBytesScanned = 8192;
// At most kMaxPromptWords skeleton words are kept.
inline constexpr int kMaxPromptWords = 1024;
// Anchors hash the first / last kAnchorWords skeleton words; shorter prompts have no anchors.
inline constexpr int kAnchorWords = 6;
// Only the first kMaxShingleWords skeleton words feed the MinHash signature (templates live in
// the structure of the prompt, and this bounds the 16 hash evaluations per shingle).
inline constexpr int kMaxShingleWords = 160;
// At most kMaxContentWords content-word hashes are reported per prompt.
inline constexpr int kMaxContentWords = 64;

struct PromptFeatures {
  uint64_t prompt_hash = 0;    // exact text
  uint64_t skeleton_hash = 0;  // all skeleton words
  uint64_t prefix_anchor = 0;  // 0 when the prompt has fewer than kAnchorWords words
  uint64_t suffix_anchor = 0;
  MinHashSignature signature{};
  int words = 0;
  int content_word_count = 0;
  std::array<uint32_t, kMaxContentWords> content_words{};
  uint32_t elicitation_mask = 0;  // bit i: kElicitationPhrases[i] occurs
};

// Phrases whose presence marks chain-of-thought or rubric/reward-model elicitation (gateway.md
// §4.4, §4.6). Matched on the lower-cased text, whole-phrase substring.
inline constexpr std::array<std::string_view, 16> kElicitationPhrases = {
    "step by step",           "explain your reasoning",  "show your reasoning",
    "show your work",         "think through",           "chain of thought",
    "reasoning behind",       "internal reasoning",      "grade this",
    "grade the following",    "rubric",                  "score this response",
    "rate this answer",       "rate the following",      "censorship-safe",
    "which response is better"};

// Category of each phrase: 0 reasoning trace, 1 reconstruction of hidden reasoning, 2 grading /
// reward-model use, 3 rewriting for a competitor's needs. Harvesters tend to elicit several
// categories; a product that always asks for step-by-step answers elicits one.
inline constexpr int kElicitationCategories = 4;
inline constexpr std::array<uint8_t, kElicitationPhrases.size()> kElicitationCategory = {
    0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 3, 2};

class PromptAnalyzer {
 public:
  void Analyze(std::string_view prompt, PromptFeatures* out);

 private:
  MinHasher minhash_;
  std::array<char, kMaxPromptBytesScanned + 8> lower_{};  // 8 bytes of padding for word loads
  std::array<uint64_t, kMaxPromptWords> words_{};
};

}  // namespace tracemark::monitor
