// ChatTemplate: parsing, rendering and the built-in templates. FromGguf lives in
// chat_template_gguf.cc so the renderer builds without the GGUF reader.
#include "tracemark/text/chat_template.h"

#include <ctime>

#include "jinja.h"

namespace tracemark {
namespace {

jinja::Limits ChatLimits() {
  return jinja::Limits{kMaxChatTemplateBytes, kMaxChatOutputBytes, kMaxChatLoopIterations,
                       kMaxChatNestingDepth, kMaxChatMacroDepth};
}

// Built-in templates, written for tracemark from the documented prompt formats. For messages
// with only role and content they render byte-for-byte what the official templates render
// (chat_template_test checks this against the committed transformers vectors).

// Gemma 3: system text becomes the prefix of the first user turn, assistant is "model",
// content is trimmed, roles must alternate starting with user.
constexpr const char* kGemmaTemplate = R"TM({{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
  {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
  {%- set turns = messages[1:] -%}
{%- else -%}
  {%- set first_user_prefix = '' -%}
  {%- set turns = messages -%}
{%- endif -%}
{%- for m in turns -%}
  {%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}
    {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
  {%- endif -%}
  {{ '<start_of_turn>' ~ ('model' if m['role'] == 'assistant' else m['role']) ~ '\n' }}
  {{- (first_user_prefix if loop.first else '') ~ (m['content'] | trim) ~ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}
)TM";

// Qwen2 / Qwen2.5 ChatML with the default system message (tool calls not supported here).
constexpr const char* kQwen2Template = R"TM(
{%- if messages[0]['role'] == 'system' -%}
  {{ '<|im_start|>system\n' ~ messages[0]['content'] ~ '<|im_end|>\n' }}
{%- else -%}
  {{ '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
{%- endif -%}
{%- for m in messages -%}
  {%- if m.role == 'user' or m.role == 'assistant' or (m.role == 'system' and not loop.first) -%}
    {{ '<|im_start|>' ~ m.role ~ '\n' ~ m.content ~ '<|im_end|>\n' }}
  {%- elif m.role == 'tool' -%}
    {%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}{{ '<|im_start|>user' }}{%- endif -%}
    {{ '\n<tool_response>\n' ~ m.content ~ '\n</tool_response>' }}
    {%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}{{ '<|im_end|>\n' }}{%- endif -%}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}
)TM";

// Llama 3 (Meta-Llama-3-*-Instruct): header per turn, trimmed content, bos before the first.
constexpr const char* kLlama3Template = R"TM(
{%- for m in messages -%}
  {%- if loop.first -%}{{ bos_token }}{%- endif -%}
  {{ '<|start_header_id|>' ~ m['role'] ~ '<|end_header_id|>\n\n' ~ (m['content'] | trim) ~ '<|eot_id|>' }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif -%}
)TM";

// Plain ChatML without a default system message.
constexpr const char* kChatmlTemplate = R"TM(
{%- for m in messages -%}
  {{ '<|im_start|>' ~ m['role'] ~ '\n' ~ m['content'] ~ '<|im_end|>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}
)TM";

// SmolLM2-Instruct: ChatML with SmolLM's default system message when none is given.
constexpr const char* kSmolLM2Template = R"TM(
{%- for m in messages -%}
  {%- if loop.first and messages[0]['role'] != 'system' -%}
    {{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}
  {%- endif -%}
  {{ '<|im_start|>' ~ m['role'] ~ '\n' ~ m['content'] ~ '<|im_end|>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}
)TM";

}  // namespace

Result<ChatTemplate> ChatTemplate::FromString(std::string_view source, std::optional<std::string> bos_token,
                                              std::optional<std::string> eos_token) {
  TM_ASSIGN_OR_RETURN(jinja::Template t, jinja::Template::Parse(source, ChatLimits()));
  ChatTemplate ct;
  ct.tmpl_ = std::make_shared<const jinja::Template>(std::move(t));
  ct.source_ = std::make_shared<const std::string>(source);
  ct.bos_ = std::move(bos_token);
  ct.eos_ = std::move(eos_token);
  return ct;
}

Result<ChatTemplate> ChatTemplate::Builtin(std::string_view family, std::optional<std::string> bos_token,
                                           std::optional<std::string> eos_token) {
  const char* src = nullptr;
  if (family == "gemma") src = kGemmaTemplate;
  else if (family == "qwen2") src = kQwen2Template;
  else if (family == "llama3") src = kLlama3Template;
  else if (family == "chatml") src = kChatmlTemplate;
  else if (family == "smollm2") src = kSmolLM2Template;
  if (src == nullptr) {
    return NotFound("no built-in chat template named '" + std::string(family) +
                    "' (known: gemma, qwen2, llama3, chatml, smollm2)");
  }
  TM_ASSIGN_OR_RETURN(ChatTemplate ct, FromString(src, std::move(bos_token), std::move(eos_token)));
  ct.builtin_ = std::string(family);
  return ct;
}

Result<std::string> ChatTemplate::Render(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  ChatRenderOptions options;
  options.add_generation_prompt = add_generation_prompt;
  return Render(messages, options);
}

Result<std::string> ChatTemplate::Render(std::span<const ChatMessage> messages,
                                         const ChatRenderOptions& options) const {
  // transformers refuses an empty conversation before rendering; so do we.
  if (messages.empty()) return InvalidArgument("chat: no messages; provide at least one message");
  jinja::List list;
  list.reserve(messages.size());
  for (const ChatMessage& m : messages) {
    list.push_back(jinja::Value::MakeDict({{"role", jinja::Value::Str(m.role)},
                                            {"content", jinja::Value::Str(m.content)}}));
  }
  // The variables transformers passes: messages, tools, documents, add_generation_prompt and
  // the special tokens.
  jinja::Dict vars = {
      {"messages", jinja::Value::MakeList(std::move(list))},
      {"tools", jinja::Value::None()},
      {"documents", jinja::Value::None()},
      {"add_generation_prompt", jinja::Value::Bool(options.add_generation_prompt)},
  };
  if (bos_) vars.emplace_back("bos_token", jinja::Value::Str(*bos_));
  if (eos_) vars.emplace_back("eos_token", jinja::Value::Str(*eos_));
  const int64_t now = options.unix_time ? *options.unix_time : static_cast<int64_t>(std::time(nullptr));
  return tmpl_->Render(vars, now);
}

}  // namespace tracemark
