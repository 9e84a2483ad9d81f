// Generation loop on the real SmolLM2 model: sensible greedy output, determinism per seed, stop
// strings (also split across tokens), token limit. Skips when the model file is missing.
#include "tracemark/model/generate.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tracemark/model/gguf.h"
#include "tracemark/model/model.h"
#include "tracemark/text/tokenizer.h"

namespace tracemark {
namespace {

struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<text::Tokenizer> tok;
  std::unique_ptr<Context> ctx;
};

Loaded LoadSmol() {
  Loaded l;
  const std::string path = std::string(TM_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::ifstream(path).good()) return l;
  auto m = Model::Load(path);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  if (!m.ok()) return l;
  l.model = std::move(m).value();
  auto t = text::Tokenizer::FromGguf(l.model->file());
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  if (!t.ok()) return l;
  l.tok = std::move(t).value();
  ContextOptions opt;
  opt.n_ctx = 512;
  auto c = Context::Create(*l.model, opt);
  EXPECT_TRUE(c.ok());
  if (c.ok()) l.ctx = std::move(c).value();
  return l;
}

std::vector<int32_t> ChatPrompt(const text::Tokenizer& tok, const std::string& user) {
  return tok.Encode("<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n", true, true);
}

#define SKIP_WITHOUT_MODEL(l) \
  if (!(l).ctx) GTEST_SKIP() << "SmolLM2 model not present"

TEST(Generate, GreedyAnswersSensibly) {
  Loaded l = LoadSmol();
  SKIP_WITHOUT_MODEL(l);
  GenerateOptions o;
  o.sampling.temperature = 0;
  o.max_tokens = 24;
  std::string streamed;
  auto r = Generate(*l.ctx, *l.tok, ChatPrompt(*l.tok, "What is the capital of France?"), o,
                    [&](std::string_view s) { streamed += s; return true; });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::printf("greedy: %s (%s, %.1f tok/s decode)\n", r->text.c_str(), r->finish_reason.c_str(),
              r->timings.DecodeTokensPerSecond());
  EXPECT_NE(r->text.find("Paris"), std::string::npos) << r->text;
  EXPECT_EQ(streamed, r->text);
  EXPECT_EQ(r->finish_reason, "stop");  // ends with <|im_end|>
  EXPECT_EQ(r->timings.completion_tokens, static_cast<int32_t>(r->tokens.size()));
}

TEST(Generate, SameSeedSameBytesAndLengthLimit) {
  Loaded l = LoadSmol();
  SKIP_WITHOUT_MODEL(l);
  GenerateOptions o;
  o.sampling.temperature = 0.9f;
  o.sampling.top_p = 0.95f;
  o.sampling.seed = 42;
  o.max_tokens = 20;
  o.ignore_eog = true;
  const auto prompt = ChatPrompt(*l.tok, "Tell me a story about a dragon.");
  auto a = Generate(*l.ctx, *l.tok, prompt, o);
  auto b = Generate(*l.ctx, *l.tok, prompt, o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->text, b->text);
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_EQ(a->finish_reason, "length");
  EXPECT_EQ(a->tokens.size(), 20u);
  o.sampling.seed = 43;
  auto c = Generate(*l.ctx, *l.tok, prompt, o);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->tokens, c->tokens);
}

TEST(Generate, StopStringEndsOutputEvenAcrossTokens) {
  Loaded l = LoadSmol();
  SKIP_WITHOUT_MODEL(l);
  GenerateOptions o;
  o.sampling.temperature = 0;
  o.max_tokens = 40;
  o.ignore_eog = true;
  const auto prompt = ChatPrompt(*l.tok, "Write a short poem about the sea.");
  auto full = Generate(*l.ctx, *l.tok, prompt, o);
  ASSERT_TRUE(full.ok());
  ASSERT_GT(full->text.size(), 30u);
  // A stop string that starts inside one token and ends in a later one.
  const std::string stop = full->text.substr(12, 9);
  o.stop = {stop};
  std::string streamed;
  auto cut = Generate(*l.ctx, *l.tok, prompt, o, [&](std::string_view s) { streamed += s; return true; });
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->finish_reason, "stop");
  EXPECT_EQ(cut->text, full->text.substr(0, full->text.find(stop)));
  EXPECT_EQ(streamed, cut->text);
}

TEST(Generate, RejectsBadArguments) {
  Loaded l = LoadSmol();
  SKIP_WITHOUT_MODEL(l);
  GenerateOptions o;
  EXPECT_FALSE(Generate(*l.ctx, *l.tok, std::vector<int32_t>{}, o).ok());
  o.seq = 5;
  EXPECT_FALSE(Generate(*l.ctx, *l.tok, std::vector<int32_t>{1, 2}, o).ok());
  o.seq = 0;
  o.stop = {""};
  EXPECT_FALSE(Generate(*l.ctx, *l.tok, std::vector<int32_t>{1, 2}, o).ok());
  std::vector<int32_t> long_prompt(600, 1);
  o.stop.clear();
  EXPECT_EQ(Generate(*l.ctx, *l.tok, long_prompt, o).status().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace tracemark
