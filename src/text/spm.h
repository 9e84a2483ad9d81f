// SentencePiece-style BPE by scores with byte fallback (GGUF `tokenizer.ggml.model` = "llama":
// Gemma 3, Llama 2, TinyLlama; internal to text/).
//
// Spaces become U+2581; adjacent symbols are merged highest score first (leftmost on ties), which
// reproduces the merge order of the Hugging Face BPE models converted from these vocabularies.
// User-defined tokens (the U+2581 runs of Gemma) merge before everything else, as in the HF
// merges list. Characters without a vocab entry become <0xXX> byte tokens. Text is split at
// "non-space -> U+2581" boundaries that no vocab entry crosses, so words can be cached.
// Immutable after construction; Encode is const and thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "text/vocab.h"

namespace tracemark::text {

class SpmTokenizer final : public VocabTokenizer {
 public:
  // A vocabulary with more tokens than this that cross a word boundary is encoded unsplit.
  static constexpr size_t kMaxBridgeTokens = 64;

  static Result<std::unique_ptr<SpmTokenizer>> Create(std::vector<std::string> pieces,
                                                      std::vector<TokenType> types,
                                                      std::vector<float> scores,
                                                      const Config& config,
                                                      std::vector<int32_t> eog_ids);

  std::string TokenBytes(int32_t id, bool skip_special = false) const override;

 protected:
  void EncodeFragment(std::string_view text, bool first_fragment,
                      std::vector<int32_t>* out) const override;
  std::string SpecialText(int32_t id) const override;
  bool StripsLeadingSpace() const override { return config_.add_space_prefix; }

 private:
  SpmTokenizer() = default;
  void EncodeChunk(std::string_view chunk, std::vector<int32_t>* out) const;
  // Merge priority of the vocab entry id (higher merges first), or -inf if it never merges.
  bool IsBoundary(std::string_view text, size_t pos) const;

  std::vector<float> priority_;
  // (left id << 32 | right id) -> (priority bits << 32 | merged id), for every vocab entry that
  // splits into two vocab entries (the pairs the HF merges list holds).
  FlatU64Map merges_;
  int32_t ascii_ids_[128];  // single ASCII characters
  int32_t space_mark_id_ = -1;
  int32_t byte_ids_[256];
  struct Bridge {
    std::string text;
    std::vector<size_t> offsets;  // positions of a U+2581 that follows a non-U+2581 character
  };
  std::vector<Bridge> bridges_;
  bool split_words_ = true;
};

}  // namespace tracemark::text
