// The OpenAI wire protocol as plain structs: validated completion requests and OpenAI-shaped
// errors ({"error":{"message","type","param","code"}}, all four keys always present).
// ParseCompletionRequest() turns an untrusted body into a request or an error: strict RFC 8259
// JSON via simdjson (valid UTF-8, depth <= kMaxJsonDepth, no duplicate top-level keys),
// per-field type checks (wrong type -> 400 invalid_type), unknown fields ignored as OpenAI does.
// It never throws and never crashes on any input (fuzzed; bad-input suite in tests).
// Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tracemark::serve {

// ---- Limits (docs/api.md) ----
inline constexpr size_t kMaxJsonDepth = 32;
inline constexpr size_t kMaxMessages = 256;
inline constexpr size_t kMaxPromptBytes = 256 << 10;
inline constexpr int32_t kMaxCompletionTokensLimit = 4096;
inline constexpr size_t kMaxModelNameBytes = 256;
inline constexpr size_t kMaxUserBytes = 256;
inline constexpr size_t kMaxPromptTokenIds = 32768;
// Choices per request (`n`): each an independent watermarked sample, decoded in the same batch.
inline constexpr int32_t kMaxChoices = 16;

struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::optional<std::string> param;
  std::optional<std::string> code;
};
// The exact OpenAI error body.
std::string ErrorBody(const ApiError& e);

ApiError BadRequest(std::string message, std::optional<std::string> param = std::nullopt,
                    std::optional<std::string> code = std::nullopt);

struct ChatMessage {
  std::string role;     // system, developer, user, assistant, tool
  std::string content;  // text parts concatenated
};

struct CompletionRequest {
  bool chat = false;
  std::string model;
  std::vector<ChatMessage> messages;     // chat
  std::string prompt;                    // completions, text form
  std::vector<int32_t> prompt_tokens;    // completions, token-id form
  bool prompt_is_tokens = false;
  std::optional<int32_t> max_tokens;     // max_tokens or max_completion_tokens
  double temperature = 1.0;
  double top_p = 1.0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  int32_t n = 1;
  std::string user;
  bool stream = false;
  bool include_usage = false;
};

struct ParseResult {
  std::optional<CompletionRequest> request;
  ApiError error;  // meaningful when !request
};

ParseResult ParseCompletionRequest(std::string_view body, bool chat);

}  // namespace tracemark::serve
