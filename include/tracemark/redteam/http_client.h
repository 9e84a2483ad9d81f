// A small blocking HTTP/1.1 client (plain HTTP, keep-alive) and the OpenAI chat-completions call
// the red-team harness makes with it, streaming or not.
//
// HttpClient owns one TCP connection to one host; it reconnects when the server closed an idle
// connection. Boost.Beast stays inside http_client.cc. One HttpClient is used by one thread at a
// time (the harvester gives each worker its own); different clients are independent.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tracemark/base/status.h"

namespace tracemark::redteam {

// Largest response body read; a bigger one fails the request.
inline constexpr size_t kMaxResponseBodyBytes = 8u << 20;
// Socket send / receive timeout of one request.
inline constexpr int kDefaultHttpTimeoutSeconds = 120;

struct BaseUrl {
  std::string host;
  std::string port;
  std::string prefix;  // path prefix without trailing '/', e.g. "" or "/proxy"
};

// Accepts "http://HOST[:PORT][/PREFIX]" (an optional trailing "/v1" is dropped: the harness adds it).
Result<BaseUrl> ParseBaseUrl(std::string_view url);

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  // The first header with this (lower-case) name, or "".
  std::string_view Header(std::string_view name) const;
};

class HttpClient {
 public:
  HttpClient(BaseUrl base, std::string user_agent, int timeout_s = kDefaultHttpTimeoutSeconds);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // method "GET" or "POST"; path is appended to the base URL's prefix. bearer may be empty.
  Result<HttpResponse> Request(std::string_view method, std::string_view path, std::string_view bearer,
                               std::string_view json_body);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Parses an OpenAI duration ("0s", "250ms", "6s", "1m30s", "1h2m") or plain seconds ("2", "1.5").
// Returns seconds, or nullopt when it is not one.
std::optional<double> ParseResetDuration(std::string_view text);

struct ChatMessage {
  std::string role;
  std::string content;
};

struct ChatRequest {
  std::string model;
  std::vector<ChatMessage> messages;
  int max_tokens = 64;
  double temperature = 1.0;
  double top_p = 1.0;
  std::optional<int64_t> seed;
  bool stream = false;
};

// The outcome of one chat completion. http_status 200 means `text` holds the completion; any other
// status carries the API's error code (e.g. "account_suspended", "rate_limit_exceeded") and, for
// 429, the seconds to wait before the next request of this account.
struct ChatResult {
  int http_status = 0;
  std::string error_code;
  std::string error_type;
  std::string error_message;
  std::string text;
  std::string finish_reason;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double retry_after_s = 0;  // from Retry-After / x-ratelimit-reset-* on 429
  // x-ratelimit-remaining-requests / -tokens and the matching resets, when the server sent them.
  std::optional<int64_t> remaining_requests;
  std::optional<int64_t> remaining_tokens;
  std::optional<int64_t> limit_requests;  // x-ratelimit-limit-requests / -tokens (per minute)
  std::optional<int64_t> limit_tokens;
  double reset_requests_s = 0;
  double reset_tokens_s = 0;
};

// Serializes the request (JSON), posts it to /v1/chat/completions and parses the JSON response or
// the SSE stream (data: events up to [DONE]; usage from stream_options.include_usage). A transport
// failure is an error Status; an HTTP error is a ChatResult with its status and code.
Result<ChatResult> ChatCompletion(HttpClient& client, std::string_view api_key, const ChatRequest& request);

// GET /v1/models and return the first model id.
Result<std::string> FirstModelId(HttpClient& client, std::string_view api_key);

// Builds the JSON body ChatCompletion sends (exposed for tests).
std::string ChatRequestJson(const ChatRequest& request);

// Parses a chat.completion JSON body or an SSE body into `out` (exposed for tests).
Status ParseChatResponse(std::string_view body, bool stream, ChatResult* out);

}  // namespace tracemark::redteam
