// Continuous batching on the real default model (skipped when the file is missing): concurrent
// jobs share decode steps, respect max_tokens and stop strings, and cancellation frees slots.
#include "tracemark/serve/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <future>

namespace tracemark::serve {
namespace {

const char* kModel = TM_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

struct Collected {
  std::string text;
  GenerationEvent done;
  std::promise<void> finished;
};

std::shared_ptr<GenerationJob> MakeJob(const text::Tokenizer& tok, const std::string& prompt, int max_tokens,
                                       std::shared_ptr<Collected> c, float temperature = 0.0f) {
  auto job = std::make_shared<GenerationJob>();
  job->prompt = tok.Encode(prompt, true, false);
  job->max_tokens = max_tokens;
  job->sampling.temperature = temperature;
  job->sampling.seed = 7;
  job->sink = [c](GenerationEvent e) {
    c->text += e.text;
    if (e.done) {
      c->done = std::move(e);
      c->finished.set_value();
    }
  };
  return job;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "model missing: " << kModel;
    auto m = Model::Load(kModel);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = std::move(m).value();
    auto t = text::Tokenizer::FromGguf(model_->file());
    ASSERT_TRUE(t.ok());
    tok_ = std::move(t).value();
  }
  std::unique_ptr<Model> model_;
  std::unique_ptr<text::Tokenizer> tok_;
};

TEST_F(SchedulerTest, ConcurrentJobsShareDecodeSteps) {
  SchedulerOptions opt;
  opt.slots = 4;
  opt.slot_context = 256;
  auto s = Scheduler::Create(*model_, *tok_, opt);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  constexpr int kJobs = 4;
  constexpr int kMax = 12;
  std::vector<std::shared_ptr<Collected>> out;
  for (int i = 0; i < kJobs; ++i) {
    auto c = std::make_shared<Collected>();
    out.push_back(c);
    ASSERT_TRUE((*s)->Submit(MakeJob(*tok_, "The history of number " + std::to_string(i) + " is", kMax, c, 0.8f)).ok());
  }
  for (auto& c : out) {
    ASSERT_EQ(c->finished.get_future().wait_for(std::chrono::seconds(120)), std::future_status::ready);
    ASSERT_TRUE(c->done.status.ok()) << c->done.status.ToString();
    EXPECT_GT(c->done.completion_tokens, 0);
    EXPECT_LE(c->done.completion_tokens, kMax);
    EXPECT_TRUE(c->done.finish_reason == "length" || c->done.finish_reason == "stop");
    if (c->done.finish_reason == "length") {
      EXPECT_EQ(c->done.completion_tokens, kMax);
    }
    EXPECT_GT(c->done.prompt_tokens, 3);
  }
  const SchedulerStats st = (*s)->stats();
  EXPECT_EQ(st.jobs_finished, static_cast<uint64_t>(kJobs));
  // Batched: far fewer forward passes than sampled tokens.
  EXPECT_LT(st.decode_steps, st.sampled_tokens);
  EXPECT_EQ(st.active, 0);
}

TEST_F(SchedulerTest, GreedyIsDeterministicAndStopsAtStopStrings) {
  SchedulerOptions opt;
  opt.slots = 2;
  opt.slot_context = 256;
  auto s = Scheduler::Create(*model_, *tok_, opt);
  ASSERT_TRUE(s.ok());
  auto a = std::make_shared<Collected>();
  auto b = std::make_shared<Collected>();
  ASSERT_TRUE((*s)->Submit(MakeJob(*tok_, "One, two, three, four,", 10, a)).ok());
  a->finished.get_future().wait();
  ASSERT_TRUE((*s)->Submit(MakeJob(*tok_, "One, two, three, four,", 10, b)).ok());
  b->finished.get_future().wait();
  EXPECT_EQ(a->text, b->text);
  ASSERT_FALSE(a->text.empty());
  // Stop at the first character of the greedy output's second half.
  const std::string stop = a->text.substr(a->text.size() / 2, 1);
  auto c = std::make_shared<Collected>();
  auto job = MakeJob(*tok_, "One, two, three, four,", 10, c);
  job->stop = {stop};
  ASSERT_TRUE((*s)->Submit(job).ok());
  c->finished.get_future().wait();
  EXPECT_EQ(c->done.finish_reason, "stop");
  EXPECT_EQ(c->text.find(stop), std::string::npos);
  EXPECT_EQ(c->text, a->text.substr(0, a->text.find(stop)));
}

// A seeded, sampled job gives the same text alone and among 7 other concurrent jobs: the
// kernels' results do not depend on the batch (8-token tiles) and the samplers, which run in
// parallel on the pool, each use only their own RNG and logits row.
TEST_F(SchedulerTest, SeededSamplingSameAloneAndBatched) {
  SchedulerOptions opt;
  opt.slots = 8;
  opt.slot_context = 256;
  auto s = Scheduler::Create(*model_, *tok_, opt);
  ASSERT_TRUE(s.ok());
  constexpr int kMax = 24;
  const std::string prompt = "Tell me a story about a lighthouse.";
  auto alone = std::make_shared<Collected>();
  ASSERT_TRUE((*s)->Submit(MakeJob(*tok_, prompt, kMax, alone, 1.0f)).ok());
  alone->finished.get_future().wait();
  ASSERT_TRUE(alone->done.status.ok());
  std::vector<std::shared_ptr<Collected>> out;
  for (int i = 0; i < 8; ++i) {
    auto c = std::make_shared<Collected>();
    out.push_back(c);
    const std::string p = i == 5 ? prompt : "Story " + std::to_string(i) + ": once upon a time";
    ASSERT_TRUE((*s)->Submit(MakeJob(*tok_, p, kMax, c, 1.0f)).ok());
  }
  for (auto& c : out) {
    ASSERT_EQ(c->finished.get_future().wait_for(std::chrono::seconds(120)), std::future_status::ready);
  }
  EXPECT_EQ(out[5]->text, alone->text);
  EXPECT_EQ(out[5]->done.completion_tokens, alone->done.completion_tokens);
}

TEST_F(SchedulerTest, RejectsOversizedAndCancels) {
  SchedulerOptions opt;
  opt.slots = 1;
  opt.slot_context = 64;
  opt.max_queued = 1;
  auto s = Scheduler::Create(*model_, *tok_, opt);
  ASSERT_TRUE(s.ok());
  auto c0 = std::make_shared<Collected>();
  EXPECT_EQ((*s)->Submit(MakeJob(*tok_, "hello", 100, c0)).code(), StatusCode::kInvalidArgument);
  auto bad = MakeJob(*tok_, "hello", 4, c0);
  bad->prompt.push_back((*s)->vocab_size());
  EXPECT_EQ((*s)->Submit(bad).code(), StatusCode::kInvalidArgument);
  auto c1 = std::make_shared<Collected>();
  auto long_job = MakeJob(*tok_, "Write a long story:", 40, c1);
  long_job->sampling.temperature = 0.9f;
  ASSERT_TRUE((*s)->Submit(long_job).ok());
  long_job->cancelled.store(true);
  ASSERT_EQ(c1->finished.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_FALSE(c1->done.status.ok());
  EXPECT_LT(c1->done.completion_tokens, 40);
}

}  // namespace
}  // namespace tracemark::serve
