#include "tracemark/probe/probe.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tracemark/base/file.h"
#include "tracemark/model/sampler.h"
#include "tracemark/probe/openai_client.h"
#include "tracemark/watermark/detector.h"
#include "tracemark/watermark/hook.h"
#include "tracemark/watermark/prf.h"

namespace tracemark::probe {
namespace {

using watermark::Keyring;

const std::string kModel = std::string(TM_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
// Watermarked outputs of the default model under tests/data/cli/test.keyring, account 4242
// (tools/gen_probe_texts.sh).
const std::string kMarked = std::string(TM_SOURCE_DIR) + "/tests/data/probe/marked.jsonl";
constexpr uint64_t kMarkedAccount = 4242;

Keyring TestKeyring() {
  // Parse, not Load: a git checkout does not keep the file's 0600 mode.
  auto text = ReadFile(std::string(TM_SOURCE_DIR) + "/tests/data/cli/test.keyring", 1 << 16);
  EXPECT_TRUE(text.ok());
  auto ring = Keyring::Parse(*text);
  EXPECT_TRUE(ring.ok()) << ring.status().message();
  return std::move(ring).value();
}

Keyring RandomKeyring(Rng& rng, std::string_view spec = "gumbel") {
  std::vector<uint8_t> secret(watermark::kMasterSecretBytes);
  for (auto& b : secret) b = static_cast<uint8_t>(rng.Next());
  return std::move(Keyring::FromSecret(secret, spec)).value();
}

// Random keys of the calibration loops; TM_PROBE_CALIBRATION_KEYS raises it for measurements.
int CalibrationKeys() {
  const char* env = std::getenv("TM_PROBE_CALIBRATION_KEYS");
  return env != nullptr ? std::max(1, std::atoi(env)) : 300;
}

struct Fpr {
  int keys = 0, below_1e2 = 0, below_1e3 = 0;
};

// Re-keys the same suspect outputs: for a random key they are unmarked, so each probe p-value is
// a null draw (valid only if de-duplication keeps the tuples independent).
template <typename ScoreFn>
Fpr Calibrate(ScoreFn score, uint64_t seed) {
  Rng rng(seed);
  Fpr f;
  f.keys = CalibrationKeys();
  for (int k = 0; k < f.keys; ++k) {
    const double l = score(RandomKeyring(rng));
    f.below_1e2 += l < -2.0;
    f.below_1e3 += l < -3.0;
  }
  return f;
}

std::vector<std::string> MarkedTexts() {
  std::vector<std::string> out;
  std::ifstream in(kMarked);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    out.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
  }
  return out;
}

// ---- The statistical core on synthetic token streams (no model) ----

TEST(RadioactivityScorer, DedupAndExclusionCountTuples) {
  const Keyring ring = RandomKeyring(*std::make_unique<Rng>(7));
  ProbeOptions opt;
  auto sc = RadioactivityScorer::Create(ring, opt, "closed");
  ASSERT_TRUE(sc.ok());
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8};
  sc->ExcludeWindowsOf(prompt);
  // A completion that repeats the prompt twice: every tuple's window is a prompt window, except
  // those spanning the junction of the two copies.
  std::vector<int32_t> out = prompt;
  out.insert(out.end(), prompt.begin(), prompt.end());
  for (size_t i = 0; i < out.size(); ++i) sc->Score(out, i, out[i]);
  sc->EndText(static_cast<int64_t>(out.size()));
  const ProbeResult r = sc->Finish();
  // Windows (h=4) end at 4..15: 12 tuples; those ending at 4..8 and 12..15 lie inside a copy of the
  // prompt (9 excluded); windows ending at 9, 10, 11 span the junction and are scored or deduped.
  EXPECT_EQ(r.tuples_excluded, 9);
  EXPECT_EQ(r.tuples_excluded + r.tuples_duplicate + r.tuples_scored, 12 - 3 + r.tuples_scored);
  EXPECT_EQ(r.tokens_examined, 16);
  EXPECT_EQ(r.curve.size(), 1u);
  EXPECT_EQ(r.verdict, Verdict::kInconclusive);  // far fewer than kMinTuplesForClean tuples
}

// Regression (session 3): a prompt cut from the middle of a text shows the suspect tokens that the
// watermark chose with windows reaching back before the prompt; those windows must be excluded
// too, or a suspect that emits the text's preceding tokens and then the prompt scores the
// watermark's own winners. ExcludeWindowsOf(prompt) alone misses the h windows that straddle the
// prompt's start.
TEST(RadioactivityScorer, PromptWindowsReachBeforeThePrompt) {
  const Keyring ring = RandomKeyring(*std::make_unique<Rng>(9));
  const std::vector<int32_t> text = {11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24};
  constexpr size_t kBegin = 6;  // the prompt is text[6..14); text[2..6) chose its first tokens
  const std::vector<int32_t> prompt(text.begin() + kBegin, text.end());
  const std::vector<int32_t> context(text.begin() + 2, text.end());
  auto count_excluded = [&](bool with_context) {
    auto sc = RadioactivityScorer::Create(ring, ProbeOptions{}, "closed");
    EXPECT_TRUE(sc.ok());
    sc->ExcludeWindowsOf(prompt);
    if (with_context) sc->ExcludePromptWindows(context, kBegin - 2);
    // The suspect's output: the text from its start. Windows (h = 4) end at 4..13.
    for (size_t i = 0; i < text.size(); ++i) sc->Score(text, i, text[i]);
    return sc->Finish().tuples_excluded;
  };
  // Prompt windows alone: those ending at 10..13 (inside the prompt).
  EXPECT_EQ(count_excluded(false), 4);
  // With the context: also the windows that chose text[6..9], ending at 6..9; the ones ending at
  // 4 and 5 chose tokens the suspect never saw and stay scored.
  EXPECT_EQ(count_excluded(true), 8);
}

TEST(RadioactivityScorer, GlobalDedupAcrossTexts) {
  Rng rng(11);
  const Keyring ring = RandomKeyring(rng);
  ProbeOptions opt;
  auto sc = RadioactivityScorer::Create(ring, opt, "closed");
  ASSERT_TRUE(sc.ok());
  std::vector<int32_t> text(400);
  for (auto& t : text) t = static_cast<int32_t>(rng.Next() % 5000);
  for (int copy = 0; copy < 3; ++copy) {
    for (size_t i = 0; i < text.size(); ++i) sc->Score(text, i, text[i]);
    sc->EndText(static_cast<int64_t>(text.size()));
  }
  const ProbeResult r = sc->Finish();
  EXPECT_EQ(r.tuples_duplicate, 2 * (r.tuples_duplicate / 2));
  EXPECT_GT(r.tuples_scored, 150);  // ~half of 396 windows are provider lane
  EXPECT_LT(r.tuples_scored, 250);
  EXPECT_EQ(r.tuples_duplicate, 2 * 396);  // the second and third copies add nothing
  EXPECT_EQ(r.curve.size(), 3u);
  EXPECT_EQ(r.curve[0].log10_p, r.curve[2].log10_p);
}

TEST(RadioactivityScorer, JsonRoundTripAndContract) {
  ProbeResult r;
  r.mode = "open";
  r.log10_p_value = -400.5;  // below the smallest double: p is clamped, log10 exact
  r.p_value = 1e-300;
  r.tokens_examined = 1234;
  r.tuples_scored = 567;
  r.alpha = 1e-2;
  r.verdict = Verdict::kRadioactive;
  r.curve = {{100, -1.0}, {1234, -400.5}};
  r.account = AccountFinding{42, 0.5, std::log10(0.5), 100, Verdict::kInconclusive};
  r.scheme = "gumbel:h=4";
  r.key_version = 2;
  const std::string js = ProbeResultToJson(r);
  const auto j = nlohmann::json::parse(js);
  for (const char* key : {"mode", "p_value", "log10_p_value", "tokens_scored", "tuples_scored", "verdict",
                          "alpha", "curve", "account", "scheme", "key_version"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["verdict"], "radioactive");
  EXPECT_GT(j["p_value"].get<double>(), 0.0);
  EXPECT_EQ(j["curve"][1][0], 1234);
  auto back = ProbeResultFromJson(js);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_DOUBLE_EQ(back->log10_p_value, -400.5);
  EXPECT_EQ(back->curve.size(), 2u);
  EXPECT_DOUBLE_EQ(back->curve[1].log10_p, -400.5);
  ASSERT_TRUE(back->account.has_value());
  EXPECT_EQ(back->account->id, 42u);
  EXPECT_FALSE(ProbeResultFromJson("[1,2]").ok());
  EXPECT_FALSE(ProbeResultFromJson("{\"mode\":1}").ok());
}

TEST(RadioactivityScorer, RejectsBadOptions) {
  Rng rng(3);
  const Keyring ring = RandomKeyring(rng);
  ProbeOptions opt;
  opt.alpha = 0;
  EXPECT_FALSE(RadioactivityScorer::Create(ring, opt, "open").ok());
  opt.alpha = 1e-3;
  opt.account = uint64_t{1} << 40;  // beyond 16^5 ids
  EXPECT_FALSE(RadioactivityScorer::Create(ring, opt, "open").ok());
  opt.account.reset();
  opt.version = 9;
  EXPECT_FALSE(RadioactivityScorer::Create(ring, opt, "open").ok());
}

TEST(OpenAiClient, RejectsBadUrls) {
  for (const char* url : {"ftp://x/v1", "http://", "http://host:abc/v1", "http://user@host/v1", "host:80"}) {
    OpenAiEndpoint ep;
    ep.url = url;
    ep.model = "m";
    EXPECT_FALSE(MakeOpenAiClient(ep).ok()) << url;
  }
  OpenAiEndpoint ep;
  ep.url = "http://127.0.0.1:9/v1";
  EXPECT_FALSE(MakeOpenAiClient(ep).ok());  // no --suspect-model
  ep.model = "m";
  auto c = MakeOpenAiClient(ep);
  ASSERT_TRUE(c.ok());
  // Port 9 (discard) is closed here: an I/O error, not a crash or a hang.
  EXPECT_FALSE((*c)->Complete("hi", 4).ok());
}

// ---- Real model: the default model is NOT trained on our watermark ----

class ProbeRealModel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::ifstream(kModel).good()) GTEST_SKIP() << kModel << " not present (scripts/setup.sh fetches it)";
    auto m = Model::Load(kModel);
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = std::move(m).value();
    auto t = text::Tokenizer::FromGguf(model_->file());
    ASSERT_TRUE(t.ok());
    tok_ = std::move(t).value();
    texts_ = MarkedTexts();
    ASSERT_GE(texts_.size(), 8u) << kMarked;
  }
  std::unique_ptr<Model> model_;
  std::unique_ptr<text::Tokenizer> tok_;
  std::vector<std::string> texts_;
};

