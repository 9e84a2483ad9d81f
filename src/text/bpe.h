// Byte-level BPE with ranked merges (GGUF `tokenizer.ggml.model` = "gpt2"; internal to text/).
//
// Text is pre-tokenized by the vocabulary's regex (pretokenize.h), each piece's bytes are mapped
// to the GPT-2 byte alphabet, and merges are applied lowest rank first, leftmost on ties, which
// is the order Hugging Face `tokenizers` uses. Immutable after construction; Encode is const and
// thread-safe (per-thread word caches, no locks).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "text/pretokenize.h"
#include "text/vocab.h"

namespace tracemark::text {

class BpeTokenizer final : public VocabTokenizer {
 public:
  struct Options {
    PreTokenizerKind pre = PreTokenizerKind::kGpt2;
    bool ignore_merges = false;  // a piece that is a whole vocab entry is used as is (Llama 3)
    bool nfc = false;            // NFC-normalize text before pre-tokenizing (Qwen2)
  };
  // pieces/types: the vocabulary; merges: "a b" strings, rank = index.
  static Result<std::unique_ptr<BpeTokenizer>> Create(std::vector<std::string> pieces,
                                                      std::vector<TokenType> types,
                                                      const std::vector<std::string_view>& merges,
                                                      const Config& config, const Options& options,
                                                      std::vector<int32_t> eog_ids);

  std::string TokenBytes(int32_t id, bool skip_special = false) const override;

 protected:
  void EncodeFragment(std::string_view text, bool first_fragment,
                      std::vector<int32_t>* out) const override;

 private:
  BpeTokenizer() = default;
  // Runs BPE on one pre-tokenized piece (raw bytes) and appends its ids.
  void EncodeWord(std::string_view word, std::vector<int32_t>* out) const;

  Options options_;
  int32_t byte_to_id_[256];
  FlatU64Map merges_;  // (id_a << 32 | id_b) -> (rank << 32 | merged_id)
  // For decoding: each token's raw bytes (normal tokens: byte-level map undone).
  std::vector<std::string> token_bytes_;
};

// The GPT-2 byte <-> unicode mapping: printable Latin-1 bytes map to themselves, the others to
// U+0100 + n in byte order.
uint32_t ByteToUnicode(uint8_t b);

}  // namespace tracemark::text
