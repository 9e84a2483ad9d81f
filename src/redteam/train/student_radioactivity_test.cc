// Reduced student radioactivity experiment (the full one is bench/student_radioactivity.sh): the
// clean-control student, trained without watermarked text, is not called radioactive by the
// open-model reading-mode probe.
//
// Data (tests/data/student/README.md): 48 completions of the default model watermarked with the
// KGW LeftHash scheme (h = 1) for account 7 of a committed test-only keyring, and 90 paragraphs of
// the King James Pentateuch (Debian bible-kjv) as clean text. Needs the real default model
// (skipped when it is missing; CI fetches it).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "tracemark/model/model.h"
#include "tracemark/probe/probe.h"
#include "tracemark/redteam/train.h"
#include "tracemark/text/tokenizer.h"
#include "tracemark/watermark/keyring.h"

namespace tracemark::redteam {
namespace {

constexpr char kModel[] = "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
constexpr char kWatermarked[] = "/tests/data/student/kgw_account7.jsonl";
constexpr char kClean[] = "/tests/data/student/clean_kjv.txt";
constexpr char kKeyring[] = "/tests/data/student/kgw_test.keyring";

struct Outcome {
  double log10_p = 0;
  int64_t tuples = 0;
  double final_loss = 0;
};

// Sized to finish in well under a minute on 2 idle cores: the student must see the watermarked
// windows several times (reading mode finds students that learned the teacher's choices in the
// texts' contexts), so the watermarked side is kept small.
constexpr size_t kWatermarkedDocs = 24;  // first half trains, second half is read by the probe
constexpr int32_t kSteps = 400;
constexpr int32_t kContext = 32;

Outcome TrainAndProbe(const std::string& root, double fraction, const std::string& out_path) {
  auto teacher = gguf::GgufFile::Open(root + kModel);
  EXPECT_TRUE(teacher.ok());
  auto tok = text::Tokenizer::FromGguf(**teacher);
  EXPECT_TRUE(tok.ok());
  auto wm = ReadDocuments(root + kWatermarked, "text");
  auto clean = ReadDocuments(root + kClean, "text");
  EXPECT_TRUE(wm.ok() && clean.ok());
  // The probe's reading mode never scores a (window, token) tuple that occurs in the texts it
  // reads (a good model of the language would otherwise look radioactive by predicting the text),
  // so a student that memorized the probe texts shows nothing: it is probed on held-out
  // watermarked texts of the same key, where it predicts what it learned at shared windows.
  std::vector<std::string> held_out(wm->begin() + std::min(wm->size(), kWatermarkedDocs), wm->end());
  if (wm->size() > kWatermarkedDocs) wm->resize(kWatermarkedDocs);
  StudentConfig c;
  c.n_vocab = (*tok)->vocab_size();
  c.d_model = 64;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_ctx = kContext;
  auto m = StudentModel::Create(c, 1);
  EXPECT_TRUE(m.ok());
  auto data = BuildTrainData(**tok, *wm, *clean, fraction, c.n_ctx + 1, 1);
  EXPECT_TRUE(data.ok()) << data.status().message();
  TrainOptions o;
  o.steps = kSteps;
  o.batch = 8;
  o.lr = 1e-2f;
  o.threads = 2;
  auto r = Train(&*m, *data, o);
  EXPECT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(WriteStudentGguf(*m, **teacher, out_path).ok());

  auto student = Model::Load(out_path);
  EXPECT_TRUE(student.ok());
  auto stok = text::Tokenizer::FromGguf((*student)->file());
  EXPECT_TRUE(stok.ok());
  auto read = probe::ReadTop1(**student, **stok, **tok, held_out, 2);
  EXPECT_TRUE(read.ok()) << read.status().message();
  // Keyrings must be private (mode 0600); the committed copy is checked out 0644.
  const std::string key_copy = out_path + ".keyring";
  std::filesystem::copy_file(root + kKeyring, key_copy, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::permissions(key_copy, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto keyring = watermark::Keyring::Load(key_copy);
  std::filesystem::remove(key_copy);
  EXPECT_TRUE(keyring.ok()) << keyring.status().message();
  auto res = probe::ScoreReading(*read, *keyring, probe::ProbeOptions{});
  EXPECT_TRUE(res.ok()) << res.status().message();
  std::filesystem::remove(out_path);
  std::printf("student %.0f%% watermarked (%lld wm + %lld clean tokens): loss %.3f -> %.3f in %.1f s, "
              "probe log10 p %.2f over %lld tuples\n",
              fraction * 100, static_cast<long long>(data->watermarked_tokens),
              static_cast<long long>(data->clean_tokens), r->initial_loss, r->final_loss, r->seconds,
              res->log10_p_value, static_cast<long long>(res->tuples_scored));
  return {res->log10_p_value, res->tuples_scored, r->final_loss};
}

// The control side of the experiment: a student trained on clean text only, probed in reading
// mode on watermarked texts, must not be called radioactive. (The positive side needs a student
// that memorized its watermarked text, tens of epochs, longer than a unit test: `tracemark replay`
// trains one and requires the completion-mode probe to find it, with a clean control, in the
// ctest replay_ci; bench/student_radioactivity.sh measures the fractions, docs/student.md.)
TEST(StudentRadioactivity, CleanStudentIsNotRadioactive) {
  const std::string root = TM_SOURCE_DIR;
  if (!std::filesystem::exists(root + kModel)) GTEST_SKIP() << root + kModel << " is missing";
  const Outcome clean = TrainAndProbe(root, 0.0, ::testing::TempDir() + "/student_wm0.gguf");
  EXPECT_LT(clean.final_loss, 6.0) << "the control student did not train";
  EXPECT_GT(clean.tuples, 300);
  // A true null gives p > 1e-2 99% of the time; the seeds here are fixed.
  EXPECT_GT(clean.log10_p, -2.0);
}

}  // namespace
}  // namespace tracemark::redteam
