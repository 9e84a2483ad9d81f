// Targeted detection against named suspect accounts (DetectOptions::suspects): input errors,
// calibration of the targeted presence test, no wrong attribution among suspects, power.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "tracemark/model/sampler.h"
#include "tracemark/watermark/detector.h"
#include "tracemark/watermark/hook.h"
#include "watermark/synthetic.h"
#include "watermark/test_helpers.h"

namespace tracemark::watermark {
namespace {

// Small vocabulary and 256-token steps: the synthetic LM's cost is a few passes over the
// vocabulary per step, and this suite generates 2,000+ texts; the tests do not depend on it.
constexpr int32_t kTestVocab = 2048;
constexpr uint64_t kAccountSpace = uint64_t{1} << 20;  // default payload=5 digits

Keyring TestKeyring(std::string_view spec, uint8_t fill = 0x6b) { return FixedSecretKeyring(spec, fill); }

// A watermarked continuation of a short prompt for `account` (generated tokens only), 256
// tokens with non-zero probability per step.
std::vector<int32_t> Generate(const Keyring& ring, uint64_t account, int n, uint64_t seed,
                              float temperature) {
  sim::SyntheticLmOptions o;
  o.vocab_size = kTestVocab;
  o.support = 256;
  o.temperature = temperature;
  return GenerateMarked(ring, account, n, seed, o);
}

std::vector<uint64_t> RandomAccounts(Rng& rng, size_t n, uint64_t exclude) {
  std::vector<uint64_t> out;
  while (out.size() < n) {
    const uint64_t id = rng.Next() % kAccountSpace;
    if (id != exclude && std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  }
  return out;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

TEST(Suspects, ParseListsAndNameBadEntries) {
  auto ok = ParseSuspects(" 101, 202 ,303", false);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(*ok, (std::vector<uint64_t>{101, 202, 303}));
  auto lines = ParseSuspects("101\n\n# suspended 2026-11-20\n202\r\n", true);
  ASSERT_TRUE(lines.ok()) << lines.status().message();
  EXPECT_EQ(*lines, (std::vector<uint64_t>{101, 202}));

  auto empty_entry = ParseSuspects("101,,202", false);
  ASSERT_FALSE(empty_entry.ok());
  EXPECT_NE(empty_entry.status().message().find("entry 2 is empty"), std::string::npos)
      << empty_entry.status().message();
  EXPECT_FALSE(ParseSuspects("101,", false).ok());
  EXPECT_FALSE(ParseSuspects("", false).ok());
  EXPECT_FALSE(ParseSuspects("\n# nothing\n", true).ok());
  auto word = ParseSuspects("101,bob", false);
  ASSERT_FALSE(word.ok());
  EXPECT_NE(word.status().message().find("'bob' is not an account id"), std::string::npos);
  EXPECT_FALSE(ParseSuspects("-5", false).ok());
  EXPECT_FALSE(ParseSuspects("99999999999999999999999", false).ok());
  auto dup = ParseSuspects("7,8,7", false);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("account 7 is listed twice"), std::string::npos);

  std::string many;
  for (size_t i = 0; i <= kMaxSuspects; ++i) many += std::to_string(i) + "\n";
  auto too_many = ParseSuspects(many, true);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("more than 4096 suspects"), std::string::npos);
}

TEST(Suspects, DetectorRejectsBadListsClearly) {
  // Two versions: the newer one has a 3-digit payload (4,096 ids).
  const std::string path =
      std::string(TM_BINARY_DIR) + "/suspects_rotate_" + std::to_string(::getpid());
  ::unlink(path.c_str());
  auto created = Keyring::Create(path, "gumbel");
  ASSERT_TRUE(created.ok()) << created.status().message();
  Keyring ring = std::move(created).value();
  const Status rotated = ring.Rotate(path, "gumbel:payload=3");
  ::unlink(path.c_str());
  ASSERT_TRUE(rotated.ok()) << rotated.message();
  auto det = Detector::Create(ring);
  ASSERT_TRUE(det.ok());
  const std::vector<int32_t> tokens = Generate(ring, 77, 60, 5, 1.0f);
  DetectOptions opt;

  std::vector<uint64_t> too_many(kMaxSuspects + 1);
  for (size_t i = 0; i < too_many.size(); ++i) too_many[i] = i;
  opt.suspects = too_many;
  auto r = det->Detect(tokens, opt);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("at most 4096"), std::string::npos) << r.status().message();

  const std::vector<uint64_t> dup{5, 9, 5};
  opt.suspects = dup;
  r = det->Detect(tokens, opt);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("listed twice"), std::string::npos) << r.status().message();

