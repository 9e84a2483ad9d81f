#include "tracemark/watermark/detector.h"

#include <gtest/gtest.h>

#include <cmath>

#include "watermark/synthetic.h"
#include "tracemark/model/sampler.h"
#include "tracemark/watermark/hook.h"
#include "tracemark/watermark/placeholders.h"
#include "watermark/test_helpers.h"

namespace tracemark::watermark {
namespace {

// Smaller than a real vocabulary to keep the suite fast; the schemes do not depend on it.
constexpr int32_t kTestVocab = 8192;

Keyring TestKeyring(std::string_view spec, uint8_t fill = 0x5a) { return FixedSecretKeyring(spec, fill); }

// A watermarked continuation of a short random prompt; returns only the generated tokens.
std::vector<int32_t> Generate(const Keyring& ring, uint64_t account, int n, uint64_t seed,
                              float temperature = 1.0f) {
  sim::SyntheticLmOptions o;
  o.vocab_size = kTestVocab;
  o.temperature = temperature;
  return GenerateMarked(ring, account, n, seed, o);
}

std::vector<int32_t> Unwatermarked(int n, uint64_t seed) {
  sim::SyntheticLmOptions o;
  o.vocab_size = kTestVocab;
  sim::SyntheticLm lm(o, seed);
  std::vector<int32_t> tokens{1, 2, 3, 4};
  lm.Generate(tokens, n, nullptr, seed ^ 0x1234);
  return std::vector<int32_t>(tokens.begin() + 4, tokens.end());
}

class SchemeTest : public ::testing::TestWithParam<const char*> {};

TEST_P(SchemeTest, DetectsAndAttributesWatermarkedText) {
  const Keyring ring = TestKeyring(GetParam());
  auto det = Detector::Create(ring);
  ASSERT_TRUE(det.ok());
  int detected = 0, attributed = 0, wrong = 0;
  const int trials = 12;
  for (int t = 0; t < trials; ++t) {
    const uint64_t account = (0x9E3779B9ull * (t + 1)) % (1u << 20);
    const auto tokens = Generate(ring, account, 400, 100 + t);
    auto d = det->Detect(tokens, DetectOptions{});
    ASSERT_TRUE(d.ok());
    detected += d->watermarked;
    if (d->account) {
      (*d->account == account ? attributed : wrong) += 1;
    }
    EXPECT_GT(d->p_value, 0.0);
    EXPECT_EQ(d->key_version, 1);
  }
  std::printf("%s: 400 tokens: detected %d/%d, attributed %d, wrong %d\n", GetParam(), detected,
              trials, attributed, wrong);
  EXPECT_GE(detected, trials - 1) << GetParam();
  // KGW carries less evidence per token than Gumbel/SynthID at these entropies.
  EXPECT_GE(attributed, std::string(GetParam()).rfind("kgw", 0) == 0 ? 2 : trials / 2) << GetParam();
  EXPECT_EQ(wrong, 0) << GetParam();
}

TEST_P(SchemeTest, NullTextIsNotDetected) {
  const Keyring ring = TestKeyring(GetParam());
  auto det = Detector::Create(ring);
  ASSERT_TRUE(det.ok());
  for (int t = 0; t < 10; ++t) {
    auto d = det->Detect(Unwatermarked(300, 7 + t), DetectOptions{});
    ASSERT_TRUE(d.ok());
    EXPECT_FALSE(d->watermarked);
    EXPECT_FALSE(d->account.has_value());
    EXPECT_GT(d->p_value, 1e-4);
  }
}

TEST_P(SchemeTest, OtherKeyringDoesNotDetect) {
  const Keyring ring = TestKeyring(GetParam(), 1);
  const Keyring other = TestKeyring(GetParam(), 2);
  auto det = Detector::Create(other);
  ASSERT_TRUE(det.ok());
  auto d = det->Detect(Generate(ring, 5, 400, 3), DetectOptions{});
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->watermarked);
  EXPECT_GT(d->p_value, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Schemes, SchemeTest,
                         ::testing::Values("gumbel", "kgw-lefthash", "kgw-selfhash", "synthid"));

// Empirical false-positive rate on never-watermarked token sequences (Zipf ids: repeated
// n-grams as in human text) is within sampling error of alpha for the exact provider test, and
// the reported p-value (corrected) is conservative.
TEST(Calibration, NullFprWithinSamplingError) {
  for (const char* spec : {"gumbel", "kgw-lefthash", "synthid"}) {
    const Keyring ring = TestKeyring(spec);
    auto det = Detector::Create(ring);
    ASSERT_TRUE(det.ok());
    Rng rng(99);
    const int docs = 4000;
    int prov_1e2 = 0, prov_1e3 = 0, final_1e2 = 0, final_1e3 = 0;
    std::vector<int32_t> tokens;
    for (int i = 0; i < docs; ++i) {
      tokens.clear();
      sim::ZipfTokens(tokens, 250, 3000, 1.1, rng);
      auto d = det->Detect(tokens, DetectOptions{});
      ASSERT_TRUE(d.ok());
      prov_1e2 += d->provider_log10_p < -2;
      prov_1e3 += d->provider_log10_p < -3;
      final_1e2 += d->log10_p_value < -2;
      final_1e3 += d->log10_p_value < -3;
    }
    // Binomial(4000, 0.01): mean 40, sd 6.3; Binomial(4000, 0.001): mean 4, sd 2.
    // KGW's count statistic is discrete, so its realized size is at most alpha.
    const bool discrete = std::string(spec) != "gumbel";
    EXPECT_LE(prov_1e2, 40 + 4 * 6.3) << spec;
    EXPECT_GE(prov_1e2, discrete ? 10 : 40 - 4 * 6.3) << spec;
    EXPECT_LE(prov_1e3, 4 + 4 * 2 + 1) << spec;
    EXPECT_LE(final_1e2, 40 + 4 * 6.3) << spec;
    EXPECT_LE(final_1e3, 4 + 4 * 2 + 1) << spec;
    std::printf("%s: provider FPR@1e-2 %d/%d, @1e-3 %d/%d; reported p FPR@1e-2 %d, @1e-3 %d\n",
                spec, prov_1e2, docs, prov_1e3, docs, final_1e2, final_1e3);
  }
}

TEST(Detector, EachTupleScoredOnce) {
  const Keyring ring = TestKeyring("gumbel");
  auto det = Detector::Create(ring);
  const auto phrase = Generate(ring, 3, 40, 11);
  std::vector<int32_t> repeated;
  for (int r = 0; r < 30; ++r) repeated.insert(repeated.end(), phrase.begin(), phrase.end());
  auto once = det->Detect(phrase, DetectOptions{});
  auto many = det->Detect(repeated, DetectOptions{});
  ASSERT_TRUE(once.ok() && many.ok());
  // The repeats add only the few tuples whose context spans the seam between copies.
  EXPECT_LE(many->tokens_scored, once->tokens_scored + 4 + 1);
  // 30 copies would give ~30x the evidence if repeats were scored; de-duplicated they add at
  // most the seam tuples.
  EXPECT_GT(many->log10_p_value, once->log10_p_value - 4.0);
}

TEST(Detector, MaskAndEosSkipTokens) {
  const Keyring ring = TestKeyring("gumbel");
  auto det = Detector::Create(ring);
  auto tokens = Generate(ring, 3, 300, 12);
  auto full = det->Detect(tokens, DetectOptions{});
  ASSERT_TRUE(full.ok());
  // Masking everything scores nothing.
  std::vector<uint8_t> mask(tokens.size(), 1);
  DetectOptions o;
  o.skip_mask = mask;
  auto none = det->Detect(tokens, o);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->tokens_scored, 0);
  EXPECT_EQ(none->p_value, 1.0);
  // One masked token removes the h+1 tuples that touch it.
  std::fill(mask.begin(), mask.end(), 0);
  mask[100] = 1;
  auto one = det->Detect(tokens, o);
  EXPECT_GE(full->tokens_scored - one->tokens_scored, 4);
  EXPECT_LE(full->tokens_scored - one->tokens_scored, 5);
  // EOS: scoring stops at the first EOS.
  std::vector<int32_t> eos{tokens[150]};
  DetectOptions e;
  e.eos_ids = eos;
  auto cut = det->Detect(tokens, e);
  size_t first = 0;
  while (tokens[first] != eos[0]) ++first;
  EXPECT_LE(cut->tokens_scored, static_cast<int64_t>(first));
}

TEST(Detector, LocalizesMarkedSpanInMixedDocument) {
  const Keyring ring = TestKeyring("gumbel");
  auto det = Detector::Create(ring);
  auto marked = Generate(ring, 8, 250, 21);
  std::vector<int32_t> doc = Unwatermarked(1200, 5);
  const size_t at = 700;
  doc.insert(doc.begin() + at, marked.begin(), marked.end());
  auto d = det->Detect(doc, DetectOptions{});
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->watermarked);
  ASSERT_FALSE(d->spans.empty());
  for (const auto& s : d->spans) {
    EXPECT_GE(s.end, at);
    EXPECT_LE(s.begin, at + marked.size());
  }
}

