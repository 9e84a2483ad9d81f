// ChatTemplate::FromGguf: the template, special tokens and built-in fallback from GGUF metadata.
#include <cctype>
#include <string>
#include <vector>

#include "tracemark/model/gguf.h"
#include "tracemark/text/chat_template.h"

namespace tracemark {
namespace {

// The token string at metadata key `id_key` (an index into tokenizer.ggml.tokens), if any.
std::optional<std::string> SpecialToken(const gguf::GgufFile& file, std::string_view id_key) {
  Result<uint64_t> id = file.GetUInt(id_key);
  if (!id.ok()) return std::nullopt;
  const gguf::Value* tokens = file.Find("tokenizer.ggml.tokens");
  if (tokens == nullptr || tokens->type != gguf::ValueType::kArray || *id >= tokens->strings.size()) {
    return std::nullopt;
  }
  return std::string(tokens->strings[*id]);
}

// True when the model's names mark it as instruction-tuned: a word "instruct", "chat" or "it"
// in general.finetune, general.name or general.basename.
bool LooksInstructionTuned(const gguf::GgufFile& file) {
  for (const char* key : {"general.finetune", "general.name", "general.basename"}) {
    Result<std::string> s = file.GetString(key);
    if (!s.ok()) continue;
    std::string word;
    const std::string text = *s + " ";
    for (char c : text) {
      if (std::isalnum(static_cast<unsigned char>(c))) {
        word.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
        continue;
      }
      if (word == "instruct" || word == "chat" || word == "it") return true;
      word.clear();
    }
  }
  return false;
}

bool VocabHas(const gguf::GgufFile& file, std::string_view token) {
  const gguf::Value* tokens = file.Find("tokenizer.ggml.tokens");
  if (tokens == nullptr) return false;
  for (std::string_view t : tokens->strings) {
    if (t == token) return true;
  }
  return false;
}

}  // namespace

Result<ChatTemplate> ChatTemplate::FromGguf(const gguf::GgufFile& file) {
  std::optional<std::string> bos = SpecialToken(file, "tokenizer.ggml.bos_token_id");
  std::optional<std::string> eos = SpecialToken(file, "tokenizer.ggml.eos_token_id");
  Result<std::string> source = file.GetString("tokenizer.chat_template");
  if (source.ok()) {
    Result<ChatTemplate> t = FromString(*source, bos, eos);
    if (!t.ok()) return t.status().WithContext("gguf tokenizer.chat_template");
    return t;
  }
  if (source.status().code() != StatusCode::kNotFound) return source.status();
  if (!LooksInstructionTuned(file)) {
    return InvalidArgument("model has no chat template; use plain completion");
  }
  Result<std::string> arch = file.GetString("general.architecture");
  const std::string a = arch.ok() ? *arch : "";
  std::string family;
  if (a == "gemma" || a == "gemma2" || a == "gemma3") family = "gemma";
  else if (a == "qwen2") family = "qwen2";
  else if (VocabHas(file, "<|start_header_id|>")) family = "llama3";
  else if (VocabHas(file, "<|im_start|>")) family = "chatml";
  if (family.empty()) {
    return InvalidArgument("model has no chat template and tracemark has no built-in one for architecture '" + a +
                           "'; use plain completion");
  }
  return Builtin(family, bos, eos);
}

}  // namespace tracemark