  const std::vector<uint64_t> outside{12, 5000};  // fits 5 digits, not 3
  opt.suspects = outside;
  r = det->Detect(tokens, opt);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(
      r.status().message().find("5000 is outside the payload space [0, 4096) of key version 2"),
      std::string::npos)
      << r.status().message();
  opt.version = 1;  // still refused: PrepareSuspects checks every version of the keyring
  EXPECT_FALSE(det->Detect(tokens, opt).ok());

  // A valid list after the bad ones works, and the detector still runs without suspects.
  const std::vector<uint64_t> good{12, 77};
  opt.suspects = good;
  r = det->Detect(tokens, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->suspects_tested, 2);
  opt.suspects = {};
  r = det->Detect(tokens, opt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->suspects_tested, 0);
  EXPECT_EQ(r->targeted_log10_p, 0.0);
}

// synthid-hf has no account lanes: suspects are ignored with a note, not an error.
TEST(Suspects, SynthIdHfIgnoresSuspectsWithANote) {
  const Keyring ring = TestKeyring("synthid-hf");
  auto det = Detector::Create(ring);
  ASSERT_TRUE(det.ok()) << det.status().message();
  Rng rng(3);
  std::vector<int32_t> tokens;
  sim::ZipfTokens(tokens, 200, 3000, 1.1, rng);
  const std::vector<uint64_t> suspects{1, 2, uint64_t{1} << 40};  // no payload space to check
  DetectOptions opt;
  opt.suspects = suspects;
  auto d = det->Detect(tokens, opt);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->suspects_tested, 0);
  EXPECT_FALSE(d->account.has_value());
  EXPECT_NE(d->account_note.find("suspects ignored"), std::string::npos) << d->account_note;
}

// The cached suspect keys give the same result as a fresh detector, and changing the list
// re-derives them (a stale cache would score the new suspects under the old keys).
TEST(Suspects, CachedKeysMatchFreshDetector) {
  const Keyring ring = TestKeyring("gumbel");
  auto det = Detector::Create(ring);
  ASSERT_TRUE(det.ok());
  const std::vector<int32_t> tokens = Generate(ring, 31337, 400, 9, 1.0f);
  const std::vector<uint64_t> a{1, 2, 31337}, b{3, 4, 31336};
  DetectOptions opt;
  opt.suspects = a;
  auto first = det->Detect(tokens, opt);
  opt.suspects = b;
  auto other = det->Detect(tokens, opt);
  opt.suspects = a;
  auto again = det->Detect(tokens, opt);
  auto fresh_det = Detector::Create(ring);
  ASSERT_TRUE(fresh_det.ok());
  opt.suspects = b;
  auto fresh_b = fresh_det->Detect(tokens, opt);
  ASSERT_TRUE(first.ok() && other.ok() && again.ok() && fresh_b.ok());
  EXPECT_EQ(first->targeted_log10_p, again->targeted_log10_p);
  EXPECT_EQ(first->account_log10_p_value, again->account_log10_p_value);
  EXPECT_EQ(other->targeted_log10_p, fresh_b->targeted_log10_p);
  EXPECT_EQ(other->account_log10_p_value, fresh_b->account_log10_p_value);
  ASSERT_TRUE(first->account.has_value());
  EXPECT_EQ(*first->account, 31337u);
  EXPECT_FALSE(other->account.has_value());
}