TEST(Detector, NeverReturnsZeroForVeryStrongEvidence) {
  const Keyring ring = TestKeyring("gumbel:unkeyed=0");
  auto det = Detector::Create(ring);
  auto d = det->Detect(Generate(ring, 1, 4000, 4), DetectOptions{});
  ASSERT_TRUE(d.ok());
  EXPECT_LT(d->log10_p_value, -300.0);
  EXPECT_GT(d->p_value, 0.0);
}

TEST(Detector, RotatedKeyringStillDetectsOldVersion) {
  const std::string path = std::string(TM_BINARY_DIR) + "/detector_rotate_" + std::to_string(::getpid());
  ::unlink(path.c_str());
  auto ring = Keyring::Create(path, "gumbel");
  ASSERT_TRUE(ring.ok());
  const auto tokens = Generate(*ring, 77, 300, 31);
  ASSERT_TRUE(ring->Rotate(path, "kgw-selfhash").ok());
  auto loaded = Keyring::Load(path);
  ::unlink(path.c_str());
  ASSERT_TRUE(loaded.ok());
  auto det = Detector::Create(*loaded);
  auto d = det->Detect(tokens, DetectOptions{});
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->watermarked);
  EXPECT_EQ(d->key_version, 1);
  EXPECT_EQ(d->versions_tested, 2);
}

