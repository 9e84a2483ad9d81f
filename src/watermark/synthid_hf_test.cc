// synthid-hf against transformers' SynthIDTextWatermarkLogitsProcessor: bit-equal g-values,
// context-repetition and EOS masks, generation-time state and mean scores on vectors committed by
// tools/gen_synthid_vectors.py; plus the table pin, spec parsing, key derivation and the exact
// test's calibration and power.
#include "tracemark/watermark/synthid_hf.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tracemark/model/sampler.h"
#include "tracemark/watermark/detector.h"
#include "tracemark/watermark/hook.h"
#include "tracemark/watermark/keyring.h"
#include "tracemark/watermark/scheme.h"
#include "watermark/synthid_hf_tables.h"

namespace tracemark::watermark {
namespace {

const nlohmann::json& Vectors() {
  static const nlohmann::json j = [] {
    const std::string path = std::string(TM_SOURCE_DIR) + "/tests/data/watermark/synthid_hf/vectors.json.gz";
    gzFile f = gzopen(path.c_str(), "rb");
    EXPECT_NE(f, nullptr) << path;
    std::string text;
    if (f != nullptr) {
      char buf[1 << 16];
      int n;
      while ((n = gzread(f, buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(n));
      gzclose(f);
    }
    return nlohmann::json::parse(text);
  }();
  return j;
}

struct Loaded {
  SynthIdHfConfig config;
  std::vector<int64_t> keys;
};

Loaded LoadConfig(const nlohmann::json& c) {
  Loaded l;
  for (const auto& k : c["keys"]) l.keys.push_back(std::stoll(k.get<std::string>()));
  l.config.derive_keys = false;
  l.config.keys = l.keys;
  l.config.ngram_len = c["ngram_len"].get<int>();
  l.config.table_seed = c["table_seed"].get<int>();
  l.config.context_history = c["context_history"].get<int>();
  return l;
}

std::vector<int32_t> Tokens(const nlohmann::json& a) {
  std::vector<int32_t> t;
  for (const auto& v : a) t.push_back(v.get<int32_t>());
  return t;
}

TEST(SynthIdHfTable, EmbeddedTablesMatchTheirPins) {
  for (int seed : {0, 1}) {
    auto t = SynthIdHfSamplingTable(seed);
    ASSERT_TRUE(t.ok()) << t.status().message();
    EXPECT_EQ(t->size(), kSynthIdHfTableBytes);
  }
  EXPECT_FALSE(SynthIdHfSamplingTable(7).ok());
}

TEST(SynthIdHfTable, RefusesATableWhoseHashDiffers) {
  const std::span<const uint8_t> good = synthid_hf_assets::EmbeddedTable(0);
  ASSERT_EQ(good.size(), kSynthIdHfTableBytes);
  std::vector<uint8_t> bad(good.begin(), good.end());
  bad[100] ^= 1;  // one g-value flipped
  const Status s = VerifySynthIdHfTable(0, bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("SHA-256"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("gen_synthid_table.py"), std::string::npos) << s.message();
  EXPECT_FALSE(VerifySynthIdHfTable(1, good).ok());  // seed 0's table is not seed 1's
  EXPECT_FALSE(VerifySynthIdHfTable(0, good.subspan(1)).ok());
  EXPECT_TRUE(VerifySynthIdHfTable(0, good).ok());
}

TEST(SynthIdHf, GValuesAndMasksBitEqualToTransformers) {
  int configs = 0, positions = 0;
  for (const auto& c : Vectors()["configs"]) {
    const Loaded l = LoadConfig(c);
    auto wm = SynthIdHf::Create(l.config, l.keys);
    ASSERT_TRUE(wm.ok()) << wm.status().message();
    const int n = l.config.ngram_len;
    int seq_index = 0;
    for (const auto& s : c["sequences"]) {
      SCOPED_TRACE(c["name"].get<std::string>() + " sequence " + std::to_string(seq_index++));
      const std::vector<int32_t> tokens = Tokens(s["tokens"]);
      std::vector<uint64_t> g;
      wm->ComputeGValues(tokens, &g);
      ASSERT_EQ(g.size(), s["g"].size());
      for (size_t i = 0; i < g.size(); ++i) {
        ASSERT_EQ(g[i], std::stoull(s["g"][i].get<std::string>())) << "n-gram " << i;
      }
      std::vector<uint8_t> rep, eos;
      wm->ComputeRepetitionMask(tokens, &rep);
      const std::string rep_ref = s["rep_mask"].get<std::string>();
      ASSERT_EQ(rep.size(), rep_ref.size());
      for (size_t i = 0; i < rep.size(); ++i) ASSERT_EQ(rep[i], rep_ref[i] - '0') << "context " << i;
      SynthIdHf::ComputeEosMask(tokens, c["eos"].get<int32_t>(), &eos);
      const std::string eos_ref = s["eos_mask"].get<std::string>();
      ASSERT_EQ(eos.size(), eos_ref.size());
      for (size_t i = 0; i < eos.size(); ++i) ASSERT_EQ(eos[i], eos_ref[i] - '0') << "token " << i;

      // Mean scores over HF's combined mask; Score's EOS handling is "end = first EOS".
      size_t end = 0;
      while (end < eos.size() && eos[end] != 0) ++end;
      const SynthIdHfScore sc = wm->Score(tokens, end, {});
      int64_t unmasked = 0;
      for (size_t j = 0; j < rep.size(); ++j) unmasked += rep[j] * eos[j + static_cast<size_t>(n) - 1];
      EXPECT_EQ(sc.hf_unmasked, unmasked);
      EXPECT_NEAR(sc.mean, s["mean"].get<double>(), 1e-12);
      EXPECT_NEAR(sc.weighted_mean, s["weighted_mean"].get<double>(), 1e-12);
      positions += static_cast<int>(g.size());
    }
    for (const auto& cand : c["candidates"]) {
      const std::vector<int32_t> ctx = Tokens(cand["context"]);
      const uint64_t h = wm->ContextHash(ctx, ctx.size());
      ASSERT_EQ(static_cast<int64_t>(h), std::stoll(cand["context_hash"].get<std::string>()));
      const std::vector<int32_t> ids = Tokens(cand["ids"]);
      for (size_t i = 0; i < ids.size(); ++i) {
        ASSERT_EQ(wm->GMask(h, ids[i]), std::stoull(cand["g"][i].get<std::string>())) << "candidate " << ids[i];
      }
    }
    ++configs;
  }
  EXPECT_EQ(configs, 3);
  EXPECT_GT(positions, 1000);
}

// Scores of the vector generator (tools/gen_synthid_vectors.py sampling_scores), in float32.
std::vector<float> SamplingScores(int vocab, int step) {
  std::vector<float> s(static_cast<size_t>(vocab));
  for (int v = 0; v < vocab; ++v) {
    const double x = static_cast<double>((static_cast<int64_t>(v) * 7919 + static_cast<int64_t>(step) * 104729) % 1000) /
                         100.0 - 5.0;
    s[static_cast<size_t>(v)] = (v + step) % 7 == 0 ? -INFINITY : static_cast<float>(x);
  }
  return s;
}

TEST(SynthIdHf, GenerationStateAndTournamentMatchTransformers) {
  for (const auto& c : Vectors()["configs"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const Loaded l = LoadConfig(c);
    auto wm = SynthIdHf::Create(l.config, l.keys);
    ASSERT_TRUE(wm.ok());
    SynthIdHfHook hook(*wm);
    const auto& sm = c["sampling"];
    const int vocab = sm["vocab"].get<int>();
    std::vector<int32_t> ids(static_cast<size_t>(vocab));
    for (int v = 0; v < vocab; ++v) ids[static_cast<size_t>(v)] = v;
    int step = 0, watermarked = 0, repeated = 0;
    for (const auto& st : sm["steps"]) {
      const std::vector<float> scores = SamplingScores(vocab, step);
      // Softmax in double (HF: float32), the candidates' probabilities.
      float mx = -INFINITY;
      for (float x : scores) mx = std::max(mx, x);
      std::vector<double> e(scores.size());
      double z = 0;
      for (size_t i = 0; i < scores.size(); ++i) z += (e[i] = std::exp(static_cast<double>(scores[i]) - mx));
      std::vector<float> probs(scores.size());
      for (size_t i = 0; i < scores.size(); ++i) probs[i] = static_cast<float>(e[i] / z);
      const bool on = hook.BeginStep();
      ASSERT_EQ(!on, st["repeated"].get<bool>()) << "step " << step;
      if (on) {
        std::vector<double> out;
        hook.WatermarkedProbs(TokenCandidates{ids, scores, probs}, &out);
        for (int v = 0; v < vocab; ++v) {
          const double ref = st["probs"][static_cast<size_t>(v)].get<double>();
          const double got = out[static_cast<size_t>(v)];
          // HF works in float32 over 30 layers; ours in double.
          ASSERT_NEAR(got, ref, 2e-5 * ref + 1e-9) << "step " << step << " token " << v;
        }
        ++watermarked;
      } else {
        ++repeated;
      }
      hook.Accept(sm["fed"][static_cast<size_t>(step)].get<int32_t>());
      ++step;
    }
    EXPECT_GT(watermarked, 0);
  }
}

TEST(SynthIdHfSpec, ParseAndRoundTrip) {
  auto p = ParseSchemeSpec("synthid-hf");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->kind, SchemeKind::kSynthIdHf);
  EXPECT_EQ(p->ToSpec(), "synthid-hf:keys=derive,layers=30,ngram=5,seed=0,history=1024,skipfirst=0");
  auto q = ParseSchemeSpec("synthid-hf:keys=654/400/-836,ngram=3,seed=1,history=16,skipfirst=1");
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->ToSpec(), "synthid-hf:keys=654/400/-836,ngram=3,seed=1,history=16,skipfirst=1");
  EXPECT_EQ(ParseSchemeSpec(q->ToSpec())->ToSpec(), q->ToSpec());
  auto cfg = ParseSynthIdHfParams("keys=654/400/-836,ngram=3");
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->depth(), 3);
  EXPECT_EQ(cfg->ToPublicParams(), "keys=explicit,layers=3,ngram=3,seed=0,history=1024,skipfirst=0");
  for (const char* bad : {"synthid-hf:keys=", "synthid-hf:keys=1//2", "synthid-hf:keys=x", "synthid-hf:ngram=1",
                          "synthid-hf:ngram=17", "synthid-hf:seed=5", "synthid-hf:layers=65",
                          "synthid-hf:keys=1/2,layers=4", "synthid-hf:history=0", "synthid-hf:skipfirst=2",
                          "synthid-hf:color=red", "synthid-hf:keys=99999999999999999999"}) {
    EXPECT_FALSE(ParseSchemeSpec(bad).ok()) << bad;
  }
}

std::vector<uint8_t> Secret(uint8_t fill) {
  std::vector<uint8_t> s(32);
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<uint8_t>(fill + 13 * i);
  return s;
}

TEST(SynthIdHf, DerivedKeysAreHkdfPerVersion) {
  auto ring = Keyring::FromSecret(Secret(1), "synthid-hf");
  ASSERT_TRUE(ring.ok()) << ring.status().message();
  auto cfg = ParseSynthIdHfParams("");
  ASSERT_TRUE(cfg.ok());
  auto keys = SynthIdHf::DeriveKeys(*ring, 1, *cfg);
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 30u);
  // HKDF-Expand(PRK, label, 240) with the documented label, little-endian int64s.
  const KeyVersion* v = ring->Find(1);
  auto okm = crypto::HkdfExpand(v->prk.span(),
                                crypto::AsBytes("tracemark/v1/synthid-hf/keys|version=1|scheme=" + v->scheme), 240);
  ASSERT_TRUE(okm.ok());
  uint64_t k0 = 0;
  for (int b = 7; b >= 0; --b) k0 = (k0 << 8) | okm->data()[b];
  EXPECT_EQ(static_cast<uint64_t>((*keys)[0]), k0);
  auto other = Keyring::FromSecret(Secret(2), "synthid-hf");
  EXPECT_NE((*SynthIdHf::DeriveKeys(*other, 1, *cfg))[0], (*keys)[0]);
}

TEST(SynthIdHf, KeyringFileRoundTripKeepsExplicitKeys) {
  auto ring = Keyring::FromSecret(Secret(5), "synthid-hf:keys=654/-400/836,ngram=3");
  ASSERT_TRUE(ring.ok()) << ring.status().message();
  auto again = Keyring::Parse(ring->Serialize());
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->Find(1)->scheme, "synthid-hf:keys=654/-400/836,ngram=3,seed=0,history=1024,skipfirst=0");
  // Detection output names the configuration without the keys.
  auto d = Detector::Create(*again)->Detect(std::vector<int32_t>(50, 7), DetectOptions{});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->scheme, "synthid-hf:keys=explicit,layers=3,ngram=3,seed=0,history=1024,skipfirst=0");
  EXPECT_EQ(ring->Describe().find("654"), std::string::npos) << ring->Describe();
}