// Never-watermarked sequences: the targeted presence test (Bonferroni over the suspects) has
// false-positive rate alpha within sampling error for one suspect and at most alpha for 16, and
// no suspect is ever named.
TEST(Calibration, TargetedPresenceNullFpr) {
  const Keyring ring = TestKeyring("gumbel");
  auto det = Detector::Create(ring);
  ASSERT_TRUE(det.ok());
  const int docs = 20000;
  for (size_t n_suspects : {size_t{1}, size_t{16}}) {
    Rng rng(4242 + n_suspects);
    const std::vector<uint64_t> suspects = RandomAccounts(rng, n_suspects, kAccountSpace);
    DetectOptions opt;
    opt.suspects = suspects;
    int t_1e2 = 0, t_1e3 = 0, final_1e2 = 0, final_1e3 = 0, acc_1e2 = 0, named = 0;
    std::vector<int32_t> tokens;
    for (int i = 0; i < docs; ++i) {
      tokens.clear();
      sim::ZipfTokens(tokens, 200, 3000, 1.1, rng);
      auto d = det->Detect(tokens, opt);
      ASSERT_TRUE(d.ok());
      t_1e2 += d->targeted_log10_p < -2;
      t_1e3 += d->targeted_log10_p < -3;
      final_1e2 += d->log10_p_value < -2;
      final_1e3 += d->log10_p_value < -3;
      acc_1e2 += d->account_log10_p_value < -2;
      named += d->account.has_value();
    }
    std::printf(
        "|S|=%zu: targeted FPR@1e-2 %d/%d, @1e-3 %d; reported p @1e-2 %d, @1e-3 %d; "
        "account p @1e-2 %d; named %d\n",
        n_suspects, t_1e2, docs, t_1e3, final_1e2, final_1e3, acc_1e2, named);
    // Binomial(20000, 1e-2): mean 200, sd 14.1; Binomial(20000, 1e-3): mean 20, sd 4.5.
    EXPECT_LE(t_1e2, 200 + 4 * 14.1);
    EXPECT_LE(t_1e3, 20 + 4 * 4.5);
    EXPECT_LE(final_1e2, 200 + 4 * 14.1);
    EXPECT_LE(final_1e3, 20 + 4 * 4.5);
    EXPECT_LE(acc_1e2, 200 + 4 * 14.1);
    if (n_suspects == 1) {  // one exact test: the rate is alpha, not only at most alpha
      EXPECT_GE(t_1e2, 200 - 4 * 14.1);
      EXPECT_GE(t_1e3, 20 - 4 * 4.5);
      EXPECT_GE(acc_1e2, 200 - 4 * 14.1);
    }
    EXPECT_EQ(named, 0);
  }
}

// Text of account c, suspects that exclude c (five share 4 of its 5 payload digits): account_p's
// false-positive rate is alpha within sampling error at 1e-2 and 1e-3 (so about 2 wrong names in
// 2,000 trials at 1e-3 is the expected count, not a failure), and nobody is named at 1e-4 or at
// the default threshold 1e-6.
TEST(Suspects, NoWrongAttributionWhenTheWriterIsNotASuspect) {
  const Keyring ring = TestKeyring("gumbel");
  auto det = Detector::Create(ring);
  ASSERT_TRUE(det.ok());
  Rng rng(77);
  const int trials = 2000;
  int named = 0, acc_1e2 = 0, acc_1e3 = 0, acc_1e4 = 0, present = 0, best_is_neighbour = 0;
  for (int t = 0; t < trials; ++t) {
    const uint64_t c = rng.Next() % kAccountSpace;
    std::vector<uint64_t> suspects;
    for (int j = 0; j < 5; ++j) {  // c with digit j changed
      const uint64_t d = (static_cast<uint64_t>(PayloadDigit(c, j)) + 1 + rng.Next() % 15) % 16;
      suspects.push_back((c & ~(uint64_t{15} << (4 * j))) | (d << (4 * j)));
    }
    for (uint64_t id : RandomAccounts(rng, 3, c)) {
      if (std::find(suspects.begin(), suspects.end(), id) == suspects.end()) suspects.push_back(id);
    }
    const std::vector<int32_t> tokens = Generate(ring, c, 200, 1000 + t, 1.0f);
    DetectOptions opt;
    opt.suspects = suspects;
    auto d = det->Detect(tokens, opt);  // default thresholds, 1e-6
    ASSERT_TRUE(d.ok());
    named += d->account.has_value();
    acc_1e2 += d->account_log10_p_value < -2;
    acc_1e3 += d->account_log10_p_value < -3;
    acc_1e4 += d->account_log10_p_value < -4;
    present += d->watermarked;
    // The best-fitting suspect is usually a neighbour: presence, not attribution.
    best_is_neighbour += d->targeted_suspect.has_value() &&
                         std::find(suspects.begin(), suspects.begin() + 5, *d->targeted_suspect) !=
                             suspects.begin() + 5;
  }
  std::printf(
      "writer not a suspect (%d trials, 8 suspects, 5 share 4 of 5 digits): named at 1e-6 %d, "
      "account p < 1e-2: %d, < 1e-3: %d, < 1e-4: %d; watermarked (is it ours) %d; best-fitting "
      "suspect a 4-digit neighbour %d\n",
      trials, named, acc_1e2, acc_1e3, acc_1e4, present, best_is_neighbour);
  EXPECT_EQ(named, 0);
  EXPECT_EQ(acc_1e4, 0);
  // Binomial(2000, ~1e-2): mean 20, sd 4.45; Binomial(2000, 1e-3): mean 2, sd 1.4.
  EXPECT_LE(acc_1e2, 20 + 4 * 4.45);
  EXPECT_GE(acc_1e2, 20 - 4 * 4.45);
  EXPECT_LE(acc_1e3, 2 + 4 * 1.42);
  EXPECT_GE(present, trials * 99 / 100);  // the text is ours: presence is still detected
}

