// Tokenizers built from GGUF metadata, id-for-id identical to Hugging Face `tokenizers`.
//
// Two families: byte-level BPE with merges (`tokenizer.ggml.model` = "gpt2"; the pre-tokenizer
// is chosen by `tokenizer.ggml.pre`: gpt2/smollm, llama-bpe, qwen2, ...) and SentencePiece-style
// BPE by scores with byte fallback ("llama": Gemma, Llama 2, TinyLlama). Special (control and
// user-defined) tokens are matched before BPE when parse_special is set.
// A Tokenizer is immutable after construction; all const methods are safe to call from any
// number of threads concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tracemark/base/status.h"

namespace tracemark::gguf {
class GgufFile;
}

namespace tracemark::text {

enum class TokenType : int32_t {
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6,
};

class Tokenizer {
 public:
  // Builds the tokenizer from `tokenizer.ggml.*` metadata. Errors: InvalidArgument for missing
  // or inconsistent keys, Unimplemented for an unsupported model or pre-tokenizer name (the
  // message lists the supported ones). The GGUF file is not referenced afterwards.
  static Result<std::unique_ptr<Tokenizer>> FromGguf(const gguf::GgufFile& file);
  virtual ~Tokenizer() = default;

  // add_special: prepend BOS (and append EOS) as the model's add_bos/add_eos flags say.
  // parse_special: text like "<|im_start|>" becomes the special token instead of plain text.
  // User-defined tokens (GGUF token type 4, e.g. Gemma's "\n" and "<b>") are always matched,
  // as Hugging Face does for non-special added tokens. Matching is leftmost-longest.
  // Ids equal Hugging Face `tokenizers` for the same text (tests/data/tokenizer checks it);
  // Qwen2 text is NFC-normalized first, as its HF normalizer does.
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;
  // The raw bytes of one token (byte-level mapping and byte-fallback undone). Control tokens
  // give their text form (e.g. "<|im_end|>") unless skip_special.
  virtual std::string TokenBytes(int32_t id, bool skip_special = false) const = 0;
  std::string Decode(std::span<const int32_t> ids, bool skip_special = false) const;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;   // -1 if none
  virtual int32_t eos_id() const = 0;   // -1 if none
  // End-of-generation: eos plus family extras (<end_of_turn>, <|im_end|>, <|eot_id|>, ...).
  virtual bool IsEog(int32_t id) const = 0;
  virtual TokenType type(int32_t id) const = 0;
  virtual std::string_view piece(int32_t id) const = 0;  // the vocabulary string as stored
  // Looks up a token by its exact vocabulary string; -1 if absent.
  virtual int32_t Find(std::string_view piece) const = 0;

 protected:
  // True when encoding adds a leading space (SentencePiece add_space_prefix): Decode then drops
  // one leading space, as the Hugging Face decoders of those models do.
  virtual bool StripsLeadingSpace() const { return false; }
};

// Turns a stream of token ids into UTF-8 text without splitting a character across pieces:
// bytes of an incomplete UTF-8 sequence are held back until the next token completes it.
// One per stream; not thread-safe.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = true)
      : tok_(tok), skip_special_(skip_special) {}
  // Returns the text that became complete with this token (possibly empty).
  std::string Push(int32_t id);
  // Returns whatever is held back; an incomplete trailing UTF-8 sequence becomes U+FFFD.
  std::string Flush();

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace tracemark::text
