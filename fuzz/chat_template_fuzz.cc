// libFuzzer harness for the chat template engine (src/text/jinja.cc): the input is a template,
// then NUL-separated message contents (roles alternate user/assistant; a leading "\x01" makes
// the first a system message). Parse and render must return a value or a Status for any input:
// never crash, hang or read out of bounds. The seed corpus (fuzz/corpus/chat_template) replays
// through this entry point in tm_chat_test on every build.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tracemark/text/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const std::string_view source = in.substr(0, nul);
  std::vector<tracemark::ChatMessage> msgs;
  if (nul != std::string_view::npos) {
    std::string_view rest = in.substr(nul + 1);
    bool system = !rest.empty() && rest[0] == '\x01';
    if (system) rest.remove_prefix(1);
    size_t turn = 0;
    while (true) {
      const size_t end = rest.find('\0');
      std::string content(rest.substr(0, end));
      const char* role = system ? "system" : (turn++ % 2 == 0 ? "user" : "assistant");
      system = false;
      msgs.push_back({role, std::move(content)});
      if (end == std::string_view::npos) break;
      rest.remove_prefix(end + 1);
    }
  }
  auto t = tracemark::ChatTemplate::FromString(source, "<s>", "</s>");
  if (!t.ok()) {
    if (t.status().message().empty()) __builtin_trap();  // every error says what was wrong
    return 0;
  }
  for (bool gen : {true, false}) {
    tracemark::ChatRenderOptions opts;
    opts.add_generation_prompt = gen;
    opts.unix_time = 0;
    auto out = t->Render(msgs, opts);
    if (!out.ok() && out.status().message().empty()) __builtin_trap();
    if (out.ok() && out->size() > tracemark::kMaxChatOutputBytes) __builtin_trap();
  }
  return 0;
}
