// Pre-tokenizer splits against the regex semantics (cases checked with the HF oracle).
#include "text/pretokenize.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "text/normalize.h"

namespace tracemark::text {
namespace {

std::vector<std::string> Split(PreTokenizerKind kind, std::string_view s) {
  std::vector<PieceSpan> spans;
  PreTokenize(kind, s, &spans);
  std::vector<std::string> out;
  for (const auto& sp : spans) out.emplace_back(s.substr(sp.begin, sp.end - sp.begin));
  return out;
}

using V = std::vector<std::string>;

TEST(PreTokenizeTest, Gpt2Basics) {
  EXPECT_EQ(Split(PreTokenizerKind::kGpt2, "Hello world's   end 123!!\n"),
            (V{"Hello", " world", "'s", "  ", " end", " 123", "!!", "\n"}));
  EXPECT_EQ(Split(PreTokenizerKind::kGpt2, "a  \tb"), (V{"a", "  ", "\t", "b"}));
  EXPECT_EQ(Split(PreTokenizerKind::kGpt2, "x   "), (V{"x", "   "}));
}

TEST(PreTokenizeTest, SmollmIsolatesDigits) {
  EXPECT_EQ(Split(PreTokenizerKind::kSmollm, "abc 123def"),
            (V{"abc", " ", "1", "2", "3", "def"}));
  EXPECT_EQ(Split(PreTokenizerKind::kSmollm, "a  1"), (V{"a", "  ", "1"}));
}

TEST(PreTokenizeTest, Llama3AndQwen2) {
  EXPECT_EQ(Split(PreTokenizerKind::kLlama3, "I'M 12345 \thi\n\n  x"),
            (V{"I", "'M", " ", "123", "45", " ", "\thi", "\n\n", " ", " x"}));
  EXPECT_EQ(Split(PreTokenizerKind::kQwen2, "12345"), (V{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(Split(PreTokenizerKind::kLlama3, " ...\n\nfoo"), (V{" ...\n\n", "foo"}));
}

TEST(PreTokenizeTest, CoversInvalidUtf8) {
  const std::string s = "ab\xFF\xC3 z";
  size_t total = 0;
  for (const auto& p : Split(PreTokenizerKind::kGpt2, s)) total += p.size();
  EXPECT_EQ(total, s.size());
}

TEST(NormalizeTest, Nfc) {
  std::string out;
  NormalizeNfc("e\xCC\x81", &out);  // e + COMBINING ACUTE
  EXPECT_EQ(out, "\xC3\xA9");
  EXPECT_FALSE(IsNfcQuick("e\xCC\x81"));
  EXPECT_TRUE(IsNfcQuick("plain ascii \xC3\xA9"));
  out.clear();
  NormalizeNfc("\xE1\x84\x80\xE1\x85\xA1", &out);  // Hangul L + V -> GA
  EXPECT_EQ(out, "\xEA\xB0\x80");
}

}  // namespace
}  // namespace tracemark::text
