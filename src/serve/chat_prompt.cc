// Chat messages -> prompt ids: see include/tracemark/serve/chat_prompt.h.
#include "tracemark/serve/chat_prompt.h"

namespace tracemark::serve {

Result<std::unique_ptr<ChatPrompt>> ChatPrompt::Create(const Model& model, const text::Tokenizer& tokenizer) {
  TM_ASSIGN_OR_RETURN(ChatTemplate tmpl, ChatTemplate::FromGguf(model.file()));
  return std::unique_ptr<ChatPrompt>(new ChatPrompt(std::move(tmpl), tokenizer));
}

std::unique_ptr<ChatPrompt> ChatPrompt::FromTemplate(ChatTemplate tmpl, const text::Tokenizer& tokenizer) {
  return std::unique_ptr<ChatPrompt>(new ChatPrompt(std::move(tmpl), tokenizer));
}

Result<std::vector<int32_t>> ChatPrompt::Render(const std::vector<ChatMessage>& messages) const {
  std::vector<tracemark::ChatMessage> msgs;
  msgs.reserve(messages.size());
  for (const ChatMessage& m : messages) msgs.push_back(tracemark::ChatMessage{m.role, m.content});
  TM_ASSIGN_OR_RETURN(std::string text, tmpl_.Render(msgs, /*add_generation_prompt=*/true));
  // The rendered template carries its own BOS where the model wants one.
  return tokenizer_.Encode(text, /*add_special=*/false, /*parse_special=*/true);
}

}  // namespace tracemark::serve
