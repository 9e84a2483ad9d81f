// ChatPrompt: turns validated OpenAI chat messages into prompt token ids with the model's chat
// template (text/chat_template.h, rendered with the generation prompt) and tokenizer (special
// tokens in the rendered template are parsed; message text itself cannot inject them because the
// template renders it as plain text and the tokenizer only matches whole control tokens).
// Immutable after Create; Render() is safe from any thread.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/model/model.h"
#include "tracemark/serve/api_types.h"
#include "tracemark/text/chat_template.h"
#include "tracemark/text/tokenizer.h"

namespace tracemark::serve {

class ChatPrompt {
 public:
  static Result<std::unique_ptr<ChatPrompt>> Create(const Model& model, const text::Tokenizer& tokenizer);
  // With a given template (the mock engine's ChatML); `tokenizer` must outlive the result.
  static std::unique_ptr<ChatPrompt> FromTemplate(ChatTemplate tmpl, const text::Tokenizer& tokenizer);
  Result<std::vector<int32_t>> Render(const std::vector<ChatMessage>& messages) const;

 private:
  ChatPrompt(ChatTemplate tmpl, const text::Tokenizer& tokenizer) : tmpl_(std::move(tmpl)), tokenizer_(tokenizer) {}
  ChatTemplate tmpl_;
  const text::Tokenizer& tokenizer_;
};

}  // namespace tracemark::serve