// A keyring holding a version with the original spec (no `lanes=`, 4/2/2) and a version with
// lanes=6/1/1: text of each version is detected and attributed under its own version.
TEST(Detector, LegacyLaneSplitAndNewDefaultBothDetect) {
  std::vector<uint8_t> secret(32, 0x33);
  auto legacy = Keyring::FromSecret(secret, "gumbel:h=4,unkeyed=0.1,payload=5,dedup=1,history=8192");
  ASSERT_TRUE(legacy.ok());
  EXPECT_EQ(legacy->Find(1)->scheme, "gumbel:h=4,unkeyed=0.1,payload=5,dedup=1,history=8192");
  const Keyring current = TestKeyring("gumbel:lanes=6/1/1", 0x44);
  EXPECT_NE(current.Find(1)->scheme.find("lanes=6/1/1"), std::string::npos);
  for (const Keyring* ring : {static_cast<const Keyring*>(&*legacy), &current}) {
    auto det = Detector::Create(*ring);
    ASSERT_TRUE(det.ok());
    const auto tokens = Generate(*ring, 4242, 600, 61);
    auto d = det->Detect(tokens, DetectOptions{});
    ASSERT_TRUE(d.ok());
    EXPECT_TRUE(d->watermarked) << ring->Find(1)->scheme;
    ASSERT_TRUE(d->account.has_value()) << ring->Find(1)->scheme;
    EXPECT_EQ(*d->account, 4242u);
    const double provider_share = static_cast<double>(d->provider_tuples) / static_cast<double>(d->tokens_scored);
    EXPECT_NEAR(provider_share, ring == &current ? 0.75 : 0.5, 0.08);
  }
}