// Reading mode, all on one set of top-1 predictions of the clean default model over its own
// watermarked outputs (the hardest clean case: it predicts the real next token very often).
TEST_F(ProbeRealModel, ReadingModeCleanTrapPositiveAndCalibration) {
  const Keyring ring = TestKeyring();
  auto data = ReadTop1(*model_, *tok_, *tok_, texts_, 2);
  ASSERT_TRUE(data.ok()) << data.status().message();

  // 1. Clean: exclusion of the texts' own tuples + global de-dup.
  ProbeOptions opt;
  opt.account = kMarkedAccount;
  auto clean = ScoreReading(*data, ring, opt);
  ASSERT_TRUE(clean.ok());
  std::printf("reading clean: %s\n", ProbeResultToJson(*clean).c_str());
  EXPECT_EQ(clean->verdict, Verdict::kClean);
  EXPECT_GT(clean->log10_p_value, -3.0);
  EXPECT_GE(clean->tuples_scored, kMinTuplesForClean);
  EXPECT_GT(clean->tuples_excluded, clean->tuples_scored / 4);  // the model often predicts the text
  ASSERT_TRUE(clean->account.has_value());
  EXPECT_NE(clean->account->verdict, Verdict::kRadioactive);

  // 2. The trap: without exclusion and de-dup the same clean model looks radioactive.
  ProbeOptions trap = opt;
  trap.exclude_seen = false;
  trap.dedup = false;
  auto fooled = ScoreReading(*data, ring, trap);
  ASSERT_TRUE(fooled.ok());
  std::printf("reading trap (no exclusion, no dedup): %s\n", ProbeResultToJson(*fooled).c_str());
  // The tuples where the clean model predicts the real (watermark-chosen) token carry our own
  // watermark: scoring them moves the p-value of a model that never saw our outputs by orders of
  // magnitude (how far depends on the text's entropy; see docs/probe.md for the measured values).
  EXPECT_LT(fooled->log10_p_value, clean->log10_p_value - 1.0);

  // 3. Positive control (synthetic): a "student" whose top-1 leans to the watermark. Where the
  // clean model's prediction is not the real next token, half of the time it swaps it for the
  // best of 8 candidates under the provider-lane PRF, as a model that learned the watermark's
  // preferences for these windows would. (No trained student exists in this test; the red-team
  // student is probed with the CLI.)
  const int v = ring.active_version();
  const auto params = watermark::ParseSchemeSpec(ring.Find(v)->scheme).value();
  const auto keys = ring.DeriveSchemeKeys(v).value();
  std::vector<ReadText> student = *data;
  Rng rng(99);
  for (ReadText& t : student) {
    for (size_t i = static_cast<size_t>(params.context_width); i < t.tokens.size(); ++i) {
      if (t.top1[i] < 0 || t.top1[i] == t.tokens[i] || rng.Uniform() > 0.5) continue;
      const auto info = watermark::HashContext(keys.context_key, params, t.tokens, i);
      int32_t best = t.top1[i];
      uint32_t best_w = watermark::TokenWord(keys.provider_key, info.hash, best, 0);
      for (int c = 0; c < 7; ++c) {
        const int32_t cand = static_cast<int32_t>(rng.Next() % static_cast<uint64_t>(tok_->vocab_size()));
        const uint32_t w = watermark::TokenWord(keys.provider_key, info.hash, cand, 0);
        if (w > best_w && cand != t.tokens[i]) {
          best = cand;
          best_w = w;
        }
      }
      t.top1[i] = best;
    }
  }
  auto positive = ScoreReading(student, ring, opt);
  ASSERT_TRUE(positive.ok());
  std::printf("reading positive (synthetic student): %s\n", ProbeResultToJson(*positive).c_str());
  EXPECT_EQ(positive->verdict, Verdict::kRadioactive);

  // 4. Calibration: the same predictions under random keys (the texts are unmarked for them).
  const Fpr f = Calibrate(
      [&](const Keyring& k) {
        auto r = ScoreReading(*data, k, ProbeOptions());
        return r.ok() ? r->log10_p_value : 0.0;
      },
      1234);
  std::printf("reading calibration: %d keys, FPR@1e-2 %.4f, FPR@1e-3 %.4f\n", f.keys,
              static_cast<double>(f.below_1e2) / f.keys, static_cast<double>(f.below_1e3) / f.keys);
  // 300 keys: expected 3 at 1e-2; P(Bin(300, 0.01) >= 11) < 1e-4.
  EXPECT_LE(f.below_1e2, 3 + f.keys / 40);
}

