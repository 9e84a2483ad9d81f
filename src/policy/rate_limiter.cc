// Token buckets and quotas: see include/tracemark/policy/rate_limiter.h.
#include "tracemark/policy/rate_limiter.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace tracemark::policy {

int64_t SystemClock::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void TokenBucket::Refill(int64_t now_ms) {
  if (now_ms > last_ms_) {
    level_ = std::min(capacity_, level_ + static_cast<double>(now_ms - last_ms_) * refill_per_ms_);
    last_ms_ = now_ms;
  }
}

bool TokenBucket::TryTake(double n, int64_t now_ms) {
  Refill(now_ms);
  if (level_ + 1e-9 < n) return false;
  level_ -= n;
  return true;
}

void TokenBucket::Give(double n, int64_t now_ms) {
  Refill(now_ms);
  level_ = std::min(capacity_, level_ + n);
}

void TokenBucket::ForceTake(double n, int64_t now_ms) {
  Refill(now_ms);
  level_ -= n;
}

double TokenBucket::Available(int64_t now_ms) {
  Refill(now_ms);
  return std::max(0.0, level_);
}

int64_t TokenBucket::MsUntilFull(int64_t now_ms) { return MsUntilAvailable(capacity_, now_ms); }

int64_t TokenBucket::MsUntilAvailable(double n, int64_t now_ms) {
  Refill(now_ms);
  if (level_ >= n) return 0;
  if (refill_per_ms_ <= 0) return INT64_MAX;
  return static_cast<int64_t>(std::ceil((n - level_) / refill_per_ms_));
}

void TokenBucket::Reconfigure(double capacity, double refill_per_ms, int64_t now_ms) {
  Refill(now_ms);
  capacity_ = capacity;
  refill_per_ms_ = refill_per_ms;
  level_ = std::min(level_, capacity_);
}

std::string FormatResetDuration(int64_t ms) {
  if (ms <= 0) return "0s";
  if (ms < 1000) return std::to_string(ms) + "ms";
  const int64_t s = (ms + 999) / 1000;
  if (s < 60) return std::to_string(s) + "s";
  const int64_t m = s / 60;
  if (m < 60) return std::to_string(m) + "m" + std::to_string(s % 60) + "s";
  return std::to_string(m / 60) + "h" + std::to_string(m % 60) + "m" + std::to_string(s % 60) + "s";
}

int64_t RateLimiter::DayStartMs(int64_t now_ms) {
  return now_ms - ((now_ms % kMsPerDay) + kMsPerDay) % kMsPerDay;
}

int64_t RateLimiter::MonthStartMs(int64_t now_ms) {
  using namespace std::chrono;  // NOLINT: calendar types only, local to this function
  const sys_days day{floor<days>(sys_time<milliseconds>(milliseconds(now_ms)))};
  const year_month_day ymd{day};
  const sys_days first{ymd.year() / ymd.month() / 1};
  return duration_cast<milliseconds>(first.time_since_epoch()).count();
}

void RateLimiter::RollPeriods(AccountState& st, int64_t now_ms) {
  const int64_t day = DayStartMs(now_ms);
  if (day != st.day_start_ms) {
    st.day_start_ms = day;
    st.tokens_today = 0;
  }
  const int64_t month = MonthStartMs(now_ms);
  if (month != st.month_start_ms) {
    st.month_start_ms = month;
    st.tokens_month = 0;
  }
}

RateLimiter::AccountState& RateLimiter::StateFor(std::string_view account_id,
                                                 const ledger::AccountLimits& limits,
                                                 bool throttled, int64_t now_ms) {
  auto [it, inserted] = accounts_.try_emplace(std::string(account_id));
  AccountState& st = it->second;
  if (inserted) {
    st.day_start_ms = DayStartMs(now_ms);
    st.month_start_ms = MonthStartMs(now_ms);
  }
  int64_t rpm = limits.requests_per_minute;
  int64_t tpm = limits.tokens_per_minute;
  if (throttled) {
    rpm = rpm > 0 ? std::max<int64_t>(1, rpm / kThrottleDivisor) : 0;
    tpm = tpm > 0 ? std::max<int64_t>(1, tpm / kThrottleDivisor) : 0;
  }
  if (rpm != st.rpm) {
    if (st.rpm < 0) {
      st.requests = TokenBucket(static_cast<double>(rpm), static_cast<double>(rpm) / kMsPerMinute, now_ms);
    } else {
      st.requests.Reconfigure(static_cast<double>(rpm), static_cast<double>(rpm) / kMsPerMinute, now_ms);
    }
    st.rpm = rpm;
  }
  if (tpm != st.tpm) {
    if (st.tpm < 0) {
      st.tokens = TokenBucket(static_cast<double>(tpm), static_cast<double>(tpm) / kMsPerMinute, now_ms);
    } else {
      st.tokens.Reconfigure(static_cast<double>(tpm), static_cast<double>(tpm) / kMsPerMinute, now_ms);
    }
    st.tpm = tpm;
  }
  RollPeriods(st, now_ms);
  return st;
}