// Corpus de-duplication: a tuple scored in an earlier document is not scored again.
TEST(Detector, CorpusTuplesSkipTuplesOfEarlierDocuments) {
  const Keyring ring = TestKeyring("gumbel");
  auto det = Detector::Create(ring);
  const auto doc = Generate(ring, 3, 200, 71);
  TupleSet corpus;
  DetectOptions o;
  o.corpus_tuples = &corpus;
  auto first = det->Detect(doc, o);
  ASSERT_TRUE(first.ok());
  EXPECT_GT(first->tokens_scored, 150);
  EXPECT_EQ(static_cast<int64_t>(corpus.size()), first->tokens_scored);
  auto again = det->Detect(doc, o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->tokens_scored, 0);
  EXPECT_FALSE(again->watermarked);
}

// Entropy filter: tokens whose entropy is below the threshold are not scored; the rest are
// scored exactly as without the filter.
TEST(Detector, EntropyFilterDropsLowEntropyTokensOnly) {
  const Keyring ring = TestKeyring("gumbel");
  auto det = Detector::Create(ring);
  const auto doc = Generate(ring, 3, 300, 81);
  auto plain = det->Detect(doc, DetectOptions{});
  ASSERT_TRUE(plain.ok());
  std::vector<float> entropy(doc.size(), 2.0f);
  DetectOptions o;
  o.token_entropy = entropy;
  o.min_entropy = 0.5;
  auto all_high = det->Detect(doc, o);
  ASSERT_TRUE(all_high.ok());
  EXPECT_EQ(all_high->tokens_scored, plain->tokens_scored);
  EXPECT_DOUBLE_EQ(all_high->log10_p_value, plain->log10_p_value);
  for (size_t i = 0; i < entropy.size(); i += 2) entropy[i] = 0.1f;  // every other token
  auto half = det->Detect(doc, o);
  ASSERT_TRUE(half.ok());
  EXPECT_NEAR(static_cast<double>(half->tokens_scored), plain->tokens_scored / 2.0, 10.0);
  std::fill(entropy.begin(), entropy.end(), 0.0f);
  auto none = det->Detect(doc, o);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->tokens_scored, 0);
}

// Token-probability filter: tokens the model finds likelier than the threshold are not scored;
// the rest are scored exactly as without the filter.
TEST(Detector, TokenProbFilterDropsLikelyTokensOnly) {
  const Keyring ring = TestKeyring("gumbel");
  auto det = Detector::Create(ring);
  const auto doc = Generate(ring, 3, 300, 82);
  auto plain = det->Detect(doc, DetectOptions{});
  ASSERT_TRUE(plain.ok());
  std::vector<float> prob(doc.size(), 0.2f);
  DetectOptions o;
  o.token_prob = prob;
  o.max_token_prob = 0.5;
  auto all_kept = det->Detect(doc, o);
  ASSERT_TRUE(all_kept.ok());
  EXPECT_EQ(all_kept->tokens_scored, plain->tokens_scored);
  EXPECT_DOUBLE_EQ(all_kept->log10_p_value, plain->log10_p_value);
  for (size_t i = 0; i < prob.size(); i += 2) prob[i] = 0.9f;  // every other token
  auto half = det->Detect(doc, o);
  ASSERT_TRUE(half.ok());
  EXPECT_NEAR(static_cast<double>(half->tokens_scored), plain->tokens_scored / 2.0, 10.0);
  EXPECT_GT(half->p_value, 0.0);
  // The threshold is inclusive: p == max_token_prob is scored.
  std::fill(prob.begin(), prob.end(), 0.5f);
  auto at_threshold = det->Detect(doc, o);
  ASSERT_TRUE(at_threshold.ok());
  EXPECT_EQ(at_threshold->tokens_scored, plain->tokens_scored);
  std::fill(prob.begin(), prob.end(), 1.0f);
  auto none = det->Detect(doc, o);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->tokens_scored, 0);
  EXPECT_EQ(none->p_value, 1.0);
  EXPECT_FALSE(none->watermarked);
}

