// Token buckets and quotas with an injected clock.
#include "tracemark/policy/rate_limiter.h"

#include <gtest/gtest.h>

namespace tracemark::policy {
namespace {

TEST(TokenBucket, RefillsContinuously) {
  TokenBucket b(10, 10.0 / 60000, 0);  // 10 per minute
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(b.TryTake(1, 0));
  EXPECT_FALSE(b.TryTake(1, 0));
  EXPECT_EQ(b.MsUntilAvailable(1, 0), 6000);
  EXPECT_FALSE(b.TryTake(1, 5999));
  EXPECT_TRUE(b.TryTake(1, 6000));
  EXPECT_EQ(b.MsUntilFull(6000), 60000);
  EXPECT_NEAR(b.Available(66000), 10, 1e-9);
  EXPECT_NEAR(b.Available(999999), 10, 1e-9);  // capped
  b.ForceTake(15, 999999);
  EXPECT_EQ(b.Available(999999), 0);
  EXPECT_FALSE(b.TryTake(1, 999999 + 6000 * 5));  // still 0 after 5 refills
  EXPECT_TRUE(b.TryTake(1, 999999 + 6000 * 6));
}

TEST(FormatResetDuration, OpenAiStyle) {
  EXPECT_EQ(FormatResetDuration(0), "0s");
  EXPECT_EQ(FormatResetDuration(250), "250ms");
  EXPECT_EQ(FormatResetDuration(6000), "6s");
  EXPECT_EQ(FormatResetDuration(90000), "1m30s");
  EXPECT_EQ(FormatResetDuration(3600000), "1h0m0s");
}

TEST(RateLimiter, RequestsPerMinute) {
  ManualClock clock(1'700'000'000'000);
  RateLimiter rl(&clock);
  ledger::AccountLimits lim{3, 0, 0, 0};
  for (int i = 0; i < 3; ++i) {
    Admission a = rl.Admit("a", lim, false, 10);
    EXPECT_EQ(a.outcome, AdmitOutcome::kAdmitted);
    EXPECT_EQ(a.headers.limit_requests, 3);
    EXPECT_EQ(a.headers.remaining_requests, 2 - i);
  }
  Admission denied = rl.Admit("a", lim, false, 10);
  EXPECT_EQ(denied.outcome, AdmitOutcome::kRequestRateExceeded);
  EXPECT_EQ(denied.retry_after_ms, 20000);
  // Another account is independent.
  EXPECT_EQ(rl.Admit("b", lim, false, 10).outcome, AdmitOutcome::kAdmitted);
  clock.Advance(20000);
  EXPECT_EQ(rl.Admit("a", lim, false, 10).outcome, AdmitOutcome::kAdmitted);
}

TEST(RateLimiter, ThrottledAccountsGetAQuarter) {
  ManualClock clock(0);
  RateLimiter rl(&clock);
  ledger::AccountLimits lim{8, 0, 0, 0};
  EXPECT_EQ(rl.Admit("a", lim, true, 1).headers.limit_requests, 2);
  EXPECT_EQ(rl.Admit("a", lim, true, 1).outcome, AdmitOutcome::kAdmitted);
  EXPECT_EQ(rl.Admit("a", lim, true, 1).outcome, AdmitOutcome::kRequestRateExceeded);
}

TEST(RateLimiter, TokensReserveThenReconcile) {
  ManualClock clock(0);
  RateLimiter rl(&clock);
  ledger::AccountLimits lim{0, 100, 0, 0};
  Admission a = rl.Admit("a", lim, false, 80);
  ASSERT_EQ(a.outcome, AdmitOutcome::kAdmitted);
  EXPECT_EQ(a.headers.remaining_tokens, 20);
  EXPECT_EQ(rl.Admit("a", lim, false, 30).outcome, AdmitOutcome::kTokenRateExceeded);
  rl.Complete("a", a.reserved_tokens, 10);  // used only 10 of 80: refund 70
  EXPECT_EQ(rl.Peek("a", lim, false).remaining_tokens, 90);
  Admission b = rl.Admit("a", lim, false, 30);
  EXPECT_EQ(b.outcome, AdmitOutcome::kAdmitted);
  rl.Complete("a", b.reserved_tokens, 50);  // used more than reserved: charged
  EXPECT_EQ(rl.Peek("a", lim, false).remaining_tokens, 40);
  // A request bigger than the bucket is admitted when the bucket is full.
  clock.Advance(60000);
  EXPECT_EQ(rl.Admit("a", lim, false, 500).outcome, AdmitOutcome::kAdmitted);
}

TEST(RateLimiter, DailyQuotaResetsAtUtcMidnight) {
  const int64_t day0 = 19'000LL * kMsPerDay;  // a UTC midnight
  ManualClock clock(day0 + 1000);
  RateLimiter rl(&clock);
  ledger::AccountLimits lim{0, 0, 100, 0};
  Admission a = rl.Admit("a", lim, false, 10);
  ASSERT_EQ(a.outcome, AdmitOutcome::kAdmitted);
  rl.Complete("a", a.reserved_tokens, 100);
  Admission q = rl.Admit("a", lim, false, 10);
  EXPECT_EQ(q.outcome, AdmitOutcome::kDailyQuotaExceeded);
  EXPECT_EQ(q.retry_after_ms, kMsPerDay - 1000);
  clock.Set(day0 + kMsPerDay);
  EXPECT_EQ(rl.Admit("a", lim, false, 10).outcome, AdmitOutcome::kAdmitted);
}

TEST(RateLimiter, MonthlyQuotaAndSeeding) {
  // 2024-02-10T12:00:00Z.
  const int64_t t = 1707566400000;
  EXPECT_EQ(RateLimiter::MonthStartMs(t), 1706745600000);  // 2024-02-01T00:00:00Z
  EXPECT_EQ(RateLimiter::DayStartMs(t), 1707523200000);    // 2024-02-10T00:00:00Z
  ManualClock clock(t);
  RateLimiter rl(&clock);
  ledger::AccountLimits lim{0, 0, 0, 1000};
  rl.SeedUsage("a", 0, 1000);
  Admission q = rl.Admit("a", lim, false, 1);
  EXPECT_EQ(q.outcome, AdmitOutcome::kMonthlyQuotaExceeded);
  EXPECT_EQ(q.retry_after_ms, 1709251200000 - t);  // until 2024-03-01
  clock.Set(1709251200000);
  EXPECT_EQ(rl.Admit("a", lim, false, 1).outcome, AdmitOutcome::kAdmitted);
}

TEST(RateLimiter, InflightReservationsCountAgainstQuota) {
  ManualClock clock(0);
  RateLimiter rl(&clock);
  ledger::AccountLimits lim{0, 0, 100, 0};
  EXPECT_EQ(rl.Admit("a", lim, false, 100).outcome, AdmitOutcome::kAdmitted);
  EXPECT_EQ(rl.Admit("a", lim, false, 1).outcome, AdmitOutcome::kDailyQuotaExceeded);
}

}  // namespace
}  // namespace tracemark::policy