RateLimitHeaders RateLimiter::Headers(AccountState& st, int64_t now_ms) {
  RateLimitHeaders h;
  h.limit_requests = st.rpm;
  h.remaining_requests = st.rpm > 0 ? static_cast<int64_t>(std::floor(st.requests.Available(now_ms))) : 0;
  h.reset_requests_ms = st.rpm > 0 ? st.requests.MsUntilFull(now_ms) : 0;
  h.limit_tokens = st.tpm;
  h.remaining_tokens = st.tpm > 0 ? static_cast<int64_t>(std::floor(st.tokens.Available(now_ms))) : 0;
  h.reset_tokens_ms = st.tpm > 0 ? st.tokens.MsUntilFull(now_ms) : 0;
  return h;
}

Admission RateLimiter::Admit(std::string_view account_id, const ledger::AccountLimits& limits,
                             bool throttled, int64_t estimated_tokens) {
  const int64_t now = clock_->NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  AccountState& st = StateFor(account_id, limits, throttled, now);
  Admission a;
  if (limits.tokens_per_day > 0 && st.tokens_today + st.inflight_reserved >= limits.tokens_per_day) {
    a.outcome = AdmitOutcome::kDailyQuotaExceeded;
    a.retry_after_ms = st.day_start_ms + kMsPerDay - now;
  } else if (limits.tokens_per_month > 0 &&
             st.tokens_month + st.inflight_reserved >= limits.tokens_per_month) {
    a.outcome = AdmitOutcome::kMonthlyQuotaExceeded;
    a.retry_after_ms = MonthStartMs(st.month_start_ms + 32 * kMsPerDay) - now;
  } else if (st.rpm > 0 && !st.requests.TryTake(1, now)) {
    a.outcome = AdmitOutcome::kRequestRateExceeded;
    a.retry_after_ms = st.requests.MsUntilAvailable(1, now);
  } else {
    // A request larger than the whole bucket could never pass; admit it when the bucket is full.
    const double want = st.tpm > 0 ? std::min<double>(static_cast<double>(estimated_tokens), st.tokens.capacity()) : 0;
    if (st.tpm > 0 && !st.tokens.TryTake(want, now)) {
      if (st.rpm > 0) st.requests.Give(1, now);  // the request was not served
      a.outcome = AdmitOutcome::kTokenRateExceeded;
      a.retry_after_ms = st.tokens.MsUntilAvailable(want, now);
    } else {
      a.reserved_tokens = estimated_tokens;
      st.inflight_reserved += estimated_tokens;
    }
  }
  a.headers = Headers(st, now);
  return a;
}

void RateLimiter::Complete(std::string_view account_id, int64_t reserved_tokens, int64_t actual_tokens) {
  const int64_t now = clock_->NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = accounts_.find(std::string(account_id));
  if (it == accounts_.end()) return;
  AccountState& st = it->second;
  RollPeriods(st, now);
  if (st.tpm > 0) {
    // Admit took min(reserved, capacity) from the bucket.
    const double taken = std::min<double>(static_cast<double>(reserved_tokens), st.tokens.capacity());
    const double diff = taken - static_cast<double>(actual_tokens);
    if (diff > 0) {
      st.tokens.Give(diff, now);
    } else if (diff < 0) {
      st.tokens.ForceTake(-diff, now);
    }
  }
  st.inflight_reserved = std::max<int64_t>(0, st.inflight_reserved - reserved_tokens);
  st.tokens_today += actual_tokens;
  st.tokens_month += actual_tokens;
}

RateLimitHeaders RateLimiter::Peek(std::string_view account_id, const ledger::AccountLimits& limits,
                                   bool throttled) {
  const int64_t now = clock_->NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  return Headers(StateFor(account_id, limits, throttled, now), now);
}

void RateLimiter::SeedUsage(std::string_view account_id, int64_t tokens_today, int64_t tokens_this_month) {
  const int64_t now = clock_->NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = accounts_.try_emplace(std::string(account_id));
  AccountState& st = it->second;
  st.day_start_ms = DayStartMs(now);
  st.month_start_ms = MonthStartMs(now);
  st.tokens_today = tokens_today;
  st.tokens_month = tokens_this_month;
}

}  // namespace tracemark::policy
