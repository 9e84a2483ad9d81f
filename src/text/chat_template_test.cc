#include "tracemark/text/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

namespace tracemark {
namespace {

nlohmann::json LoadVectors(const std::string& family) {
  const std::string path = std::string(TM_SOURCE_DIR) + "/tests/data/chat/" + family + ".json";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

std::optional<std::string> OptString(const nlohmann::json& j) {
  if (j.is_null()) return std::nullopt;
  return j.get<std::string>();
}

std::vector<ChatMessage> Messages(const nlohmann::json& c) {
  std::vector<ChatMessage> msgs;
  for (const auto& m : c["messages"]) msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  return msgs;
}

// Renders every committed case of `family` with `tmpl` and compares byte for byte with what
// transformers' apply_chat_template produced; error cases must fail (and a template's own
// raise_exception message must come through).
int CheckFamily(const ChatTemplate& tmpl, const nlohmann::json& data) {
  int checked = 0;
  for (const auto& c : data["cases"]) {
    const std::string name = c["name"].get<std::string>();
    ChatRenderOptions opts;
    opts.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    opts.unix_time = data["unix_time"].get<int64_t>();
    const std::vector<ChatMessage> msgs = Messages(c);
    Result<std::string> out = tmpl.Render(msgs, opts);
    if (c.contains("expected")) {
      EXPECT_TRUE(out.ok()) << name << ": " << out.status().ToString();
      if (out.ok()) {
        EXPECT_EQ(*out, c["expected"].get<std::string>()) << name;
      }
    } else {
      EXPECT_FALSE(out.ok()) << name << " should fail like transformers: " << c["error"];
      const std::string err = c["error"].get<std::string>();
      const std::string prefix = "TemplateError: ";
      if (!out.ok() && err.rfind(prefix, 0) == 0) {
        EXPECT_NE(out.status().message().find(err.substr(prefix.size())), std::string::npos)
            << name << ": " << out.status().message();
      }
    }
    ++checked;
  }
  return checked;
}

class ChatVectorsTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatVectorsTest, MatchesTransformers) {
  const nlohmann::json data = LoadVectors(GetParam());
  Result<ChatTemplate> tmpl = ChatTemplate::FromString(data["template"].get<std::string>(),
                                                       OptString(data["bos_token"]), OptString(data["eos_token"]));
  ASSERT_TRUE(tmpl.ok()) << tmpl.status().ToString();
  EXPECT_GE(CheckFamily(*tmpl, data), 20);
}

INSTANTIATE_TEST_SUITE_P(Families, ChatVectorsTest,
                         ::testing::Values("smollm2", "gemma3", "llama3", "qwen25", "llama32"));

// The built-in templates (used when a GGUF has none) render the same as the official ones.
TEST(ChatBuiltinTest, MatchesOfficialTemplates) {
  for (auto [family, builtin] : std::vector<std::pair<std::string, std::string>>{
           {"smollm2", "smollm2"}, {"gemma3", "gemma"}, {"llama3", "llama3"}, {"qwen25", "qwen2"}}) {
    SCOPED_TRACE(family);
    const nlohmann::json data = LoadVectors(family);
    Result<ChatTemplate> tmpl = ChatTemplate::Builtin(builtin, OptString(data["bos_token"]), OptString(data["eos_token"]));
    ASSERT_TRUE(tmpl.ok()) << tmpl.status().ToString();
    EXPECT_EQ(tmpl->builtin_family(), builtin);
    EXPECT_GE(CheckFamily(*tmpl, data), 20);
  }
  EXPECT_FALSE(ChatTemplate::Builtin("nope", std::nullopt, std::nullopt).ok());
}

TEST(ChatTemplateTest, GemmaNonAlternatingRolesIsAClearError) {
  const nlohmann::json data = LoadVectors("gemma3");
  Result<ChatTemplate> tmpl = ChatTemplate::FromString(data["template"].get<std::string>(), "<bos>", "<end_of_turn>");
  ASSERT_TRUE(tmpl.ok());
  std::vector<ChatMessage> msgs = {{"user", "a"}, {"user", "b"}};
  Result<std::string> out = tmpl->Render(msgs, true);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(),
            "chat template rejected the messages: Conversation roles must alternate user/assistant/user/assistant/...");
}

TEST(ChatTemplateTest, EmptyConversationRejected) {
  Result<ChatTemplate> tmpl = ChatTemplate::Builtin("chatml", std::nullopt, std::nullopt);
  ASSERT_TRUE(tmpl.ok());
  EXPECT_FALSE(tmpl->Render({}, true).ok());
}

TEST(ChatTemplateTest, UnsupportedConstructIsAnErrorNotOutput) {
  for (const char* src : {"{% call m() %}x{% endcall %}", "{% raw %}{{ x }}{% endraw %}",
                          "{% macro m() %}{{ varargs }}{% endmacro %}", "{{ messages | map('upper') | join }}",
                          "{{ '{}'.format(1) }}", "{% filter upper %}x{% endfilter %}",
                          "{% for m in messages recursive %}{% endfor %}", "{% include 'other' %}",
                          "{{ 'abc' is divisibleby 3 }}"}) {
    Result<ChatTemplate> tmpl = ChatTemplate::FromString(src, std::nullopt, std::nullopt);
    if (!tmpl.ok()) {
      EXPECT_EQ(tmpl.status().code(), StatusCode::kUnimplemented) << src << ": " << tmpl.status().ToString();
      continue;
    }
    std::vector<ChatMessage> msgs = {{"user", "hi"}};
    Result<std::string> out = tmpl->Render(msgs, true);
    EXPECT_FALSE(out.ok()) << src;
    EXPECT_EQ(out.status().code(), StatusCode::kUnimplemented) << src << ": " << out.status().ToString();
  }
}

TEST(ChatTemplateTest, SyntaxErrorsNameTheLine) {
  for (const char* src : {"{% if x %}", "{{ x ", "a\n{% for %}", "{% endif %}", "{{ 'abc }}", "{{ (1 }}"}) {
    Result<ChatTemplate> tmpl = ChatTemplate::FromString(src, std::nullopt, std::nullopt);
    ASSERT_FALSE(tmpl.ok()) << src;
    EXPECT_EQ(tmpl.status().code(), StatusCode::kInvalidArgument) << src;
    EXPECT_NE(tmpl.status().message().find("line "), std::string::npos) << tmpl.status().message();
  }
}

TEST(ChatTemplateTest, LimitsAreEnforced) {
  EXPECT_EQ(ChatTemplate::FromString(std::string(kMaxChatTemplateBytes + 1, 'x'), std::nullopt, std::nullopt)
                .status()
                .code(),
            StatusCode::kResourceExhausted);
  std::string deep;
  for (int i = 0; i < kMaxChatNestingDepth + 5; ++i) deep += "{% if true %}";
  for (int i = 0; i < kMaxChatNestingDepth + 5; ++i) deep += "{% endif %}";
  EXPECT_EQ(ChatTemplate::FromString(deep, std::nullopt, std::nullopt).status().code(), StatusCode::kResourceExhausted);
  std::string parens = "{{ " + std::string(200, '(') + "1" + std::string(200, ')') + " }}";
  EXPECT_EQ(ChatTemplate::FromString(parens, std::nullopt, std::nullopt).status().code(),
            StatusCode::kResourceExhausted);

  // Long left-associative chains nest in the tree just like parentheses.
  std::string attrs = "{{ x";
  for (int i = 0; i < 5000; ++i) attrs += ".a";
  EXPECT_EQ(ChatTemplate::FromString(attrs + " }}", std::nullopt, std::nullopt).status().code(),
            StatusCode::kResourceExhausted);
  std::string sum = "{{ 1";
  for (int i = 0; i < 5000; ++i) sum += " + 1";
  EXPECT_EQ(ChatTemplate::FromString(sum + " }}", std::nullopt, std::nullopt).status().code(),
            StatusCode::kResourceExhausted);

  std::vector<ChatMessage> msgs = {{"user", "hi"}};
  auto render = [&](const std::string& src) {
    Result<ChatTemplate> t = ChatTemplate::FromString(src, std::nullopt, std::nullopt);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t->Render(msgs, true);
  };
  // Exponential growth through a namespace is stopped by the output bound.
  EXPECT_EQ(render("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
                   "{% endfor %}{{ ns.s | length }}")
                .status()
                .code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(render("{{ 'x' * 100000000 }}").status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(render("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}").status().code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(render("{{ range(100000000) | length }}").status().code(), StatusCode::kResourceExhausted);
  // Values nested deeper than the limit (built one level per iteration) are refused.
  EXPECT_EQ(render("{% set ns = namespace(x=0) %}{% for i in range(1000) %}{% set ns.x = [ns.x] %}"
                   "{% endfor %}{{ ns.x | length }}")
                .status()
                .code(),
            StatusCode::kResourceExhausted);
  // A namespace that contains itself renders (and the cycle is broken after rendering).
  Result<std::string> cyc = render("{% set ns = namespace() %}{% set ns.self = [ns] %}{{ ns.self | length }}");
  ASSERT_TRUE(cyc.ok()) << cyc.status().ToString();
  EXPECT_EQ(*cyc, "1");
}

TEST(ChatTemplateTest, StrftimeNowUsesTheGivenClock) {
  Result<ChatTemplate> t = ChatTemplate::FromString("{{ strftime_now('%d %b %Y') }}", std::nullopt, std::nullopt);
  ASSERT_TRUE(t.ok());
  std::vector<ChatMessage> msgs = {{"user", "hi"}};
  ChatRenderOptions opts;
  opts.unix_time = 0;
  EXPECT_EQ(*t->Render(msgs, opts), "01 Jan 1970");
}

TEST(ChatTemplateTest, CopiesShareAndRenderConcurrently) {
  Result<ChatTemplate> t = ChatTemplate::Builtin("llama3", "<|begin_of_text|>", "<|eot_id|>");
  ASSERT_TRUE(t.ok());
  const ChatTemplate copy = *t;
  std::vector<ChatMessage> msgs = {{"system", " s "}, {"user", "u"}};
  std::vector<std::thread> threads;
  std::vector<std::string> outs(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { outs[i] = *copy.Render(msgs, true); });
  }
  for (auto& th : threads) th.join();
  for (const std::string& o : outs) {
    EXPECT_EQ(o,
              "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\ns<|eot_id|><|start_header_id|>user<|end_"
              "header_id|>\n\nu<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  }
}

}  // namespace
}  // namespace tracemark
