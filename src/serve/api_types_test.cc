// OpenAI request validation: accepted shapes, wrong types, limits and malformed JSON. Every bad
// input must give a 400 in OpenAI's error shape, never a crash.
#include "tracemark/serve/api_types.h"

#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <fstream>
#include <nlohmann/json.hpp>

namespace tracemark::serve {
namespace {

ParseResult Chat(const std::string& body) { return ParseCompletionRequest(body, true); }
ParseResult Comp(const std::string& body) { return ParseCompletionRequest(body, false); }

void ExpectError(const ParseResult& r, const std::optional<std::string>& param = std::nullopt,
                 const std::optional<std::string>& code = std::nullopt) {
  ASSERT_FALSE(r.request.has_value());
  EXPECT_EQ(r.error.http_status, 400);
  EXPECT_EQ(r.error.type, "invalid_request_error");
  if (param) {
    EXPECT_EQ(r.error.param, param);
  }
  if (code) {
    EXPECT_EQ(r.error.code, code);
  }
  // The body is exactly {"error":{"message","type","param","code"}}.
  auto j = nlohmann::json::parse(ErrorBody(r.error));
  ASSERT_TRUE(j.is_object());
  ASSERT_EQ(j.size(), 1u);
  ASSERT_EQ(j["error"].size(), 4u);
  EXPECT_TRUE(j["error"]["message"].is_string());
  EXPECT_TRUE(j["error"]["type"].is_string());
  EXPECT_TRUE(j["error"]["param"].is_string() || j["error"]["param"].is_null());
  EXPECT_TRUE(j["error"]["code"].is_string() || j["error"]["code"].is_null());
}

TEST(ParseCompletionRequest, AcceptsATypicalChatRequest) {
  auto r = Chat(R"({"model":"m","messages":[{"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]}],
      "max_completion_tokens":5,"temperature":0.7,"top_p":0.9,"seed":42,"stop":["\n","END"],
      "n":1,"user":"u1","stream":true,"stream_options":{"include_usage":true},
      "unknown_field":{"nested":[1,2,3]},"logit_bias":null})");
  ASSERT_TRUE(r.request) << r.error.message;
  EXPECT_EQ(r.request->model, "m");
  ASSERT_EQ(r.request->messages.size(), 2u);
  EXPECT_EQ(r.request->messages[1].content, "hi there");
  EXPECT_EQ(r.request->max_tokens, 5);
  EXPECT_FLOAT_EQ(r.request->temperature, 0.7);
  EXPECT_EQ(r.request->seed, 42u);
  EXPECT_EQ(r.request->stop.size(), 2u);
  EXPECT_TRUE(r.request->stream);
  EXPECT_TRUE(r.request->include_usage);
}