// Generates with the hook over a synthetic Zipf distribution (vocab 49152, 64 candidates).
std::vector<int32_t> Generate(SamplerHook* hook, uint64_t seed, int n) {
  Rng lm(seed), draw(seed ^ 0x5555);
  std::vector<int32_t> tokens;
  std::vector<int32_t> ids(64);
  std::vector<float> logits(64), probs(64);
  for (int step = 0; step < n; ++step) {
    double z = 0;
    for (size_t r = 0; r < ids.size(); ++r) {
      ids[r] = static_cast<int32_t>(lm.Next() % 49152);
      logits[r] = static_cast<float>(-1.2 * std::log(1.0 + static_cast<double>(r)));
      z += std::exp(logits[r]);
    }
    for (size_t r = 0; r < ids.size(); ++r) probs[r] = static_cast<float>(std::exp(logits[r]) / z);
    int32_t tok = hook ? hook->Choose(TokenCandidates{ids, logits, probs}, tokens, draw) : -1;
    if (tok < 0) {
      const double u = draw.Uniform();
      double acc = 0;
      tok = ids.back();
      for (size_t r = 0; r < ids.size(); ++r) {
        acc += probs[r];
        if (u < acc) {
          tok = ids[r];
          break;
        }
      }
    }
    if (hook) hook->Accept(tok);
    tokens.push_back(tok);
  }
  return tokens;
}

