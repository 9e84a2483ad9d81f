#include "tracemark/monitor/prompt_features.h"

#include <gtest/gtest.h>

#include <string>

namespace tracemark::monitor {
namespace {

PromptFeatures Analyze(std::string_view s) {
  static PromptAnalyzer analyzer;
  PromptFeatures f;
  analyzer.Analyze(s, &f);
  return f;
}

TEST(PromptFeaturesTest, SkeletonReplacesDigitsQuotesAndNames) {
  EXPECT_EQ(Analyze("compute 12 plus 7 for me").skeleton_hash, Analyze("compute 990 plus 3 for me").skeleton_hash);
  EXPECT_EQ(Analyze("translate \"good morning\" please").skeleton_hash,
            Analyze("translate \"where is the station\" please").skeleton_hash);
  EXPECT_EQ(Analyze("write a letter to Alice today").skeleton_hash,
            Analyze("write a letter to Bob today").skeleton_hash);
  EXPECT_NE(Analyze("write a letter to alice today").skeleton_hash,
            Analyze("write a letter to bob today").skeleton_hash);
  // Case of the first word does not matter (sentence start is not a name).
  EXPECT_EQ(Analyze("Write it").skeleton_hash, Analyze("write it").skeleton_hash);
}

TEST(PromptFeaturesTest, WrapperTemplatesShareAnchors) {
  const auto a = Analyze("Solve the following problem step by step and explain your reasoning. apples pears oranges "
                         "grow in orchards with bees and rain");
  const auto b = Analyze("Solve the following problem step by step and explain your reasoning. rockets need fuel "
                         "oxygen pumps and careful engineers to fly");
  EXPECT_NE(a.prefix_anchor, 0u);
  EXPECT_EQ(a.prefix_anchor, b.prefix_anchor);
  EXPECT_NE(a.suffix_anchor, b.suffix_anchor);
  const auto shorter = Analyze("too short");
  EXPECT_EQ(shorter.prefix_anchor, 0u);
  EXPECT_EQ(shorter.suffix_anchor, 0u);
}

TEST(PromptFeaturesTest, ElicitationPhrasesCaseInsensitive) {
  EXPECT_EQ(Analyze("what is the capital of france").elicitation_mask, 0u);
  EXPECT_NE(Analyze("Please explain STEP BY STEP how tides work").elicitation_mask, 0u);
  EXPECT_NE(Analyze("Grade this answer with a rubric").elicitation_mask & (1u << 8), 0u);
  EXPECT_NE(Analyze("Grade this answer with a rubric").elicitation_mask & (1u << 10), 0u);
}

TEST(PromptFeaturesTest, NearDuplicatesHaveHighMinHashSimilarity) {
  const auto a = Analyze("the quick brown fox jumps over the lazy dog near the river bank today");
  const auto b = Analyze("the quick brown fox jumps over the lazy cat near the river bank today");
  const auto c = Analyze("completely different words appear here without any overlap at all really");
  EXPECT_GE(MinHashSimilarity(a.signature, b.signature), 0.5);
  EXPECT_LT(MinHashSimilarity(a.signature, c.signature), 0.3);
}

TEST(PromptFeaturesTest, ContentWordsSkipStopWordsAndShortWords) {
  const auto f = Analyze("what about the tides");
  ASSERT_EQ(f.content_word_count, 1);  // "tides"; "what" and "about" are stop words, "the" is short
}

TEST(PromptFeaturesTest, LongAndBinaryInputIsBounded) {
  std::string big(200000, 'a');
  for (size_t i = 0; i < big.size(); i += 7) big[i] = ' ';
  const auto f = Analyze(big);
  EXPECT_LE(f.words, kMaxPromptWords);
  EXPECT_LE(f.content_word_count, kMaxContentWords);
  std::string bin(5000, '\0');
  for (size_t i = 0; i < bin.size(); ++i) bin[i] = static_cast<char>(i * 37);
  const auto g = Analyze(bin);
  EXPECT_LE(g.words, kMaxPromptWords);
  const auto unterminated = Analyze("say \"hello and never close the quote");
  EXPECT_GE(unterminated.words, 2);
  EXPECT_EQ(Analyze("").words, 0);
}

}  // namespace
}  // namespace tracemark::monitor
