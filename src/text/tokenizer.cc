#include "tracemark/text/tokenizer.h"

#include <array>
#include <string>
#include <utility>

#include "text/bpe.h"
#include "text/spm.h"
#include "text/unicode.h"
#include "tracemark/model/gguf.h"

namespace tracemark::text {
namespace {

// Token strings that end generation in the supported families (besides eos).
constexpr std::array<std::string_view, 8> kEogPieces = {
    "<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>",
    "<|endoftext|>", "<|end|>",    "<EOT>",      "<|end_of_text|>",
};

struct PreTokenizerName {
  std::string_view name;
  PreTokenizerKind kind;
  bool ignore_merges;
  bool nfc;
};
// tokenizer.ggml.pre values (llama.cpp's names) and their Hugging Face pre-tokenizers.
constexpr std::array<PreTokenizerName, 7> kPreTokenizers = {{
    {"default", PreTokenizerKind::kGpt2, false, false},
    {"gpt-2", PreTokenizerKind::kGpt2, false, false},
    {"default-bpe", PreTokenizerKind::kGpt2, false, false},
    {"smollm", PreTokenizerKind::kSmollm, false, false},
    {"llama-bpe", PreTokenizerKind::kLlama3, true, false},
    {"llama3", PreTokenizerKind::kLlama3, true, false},
    {"qwen2", PreTokenizerKind::kQwen2, false, true},
}};

Result<int32_t> OptionalId(const gguf::GgufFile& file, std::string_view key, int32_t n) {
  if (!file.Find(key)) return -1;
  TM_ASSIGN_OR_RETURN(const uint64_t v, file.GetUInt(key));
  if (v >= static_cast<uint64_t>(n)) {
    return InvalidArgument(std::string(key) + " = " + std::to_string(v) +
                                " is outside the vocabulary of " + std::to_string(n) + " tokens");
  }
  return static_cast<int32_t>(v);
}

Result<bool> OptionalBool(const gguf::GgufFile& file, std::string_view key, bool fallback) {
  if (!file.Find(key)) return fallback;
  return file.GetBool(key);
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const gguf::GgufFile& file) {
  if (!file.Find("tokenizer.ggml.model")) {
    return InvalidArgument("GGUF has no tokenizer (tokenizer.ggml.model missing)");
  }
  TM_ASSIGN_OR_RETURN(const std::string model, file.GetString("tokenizer.ggml.model"));
  TM_ASSIGN_OR_RETURN(const std::vector<std::string_view> token_views,
                      file.GetStringArray("tokenizer.ggml.tokens"));
  const auto n = static_cast<int32_t>(token_views.size());
  if (n == 0) return InvalidArgument("tokenizer.ggml.tokens is empty");
  std::vector<std::string> pieces(token_views.begin(), token_views.end());
  std::vector<TokenType> types(n, TokenType::kNormal);
  if (file.Find("tokenizer.ggml.token_type")) {
    TM_ASSIGN_OR_RETURN(const std::vector<int32_t> raw,
                        file.GetI32Array("tokenizer.ggml.token_type"));
    if (static_cast<int32_t>(raw.size()) != n) {
      return InvalidArgument("tokenizer.ggml.token_type has " + std::to_string(raw.size()) +
                                  " entries for " + std::to_string(n) + " tokens");
    }
    for (int32_t i = 0; i < n; ++i) {
      if (raw[i] < 0 || raw[i] > static_cast<int32_t>(TokenType::kByte)) {
        return InvalidArgument("tokenizer.ggml.token_type[" + std::to_string(i) +
                                    "] = " + std::to_string(raw[i]) + " is not a token type");
      }
      types[i] = static_cast<TokenType>(raw[i]);
    }
  }
  const bool is_spm = model == "llama";
  if (!is_spm && model != "gpt2") {
    return Unimplemented("tokenizer.ggml.model '" + model +
                              "' is not supported (supported: gpt2, llama)");
  }
  VocabTokenizer::Config config;
  TM_ASSIGN_OR_RETURN(config.bos_id, OptionalId(file, "tokenizer.ggml.bos_token_id", n));
  TM_ASSIGN_OR_RETURN(config.eos_id, OptionalId(file, "tokenizer.ggml.eos_token_id", n));
  TM_ASSIGN_OR_RETURN(config.unk_id, OptionalId(file, "tokenizer.ggml.unknown_token_id", n));
  TM_ASSIGN_OR_RETURN(config.add_bos,
                      OptionalBool(file, "tokenizer.ggml.add_bos_token", /*fallback=*/is_spm));
  TM_ASSIGN_OR_RETURN(config.add_eos, OptionalBool(file, "tokenizer.ggml.add_eos_token", false));
  TM_ASSIGN_OR_RETURN(config.add_space_prefix,
                      OptionalBool(file, "tokenizer.ggml.add_space_prefix", is_spm));

  std::vector<int32_t> eog;
  for (const std::string_view key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    TM_ASSIGN_OR_RETURN(const int32_t id, OptionalId(file, key, n));
    if (id >= 0) eog.push_back(id);
  }
  for (int32_t i = 0; i < n; ++i) {
    if (types[i] != TokenType::kControl && types[i] != TokenType::kUserDefined) continue;
    for (const std::string_view p : kEogPieces) {
      if (pieces[i] == p) eog.push_back(i);
    }
  }

  if (is_spm) {
    if (!file.Find("tokenizer.ggml.scores")) {
      return InvalidArgument("SentencePiece vocabulary without tokenizer.ggml.scores");
    }
    TM_ASSIGN_OR_RETURN(std::vector<float> scores, file.GetF32Array("tokenizer.ggml.scores"));
    if (static_cast<int32_t>(scores.size()) != n) {
      return InvalidArgument("tokenizer.ggml.scores has " + std::to_string(scores.size()) +
                                  " entries for " + std::to_string(n) + " tokens");
    }
    TM_ASSIGN_OR_RETURN(auto tok, SpmTokenizer::Create(std::move(pieces), std::move(types),
                                                       std::move(scores), config,
                                                       std::move(eog)));
    return std::unique_ptr<Tokenizer>(std::move(tok));
  }

  std::string pre = "default";
  if (file.Find("tokenizer.ggml.pre")) {
    TM_ASSIGN_OR_RETURN(pre, file.GetString("tokenizer.ggml.pre"));
  }
  const PreTokenizerName* found = nullptr;
  std::string supported;
  for (const auto& p : kPreTokenizers) {
    if (p.name == pre) found = &p;
    if (!supported.empty()) supported += ", ";
    supported += p.name;
  }
  if (!found) {
    return Unimplemented("tokenizer.ggml.pre '" + pre +
                              "' is not supported (supported: " + supported + ")");
  }
  if (!file.Find("tokenizer.ggml.merges")) {
    return InvalidArgument("byte-level BPE vocabulary without tokenizer.ggml.merges");
  }
  TM_ASSIGN_OR_RETURN(const std::vector<std::string_view> merges,
                      file.GetStringArray("tokenizer.ggml.merges"));
  BpeTokenizer::Options options;
  options.pre = found->kind;
  options.ignore_merges = found->ignore_merges;
  options.nfc = found->nfc;
  TM_ASSIGN_OR_RETURN(auto tok, BpeTokenizer::Create(std::move(pieces), std::move(types), merges,
                                                     config, options, std::move(eog)));
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  for (const int32_t id : ids) out += TokenBytes(id, skip_special);
  if (StripsLeadingSpace() && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

std::string StreamDecoder::Push(int32_t id) {
  pending_ += tok_.TokenBytes(id, skip_special_);
  const size_t complete = CompleteUtf8Prefix(pending_);
  std::string out = pending_.substr(0, complete);
  pending_.erase(0, complete);
  return out;
}

std::string StreamDecoder::Flush() {
  if (pending_.empty()) return std::string();
  pending_.clear();
  return "\xEF\xBF\xBD";  // U+FFFD for the incomplete sequence
}

}  // namespace tracemark::text