TEST(SynthIdHf, KeyringHookAndDetectorEndToEnd) {
  auto ring = Keyring::FromSecret(Secret(3), "synthid-hf:layers=20,ngram=4");
  ASSERT_TRUE(ring.ok()) << ring.status().message();
  auto hook = MakeWatermarkHook(*ring, 12345);  // any account: no per-account lanes
  ASSERT_TRUE(hook.ok()) << hook.status().message();
  auto det = Detector::Create(*ring);
  ASSERT_TRUE(det.ok());
  int detected = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    auto h = MakeWatermarkHook(*ring, 0);
    const std::vector<int32_t> tokens = Generate(h->get(), seed, 200);
    auto d = det->Detect(tokens, DetectOptions{});
    ASSERT_TRUE(d.ok()) << d.status().message();
    EXPECT_EQ(d->scheme, "synthid-hf:keys=derive,layers=20,ngram=4,seed=0,history=1024,skipfirst=0");
    EXPECT_FALSE(d->account.has_value());
    EXPECT_FALSE(d->account_note.empty());
    EXPECT_GT(d->tokens_scored, 150);
    detected += d->watermarked ? 1 : 0;
    // A different keyring does not see it.
    auto other = Keyring::FromSecret(Secret(4), "synthid-hf:layers=20,ngram=4");
    auto d2 = Detector::Create(*other)->Detect(tokens, DetectOptions{});
    ASSERT_TRUE(d2.ok());
    EXPECT_GT(d2->p_value, 1e-4);
  }
  EXPECT_GE(detected, 4);
  EXPECT_FALSE(CorpusDetector::Create(*ring, 1, std::nullopt).ok());
}

