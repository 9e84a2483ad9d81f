// A CompletionClient (probe.h) that questions a suspect model through an OpenAI-compatible
// chat-completions endpoint: POST {base}/chat/completions with one user message, read
// choices[0].message.content. http:// and https:// (OpenSSL, certificate verified against the
// system store). Synchronous, one request at a time, every read bounded (kMaxResponseBytes,
// kRequestTimeoutSeconds). Not thread-safe; one client per thread.
#pragma once

#include <memory>
#include <string>

#include "tracemark/base/status.h"
#include "tracemark/probe/probe.h"

namespace tracemark::probe {

inline constexpr size_t kMaxResponseBytes = size_t{8} << 20;
inline constexpr int kRequestTimeoutSeconds = 300;

struct OpenAiEndpoint {
  std::string url;      // base URL, e.g. http://host:8080/v1 (".../chat/completions" also accepted)
  std::string model;    // the "model" field of each request
  std::string api_key;  // sent as "Authorization: Bearer ..." when not empty
  double temperature = 1.0;
};

// Parses the URL; errors name what is wrong with it.
Result<std::unique_ptr<CompletionClient>> MakeOpenAiClient(const OpenAiEndpoint& endpoint);

}  // namespace tracemark::probe
