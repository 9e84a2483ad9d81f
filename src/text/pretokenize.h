// Hand-written pre-tokenizers for byte-level BPE vocabularies (internal to text/).
//
// Each function splits UTF-8 text into the pieces that the corresponding Hugging Face
// pre-tokenizer regex (Oniguruma semantics: ordered alternation, greedy runs, \s = White_Space)
// would produce, without a regex engine. Pure functions; safe from any thread.
//
// Regexes (from the vocabularies' tokenizer.json files):
//   gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2:  as llama3 with \p{N} (one digit per piece)
//   smollm: HF Digits(individual_digits) then ByteLevel's gpt2 regex on the text between digits
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace tracemark::text {

enum class PreTokenizerKind { kGpt2, kSmollm, kLlama3, kQwen2 };

struct PieceSpan {
  size_t begin;
  size_t end;
};

// Appends the pieces of text (byte offsets into text, in order, covering all of it) to *out.
void PreTokenize(PreTokenizerKind kind, std::string_view text, std::vector<PieceSpan>* out);

}  // namespace tracemark::text