// The filter raises power where it should: Gumbel-max text from the real hook over a mix of
// near-deterministic steps (top token 0.95) and flat steps (8 tokens of 0.125), scored with and
// without dropping tokens whose probability exceeds 0.5 (the probabilities the hook saw).
TEST(Detector, TokenProbFilterRaisesPowerOnLowEntropyText) {
  const Keyring ring = TestKeyring("gumbel");
  auto det = Detector::Create(ring);
  ASSERT_TRUE(det.ok());
  constexpr int kDocs = 16, kTokens = 200, kCands = 8;
  double log10_plain = 0, log10_filtered = 0;
  int detected_plain = 0, detected_filtered = 0;
  for (int doc = 0; doc < kDocs; ++doc) {
    auto hook = MakeWatermarkHook(ring, 77);
    ASSERT_TRUE(hook.ok());
    Rng rng(500 + doc);
    std::vector<int32_t> context{1, 2, 3, 4};
    std::vector<float> token_prob;
    std::vector<int32_t> ids(kCands);
    std::vector<float> probs(kCands), logits(kCands);
    for (int t = 0; t < kTokens; ++t) {
      for (int c = 0; c < kCands; ++c) ids[c] = static_cast<int32_t>(5 + (rng.Next() % (kTestVocab - 5)));
      const bool peaked = rng.Uniform() < 0.7;
      for (int c = 0; c < kCands; ++c) {
        probs[c] = peaked ? (c == 0 ? 0.95f : 0.05f / (kCands - 1)) : 1.0f / kCands;
        logits[c] = std::log(probs[c]);
      }
      const TokenCandidates cand{ids, logits, probs};
      int32_t tok = (*hook)->Choose(cand, context, rng);
      if (tok < 0) {  // unkeyed step: plain draw
        double x = rng.Uniform();
        tok = ids[kCands - 1];
        for (int c = 0; c < kCands; ++c) {
          if ((x -= probs[c]) < 0) {
            tok = ids[c];
            break;
          }
        }
      }
      (*hook)->Accept(tok);
      context.push_back(tok);
      float p = 0;
      for (int c = 0; c < kCands; ++c) p += ids[c] == tok ? probs[c] : 0.0f;
      token_prob.push_back(p);
    }
    const std::span<const int32_t> text(context.data() + 4, kTokens);
    auto plain = det->Detect(text, DetectOptions{});
    DetectOptions o;
    o.token_prob = token_prob;
    o.max_token_prob = kDefaultMaxTokenProb;
    auto filtered = det->Detect(text, o);
    ASSERT_TRUE(plain.ok() && filtered.ok());
    EXPECT_LT(filtered->tokens_scored, plain->tokens_scored * 6 / 10);
    log10_plain += plain->provider_log10_p;
    log10_filtered += filtered->provider_log10_p;
    detected_plain += plain->watermarked;
    detected_filtered += filtered->watermarked;
  }
  std::printf("token-prob filter: mean provider log10 p %.2f -> %.2f, detected %d -> %d of %d\n",
              log10_plain / kDocs, log10_filtered / kDocs, detected_plain, detected_filtered, kDocs);
  EXPECT_LT(log10_filtered, 1.3 * log10_plain);  // both negative: at least 30% more evidence
  EXPECT_GE(detected_filtered, detected_plain);
}

