// libFuzzer harness for the OpenAI request validator (serve/api_types.h): arbitrary bytes as a
// chat and as a completions body. Every input must give either a request or a 4xx error whose
// body is exactly OpenAI's error shape; accepted requests must respect the documented limits.
// The same entry point replays fuzz/corpus/openai_request in tm_serve_api_test on every build.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tracemark/serve/api_types.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (bool chat : {true, false}) {
    tracemark::serve::ParseResult r = tracemark::serve::ParseCompletionRequest(body, chat);
    if (r.request) {
      const auto& q = *r.request;
      if (chat && (q.messages.empty() || q.messages.size() > tracemark::serve::kMaxMessages)) __builtin_trap();
      if (q.prompt_is_tokens && q.prompt_tokens.empty()) __builtin_trap();
      if (q.max_tokens && (*q.max_tokens < 1 || *q.max_tokens > tracemark::serve::kMaxCompletionTokensLimit)) __builtin_trap();
      if (!(q.temperature >= 0 && q.temperature <= 2) || !(q.top_p >= 0 && q.top_p <= 1)) __builtin_trap();
      if (q.stop.size() > 4 || q.n != 1) __builtin_trap();
    } else {
      if (r.error.http_status < 400 || r.error.http_status >= 500 || r.error.message.empty()) __builtin_trap();
      if (tracemark::serve::ErrorBody(r.error).empty()) __builtin_trap();
    }
  }
  return 0;
}
