// RedisRateLimiter: the per-account request and token buckets of RateLimiter, kept in Redis so
// that every replica of `tracemark serve --redis redis://HOST:PORT` draws from the same
// buckets. Each admission and each reconciliation is one Lua script (EVALSHA) that refills,
// checks and takes atomically, timed by the Redis server's clock (TIME), so replicas' clocks
// and interleavings add no error: over any interval of T ms the admitted requests are at most
// rpm + rpm * T / 60000 (the same bound as one local bucket), whatever the number of replicas.
// When Redis cannot be reached the result says so (available == false) and the caller falls
// back to its local limiter; during such an outage each replica enforces the full limit alone.
//
// Day and month token quotas are shared the same way: one Redis counter per account and period
// (UTC day, calendar month of this replica's clock), holding the tokens used plus the tokens
// reserved by requests in flight. The admission script checks them before the buckets
// (refusing with kDailyQuotaExceeded / kMonthlyQuotaExceeded when a counter has reached its
// quota, as the local RateLimiter does) and adds the reservation when it admits; Complete
// replaces the reservation by the real count. A counter that does not exist yet (new period,
// Redis restarted) is created from the durable usage (SetQuotaUsageSource) before it is used.
//
// All Redis I/O runs on one private thread: AdmitAsync and Complete only queue work, so the
// HTTP event loop never waits on the network; the `done` callback runs on that thread.
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "tracemark/base/status.h"
#include "tracemark/ledger/store.h"
#include "tracemark/policy/rate_limiter.h"

namespace tracemark::policy {

inline constexpr int kRedisConnectTimeoutMs = 1000;
// A command slower than this counts as a failure (the request falls back to local limits).
inline constexpr int kRedisCommandTimeoutMs = 250;
// After a failure, requests use local limits for this long before reconnecting is tried.
inline constexpr int64_t kRedisRetryBackoffMs = 1000;
// Queued operations beyond this are answered at once with available == false.
inline constexpr size_t kMaxRedisQueue = 4096;
inline constexpr std::string_view kRedisDefaultKeyPrefix = "tracemark:rl:";
// Quota counters live this long past the end of their period, so that requests still in flight
// at the boundary release their reservation from the counter they made it in.
inline constexpr int64_t kRedisQuotaKeyGraceMs = 3'600'000;

// The effective per-minute limits of an account (throttled: divided by kThrottleDivisor) and
// its token quotas (never divided).
struct BucketLimits {
  int64_t rpm = 0;  // 0: unlimited
  int64_t tpm = 0;
  int64_t tokens_per_day = 0;    // 0: no shared daily quota
  int64_t tokens_per_month = 0;  // 0: no shared monthly quota
};
BucketLimits EffectiveBucketLimits(const ledger::AccountLimits& limits, bool throttled);

struct SharedAdmission {
  bool available = false;  // false: Redis was not reachable; nothing was taken
  AdmitOutcome outcome = AdmitOutcome::kAdmitted;
  int64_t taken_tokens = 0;  // taken from the token bucket; pass to Complete
  int64_t retry_after_ms = 0;
  RateLimitHeaders headers;
  // Quota reservation (admitted only): tokens added to the day and month counters, and the
  // periods of the counters that got them (0: that quota is not set). Pass the whole admission
  // to Complete.
  int64_t quota_reserved = 0;
  int64_t day_start_ms = 0;
  int64_t month_start_ms = 0;
  // The counters after this admission (0 for a quota that is not set).
  int64_t tokens_today = 0;
  int64_t tokens_this_month = 0;
};

// Tokens an account has used in the current day and month, from the durable ledger.
struct QuotaUsage {
  int64_t tokens_today = 0;
  int64_t tokens_this_month = 0;
};
// Reads the usage of account_id finished since day_start_ms / month_start_ms. Runs on the
// limiter's thread, only when a quota counter has to be created.
using QuotaUsageSource = std::function<Result<QuotaUsage>(std::string_view account_id, int64_t day_start_ms,
                                                          int64_t month_start_ms)>;

// Parsed redis://[:PASSWORD@]HOST[:PORT][/DB].
struct RedisUrl {
  std::string host;
  int port = 6379;
  int db = 0;
  std::string password;
};
Result<RedisUrl> ParseRedisUrl(std::string_view url);

class RedisRateLimiter {
 public:
  // Connects (and loads the scripts) once to check the URL; fails if Redis is unreachable.
  // `clock` (not owned; nullptr: the system clock) decides the quota periods.
  static Result<std::unique_ptr<RedisRateLimiter>> Connect(
      std::string_view url, std::string_view key_prefix = kRedisDefaultKeyPrefix, const Clock* clock = nullptr);
  ~RedisRateLimiter();
  RedisRateLimiter(const RedisRateLimiter&) = delete;
  RedisRateLimiter& operator=(const RedisRateLimiter&) = delete;

  // Where new quota counters get their starting value. Without a source they start at 0. A
  // source that fails makes that admission unavailable (the caller falls back to local limits).
  void SetQuotaUsageSource(QuotaUsageSource source);

  // Checks the quotas, then takes one request and min(want_tokens, tpm) tokens, and reserves
  // want_tokens against the quotas; or takes nothing. `done` runs on the limiter's thread (or
  // inline when the queue is full).
  void AdmitAsync(std::string_view account_id, BucketLimits limits, int64_t want_tokens,
                  std::function<void(const SharedAdmission&)> done);
  // Blocking form of AdmitAsync (tests, benchmarks; never on an event loop).
  SharedAdmission Admit(std::string_view account_id, BucketLimits limits, int64_t want_tokens);
  // Queues the reconciliation of a request: releases the quota reservation of `admitted` and
  // charges actual_tokens to the current day and month counters (where they exist), refunds
  // taken - actual tokens to the token bucket (or charges the excess) and, with refund_request,
  // gives the request back (it was not served). An admission that was not made in Redis
  // (available == false: served under local limits during an outage) only charges the quota
  // counters.
  void Complete(std::string_view account_id, BucketLimits limits, const SharedAdmission& admitted,
                int64_t actual_tokens, bool refund_request = false);
  // Bucket-only form: refunds taken - actual tokens and, with refund_request, the request.
  void Complete(std::string_view account_id, BucketLimits limits, int64_t taken_tokens,
                int64_t actual_tokens, bool refund_request = false);
  // Header values from the last answer Redis gave for this account, refilled locally to now;
  // no round trip. Unknown accounts report full buckets.
  RateLimitHeaders Peek(std::string_view account_id, BucketLimits limits) const;
  // Blocks until every queued operation has run (tests).
  void Drain();
  // Operations that could not reach Redis since start.
  uint64_t failures() const;

 private:
  struct Impl;
  explicit RedisRateLimiter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tracemark::policy