// A selection that depends on the text but not on the key keeps the test exact: never-watermarked
// Zipf text, filtered by each token's frequency so far in the document (a stand-in for a model's
// probability: frequent tokens dropped), has a provider FPR within sampling error of alpha.
TEST(Calibration, TokenProbFilterKeepsNullFpr) {
  const Keyring ring = TestKeyring("gumbel");
  auto det = Detector::Create(ring);
  ASSERT_TRUE(det.ok());
  Rng rng(7);
  const int docs = 4000;
  int prov_1e2 = 0, prov_1e3 = 0, final_1e2 = 0;
  int64_t scored = 0, all = 0;
  std::vector<int32_t> tokens;
  std::vector<float> prob;
  std::vector<int> count(3000);
  for (int i = 0; i < docs; ++i) {
    tokens.clear();
    sim::ZipfTokens(tokens, 250, 3000, 1.1, rng);
    prob.assign(tokens.size(), 1.0f);
    std::fill(count.begin(), count.end(), 0);
    for (size_t t = 0; t < tokens.size(); ++t) {
      if (t > 0) prob[t] = static_cast<float>(count[static_cast<size_t>(tokens[t])]) / static_cast<float>(t);
      ++count[static_cast<size_t>(tokens[t])];
    }
    DetectOptions o;
    o.token_prob = prob;
    o.max_token_prob = 0.02;
    auto d = det->Detect(tokens, o);
    ASSERT_TRUE(d.ok());
    auto unfiltered = det->Detect(tokens, DetectOptions{});
    ASSERT_TRUE(unfiltered.ok());
    scored += d->tokens_scored;
    all += unfiltered->tokens_scored;
    prov_1e2 += d->provider_log10_p < -2;
    prov_1e3 += d->provider_log10_p < -3;
    final_1e2 += d->log10_p_value < -2;
    EXPECT_GT(d->p_value, 0.0);
  }
  // The filter must bite for the test to mean anything.
  EXPECT_LT(scored, all * 9 / 10);
  EXPECT_GT(scored, all / 4);
  // Binomial(4000, 0.01): mean 40, sd 6.3; Binomial(4000, 0.001): mean 4, sd 2.
  EXPECT_LE(prov_1e2, 40 + 4 * 6.3);
  EXPECT_GE(prov_1e2, 40 - 4 * 6.3);
  EXPECT_LE(prov_1e3, 4 + 4 * 2 + 1);
  EXPECT_LE(final_1e2, 40 + 4 * 6.3);
  std::printf("token-prob filter: %lld of %lld tuples scored; provider FPR@1e-2 %d/%d, @1e-3 %d/%d\n",
              static_cast<long long>(scored), static_cast<long long>(all), prov_1e2, docs, prov_1e3, docs);
}

TEST(CorpusDetector, PoolsUniqueTuplesAcrossDocuments) {
  const Keyring ring = TestKeyring("gumbel");
  auto corpus = CorpusDetector::Create(ring, 0, std::nullopt);
  ASSERT_TRUE(corpus.ok());
  const auto doc = Generate(ring, 3, 60, 41);
  corpus->AddDocument(doc);
  const int64_t once = corpus->tuples();
  corpus->AddDocument(doc);  // a duplicate document adds nothing
  EXPECT_EQ(corpus->tuples(), once);
  for (int i = 0; i < 20; ++i) corpus->AddDocument(Generate(ring, 3, 60, 50 + i));
  EXPECT_LT(corpus->LogPValue(), std::log(1e-6));
  auto null_corpus = CorpusDetector::Create(ring, 0, std::nullopt);
  for (int i = 0; i < 20; ++i) null_corpus->AddDocument(Unwatermarked(60, 80 + i));
  EXPECT_GT(null_corpus->LogPValue(), std::log(1e-4));
}

TEST(Hook, SkipsRepeatedContextsAndKeepsDiversity) {
  const Keyring ring = TestKeyring("gumbel");
  // Same prompt, same key, different request seeds: outputs differ (unkeyed steps).
  EXPECT_NE(Generate(ring, 3, 60, 5), Generate(ring, 3, 60, 5 ^ 0xffff));
  const Keyring det_ring = TestKeyring("gumbel:unkeyed=0");
  // Without the unkeyed share, the keyed choice is a function of the context and distribution.
  sim::SyntheticLmOptions o;
  o.vocab_size = kTestVocab;
  sim::SyntheticLm a(o, 9), b(o, 9);
  std::vector<int32_t> ta{1, 2, 3, 4}, tb{1, 2, 3, 4};
  auto ha = MakeWatermarkHook(det_ring, 1), hb = MakeWatermarkHook(det_ring, 1);
  a.Generate(ta, 50, ha->get(), 1);
  b.Generate(tb, 50, hb->get(), 2);
  EXPECT_EQ(ta, tb);
}

}  // namespace
}  // namespace tracemark::watermark

