// Per-account rate limits and quotas: token buckets for requests/minute and tokens/minute
// (GCRA-equivalent continuous refill, capacity = the per-minute limit), and token quotas per UTC
// day and calendar month. Tokens use reserve-then-reconcile: admission reserves the prompt plus
// max_tokens against the token bucket, completion refunds what was not generated and adds the
// actual total to the day/month counters. The clock is injected (tests drive time).
//
// Thread-safety: RateLimiter is safe to call from any thread (one mutex; O(1) work per call).
// TokenBucket itself is not synchronized.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "tracemark/ledger/store.h"

namespace tracemark::policy {

// Throttled accounts get their per-minute limits divided by this.
inline constexpr int64_t kThrottleDivisor = 4;
inline constexpr int64_t kMsPerMinute = 60'000;
inline constexpr int64_t kMsPerDay = 86'400'000;

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch.
  virtual int64_t NowMs() const = 0;
};

// The system wall clock.
class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override;
};

// A clock tests set by hand.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t now_ms = 0) : now_ms_(now_ms) {}
  int64_t NowMs() const override { return now_ms_; }
  void Set(int64_t ms) { now_ms_ = ms; }
  void Advance(int64_t ms) { now_ms_ += ms; }

 private:
  int64_t now_ms_;
};

class TokenBucket {
 public:
  TokenBucket() = default;
  // Starts full.
  TokenBucket(double capacity, double refill_per_ms, int64_t now_ms)
      : capacity_(capacity), refill_per_ms_(refill_per_ms), level_(capacity), last_ms_(now_ms) {}

  // Takes n when at least n is available; otherwise takes nothing.
  bool TryTake(double n, int64_t now_ms);
  // Returns n (capped at capacity).
  void Give(double n, int64_t now_ms);
  // Takes n even if that leaves the bucket negative (charging actual usage after the fact).
  void ForceTake(double n, int64_t now_ms);
  double Available(int64_t now_ms);
  // Milliseconds until the bucket is full again.
  int64_t MsUntilFull(int64_t now_ms);
  // Milliseconds until n is available (0 if now).
  int64_t MsUntilAvailable(double n, int64_t now_ms);
  double capacity() const { return capacity_; }
  // Changes capacity and rate, keeping the current level (clamped).
  void Reconfigure(double capacity, double refill_per_ms, int64_t now_ms);

 private:
  void Refill(int64_t now_ms);
  double capacity_ = 0;
  double refill_per_ms_ = 0;
  double level_ = 0;
  int64_t last_ms_ = 0;
};

// The x-ratelimit-* response header values.
struct RateLimitHeaders {
  int64_t limit_requests = 0;
  int64_t remaining_requests = 0;
  int64_t reset_requests_ms = 0;
  int64_t limit_tokens = 0;
  int64_t remaining_tokens = 0;
  int64_t reset_tokens_ms = 0;
};

// OpenAI-style duration text: "0s", "250ms", "6s", "1m30s".
std::string FormatResetDuration(int64_t ms);

enum class AdmitOutcome {
  kAdmitted,
  kRequestRateExceeded,  // 429 rate_limit_exceeded
  kTokenRateExceeded,    // 429 rate_limit_exceeded
  kDailyQuotaExceeded,   // 429 insufficient_quota
  kMonthlyQuotaExceeded, // 429 insufficient_quota
};

struct Admission {
  AdmitOutcome outcome = AdmitOutcome::kAdmitted;
  int64_t reserved_tokens = 0;  // pass back to Complete()
  int64_t retry_after_ms = 0;
  RateLimitHeaders headers;
};

class RateLimiter {
 public:
  explicit RateLimiter(const Clock* clock) : clock_(clock) {}

  // Checks quotas, then takes one request and `estimated_tokens` (prompt + max_tokens) from the
  // account's buckets. Limits of 0 for rpm/tpm mean unlimited (headers then report 0 as limit).
  Admission Admit(std::string_view account_id, const ledger::AccountLimits& limits, bool throttled,
                  int64_t estimated_tokens);
  // Reconciles a finished (or aborted) request: refunds reserved - actual to the token bucket
  // (or charges the excess) and adds actual_tokens to the day/month quota counters.
  void Complete(std::string_view account_id, int64_t reserved_tokens, int64_t actual_tokens);
  // Current header values without taking anything.
  RateLimitHeaders Peek(std::string_view account_id, const ledger::AccountLimits& limits,
                        bool throttled);
  // Seeds quota counters from the durable usage (at start-up).
  void SeedUsage(std::string_view account_id, int64_t tokens_today, int64_t tokens_this_month);

  // Start of the UTC day / calendar month containing now_ms.
  static int64_t DayStartMs(int64_t now_ms);
  static int64_t MonthStartMs(int64_t now_ms);

 private:
  struct AccountState {
    TokenBucket requests;
    TokenBucket tokens;
    int64_t rpm = -1;  // configuration the buckets were built for
    int64_t tpm = -1;
    int64_t day_start_ms = 0;
    int64_t month_start_ms = 0;
    int64_t tokens_today = 0;
    int64_t tokens_month = 0;
    int64_t inflight_reserved = 0;
  };
  AccountState& StateFor(std::string_view account_id, const ledger::AccountLimits& limits,
                         bool throttled, int64_t now_ms);
  RateLimitHeaders Headers(AccountState& st, int64_t now_ms);
  void RollPeriods(AccountState& st, int64_t now_ms);

  const Clock* clock_;
  std::mutex mu_;
  std::unordered_map<std::string, AccountState> accounts_;
};

}  // namespace tracemark::policy