// A suspect that answers by first echoing the prompt's text, then continuing it: the classic
// false-radioactivity trap of the closed mode (its outputs copy watermarked prompt windows).
class EchoClient : public CompletionClient {
 public:
  explicit EchoClient(CompletionClient& inner) : inner_(inner) {}
  Result<std::string> Complete(const std::string& prompt, int32_t max_tokens) override {
    TM_ASSIGN_OR_RETURN(std::string cont, inner_.Complete(prompt, max_tokens));
    const size_t cut = prompt.find("\n\n");
    return (cut == std::string::npos ? prompt : prompt.substr(cut + 2)) + " " + cont;
  }

 private:
  CompletionClient& inner_;
};

TEST_F(ProbeRealModel, ClosedModeCleanTrapAndPositive) {
  const Keyring ring = TestKeyring();
  auto local = LocalCompletionClient::Create(*model_, *tok_, /*seed=*/5, 2);
  ASSERT_TRUE(local.ok()) << local.status().message();
  EchoClient echo(**local);
  const std::span<const std::string> prompts(texts_.data(), 8);
  // Each prompt is asked twice and answered the same way (a caching API): de-duplication must
  // make the repeat worthless, and without it the echoed watermark counts twice.
  auto once = CollectClosed(echo, *tok_, prompts, kDefaultPromptTokens, 64);
  ASSERT_TRUE(once.ok()) << once.status().message();
  std::vector<ClosedExchange> exchanges = *once;
  exchanges.insert(exchanges.end(), once->begin(), once->end());
  ProbeOptions opt;
  auto clean = ScoreClosed(exchanges, *tok_, ring, {}, opt);
  ASSERT_TRUE(clean.ok());
  std::printf("closed clean (echoing suspect): %s\n", ProbeResultToJson(*clean).c_str());
  // Not radioactive is the property; "clean" also needs kMinTuplesForClean tuples, and how many of
  // the sampled completions' tuples survive exclusion varies with the engine's last bits (170 to
  // 232 measured), so the sample size is checked on its own.
  EXPECT_NE(clean->verdict, Verdict::kRadioactive);
  EXPECT_GT(clean->tuples_scored, 100);
  EXPECT_GT(clean->log10_p_value, -3.0);
  EXPECT_GT(clean->tuples_excluded, 100);

  // Calibration: the same exchanges under random keys.
  const Fpr f = Calibrate(
      [&](const Keyring& k) {
        auto r = ScoreClosed(exchanges, *tok_, k, {}, ProbeOptions());
        return r.ok() ? r->log10_p_value : 0.0;
      },
      4321);
  std::printf("closed calibration: %d keys, FPR@1e-2 %.4f, FPR@1e-3 %.4f\n", f.keys,
              static_cast<double>(f.below_1e2) / f.keys, static_cast<double>(f.below_1e3) / f.keys);
  EXPECT_LE(f.below_1e2, 3 + f.keys / 40);

  ProbeOptions trap = opt;
  trap.exclude_seen = false;
  trap.dedup = false;
  auto fooled = ScoreClosed(exchanges, *tok_, ring, {}, trap);
  ASSERT_TRUE(fooled.ok());
  std::printf("closed trap (no exclusion, no dedup): %s\n", ProbeResultToJson(*fooled).c_str());
  EXPECT_EQ(fooled->verdict, Verdict::kRadioactive);

  // Positive control: a suspect that serves our watermarked model's outputs (a proxy of our API).
  auto hook = watermark::MakeWatermarkHook(ring, kMarkedAccount);
  ASSERT_TRUE(hook.ok());
  (*local)->set_hook(hook->get());
  auto marked = CollectClosed(**local, *tok_, prompts.first(4), kDefaultPromptTokens, 40);
  ASSERT_TRUE(marked.ok());
  ProbeOptions with_account = opt;
  with_account.account = kMarkedAccount;
  auto positive = ScoreClosed(*marked, *tok_, ring, {}, with_account);
  ASSERT_TRUE(positive.ok());
  std::printf("closed positive (watermarked suspect): %s\n", ProbeResultToJson(*positive).c_str());
  EXPECT_EQ(positive->verdict, Verdict::kRadioactive);
  ASSERT_TRUE(positive->account.has_value());
  EXPECT_LT(positive->account->log10_p_value, -2.0);
}

