// MockEngine and MockTokenizer: deterministic scripted replies, the configured latency per token
// (never faster), max_tokens / stop strings / cancellation as the real Scheduler handles them,
// the watermark hook is consulted per token, and many jobs run at once without slots.
#include "tracemark/serve/mock_engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>

namespace tracemark::serve {
namespace {

struct Collected {
  std::string text;
  int events = 0;
  GenerationEvent done;
  std::promise<void> finished;
};

std::shared_ptr<GenerationJob> MakeJob(const MockTokenizer& tok, int max_tokens, std::shared_ptr<Collected> c,
                                       float temperature = 1.0f) {
  auto job = std::make_shared<GenerationJob>();
  job->prompt = tok.Encode("Hello", true, false);
  job->max_tokens = max_tokens;
  job->sampling.temperature = temperature;
  job->sampling.seed = 11;
  job->sink = [c](GenerationEvent e) {
    c->text += e.text;
    ++c->events;
    if (e.done) {
      c->done = std::move(e);
      c->finished.set_value();
    }
  };
  return job;
}

// Counts calls; lets the sampler draw (Choose returns -1).
class CountingHook : public SamplerHook {
 public:
  explicit CountingHook(std::atomic<int>* n) : n_(n) {}
  void Accept(int32_t) override { ++*n_; }

 private:
  std::atomic<int>* n_;
};

TEST(MockTokenizer, BytesAndSpecialTokensRoundTrip) {
  MockTokenizer tok;
  const std::vector<int32_t> ids = tok.Encode("<|im_start|>hi\xc3\xa9<|im_end|>", true, true);
  const std::vector<int32_t> want = {MockTokenizer::kBos, MockTokenizer::kImStart, 'h', 'i', 0xc3, 0xa9,
                                     MockTokenizer::kImEnd};
  EXPECT_EQ(ids, want);
  // Without parse_special the markup is plain bytes.
  EXPECT_EQ(tok.Encode("<s>", false, false).size(), 3u);
  EXPECT_EQ(tok.Decode(ids, /*skip_special=*/true), "hi\xc3\xa9");
  EXPECT_TRUE(tok.IsEog(MockTokenizer::kImEnd));
  EXPECT_EQ(tok.Find("<|im_end|>"), MockTokenizer::kImEnd);
  EXPECT_EQ(tok.Find("ab"), -1);
}

TEST(MockEngine, ScriptedReplyAtTheConfiguredLatency) {
  MockTokenizer tok;
  MockEngineOptions opt;
  opt.token_latency_us = 2000;
  opt.output_tokens = 10;
  auto e = MockEngine::Create(tok, opt);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  auto c = std::make_shared<Collected>();
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE((*e)->Submit(MakeJob(tok, 100, c)).ok());
  c->finished.get_future().wait();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(c->done.status.ok());
  EXPECT_EQ(c->text, "The quick ");
  EXPECT_EQ(c->done.finish_reason, "stop");
  EXPECT_EQ(c->done.completion_tokens, 10);
  EXPECT_EQ(c->done.prompt_tokens, 6);
  EXPECT_GE(ms, 20.0);  // 10 tokens x 2 ms, never faster
  const SchedulerStats s = (*e)->stats();
  EXPECT_EQ(s.sampled_tokens, 10u);
  EXPECT_EQ(s.jobs_finished, 1u);
  EXPECT_EQ(s.active, 0);
}

TEST(MockEngine, MaxTokensStopStringsAndGreedy) {
  MockTokenizer tok;
  MockEngineOptions opt;
  opt.token_latency_us = 0;
  opt.output_tokens = 100;
  auto e = MockEngine::Create(tok, opt);
  ASSERT_TRUE(e.ok());
  auto a = std::make_shared<Collected>();
  ASSERT_TRUE((*e)->Submit(MakeJob(tok, 3, a, 0.0f)).ok());
  auto b = std::make_shared<Collected>();
  auto job = MakeJob(tok, 50, b);
  job->stop = {"brown"};
  ASSERT_TRUE((*e)->Submit(job).ok());
  a->finished.get_future().wait();
  b->finished.get_future().wait();
  EXPECT_EQ(a->text, "The");
  EXPECT_EQ(a->done.finish_reason, "length");
  EXPECT_EQ(b->text, "The quick ");
  EXPECT_EQ(b->done.finish_reason, "stop");
}

TEST(MockEngine, HookSeesEveryTokenAndCancellationEndsAJob) {
  MockTokenizer tok;
  MockEngineOptions opt;
  opt.token_latency_us = 1000;
  opt.output_tokens = 8;
  auto e = MockEngine::Create(tok, opt);
  ASSERT_TRUE(e.ok());
  std::atomic<int> accepted{0};
  auto a = std::make_shared<Collected>();
  auto job = MakeJob(tok, 100, a);
  job->hook = std::make_unique<CountingHook>(&accepted);
  ASSERT_TRUE((*e)->Submit(job).ok());
  a->finished.get_future().wait();
  EXPECT_EQ(accepted.load(), 8);
  EXPECT_EQ(a->text, "The quic");

  opt.token_latency_us = 50'000;
  opt.output_tokens = 1000;
  auto slow = MockEngine::Create(tok, opt);
  ASSERT_TRUE(slow.ok());
  auto b = std::make_shared<Collected>();
  auto long_job = MakeJob(tok, 1000, b);
  ASSERT_TRUE((*slow)->Submit(long_job).ok());
  long_job->cancelled.store(true);
  ASSERT_EQ(b->finished.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_FALSE(b->done.status.ok());
}

TEST(MockEngine, ThousandConcurrentJobsAllFinish) {
  MockTokenizer tok;
  MockEngineOptions opt;
  opt.token_latency_us = 5000;
  opt.output_tokens = 20;
  auto e = MockEngine::Create(tok, opt);
  ASSERT_TRUE(e.ok());
  constexpr int kJobs = 1000;
  std::vector<std::shared_ptr<Collected>> all;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kJobs; ++i) {
    all.push_back(std::make_shared<Collected>());
    ASSERT_TRUE((*e)->Submit(MakeJob(tok, 100, all.back())).ok());
  }
  for (auto& c : all) c->finished.get_future().wait();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (auto& c : all) {
    ASSERT_EQ(c->text, "The quick brown fox ");
  }
  // Concurrent, not serialized: 1000 x 100 ms would be 100 s.
  EXPECT_LT(s, 20.0);
  EXPECT_EQ((*e)->stats().jobs_finished, static_cast<uint64_t>(kJobs));
}

TEST(MockEngine, RejectsBadOptionsAndOversizedJobs) {
  MockTokenizer tok;
  MockEngineOptions bad;
  bad.output_tokens = 0;
  EXPECT_FALSE(MockEngine::Create(tok, bad).ok());
  MockEngineOptions opt;
  opt.context = 8;
  auto e = MockEngine::Create(tok, opt);
  ASSERT_TRUE(e.ok());
  auto c = std::make_shared<Collected>();
  EXPECT_FALSE((*e)->Submit(MakeJob(tok, 10, c)).ok());  // 6 + 10 > 8
}

}  // namespace
}  // namespace tracemark::serve
