// RedisRateLimiter against a real, throwaway redis-server (tests/replicas/throwaway_servers.sh):
// two limiter objects stand in for two replicas. Skipped with a message only when redis-server
// is not installed. Also prints the admission round-trip latency (p50/p99).
#include "base/testing/throwaway_servers.h"
#include "tracemark/policy/redis_rate_limiter.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace tracemark::policy {
namespace {

constexpr int kScriptMissingServer = 3;

using testing::RunScript;
std::string Script() { return testing::ThrowawayServersScript(); }

// One redis-server for the whole binary.
class RedisServer {
 public:
  static RedisServer& Get() {
    static RedisServer s;
    created_ = true;
    return s;
  }
  static bool created() { return created_; }
  ~RedisServer() { Stop(); }
  void Stop() {
    if (!url_.empty()) {
      std::string ignored;
      RunScript(Script() + " redis-stop " + dir_, &ignored);
      url_.clear();
    }
  }
  void Cleanup() {
    Stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& url() const { return url_; }
  bool missing() const { return missing_; }
  const std::string& error() const { return error_; }

 private:
  RedisServer() {
    dir_ = (std::filesystem::temp_directory_path() / ("tm_redis_test_" + std::to_string(::getpid()))).string();
    std::filesystem::remove_all(dir_);
    const int rc = RunScript(Script() + " redis-start " + dir_, &url_);
    if (rc == kScriptMissingServer) missing_ = true;
    if (rc != 0) {
      error_ = "redis-server did not start (exit " + std::to_string(rc) + "); see " + dir_;
      url_.clear();
    }
  }
  static inline bool created_ = false;
  std::string dir_;
  std::string url_;
  std::string error_;
  bool missing_ = false;
};

// Stops the server and removes its directory once every test has run.
class CleanupEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    if (RedisServer::created()) RedisServer::Get().Cleanup();
  }
};
const ::testing::Environment* const kCleanup = ::testing::AddGlobalTestEnvironment(new CleanupEnvironment);

class RedisLimiter : public ::testing::Test {
 protected:
  void SetUp() override {
    RedisServer& s = RedisServer::Get();
    if (s.missing()) GTEST_SKIP() << "redis-server is not installed (apt install redis-server); shared limits untested";
    ASSERT_FALSE(s.url().empty()) << s.error();
    // A fresh key prefix per test: tests share the server, not the buckets.
    prefix_ = "test" + std::to_string(counter_++) + ":";
  }
  std::unique_ptr<RedisRateLimiter> Connect() {
    auto l = RedisRateLimiter::Connect(RedisServer::Get().url(), prefix_);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return l.ok() ? std::move(*l) : nullptr;
  }
  static inline int counter_ = 0;
  std::string prefix_;
};

TEST(RedisUrlTest, Parses) {
  auto u = ParseRedisUrl("redis://127.0.0.1:6380/2");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->db, 2);
  auto p = ParseRedisUrl("redis://:s3cret@cache");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->host, "cache");
  EXPECT_EQ(p->port, 6379);
  EXPECT_EQ(p->password, "s3cret");
  EXPECT_FALSE(ParseRedisUrl("http://x").ok());
  EXPECT_FALSE(ParseRedisUrl("redis://").ok());
  EXPECT_FALSE(ParseRedisUrl("redis://h:99999").ok());
  EXPECT_FALSE(ParseRedisUrl("redis://h:1/x").ok());
}

TEST(RedisUrlTest, EffectiveLimitsDivideWhenThrottled) {
  ledger::AccountLimits l{100, 1000, 0, 0};
  EXPECT_EQ(EffectiveBucketLimits(l, false).rpm, 100);
  EXPECT_EQ(EffectiveBucketLimits(l, true).rpm, 100 / kThrottleDivisor);
  EXPECT_EQ(EffectiveBucketLimits(l, true).tpm, 1000 / kThrottleDivisor);
  EXPECT_EQ(EffectiveBucketLimits({0, 0, 0, 0}, true).rpm, 0);
}

TEST(RedisUrlTest, UnreachableServerFailsToConnect) {
  auto l = RedisRateLimiter::Connect("redis://127.0.0.1:1");
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), StatusCode::kIoError);
}

