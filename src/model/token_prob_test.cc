// TokenProbModel on the real SmolLM2 model (skipped when the file is missing): the chunking
// rule, bit-identical results for any rows per decode and thread count, agreement with a plain
// one-prefix-at-a-time computation, and the errors.
#include "tracemark/model/token_prob.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tracemark/model/context.h"
#include "tracemark/model/model.h"
#include "tracemark/text/tokenizer.h"

namespace tracemark {
namespace {

constexpr char kModelPath[] = TM_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
constexpr char kTextPath[] = TM_SOURCE_DIR "/tests/data/redteam/kjv_docs.txt";
// Tokens of the long test text: more than one chunk, so the second chunk's carried context is used.
constexpr size_t kLongTokens = kTokenProbChunkTokens + 200;

class TokenProbTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::ifstream(kModelPath).good()) return;
    auto model = Model::Load(kModelPath);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = model->release();
    auto tok = text::Tokenizer::FromGguf(model_->file());
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    std::ifstream in(kTextPath);
    std::stringstream ss;
    ss << in.rdbuf();
    ids_ = new std::vector<int32_t>((*tok)->Encode(ss.str(), false, false));
    ASSERT_GT(ids_->size(), kLongTokens);
    ids_->resize(kLongTokens);
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
    delete ids_;
    ids_ = nullptr;
  }
  void SetUp() override {
    if (model_ == nullptr) GTEST_SKIP() << kModelPath << " not present";
  }
  static std::vector<float> Probs(std::span<const int32_t> ids, TokenProbOptions o = {}) {
    auto m = TokenProbModel::Create(*model_, o);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    if (!m.ok()) return {};
    auto p = (*m)->Probabilities(ids);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? *p : std::vector<float>{};
  }
  static Model* model_;
  static std::vector<int32_t>* ids_;
};
Model* TokenProbTest::model_ = nullptr;
std::vector<int32_t>* TokenProbTest::ids_ = nullptr;

TEST_F(TokenProbTest, ProbabilitiesAreInRangeAndFirstIsOne) {
  const std::span<const int32_t> ids(ids_->data(), 300);
  const std::vector<float> p = Probs(ids);
  ASSERT_EQ(p.size(), ids.size());
  EXPECT_EQ(p[0], 1.0f);
  double mean = 0;
  for (size_t i = 1; i < p.size(); ++i) {
    EXPECT_GT(p[i], 0.0f) << i;
    EXPECT_LE(p[i], 1.0f) << i;
    mean += p[i];
  }
  mean /= static_cast<double>(p.size() - 1);
  // The KJV text is very predictable for an instruct model but far from certain.
  EXPECT_GT(mean, 0.2);
  EXPECT_LT(mean, 0.95);
}

// Rows per decode and threads change memory and speed only: the bits are the same (the one-shot
// decode of a whole chunk, rows = chunk + overlap, is what `tracemark detect` did in session 3).
TEST_F(TokenProbTest, SameBitsForAnyRowsPerDecodeAndThreads) {
  const std::span<const int32_t> ids(*ids_);
  const std::vector<float> base = Probs(ids);
  TokenProbOptions one_shot;
  one_shot.rows_per_decode = kTokenProbChunkTokens + kTokenProbOverlapTokens;
  one_shot.n_threads = 2;
  EXPECT_EQ(Probs(ids, one_shot), base);
  TokenProbOptions odd;
  odd.rows_per_decode = 97;
  odd.n_threads = 2;
  EXPECT_EQ(Probs(ids, odd), base);
}

// A token past the first chunk is predicted from the kTokenProbOverlapTokens tokens before its
// chunk (and the chunk so far), never from the start of the text.
TEST_F(TokenProbTest, SecondChunkSeesOnlyTheCarriedContext) {
  const std::span<const int32_t> ids(*ids_);
  const std::vector<float> full = Probs(ids);
  const size_t start = 1 + kTokenProbChunkTokens;       // first token of the second chunk
  const size_t begin = start - 1 - kTokenProbOverlapTokens;  // first row it is decoded from
  const std::vector<float> tail = Probs(ids.subspan(begin));
  ASSERT_EQ(tail.size(), ids.size() - begin);
  for (size_t i = start; i < ids.size(); ++i) EXPECT_EQ(full[i], tail[i - begin]) << i;
  // And the carried context matters: without it the chunk's first prediction differs.
  const std::vector<float> cold = Probs(ids.subspan(start - 1));
  EXPECT_NE(cold[1], full[start]);
}

// The definition, computed the slow way: one decode of ids[0, i) per position, softmax of the
// last row's logits.
TEST_F(TokenProbTest, MatchesOnePrefixAtATime) {
  const std::span<const int32_t> ids(ids_->data(), 40);
  const std::vector<float> p = Probs(ids);
  ContextOptions copt;
  copt.n_ctx = 64;
  copt.max_batch = 64;
  copt.n_threads = 1;
  auto ctx = Context::Create(*model_, copt);
  ASSERT_TRUE(ctx.ok()) << ctx.status().ToString();
  for (size_t i : {size_t{1}, size_t{2}, size_t{17}, size_t{39}}) {
    (*ctx)->ClearSeq(0);
    Batch b;
    for (size_t j = 0; j < i; ++j) b.Add(ids[j], static_cast<int32_t>(j), 0, j + 1 == i);
    ASSERT_TRUE((*ctx)->Decode(b).ok());
    const std::span<const float> l = (*ctx)->Logits(0);
    double z = 0;
    for (float x : l) z += std::exp(static_cast<double>(x));
    const double want = std::exp(static_cast<double>(l[static_cast<size_t>(ids[i])])) / z;
    EXPECT_NEAR(p[i], want, 1e-4 + 1e-3 * want) << i;
  }
}

TEST_F(TokenProbTest, ShortTextsAndErrors) {
  EXPECT_TRUE(Probs({}).empty());
  const int32_t one[] = {42};
  EXPECT_EQ(Probs(one), std::vector<float>{1.0f});

  auto m = TokenProbModel::Create(*model_);
  ASSERT_TRUE(m.ok());
  const int32_t last_bad[] = {42, 43, 1 << 30};
  auto r = (*m)->Probabilities(last_bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("vocabulary"), std::string::npos) << r.status().message();
  const int32_t first_bad[] = {-7, 43, 44};
  r = (*m)->Probabilities(first_bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  // The model is still usable after an error.
  const int32_t good[] = {42, 43, 44};
  EXPECT_TRUE((*m)->Probabilities(good).ok());

  TokenProbOptions bad;
  bad.rows_per_decode = 0;
  EXPECT_FALSE(TokenProbModel::Create(*model_, bad).ok());
  bad.rows_per_decode = kTokenProbChunkTokens + kTokenProbOverlapTokens + 1;
  EXPECT_FALSE(TokenProbModel::Create(*model_, bad).ok());
}

}  // namespace
}  // namespace tracemark