// Never-watermarked random text: the binomial test's false-positive rate stays at or below alpha.
TEST(SynthIdHf, ExactTestIsCalibratedOnUnwatermarkedText) {
  auto cfg = ParseSynthIdHfParams("");
  ASSERT_TRUE(cfg.ok());
  constexpr int kDocs = 4000;
  int below_1e2 = 0, below_1e3 = 0;
  Rng rng(99);
  std::vector<int64_t> keys(30);
  std::vector<int32_t> tokens(200);
  for (int d = 0; d < kDocs; ++d) {
    if (d % 500 == 0) {  // a few key sets
      for (auto& k : keys) k = static_cast<int64_t>(rng.Next());
    }
    auto wm = SynthIdHf::Create(*cfg, keys);
    ASSERT_TRUE(wm.ok());
    for (auto& t : tokens) t = static_cast<int32_t>(rng.Next() % 49152);
    const SynthIdHfScore s = wm->Score(tokens, tokens.size(), {});
    below_1e2 += s.log_p < std::log(1e-2);
    below_1e3 += s.log_p < std::log(1e-3);
  }
  std::printf("synthid-hf null: %d/%d below 1e-2, %d/%d below 1e-3\n", below_1e2, kDocs, below_1e3, kDocs);
  // Expected 40 and 4; the bounds are about +3 sigma.
  EXPECT_LE(below_1e2, 60);
  EXPECT_LE(below_1e3, 11);
  EXPECT_GE(below_1e2, 15);  // not vacuously conservative
}

