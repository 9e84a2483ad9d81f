// What a harvesting customer does to outputs before training on them (DESIGN.md, threat model):
// PII masking with the placeholders detection skips (watermark/placeholders.h), whitespace and
// format normalization, truncation to fragments, synonym substitution from a small built-in table,
// word deletion, paraphrase with another model through our engine, and shuffling / mixing with
// clean text.
//
// The text transforms are pure functions, deterministic for a seed (Rng in traffic.h). A
// Paraphraser owns a model context and is used by one thread at a time. DesensitizeFile reads
// JSONL records (the harvester's output or any {"text": ...} lines) and writes JSONL.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/redteam/traffic.h"

namespace tracemark::redteam {

// Longest input line read by DesensitizeFile, and the most records / clean lines it holds.
inline constexpr size_t kMaxDesensitizeLineBytes = 4u << 20;
inline constexpr size_t kMaxDesensitizeRecords = 10'000'000;
// Paraphrase: the input is cut to this many tokens; the output gets up to input x 1.5 + 16.
inline constexpr int kMaxParaphraseInputTokens = 384;

struct PiiCounts {
  int64_t emails = 0;
  int64_t phones = 0;
  int64_t names = 0;
  int64_t ids = 0;      // long digit runs and letter+digit codes -> [ID]
  int64_t numbers = 0;  // other numbers -> [NUMBER]
};

// Replaces e-mail addresses by [EMAIL], phone numbers by [PHONE], names from the built-in list
// (plus `extra_names`) by <NAME>, IDs by [ID] and other numbers by [NUMBER].
std::string MaskPii(std::string_view text, const std::vector<std::string>& extra_names, PiiCounts* counts);

// Straight quotes and dashes, markdown emphasis / heading / bullet marks removed, runs of
// whitespace collapsed to one space, trimmed.
std::string NormalizeText(std::string_view text);

// Keeps a contiguous fragment of about `keep` (0..1] of the words, starting at a random word.
std::string TruncateWords(std::string_view text, double keep, Rng& rng);

// Replaces about `rate` of all words by a synonym from the built-in table (as many as the table
// covers; *replaced says how many). Case of the first letter is kept.
std::string SubstituteSynonyms(std::string_view text, double rate, Rng& rng, int64_t* words, int64_t* replaced);

// Deletes each word with probability `rate`.
std::string DeleteWords(std::string_view text, double rate, Rng& rng, int64_t* deleted);

// Number of entries in the built-in synonym table.
size_t SynonymTableSize();

// Paraphrase with a GGUF model through our engine: a plain completion prompt ("Rewrite ...\n
// Paraphrase:"), sampled at temperature 0.7, stopped at the first blank line.
class Paraphraser {
 public:
  static Result<std::unique_ptr<Paraphraser>> Create(const std::string& model_path, int threads, uint64_t seed);
  ~Paraphraser();
  Result<std::string> Paraphrase(std::string_view text, uint64_t record_seed);

 private:
  Paraphraser();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct DesensitizeOptions {
  std::string field = "text";  // JSONL field holding the text (plain-text input: one record a line)
  bool mask_pii = false;
  std::vector<std::string> extra_names;
  bool normalize = false;
  double truncate = 1.0;   // keep this share of the words (1: no truncation)
  double synonyms = 0;     // share of words to substitute
  double delete_words = 0; // share of words to delete
  std::string paraphrase_model;
  int threads = 2;
  std::string mix_path;    // clean text, one document per line
  double fraction = 1.0;   // with mix_path: input records make up this share of the output
  bool shuffle = false;
  uint64_t seed = 1;
  int min_words = 1;       // drop records left with fewer words
};

struct DesensitizeStats {
  int64_t records_in = 0;
  int64_t records_out = 0;
  int64_t dropped = 0;
  int64_t clean_added = 0;
  int64_t words = 0;
  int64_t words_substituted = 0;
  int64_t words_deleted = 0;
  int64_t paraphrased = 0;
  PiiCounts pii;
};

// Applies the transforms to one text in the documented order: mask, normalize, synonyms, delete,
// truncate (paraphrase is separate: it needs a model).
std::string DesensitizeText(std::string_view text, const DesensitizeOptions& options, Rng& rng,
                            DesensitizeStats* stats);

// IN: JSONL (the text in options.field; other string / number / bool fields are kept) or plain
// text (a name not ending in .jsonl/.json/.ndjson: one record per line). OUT: JSONL with the same
// fields, "text" replaced, plus "source":"harvest" or "clean" when mixing.
Result<DesensitizeStats> DesensitizeFile(const std::string& in_path, const std::string& out_path,
                                         const DesensitizeOptions& options);

}  // namespace tracemark::redteam