// Two replicas hammer one account from four threads: the shared bucket admits exactly its
// capacity plus what refilled while the test ran, never the 2x that per-replica buckets would.
TEST_F(RedisLimiter, TwoReplicasShareOneRequestBucket) {
  auto a = Connect();
  auto b = Connect();
  ASSERT_TRUE(a && b);
  constexpr int64_t kRpm = 120;
  constexpr int kAttemptsPerThread = 100;
  std::atomic<int> admitted{0};
  std::atomic<int> refused{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    RedisRateLimiter* l = (t % 2 == 0) ? a.get() : b.get();
    threads.emplace_back([&, l] {
      for (int i = 0; i < kAttemptsPerThread; ++i) {
        SharedAdmission s = l->Admit("acct", {kRpm, 0}, 10);
        ASSERT_TRUE(s.available);
        if (s.outcome == AdmitOutcome::kAdmitted) {
          ++admitted;
        } else {
          EXPECT_EQ(s.outcome, AdmitOutcome::kRequestRateExceeded);
          EXPECT_GT(s.retry_after_ms, 0);
          ++refused;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const double bound = kRpm + elapsed_ms * kRpm / kMsPerMinute;
  std::printf("shared bucket: %d admitted of %d (capacity %lld, bound %.2f after %.0f ms)\n", admitted.load(),
              admitted.load() + refused.load(), static_cast<long long>(kRpm), bound, elapsed_ms);
  EXPECT_GE(admitted.load(), kRpm);
  EXPECT_LE(admitted.load(), static_cast<int>(bound) + 1);
}

TEST_F(RedisLimiter, TokenReservationsAreReconciled) {
  auto a = Connect();
  auto b = Connect();
  ASSERT_TRUE(a && b);
  const BucketLimits lim{0, 1000};
  SharedAdmission s1 = a->Admit("acct", lim, 400);
  SharedAdmission s2 = b->Admit("acct", lim, 400);
  ASSERT_TRUE(s1.available && s2.available);
  EXPECT_EQ(s1.outcome, AdmitOutcome::kAdmitted);
  EXPECT_EQ(s1.taken_tokens, 400);
  EXPECT_EQ(s2.outcome, AdmitOutcome::kAdmitted);
  EXPECT_LE(s2.headers.remaining_tokens, 200);
  SharedAdmission s3 = a->Admit("acct", lim, 400);
  EXPECT_EQ(s3.outcome, AdmitOutcome::kTokenRateExceeded);
  EXPECT_EQ(s3.taken_tokens, 0);
  EXPECT_GT(s3.retry_after_ms, 0);
  // Only 50 of the 400 were used: 350 come back, through the other replica.
  b->Complete("acct", lim, 400, 50);
  b->Drain();
  SharedAdmission s4 = a->Admit("acct", lim, 400);
  EXPECT_EQ(s4.outcome, AdmitOutcome::kAdmitted);
  // A request larger than the bucket takes the whole bucket, not more.
  SharedAdmission big = Connect()->Admit("other", lim, 5000);
  EXPECT_EQ(big.outcome, AdmitOutcome::kAdmitted);
  EXPECT_EQ(big.taken_tokens, 1000);
}

TEST_F(RedisLimiter, RefusedRequestIsGivenBack) {
  auto a = Connect();
  ASSERT_TRUE(a);
  const BucketLimits lim{2, 0};
  EXPECT_EQ(a->Admit("x", lim, 1).outcome, AdmitOutcome::kAdmitted);
  EXPECT_EQ(a->Admit("x", lim, 1).outcome, AdmitOutcome::kAdmitted);
  EXPECT_EQ(a->Admit("x", lim, 1).outcome, AdmitOutcome::kRequestRateExceeded);
  a->Complete("x", lim, 0, 0, /*refund_request=*/true);
  a->Drain();
  EXPECT_EQ(a->Admit("x", lim, 1).outcome, AdmitOutcome::kAdmitted);
  const RateLimitHeaders h = a->Peek("x", lim);
  EXPECT_EQ(h.limit_requests, 2);
  EXPECT_EQ(h.remaining_requests, 0);
  EXPECT_GT(h.reset_requests_ms, 0);
}

TEST_F(RedisLimiter, LoweredLimitClampsTheSharedLevel) {
  auto a = Connect();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->Admit("y", {100, 0}, 1).outcome, AdmitOutcome::kAdmitted);
  // Throttled to 2/min: the level is clamped to the new capacity.
  EXPECT_EQ(a->Admit("y", {2, 0}, 1).outcome, AdmitOutcome::kAdmitted);
  EXPECT_EQ(a->Admit("y", {2, 0}, 1).outcome, AdmitOutcome::kAdmitted);
  EXPECT_EQ(a->Admit("y", {2, 0}, 1).outcome, AdmitOutcome::kRequestRateExceeded);
}

// ---- shared day/month quotas ----

// Two replicas spend one daily quota: once one of them has used it up, the other refuses with
// kDailyQuotaExceeded too (per-replica counters would each have allowed the whole quota).
TEST_F(RedisLimiter, DailyQuotaIsSharedByTwoReplicas) {
  auto a = Connect();
  auto b = Connect();
  ASSERT_TRUE(a && b);
  const BucketLimits lim{0, 0, 1000, 0};
  SharedAdmission s1 = a->Admit("q", lim, 600);
  ASSERT_TRUE(s1.available);
  EXPECT_EQ(s1.outcome, AdmitOutcome::kAdmitted);
  EXPECT_EQ(s1.quota_reserved, 600);
  EXPECT_EQ(s1.tokens_today, 600);
  EXPECT_NE(s1.day_start_ms, 0);
  EXPECT_EQ(s1.month_start_ms, 0);  // no monthly quota set
  a->Complete("q", lim, s1, 700);   // used more than reserved: the counter holds the real 700
  a->Drain();
  SharedAdmission s2 = b->Admit("q", lim, 200);
  EXPECT_EQ(s2.outcome, AdmitOutcome::kAdmitted);
  EXPECT_EQ(s2.tokens_today, 900);
  b->Complete("q", lim, s2, 250);
  b->Drain();
  // 950 used: the next request is admitted (its reservation may overshoot, as locally)...
  SharedAdmission s3 = a->Admit("q", lim, 100);
  EXPECT_EQ(s3.outcome, AdmitOutcome::kAdmitted);
  a->Complete("q", lim, s3, 100);
  a->Drain();
  // ...and at 1050 both replicas refuse, with the time left until the UTC day ends.
  for (RedisRateLimiter* l : {a.get(), b.get()}) {
    SharedAdmission s = l->Admit("q", lim, 1);
    ASSERT_TRUE(s.available);
    EXPECT_EQ(s.outcome, AdmitOutcome::kDailyQuotaExceeded);
    EXPECT_EQ(s.quota_reserved, 0);
    EXPECT_EQ(s.tokens_today, 1050);
    EXPECT_GT(s.retry_after_ms, 0);
    EXPECT_LE(s.retry_after_ms, kMsPerDay);
  }
}

// In-flight reservations count: concurrent admissions from both replicas stop at the quota.
TEST_F(RedisLimiter, QuotaReservationsFromFourThreadsNeverExceedTheQuota) {
  auto a = Connect();
  auto b = Connect();
  ASSERT_TRUE(a && b);
  constexpr int64_t kQuota = 1000;
  constexpr int64_t kReserve = 10;
  const BucketLimits lim{0, 0, 0, kQuota};
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    RedisRateLimiter* l = (t % 2 == 0) ? a.get() : b.get();
    threads.emplace_back([&, l] {
      for (int i = 0; i < 50; ++i) {
        SharedAdmission s = l->Admit("m", lim, kReserve);
        ASSERT_TRUE(s.available);
        if (s.outcome == AdmitOutcome::kAdmitted) {
          ++admitted;
          l->Complete("m", lim, s, kReserve);
        } else {
          EXPECT_EQ(s.outcome, AdmitOutcome::kMonthlyQuotaExceeded);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  a->Drain();
  b->Drain();
  EXPECT_EQ(admitted.load(), kQuota / kReserve);
  EXPECT_EQ(a->Admit("m", lim, kReserve).tokens_this_month, kQuota);
}

// Unused reservations come back; a refused request reserves nothing.
TEST_F(RedisLimiter, UnusedQuotaReservationIsReleased) {
  auto a = Connect();
  ASSERT_TRUE(a);
  const BucketLimits lim{1, 0, 100, 100};
  SharedAdmission s1 = a->Admit("r", lim, 90);
  EXPECT_EQ(s1.outcome, AdmitOutcome::kAdmitted);
  // The request bucket (1/min) refuses the next one: nothing is added to the quota counters.
  SharedAdmission refused = a->Admit("r", lim, 90);
  EXPECT_EQ(refused.outcome, AdmitOutcome::kRequestRateExceeded);
  EXPECT_EQ(refused.tokens_today, 90);
  a->Complete("r", lim, s1, 5);
  a->Drain();
  SharedAdmission s2 = a->Admit("r", {0, 0, 100, 100}, 90);
  EXPECT_EQ(s2.outcome, AdmitOutcome::kAdmitted);
  EXPECT_EQ(s2.tokens_today, 95);
  EXPECT_EQ(s2.tokens_this_month, 95);
}

// A counter that does not exist yet starts from the durable usage, asked once per period.
TEST_F(RedisLimiter, NewQuotaCounterStartsFromTheLedger) {
  auto a = Connect();
  auto b = Connect();
  ASSERT_TRUE(a && b);
  std::atomic<int> calls{0};
  auto source = [&calls](std::string_view account, int64_t day_start, int64_t month_start) -> Result<QuotaUsage> {
    ++calls;
    EXPECT_EQ(account, "s");
    EXPECT_EQ(day_start % kMsPerDay, 0);
    EXPECT_LE(month_start, day_start);
    return QuotaUsage{990, 5000};
  };
  a->SetQuotaUsageSource(source);
  b->SetQuotaUsageSource(source);
  const BucketLimits lim{0, 0, 1000, 1'000'000};
  SharedAdmission s1 = a->Admit("s", lim, 50);
  EXPECT_EQ(s1.outcome, AdmitOutcome::kAdmitted);
  EXPECT_EQ(s1.tokens_today, 1040);
  EXPECT_EQ(s1.tokens_this_month, 5050);
  EXPECT_EQ(b->Admit("s", lim, 1).outcome, AdmitOutcome::kDailyQuotaExceeded);
  EXPECT_EQ(calls.load(), 1);
  // A failing source makes the admission unavailable (local limits), never unlimited.
  a->SetQuotaUsageSource([](std::string_view, int64_t, int64_t) -> Result<QuotaUsage> {
    return IoError("ledger down");
  });
  SharedAdmission s2 = a->Admit("t", lim, 1);
  EXPECT_FALSE(s2.available);
}

// A request that finishes in the next period releases its reservation from the old counter
// and is charged to the new one (as the ledger counts it, by finish time).
TEST_F(RedisLimiter, RequestAcrossMidnightIsChargedToTheDayItFinished) {
  ManualClock clock(1'764'201'600'000 - 1000);  // 2025-11-27 00:00:00 UTC minus 1 s
  auto l = RedisRateLimiter::Connect(RedisServer::Get().url(), prefix_, &clock);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  RedisRateLimiter& a = **l;
  const BucketLimits lim{0, 0, 1000, 0};
  SharedAdmission before = a.Admit("d", lim, 400);
  EXPECT_EQ(before.outcome, AdmitOutcome::kAdmitted);
  EXPECT_EQ(before.retry_after_ms, 0);
  clock.Advance(2000);  // the next UTC day
  SharedAdmission after = a.Admit("d", lim, 100);
  EXPECT_EQ(after.tokens_today, 100);  // a fresh counter
  EXPECT_NE(after.day_start_ms, before.day_start_ms);
  a.Complete("d", lim, before, 300);
  a.Drain();
  SharedAdmission next = a.Admit("d", lim, 1);
  EXPECT_EQ(next.tokens_today, 100 + 300 + 1);
  // The old day's counter lost its reservation of 400.
  clock.Advance(-2000);
  EXPECT_EQ(a.Admit("d", lim, 0).tokens_today, 0);
}

// The added latency of the shared path: one EVALSHA round trip through the limiter thread.
TEST_F(RedisLimiter, AdmissionLatency) {
  auto a = Connect();
  ASSERT_TRUE(a);
  constexpr int kSamples = 2000;
  std::vector<double> us;
  us.reserve(kSamples);
  for (int i = 0; i < kSamples; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    SharedAdmission s = a->Admit("lat" + std::to_string(i % 50), {1'000'000, 10'000'000}, 100);
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    ASSERT_TRUE(s.available);
  }
  std::sort(us.begin(), us.end());
  const double p50 = us[kSamples / 2];
  const double p99 = us[kSamples * 99 / 100];
  std::printf("redis admission round trip over %d calls: p50 %.0f us, p99 %.0f us, max %.0f us\n", kSamples, p50,
              p99, us.back());
  EXPECT_LT(p50, 1000.0 * kRedisCommandTimeoutMs);
}

// Runs last in this binary (gtest keeps declaration order): Redis goes away mid-flight and the
// limiter reports it instead of blocking; the caller then uses local limits.
TEST_F(RedisLimiter, ZzRedisDownIsReportedNotBlocking) {
  auto a = Connect();
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->Admit("z", {10, 0}, 1).available);
  RedisServer::Get().Stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto t0 = std::chrono::steady_clock::now();
  SharedAdmission s = a->Admit("z", {10, 0}, 1);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(s.available);
  EXPECT_LT(ms, kRedisConnectTimeoutMs + kRedisCommandTimeoutMs + 500.0);
  EXPECT_GE(a->failures(), 1u);
  // Within the back-off nothing touches the network.
  const auto t1 = std::chrono::steady_clock::now();
  EXPECT_FALSE(a->Admit("z", {10, 0}, 1).available);
  const double quick_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
  EXPECT_LT(quick_ms, 50.0);
}

}  // namespace
}  // namespace tracemark::policy