TEST(SynthIdHf, SkipMaskAndDedupReduceUnits) {
  auto cfg = ParseSynthIdHfParams("keys=1/2/3/4,ngram=3");
  auto wm = SynthIdHf::Create(*cfg, cfg->keys);
  ASSERT_TRUE(wm.ok());
  std::vector<int32_t> t = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  EXPECT_EQ(wm->Score(t, t.size(), {}).units, 8);
  std::vector<uint8_t> mask(t.size(), 0);
  mask[5] = 1;  // n-grams ending at 5, 6, 7 touch it
  EXPECT_EQ(wm->Score(t, t.size(), mask).units, 5);
  EXPECT_EQ(wm->Score(t, t.size(), mask).hf_unmasked, 8);  // HF's own mask ignores placeholders
  std::vector<int32_t> rep = {10, 11, 12, 13, 10, 11, 12, 13};  // (10,11)->12 repeats: masked as HF does
  const SynthIdHfScore s = wm->Score(rep, rep.size(), {});
  EXPECT_EQ(s.hf_unmasked, 4);
  EXPECT_EQ(s.units, 4);
  // Corpus de-duplication: a second document with the same n-grams adds nothing.
  TupleSet corpus;
  EXPECT_EQ(wm->Score(t, t.size(), {}, &corpus).units, 8);
  EXPECT_EQ(wm->Score(t, t.size(), {}, &corpus).units, 0);
  EXPECT_EQ(wm->Score(rep, rep.size(), {}, &corpus).units, 2);  // (12,13)->10, (13,10)->11 are new
}

}  // namespace
}  // namespace tracemark::watermark