namespace tracemark::watermark {
namespace {

TEST(Placeholders, FindsCommonMaskingStyles) {
  const std::string text = "Mail [EMAIL] or call <PHONE_NUMBER>, ask {{NAME}}; [redacted] <b> [A]";
  const auto r = FindPlaceholders(text);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(text.substr(r[0].first, r[0].second - r[0].first), "[EMAIL]");
  EXPECT_EQ(text.substr(r[1].first, r[1].second - r[1].first), "<PHONE_NUMBER>");
  EXPECT_EQ(text.substr(r[2].first, r[2].second - r[2].first), "{{NAME}}");
  EXPECT_EQ(text.substr(r[3].first, r[3].second - r[3].first), "[A]");
}

TEST(Placeholders, MasksOverlappingTokens) {
  // Tokens: "ab" [0,2) "[EM" [2,5) "AIL]" [5,9) " x" [9,11)
  const std::vector<size_t> offsets{0, 2, 5, 9, 11};
  const std::vector<std::pair<size_t, size_t>> ranges{{2, 9}};
  EXPECT_EQ(MaskTokens(offsets, ranges), (std::vector<uint8_t>{0, 1, 1, 0}));
  EXPECT_EQ(MaskTokens(offsets, {}), (std::vector<uint8_t>{0, 0, 0, 0}));
}

}  // namespace
}  // namespace tracemark::watermark

namespace tracemark::watermark {
namespace {

TEST(Hook, RepeatedContextIsNotWatermarkedTwice) {
  const Keyring ring = TestKeyring("gumbel:unkeyed=0");
  auto made = MakeWatermarkHook(ring, 9);
  ASSERT_TRUE(made.ok());
  auto* hook = static_cast<WatermarkHook*>(made->get());
  std::vector<int32_t> ids{10, 20, 30}, context{1, 2, 3, 4};
  std::vector<float> logits{0.f, 0.f, 0.f}, probs{0.5f, 0.3f, 0.2f};
  TokenCandidates c{ids, logits, probs};
  Rng rng(1);
  const int32_t first = hook->Choose(c, context, rng);
  EXPECT_GE(first, 10);
  hook->Accept(first);
  EXPECT_EQ(hook->Choose(c, context, rng), -1);  // same last-4 context: plain sampling
  hook->Accept(20);
  EXPECT_EQ(hook->skipped_repeats(), 1);
  EXPECT_EQ(hook->watermarked_steps(), 1);
}

TEST(Hook, KgwBiasesAboutGammaOfTheVocabulary) {
  const Keyring ring = TestKeyring("kgw-selfhash");
  auto hook = MakeWatermarkHook(ring, 3);
  std::vector<float> logits(kTestVocab, 0.0f);
  std::vector<int32_t> context{5, 6, 7, 8};
  (*hook)->ProcessLogits(logits, context);
  int green = 0;
  for (float l : logits) {
    ASSERT_TRUE(l == 0.0f || l == 2.0f);
    green += l == 2.0f;
  }
  EXPECT_NEAR(green / static_cast<double>(kTestVocab), 0.25, 0.02);
}

TEST(Detector, WideContextUsesScalarPathConsistently) {
  const Keyring ring = TestKeyring("gumbel:h=6");
  auto det = Detector::Create(ring);
  auto d = det->Detect(Generate(ring, 4, 400, 61), DetectOptions{});
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->watermarked);
  EXPECT_EQ(d->key_version, 1);
}

}  // namespace
}  // namespace tracemark::watermark

namespace tracemark::watermark {
namespace {

TEST(Detector, AttributesInsideMarkedSpansOfMixedDocuments) {
  const Keyring ring = TestKeyring("gumbel");
  auto det = Detector::Create(ring);
  int attributed = 0, wrong = 0, in_spans = 0;
  for (int t = 0; t < 5; ++t) {
    const uint64_t account = 4242 + t;
    auto marked = Generate(ring, account, 400, 300 + t);
    std::vector<int32_t> doc = Unwatermarked(1800, 40 + t);
    doc.insert(doc.begin() + 900, marked.begin(), marked.end());
    auto d = det->Detect(doc, DetectOptions{});
    ASSERT_TRUE(d.ok());
    EXPECT_TRUE(d->watermarked);
    in_spans += d->attribution_in_spans;
    if (d->account) (*d->account == account ? attributed : wrong) += 1;
  }
  std::printf("mixed documents: attributed %d/5 (in spans %d), wrong %d\n", attributed, in_spans, wrong);
  EXPECT_GE(in_spans, 3);
  EXPECT_GE(attributed, 3);
  EXPECT_EQ(wrong, 0);
}

}  // namespace
}  // namespace tracemark::watermark