TEST(ParseCompletionRequest, AcceptsCompletionPromptForms) {
  auto a = Comp(R"({"model":"m","prompt":"Once upon","max_tokens":3,"stop":"."})");
  ASSERT_TRUE(a.request);
  EXPECT_EQ(a.request->prompt, "Once upon");
  EXPECT_EQ(a.request->stop, std::vector<std::string>{"."});
  auto b = Comp(R"({"model":"m","prompt":["one prompt"]})");
  ASSERT_TRUE(b.request);
  EXPECT_EQ(b.request->prompt, "one prompt");
  auto c = Comp(R"({"model":"m","prompt":[1,2,3]})");
  ASSERT_TRUE(c.request);
  EXPECT_TRUE(c.request->prompt_is_tokens);
  EXPECT_EQ(c.request->prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  auto d = Comp(R"({"model":"m","prompt":[[4,5]],"max_tokens":2.0})");
  ASSERT_TRUE(d.request);
  EXPECT_EQ(d.request->prompt_tokens, (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(d.request->max_tokens, 2);
}

TEST(ParseCompletionRequest, NullMeansAbsent) {
  auto r = Chat(R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":null,
      "temperature":null,"stop":null,"stream":null,"seed":null})");
  ASSERT_TRUE(r.request);
  EXPECT_FALSE(r.request->max_tokens);
  EXPECT_FALSE(r.request->stream);
}

TEST(ParseCompletionRequest, WrongTypesAre400InvalidType) {
  const std::string m = R"("messages":[{"role":"user","content":"x"}])";
  ExpectError(Chat(R"({"model":1,)" + m + "}"), "model", "invalid_type");
  ExpectError(Chat(R"({"model":"m","messages":"hi"})"), "messages", "invalid_type");
  ExpectError(Chat(R"({"model":"m","messages":[1]})"), "messages[0]", "invalid_type");
  ExpectError(Chat(R"({"model":"m","messages":[{"role":1,"content":"x"}]})"), "messages[0].role", "invalid_type");
  ExpectError(Chat(R"({"model":"m","messages":[{"role":"user","content":5}]})"), "messages[0].content", "invalid_type");
  ExpectError(Chat(R"({"model":"m",)" + m + R"(,"max_tokens":"5"})"), "max_tokens", "invalid_type");
  ExpectError(Chat(R"({"model":"m",)" + m + R"(,"max_tokens":1.5})"), "max_tokens", "invalid_type");
  ExpectError(Chat(R"({"model":"m",)" + m + R"(,"temperature":"hot"})"), "temperature", "invalid_type");
  ExpectError(Chat(R"({"model":"m",)" + m + R"(,"top_p":[1]})"), "top_p", "invalid_type");
  ExpectError(Chat(R"({"model":"m",)" + m + R"(,"seed":"1"})"), "seed", "invalid_type");
  ExpectError(Chat(R"({"model":"m",)" + m + R"(,"stop":5})"), "stop", "invalid_type");
  ExpectError(Chat(R"({"model":"m",)" + m + R"(,"stop":["a",1]})"), "stop", "invalid_type");
  ExpectError(Chat(R"({"model":"m",)" + m + R"(,"n":"1"})"), "n", "invalid_type");
  ExpectError(Chat(R"({"model":"m",)" + m + R"(,"user":7})"), "user", "invalid_type");
  ExpectError(Chat(R"({"model":"m",)" + m + R"(,"stream":"yes"})"), "stream", "invalid_type");
  ExpectError(Chat(R"({"model":"m",)" + m + R"(,"stream":true,"stream_options":1})"), "stream_options", "invalid_type");
  ExpectError(Chat(R"({"model":"m",)" + m + R"(,"stream":true,"stream_options":{"include_usage":1}})"),
              "stream_options.include_usage", "invalid_type");
  ExpectError(Comp(R"({"model":"m","prompt":5})"), "prompt", "invalid_type");
  ExpectError(Comp(R"({"model":"m","prompt":[1,"a"]})"), "prompt", "invalid_type");
}

TEST(ParseCompletionRequest, ValuesOutOfRange) {
  const std::string m = R"({"model":"m","messages":[{"role":"user","content":"x"}])";
  ExpectError(Chat(m + R"(,"max_tokens":0})"), "max_tokens", "invalid_value");
  ExpectError(Chat(m + R"(,"max_tokens":-3})"), "max_tokens", "invalid_value");
  ExpectError(Chat(m + R"(,"max_tokens":100000000})"), "max_tokens", "invalid_value");
  ExpectError(Chat(m + R"(,"max_tokens":1e300})"), "max_tokens", "invalid_type");
  ExpectError(Chat(m + R"(,"temperature":2.5})"), "temperature", "invalid_value");
  ExpectError(Chat(m + R"(,"temperature":-0.1})"), "temperature", "invalid_value");
  ExpectError(Chat(m + R"(,"top_p":1.5})"), "top_p", "invalid_value");
  ExpectError(Chat(m + R"(,"n":17})"), "n", "unsupported_value");
  ExpectError(Chat(m + R"(,"n":0})"), "n", "invalid_value");
  ExpectError(Chat(m + R"(,"stop":["a","b","c","d","e"]})"), "stop", "invalid_value");
  ExpectError(Chat(m + R"(,"stop":[""]})"), "stop", "invalid_value");
  ExpectError(Chat(m + R"(,"stream_options":{"include_usage":true}})"), "stream_options", "invalid_value");
  ExpectError(Chat(R"({"model":"m","messages":[]})"), "messages", "empty_array");
  ExpectError(Chat(R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})"), "messages[0].role", "invalid_value");
  ExpectError(Chat(R"({"model":"m","messages":[{"role":"user"}]})"), "messages[0].content", "missing_required_parameter");
  ExpectError(Chat(R"({"model":"m","messages":[{"content":"x"}]})"), "messages[0].role", "missing_required_parameter");
  ExpectError(Chat(R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})"),
              "messages[0].content[0].type", "invalid_value");
  ExpectError(Chat(R"({"messages":[{"role":"user","content":"x"}]})"), "model", "missing_required_parameter");
  ExpectError(Comp(R"({"model":"m"})"), "prompt", "missing_required_parameter");
  ExpectError(Comp(R"({"model":"m","prompt":[]})"), "prompt", "empty_array");
  ExpectError(Comp(R"({"model":"m","prompt":["a","b"]})"), "prompt", "invalid_value");
  ExpectError(Comp(R"({"model":"m","prompt":[-1]})"), "prompt", "invalid_value");
  ExpectError(Comp(R"({"model":"m","prompt":[99999999999]})"), "prompt", "invalid_value");
  ExpectError(Comp(R"({"model":"m","prompt":")" + std::string(kMaxPromptBytes + 1, 'a') + R"("})"), "prompt",
              "context_length_exceeded");
}

TEST(ParseCompletionRequest, MalformedJsonNeverCrashes) {
  const std::vector<std::string> bad = {
      "", " ", "{", "}", "[", "[]", "null", "true", "1", "\"str\"", "{\"model\":}", "{\"model\":\"m\",}",
      "{\"model\":\"m\"", "{'model':'m'}", "{\"model\":\"m\"} trailing", "{\"model\":NaN}",
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":Infinity}",
      "\xef\xbb\xbf{\"model\":\"m\"}",             // BOM
      "{\"model\":\"\xc3\x28\"}",                   // invalid UTF-8
      "{\"model\":\"\xed\xa0\x80\"}",               // encoded surrogate
      "{\"model\":\"\xc0\xaf\"}",                   // overlong
      "{\"model\":\"\xf8\x88\x80\x80\x80\"}",       // 5-byte form
      "{\"model\":\"\x80\"}",                       // lone continuation
      "{\"model\":\"a\x01b\"}",                     // raw control character
      "{\"model\":\"m\",\"model\":\"n\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",  // duplicate
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":1e999}",
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":123456789012345678901234567890}",
      std::string("{\"model\":\"m\",\"x\":\"a\0b\"}", 26),
  };
  for (const auto& b : bad) {
    auto r = Chat(b);
    ASSERT_FALSE(r.request.has_value()) << b;
    EXPECT_EQ(r.error.http_status, 400) << b;
    ExpectError(r);
  }
}

TEST(ParseCompletionRequest, DeepNestingIsRejected) {
  std::string deep = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"x\":";
  for (size_t i = 0; i < kMaxJsonDepth + 5; ++i) deep += "[";
  for (size_t i = 0; i < kMaxJsonDepth + 5; ++i) deep += "]";
  deep += "}";
  ExpectError(Chat(deep));
  std::string very_deep(1'000'000, '[');
  ExpectError(Chat(very_deep));
}

}  // namespace
}  // namespace tracemark::serve

