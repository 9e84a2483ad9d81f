// Student trainer: analytic gradients against finite differences for every parameter tensor,
// loss decrease on a toy corpus, determinism, and the written GGUF served by our engine with the
// trainer's own logits.
#include "tracemark/redteam/train.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <set>

#include "redteam/train/rng.h"
#include "tracemark/model/context.h"
#include "tracemark/model/gguf.h"
#include "tracemark/model/model.h"
#include "tracemark/text/tokenizer.h"

namespace tracemark::redteam {
namespace {

StudentConfig TinyConfig() {
  StudentConfig c;
  c.n_vocab = 40;
  c.d_model = 16;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_ff = 24;
  c.n_ctx = 8;
  return c;
}

// Larger random weights than the initialization so every path carries a visible gradient.
void Randomize(StudentModel* m, uint64_t seed) {
  SplitMix64 rng(seed);
  for (const ParamTensor& t : m->tensors()) {
    float* w = m->params().data() + t.offset;
    for (size_t i = 0; i < t.size(); ++i) {
      const float r = static_cast<float>(rng.Normal());
      w[i] = t.rows == 1 ? 1.0f + 0.3f * r : 0.3f * r;
    }
  }
}

std::vector<std::vector<int32_t>> RandomSeqs(int n, int len, int32_t vocab, uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<std::vector<int32_t>> s(n);
  for (auto& q : s) {
    for (int i = 0; i < len; ++i) q.push_back(static_cast<int32_t>(rng.Below(vocab)));
  }
  return s;
}

// Finite differences (central, eps 1e-2) against the analytic gradient at 12 elements of every
// parameter tensor (one of them the largest-gradient element), on two threads with sequences of
// two lengths. `restricted`: the head trains on a subset of the vocabulary.
void GradCheck(bool restricted) {
  auto m = StudentModel::Create(TinyConfig(), 3);
  ASSERT_TRUE(m.ok()) << m.status().message();
  Randomize(&*m, 11);
  auto seqs = RandomSeqs(2, 9, restricted ? 25 : 40, 5);
  seqs[1].resize(6);
  Trainer trainer(&*m, 2);
  if (restricted) {
    std::vector<int32_t> ids(25);
    std::iota(ids.begin(), ids.end(), 0);
    ASSERT_TRUE(trainer.SetActiveVocabulary(ids).ok());
  }
  auto loss = trainer.LossAndGrad(seqs);
  ASSERT_TRUE(loss.ok()) << loss.status().message();
  const std::vector<float> g(trainer.grad().begin(), trainer.grad().end());
  constexpr float kEps = 1e-2f;
  constexpr int kSamplesPerTensor = 12;
  SplitMix64 rng(99);
  double worst = 0;
  std::string worst_name;
  for (const ParamTensor& t : m->tensors()) {
    // Inactive embedding rows (ids >= 25) are constrained to zero: sample only the active part.
    const size_t n = restricted && t.name == "token_embd.weight" ? 25 * t.cols : t.size();
    float max_abs = 0;
    for (size_t i = 0; i < n; ++i) max_abs = std::max(max_abs, std::fabs(g[t.offset + i]));
    EXPECT_GT(max_abs, 1e-4f) << t.name << " has no gradient";
    for (int s = 0; s < kSamplesPerTensor; ++s) {
      size_t i = rng.Below(n);
      if (s == 0) {
        for (size_t j = 0; j < n; ++j) {
          if (std::fabs(g[t.offset + j]) == max_abs) i = j;
        }
      }
      float& p = m->params()[t.offset + i];
      const float orig = p;
      p = orig + kEps;
      const double up = *trainer.Loss(seqs);
      p = orig - kEps;
      const double down = *trainer.Loss(seqs);
      p = orig;
      const double numeric = (up - down) / (2.0 * kEps);
      const double analytic = g[t.offset + i];
      const double err = std::fabs(numeric - analytic) / (1e-3 + std::fabs(numeric) + std::fabs(analytic));
      EXPECT_LT(err, 2e-2) << t.name << "[" << i << "] analytic " << analytic << " numeric " << numeric;
      if (err > worst) {
        worst = err;
        worst_name = t.name;
      }
    }
  }
  if (restricted) {
    for (size_t i = 25 * 16; i < 40 * 16; ++i) EXPECT_EQ(g[i], 0.0f) << "inactive rows get no gradient";
  }
  std::printf("gradient check (%s vocabulary): %zu tensors x %d elements, worst relative error %.3g (%s)\n",
              restricted ? "restricted" : "full", m->tensors().size(), kSamplesPerTensor, worst, worst_name.c_str());
}

TEST(StudentTrain, GradientsMatchFiniteDifferencesForEveryTensor) { GradCheck(false); }
TEST(StudentTrain, GradientsMatchFiniteDifferencesWithRestrictedVocabulary) { GradCheck(true); }

// With the inactive rows zero, the restricted head gives the same full-vocabulary loss and logits
// as the unrestricted one.
TEST(StudentTrain, RestrictedVocabularyIsExact) {
  auto m = StudentModel::Create(TinyConfig(), 3);
  ASSERT_TRUE(m.ok());
  Randomize(&*m, 12);
  auto seqs = RandomSeqs(3, 9, 20, 6);
  std::vector<int32_t> ids(20);
  std::iota(ids.begin(), ids.end(), 0);
  Trainer restricted(&*m, 2);
  ASSERT_TRUE(restricted.SetActiveVocabulary(ids).ok());  // zeroes rows 20..39
  EXPECT_EQ(restricted.active_vocabulary(), 20);
  Trainer full(&*m, 2);
  const double a = *restricted.Loss(seqs), b = *full.Loss(seqs);
  EXPECT_NEAR(a, b, 1e-5 * b);
  const std::vector<int32_t> first(seqs[0].begin(), seqs[0].begin() + 8);
  auto la = restricted.Logits(first), lb = full.Logits(first);
  ASSERT_TRUE(la.ok() && lb.ok());
  for (size_t i = 0; i < la->size(); ++i) ASSERT_NEAR((*la)[i], (*lb)[i], 1e-5f) << i;
  std::vector<std::vector<int32_t>> outside(1, std::vector<int32_t>{1, 30});
  EXPECT_FALSE(restricted.Loss(outside).ok()) << "targets outside the active vocabulary are refused";
}

TEST(StudentTrain, LossDecreasesOnToyCorpusAndIsDeterministic) {
  // A corpus with structure: arithmetic progressions mod the vocabulary.
  TrainData data;
  for (int start = 0; start < 40; ++start) {
    for (int stride = 1; stride <= 3; ++stride) {
      std::vector<int32_t> w;
      for (int i = 0; i < 9; ++i) w.push_back((start + i * stride) % 40);
      data.windows.push_back(w);
    }
  }
  TrainOptions o;
  o.steps = 120;
  o.batch = 8;
  o.lr = 1e-2f;
  o.seed = 7;
  auto run = [&]() {
    auto m = StudentModel::Create(TinyConfig(), 1);
    EXPECT_TRUE(m.ok());
    auto r = Train(&*m, data, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return std::make_pair(std::move(m).value(), *r);
  };
  auto [m1, r1] = run();
  EXPECT_LT(r1.final_loss, 0.5 * r1.initial_loss) << "initial " << r1.initial_loss;
  EXPECT_GT(r1.initial_loss, 3.0);  // about ln(40) = 3.69 at initialization
  EXPECT_EQ(r1.tokens_seen, 120 * 8 * 8);
  auto [m2, r2] = run();
  ASSERT_EQ(m1.params().size(), m2.params().size());
  EXPECT_EQ(0, std::memcmp(m1.params().data(), m2.params().data(), m1.params().size() * 4))
      << "same seed and thread count must give the same weights";
  EXPECT_EQ(r1.final_loss, r2.final_loss);
}

TEST(StudentTrain, RejectsBadShapes) {
  StudentConfig c = TinyConfig();
  c.d_model = 20;  // not a multiple of 8
  EXPECT_FALSE(StudentModel::Create(c, 1).ok());
  c = TinyConfig();
  c.n_head = 3;
  EXPECT_FALSE(StudentModel::Create(c, 1).ok());
  c = TinyConfig();
  c.n_vocab = 0;
  EXPECT_FALSE(StudentModel::Create(c, 1).ok());
  auto m = StudentModel::Create(TinyConfig(), 1);
  Trainer t(&*m, 1);
  std::vector<std::vector<int32_t>> too_long(1, std::vector<int32_t>(10, 1));
  EXPECT_FALSE(t.Loss(too_long).ok());
  std::vector<std::vector<int32_t>> bad_id(1, std::vector<int32_t>{1, 40});
  EXPECT_FALSE(t.Loss(bad_id).ok());
}

constexpr char kSmolLm2[] = "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

// The tiny llama test vector file (tests/data/forward) supplies a 320-token vocabulary: enough
// for the writer and the engine, no tokenizer needed.
TEST(StudentTrain, WrittenGgufServesTheTrainersLogits) {
  const std::string teacher_path = std::string(TM_SOURCE_DIR) + "/tests/data/forward/llama.tiny-gguf";
  auto teacher = gguf::GgufFile::Open(teacher_path);
  ASSERT_TRUE(teacher.ok()) << teacher.status().message();
  StudentConfig c;
  c.n_vocab = static_cast<int32_t>((*teacher)->FindTensor("token_embd.weight")->ne[1]);
  c.d_model = 32;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_ctx = 24;
  auto m = StudentModel::Create(c, 5);
  ASSERT_TRUE(m.ok()) << m.status().message();
  // Train a little so the weights are not the initialization.
  TrainData data;
  data.windows = RandomSeqs(16, c.n_ctx + 1, 64, 8);
  TrainOptions o;
  o.steps = 20;
  o.batch = 4;
  auto r = Train(&*m, data, o);
  ASSERT_TRUE(r.ok()) << r.status().message();

  const std::string out = ::testing::TempDir() + "/student_test.gguf";
  ASSERT_TRUE(WriteStudentGguf(*m, **teacher, out).ok());
  auto model = Model::Load(out);
  ASSERT_TRUE(model.ok()) << model.status().message();
  EXPECT_EQ((*model)->config().n_vocab, c.n_vocab);
  EXPECT_EQ((*model)->config().n_layer, 2);
  EXPECT_EQ((*model)->config().n_ctx_train, c.n_ctx);
  EXPECT_EQ((*model)->weights().output, (*model)->weights().token_embd) << "tied head";
  ContextOptions co;
  co.n_ctx = c.n_ctx;
  co.kv_type = KvType::kF32;
  co.max_outputs = c.n_ctx;
  co.n_threads = 1;
  auto ctx = Context::Create(**model, co);
  ASSERT_TRUE(ctx.ok()) << ctx.status().message();
  const std::vector<int32_t> seq = RandomSeqs(1, c.n_ctx, c.n_vocab, 21)[0];
  Batch b;
  for (size_t i = 0; i < seq.size(); ++i) b.Add(seq[i], static_cast<int32_t>(i), 0, true);
  ASSERT_TRUE((*ctx)->Decode(b).ok());
  Trainer trainer(&*m, 1);
  auto ref = trainer.Logits(seq);
  ASSERT_TRUE(ref.ok());
  float max_diff = 0, max_abs = 0;
  for (size_t row = 0; row < seq.size(); ++row) {
    const int32_t out_i = (*ctx)->OutputOf(static_cast<int32_t>(row));
    ASSERT_GE(out_i, 0);
    std::span<float> l = (*ctx)->Logits(out_i);
    for (int32_t v = 0; v < c.n_vocab; ++v) {
      max_diff = std::max(max_diff, std::fabs(l[v] - (*ref)[row * c.n_vocab + v]));
      max_abs = std::max(max_abs, std::fabs(l[v]));
    }
  }
  std::printf("engine vs trainer logits: max |diff| %.3g (max |logit| %.3g) over %zu positions\n", max_diff,
              max_abs, seq.size());
  EXPECT_LT(max_diff, 1e-4f);
  EXPECT_GT(max_abs, 1e-2f) << "logits too small for the comparison to mean anything";
  EXPECT_EQ(r->active_vocabulary, 64) << "the head trained on the 64 ids of the data";
  std::filesystem::remove(out);
}

// With the real default model as teacher: documents through its tokenizer, the mix fraction, and
// the student's copied tokenizer metadata (same ids for the same text).
TEST(StudentTrain, SmolLm2TeacherMixAndTokenizer) {
  const std::string teacher_path = std::string(TM_SOURCE_DIR) + kSmolLm2;
  if (!std::filesystem::exists(teacher_path)) GTEST_SKIP() << teacher_path << " is missing";
  auto teacher = gguf::GgufFile::Open(teacher_path);
  ASSERT_TRUE(teacher.ok());
  auto tok = text::Tokenizer::FromGguf(**teacher);
  ASSERT_TRUE(tok.ok());
  std::vector<std::string> wm(20, "watermarked words "), clean(200, "plain clean text here ");
  for (auto& s : wm) s = s + s + s + s + s + s + s + s;
  for (auto& s : clean) s = s + s + s + s + s + s + s + s;
  auto d = BuildTrainData(**tok, wm, clean, 0.1, 9, 3);
  ASSERT_TRUE(d.ok()) << d.status().message();
  const double share = static_cast<double>(d->watermarked_tokens) /
                       static_cast<double>(d->watermarked_tokens + d->clean_tokens);
  EXPECT_NEAR(share, 0.1, 0.01);
  const std::vector<int32_t> wm_ids = (*tok)->Encode("watermarked words", false, false);
  std::set<int32_t> wm_set(wm_ids.begin(), wm_ids.end());
  int64_t w_count = 0;
  for (const auto& w : d->windows) {
    bool any = false;
    for (int32_t t : w) any = any || wm_set.count(t) > 0;
    w_count += any ? 1 : 0;
  }
  EXPECT_EQ(w_count, d->watermarked_windows);
  EXPECT_FALSE(BuildTrainData(**tok, wm, {}, 0.5, 9, 3).ok()) << "0.5 needs clean text";
  auto zero = BuildTrainData(**tok, wm, clean, 0.0, 9, 3);
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->watermarked_tokens, 0);

  StudentConfig c;
  c.n_vocab = (*tok)->vocab_size();
  c.d_model = 16;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_ctx = 8;
  auto m = StudentModel::Create(c, 5);
  ASSERT_TRUE(m.ok());
  const std::string out = ::testing::TempDir() + "/student_tok_test.gguf";
  ASSERT_TRUE(WriteStudentGguf(*m, **teacher, out).ok());
  auto sf = gguf::GgufFile::Open(out);
  ASSERT_TRUE(sf.ok()) << sf.status().message();
  auto stok = text::Tokenizer::FromGguf(**sf);
  ASSERT_TRUE(stok.ok()) << stok.status().message();
  const std::string probe = "Hidden signal, quick fox: <|im_start|> 12345 caf\xc3\xa9";
  EXPECT_EQ((*stok)->Encode(probe, true, true), (*tok)->Encode(probe, true, true));
  EXPECT_EQ((*stok)->eos_id(), (*tok)->eos_id());
  ASSERT_NE((*sf)->Find("tokenizer.chat_template"), nullptr);
  EXPECT_TRUE(Model::Load(out).ok());
  std::filesystem::remove(out);
}

}  // namespace
}  // namespace tracemark::redteam
