// Chat templates: turn an OpenAI-style message list into the prompt text a model was trained
// on, exactly as Hugging Face transformers' `apply_chat_template(messages, tokenize=False,
// add_generation_prompt=...)` renders the model's Jinja template.
//
// The template comes from the GGUF key `tokenizer.chat_template` and is run by a small Jinja2
// subset interpreter (docs/chat_templates.md lists what it supports). A construct outside the
// subset is an error, never different output. When a GGUF has no template, an instruction-tuned
// model of a known family gets a built-in template; a base model gets none ("use plain
// completion"). Every resource a template can use is bounded by the kMaxChat* constants.
//
// A ChatTemplate is immutable after creation; Render() is const and safe to call from any
// number of threads at once. Copies share the parsed template.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tracemark/base/status.h"

namespace tracemark {

namespace gguf {
class GgufFile;
}  // namespace gguf
namespace jinja {
class Template;
}  // namespace jinja

// Limits (documented defaults; exceeding one is a kResourceExhausted error).
inline constexpr size_t kMaxChatTemplateBytes = 256 * 1024;   // template source
inline constexpr size_t kMaxChatOutputBytes = 16u << 20;      // rendered prompt and any string built
inline constexpr int64_t kMaxChatLoopIterations = 1 << 17;    // all loop iterations of one render
inline constexpr int kMaxChatNestingDepth = 128;              // nested blocks, expressions, values
inline constexpr int kMaxChatMacroDepth = 16;                 // nested (or recursive) macro calls

struct ChatMessage {
  std::string role;     // "system", "user", "assistant", "tool", ...
  std::string content;
};

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  // What strftime_now() formats (seconds since the epoch, UTC); unset means the current time.
  std::optional<int64_t> unix_time;
};

class ChatTemplate {
 public:
  // Parses `source`. bos/eos are the token strings the template sees as bos_token/eos_token;
  // an absent one is an undefined variable, as in transformers.
  static Result<ChatTemplate> FromString(std::string_view source, std::optional<std::string> bos_token,
                                         std::optional<std::string> eos_token);

  // Reads `tokenizer.chat_template` and the bos/eos token strings (tokenizer.ggml.tokens at
  // tokenizer.ggml.{bos,eos}_token_id). Without a template: a model whose general.finetune /
  // general.name / general.basename say instruct, chat or it gets the built-in template of its
  // family (gemma, qwen2, llama 3, ChatML); otherwise InvalidArgument("model has no chat
  // template; use plain completion").
  static Result<ChatTemplate> FromGguf(const gguf::GgufFile& file);

  // Built-in templates written for tracemark, equivalent for role/content messages to the
  // official ones: "gemma", "qwen2", "llama3", "chatml", "smollm2".
  static Result<ChatTemplate> Builtin(std::string_view family, std::optional<std::string> bos_token,
                                      std::optional<std::string> eos_token);

  Result<std::string> Render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  Result<std::string> Render(std::span<const ChatMessage> messages, const ChatRenderOptions& options) const;

  const std::string& source() const { return *source_; }
  const std::optional<std::string>& bos_token() const { return bos_; }
  const std::optional<std::string>& eos_token() const { return eos_; }
  // The built-in family name when this is a built-in template, else empty.
  const std::string& builtin_family() const { return builtin_; }

 private:
  ChatTemplate() = default;
  std::shared_ptr<const jinja::Template> tmpl_;
  std::shared_ptr<const std::string> source_;
  std::optional<std::string> bos_;
  std::optional<std::string> eos_;
  std::string builtin_;
};

}  // namespace tracemark