namespace tracemark::serve {
namespace {

// The committed bad-input suite (tools/gen_bad_requests.py): every case the parser can decide
// is rejected with 400 and, where the suite names one, the expected code.
TEST(ParseCompletionRequest, CommittedBadInputSuite) {
  std::ifstream in(std::string(TM_SOURCE_DIR) + "/tests/data/serve/bad_requests.jsonl");
  ASSERT_TRUE(in.good());
  std::string line;
  int checked = 0;
  while (std::getline(in, line)) {
    auto c = nlohmann::json::parse(line);
    if (c["server_only"].get<bool>()) continue;
    const std::string b64 = c["body_b64"];
    std::string body(b64.size(), '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(body.data()),
                                  reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
    ASSERT_GE(n, 0);
    size_t len = static_cast<size_t>(n);
    if (b64.size() >= 1 && b64[b64.size() - 1] == '=') --len;
    if (b64.size() >= 2 && b64[b64.size() - 2] == '=') --len;
    body.resize(len);
    // The suite uses MODEL as the model id.
    ParseResult r = ParseCompletionRequest(body, c["endpoint"] == "chat");
    ASSERT_FALSE(r.request.has_value()) << c["name"];
    EXPECT_EQ(r.error.http_status, c["status"].get<int>()) << c["name"];
    if (!c["code"].is_null()) {
      EXPECT_EQ(r.error.code.value_or("<null>"), c["code"].get<std::string>()) << c["name"];
    }
    ++checked;
  }
  EXPECT_GE(checked, 300);
}

}  // namespace
}  // namespace tracemark::serve