// Raw-completion closed mode: a suspect that memorized our texts (its continuation is the real
// rest of the text) is radioactive; the clean default model continuing the same prompts is not.
TEST_F(ProbeRealModel, RawCompletionMemorizerAndCleanModel) {
  const Keyring ring = TestKeyring();
  constexpr int32_t kPrompt = 16;
  std::vector<ClosedExchange> memorized;
  for (size_t i = 0; i < 8; ++i) {
    const std::vector<int32_t> ids = tok_->Encode(texts_[i], false, false);
    ASSERT_GT(ids.size(), static_cast<size_t>(kPrompt) + 16);
    ClosedExchange ex;
    ex.prompt = tok_->Decode(std::span<const int32_t>(ids.data(), kPrompt));
    ex.completion = tok_->Decode(std::span<const int32_t>(ids.data() + kPrompt, ids.size() - kPrompt));
    ex.raw = true;
    memorized.push_back(std::move(ex));
  }
  ProbeOptions opt;
  opt.account = kMarkedAccount;
  auto mem = ScoreClosed(memorized, *tok_, ring, {}, opt);
  ASSERT_TRUE(mem.ok());
  std::printf("raw memorizer: %s\n", ProbeResultToJson(*mem).c_str());
  EXPECT_EQ(mem->verdict, Verdict::kRadioactive);

  RawCompletionOptions ropt;
  ropt.prompt_tokens = kPrompt;
  ropt.max_tokens = 24;
  ropt.seed = 3;
  auto raw = CollectRawCompletions(*model_, *tok_, *tok_, std::span<const std::string>(texts_.data(), 4), ropt);
  ASSERT_TRUE(raw.ok()) << raw.status().message();
  ASSERT_EQ(raw->size(), 4u);
  EXPECT_TRUE((*raw)[0].raw);
  auto clean = ScoreClosed(*raw, *tok_, ring, {}, opt);
  ASSERT_TRUE(clean.ok());
  std::printf("raw clean model: %s\n", ProbeResultToJson(*clean).c_str());
  EXPECT_NE(clean->verdict, Verdict::kRadioactive);
  EXPECT_GT(clean->log10_p_value, -3.0);
  EXPECT_GT(clean->tokens_examined, 0);
}

}  // namespace
}  // namespace tracemark::probe
