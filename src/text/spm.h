// SentencePiece-style BPE by scores with byte fallback (GGUF `tokenizer.ggml.model` = "llama":
// Gemma 3, Llama 2, TinyLlama; internal to text/).
//
// Spaces become U+2581; adjacent symbols are merged highest score first (leftmost on ties), which
// reproduces the merge order of the Hugging Face BPE models converted from these vocabularies.
// User-defined tokens (the U+2581 runs of Gemma) merge before everything else, as in the HF
// merges list. Characters without a vocab entry become <0xXX> byte tokens. Text is split into
// chunks between any two adjacent characters that never occur next to each other inside a vocab
// entry: no merge can cross such a point, so chunks are encoded (and cached) independently with
// exactly the result of encoding the whole text.
// Immutable after construction; Encode is const and thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "text/vocab.h"

namespace tracemark::text {

class SpmTokenizer final : public VocabTokenizer {
 public:
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
  // True if the characters a, b occur next to each other inside some vocab entry.
  bool HasBigram(uint32_t a, uint32_t b) const {
    if ((a | b) < 128) return ascii_bigrams_[a * 128 + b];
    return bigrams_.Find(PairKey(a, b)) != nullptr;
  }
  static uint64_t PairKey(uint32_t a, uint32_t b) { return (uint64_t{a} << 32) | b; }

  std::vector<float> priority_;
  int32_t ascii_ids_[128];  // single ASCII characters
  int32_t space_mark_id_ = -1;
  int32_t byte_ids_[256];
  bool ascii_bigrams_[128 * 128] = {};
  FlatU64Map bigrams_;  // (codepoint a << 32 | codepoint b) of non-ASCII bigrams
};

}  // namespace tracemark::text