// Watermarked text with its writer among 16 suspects: the targeted test is stronger than the
// provider lane alone, names the writer as the best-fitting suspect, and attributes it.
TEST(Suspects, TargetedTestIsStrongerThanProviderLaneAndNamesTheWriter) {
  const Keyring ring = TestKeyring("gumbel");
  auto det = Detector::Create(ring);
  ASSERT_TRUE(det.ok());
  Rng rng(2026);
  const int texts = 200;
  std::vector<double> provider, targeted, final_untargeted, final_targeted;
  int best_is_writer = 0, attributed = 0, wrong = 0, attributed_untargeted = 0;
  for (int t = 0; t < texts; ++t) {
    const uint64_t c = rng.Next() % kAccountSpace;
    std::vector<uint64_t> suspects = RandomAccounts(rng, 15, c);
    suspects.insert(suspects.begin() + static_cast<long>(rng.Next() % 16), c);
    const std::vector<int32_t> tokens = Generate(ring, c, 150, 5000 + t, 0.7f);
    DetectOptions plain;
    auto u = det->Detect(tokens, plain);
    DetectOptions opt;
    opt.suspects = suspects;
    auto d = det->Detect(tokens, opt);
    ASSERT_TRUE(u.ok() && d.ok());
    EXPECT_EQ(d->provider_log10_p, u->provider_log10_p);  // same tuples, same provider lane
    provider.push_back(d->provider_log10_p);
    targeted.push_back(d->targeted_log10_p);
    final_untargeted.push_back(u->log10_p_value);
    final_targeted.push_back(d->log10_p_value);
    best_is_writer += d->targeted_suspect == c;
    if (d->account) (*d->account == c ? attributed : wrong) += 1;
    attributed_untargeted += u->account == c;
  }
  std::printf(
      "writer among 16 suspects (%d texts, 150 tokens, T=0.7): median log10 p provider %.2f, "
      "targeted %.2f (final: untargeted %.2f, targeted %.2f); best suspect is the writer %d; "
      "attributed %d (untargeted %d), wrong %d\n",
      texts, Median(provider), Median(targeted), Median(final_untargeted), Median(final_targeted),
      best_is_writer, attributed, attributed_untargeted, wrong);
  EXPECT_LT(Median(targeted), Median(provider) - 1.0);
  EXPECT_LT(Median(final_targeted), Median(final_untargeted));
  EXPECT_GE(best_is_writer, texts * 95 / 100);
  EXPECT_GT(attributed, attributed_untargeted);
  EXPECT_EQ(wrong, 0);
}

// Mixed documents: attribution among suspects uses only the marked spans (chosen from
// provider-lane words), while the targeted presence test keeps every tuple.
TEST(Suspects, AttributesInsideMarkedSpansOfMixedDocuments) {
  const Keyring ring = TestKeyring("gumbel");
  auto det = Detector::Create(ring);
  ASSERT_TRUE(det.ok());
  Rng rng(5);
  int attributed = 0, wrong = 0, in_spans = 0;
  for (int t = 0; t < 5; ++t) {
    const uint64_t account = 4242 + t;
    std::vector<uint64_t> suspects = RandomAccounts(rng, 7, account);
    suspects.push_back(account);
    const std::vector<int32_t> marked = Generate(ring, account, 400, 300 + t, 1.0f);
    sim::SyntheticLmOptions o;  // unwatermarked text of the same synthetic LM around it
    o.vocab_size = kTestVocab;
    sim::SyntheticLm lm(o, 40 + t);
    std::vector<int32_t> doc{1, 2, 3, 4};
    lm.Generate(doc, 1800, nullptr, (40 + t) ^ 0x1234);
    doc.insert(doc.begin() + 900, marked.begin(), marked.end());
    DetectOptions opt;
    opt.suspects = suspects;
    auto d = det->Detect(doc, opt);
    ASSERT_TRUE(d.ok());
    EXPECT_TRUE(d->watermarked);
    in_spans += d->attribution_in_spans;
    if (d->account) (*d->account == account ? attributed : wrong) += 1;
  }
  std::printf("mixed documents with suspects: attributed %d/5 (in spans %d), wrong %d\n",
              attributed, in_spans, wrong);
  EXPECT_GE(in_spans, 3);
  EXPECT_GE(attributed, 4);
  EXPECT_EQ(wrong, 0);
}

}  // namespace
}  // namespace tracemark::watermark
