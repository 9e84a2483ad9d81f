// Shared token buckets in Redis: see include/tracemark/policy/redis_rate_limiter.h and
// docs/api.md ("Several replicas"). hiredis stays inside this translation unit.
#include "tracemark/policy/redis_rate_limiter.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace tracemark::policy {
namespace {

// One hash per account: rl/rc request level and capacity, tl/tc token level and capacity, ts
// the Redis time (ms) of the last update. Levels refill at capacity per minute. The key
// expires once both buckets would be full again, so idle accounts cost nothing.
constexpr const char* kRefillLua = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'rl', 'rc', 'tl', 'tc', 'ts')
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local ts = tonumber(h[5]) or now
local dt = now - ts
if dt < 0 then dt = 0 end
local function level(l, cap, newcap)
  l = tonumber(l)
  cap = tonumber(cap)
  if l == nil or cap == nil then return newcap end
  l = l + dt * cap / 60000
  if l > cap then l = cap end
  if l > newcap then l = newcap end
  return l
end
local rl = level(h[1], h[2], rpm)
local tl = level(h[3], h[4], tpm)
)lua";

constexpr const char* kStoreLua = R"lua(
redis.call('HSET', KEYS[1], 'rl', rl, 'rc', rpm, 'tl', tl, 'tc', tpm, 'ts', now)
local full = 0
if rpm > 0 then full = math.max(full, (rpm - rl) * 60000 / rpm) end
if tpm > 0 then full = math.max(full, (tpm - tl) * 60000 / tpm) end
redis.call('PEXPIRE', KEYS[1], math.ceil(full) + 1000)
)lua";

// Outcomes of the admission script.
constexpr int64_t kLuaAdmitted = 0;
constexpr int64_t kLuaRequestRate = 1;
constexpr int64_t kLuaTokenRate = 2;
constexpr int64_t kLuaNeedSeed = 3;  // a quota counter does not exist: run again with seeds
constexpr int64_t kLuaDailyQuota = 4;
constexpr int64_t kLuaMonthlyQuota = 5;
// Every script answers {outcome, taken, retry ms, request level, token level, day counter,
// month counter}.
constexpr size_t kLuaReplyElements = 7;

// KEYS: bucket hash, day counter, month counter. ARGV: rpm, tpm, want, day quota, month quota,
// day counter EXPIREAT (s), month counter EXPIREAT (s), day seed, month seed (-1: none yet).
// Quota counters hold used + reserved tokens; a quota refuses once its counter has reached it.
const std::string& AdmitScript() {
  static const std::string kScript = std::string(kRefillLua) + R"lua(
local want = tonumber(ARGV[3])
-- Integers travel as the decimal strings the caller sent (Lua numbers print as 1e+15).
local function counter(key, quota, expire_at, seed)
  if quota <= 0 then return 0 end
  local v = redis.call('GET', key)
  if v then return tonumber(v) end
  if tonumber(seed) < 0 then return nil end
  redis.call('SET', key, seed)
  redis.call('EXPIREAT', key, expire_at)
  return tonumber(seed)
end
local dq = tonumber(ARGV[4])
local mq = tonumber(ARGV[5])
local ud = counter(KEYS[2], dq, ARGV[6], ARGV[8])
local um = counter(KEYS[3], mq, ARGV[7], ARGV[9])
if ud == nil or um == nil then return {3, 0, 0, '0', '0', 0, 0} end
local take = 0
if tpm > 0 then take = math.min(want, tpm) end
local outcome = 0
local retry = 0
if dq > 0 and ud >= dq then
  outcome = 4
elseif mq > 0 and um >= mq then
  outcome = 5
elseif rpm > 0 and rl + 1e-9 < 1 then
  outcome = 1
  retry = math.ceil((1 - rl) * 60000 / rpm)
elseif tpm > 0 and tl + 1e-9 < take then
  outcome = 2
  retry = math.ceil((take - tl) * 60000 / tpm)
else
  if rpm > 0 then rl = rl - 1 end
  tl = tl - take
  if dq > 0 then ud = redis.call('INCRBY', KEYS[2], ARGV[3]) end
  if mq > 0 then um = redis.call('INCRBY', KEYS[3], ARGV[3]) end
end
)lua" + kStoreLua + R"lua(
if outcome ~= 0 then take = 0 end
return {outcome, take, retry, tostring(rl), tostring(tl), ud, um}
)lua";
  return kScript;
}

// KEYS: bucket hash, day and month counters of the reservation, day and month counters of now.
// ARGV: rpm, tpm, token delta (refund > 0, charge < 0), refund request (0/1), reserved tokens,
// actual tokens, then 0/1 flags: release from the reservation's day / month counter, charge the
// current day / month counter. Counters that no longer exist are left alone (a new one is
// created from the ledger, which has this request).
const std::string& CompleteScript() {
  static const std::string kScript = std::string(kRefillLua) + R"lua(
local delta = tonumber(ARGV[3])
if tpm > 0 then tl = math.min(tpm, tl + delta) end
if rpm > 0 and ARGV[4] == '1' then rl = math.min(rpm, rl + 1) end
if ARGV[7] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECRBY', KEYS[2], ARGV[5]) end
if ARGV[8] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then redis.call('DECRBY', KEYS[3], ARGV[5]) end
local ud = 0
local um = 0
if ARGV[9] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then ud = redis.call('INCRBY', KEYS[4], ARGV[6]) end
if ARGV[10] == '1' and redis.call('EXISTS', KEYS[5]) == 1 then um = redis.call('INCRBY', KEYS[5], ARGV[6]) end
)lua" + kStoreLua + R"lua(
return {0, 0, 0, tostring(rl), tostring(tl), ud, um}
)lua";
  return kScript;
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

double ParseDouble(const redisReply* r) {
  if (r == nullptr) return 0;
  if (r->type == REDIS_REPLY_INTEGER) return static_cast<double>(r->integer);
  if (r->type != REDIS_REPLY_STRING) return 0;
  return std::strtod(std::string(r->str, r->len).c_str(), nullptr);
}

}  // namespace

BucketLimits EffectiveBucketLimits(const ledger::AccountLimits& limits, bool throttled) {
  BucketLimits b{limits.requests_per_minute, limits.tokens_per_minute, limits.tokens_per_day,
                 limits.tokens_per_month};
  if (throttled) {
    b.rpm = b.rpm > 0 ? std::max<int64_t>(1, b.rpm / kThrottleDivisor) : 0;
    b.tpm = b.tpm > 0 ? std::max<int64_t>(1, b.tpm / kThrottleDivisor) : 0;
  }
  return b;
}

Result<RedisUrl> ParseRedisUrl(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  auto bad = [&](const std::string& why) {
    return InvalidArgument("Redis URL '" + std::string(url.substr(0, 200)) + "' " + why +
                           " (expected redis://[:PASSWORD@]HOST[:PORT][/DB])");
  };
  if (url.substr(0, kScheme.size()) != kScheme) return bad("does not start with redis://");
  std::string_view rest = url.substr(kScheme.size());
  RedisUrl out;
  const size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view auth = rest.substr(0, at);
    const size_t colon = auth.find(':');
    out.password = std::string(colon == std::string_view::npos ? auth : auth.substr(colon + 1));
    rest = rest.substr(at + 1);
  }
  std::string_view hostport = rest;
  const size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      auto [p, ec] = std::from_chars(db.data(), db.data() + db.size(), out.db);
      if (ec != std::errc() || p != db.data() + db.size() || out.db < 0) return bad("has a bad database number");
    }
  }
  const size_t colon = hostport.rfind(':');
  if (colon != std::string_view::npos) {
    std::string_view port = hostport.substr(colon + 1);
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), out.port);
    if (ec != std::errc() || p != port.data() + port.size() || out.port <= 0 || out.port > 65535) {
      return bad("has a bad port");
    }
    hostport = hostport.substr(0, colon);
  }
  if (hostport.empty()) return bad("has no host");
  out.host = std::string(hostport);
  return out;
}

struct RedisRateLimiter::Impl {
  RedisUrl url;
  std::string prefix;
  const Clock* clock = nullptr;
  QuotaUsageSource usage_source;  // guarded by mu
  std::string admit_sha;
  std::string complete_sha;
  redisContext* ctx = nullptr;
  int64_t retry_at_ms = 0;  // steady clock; no connection attempt before this
  std::atomic<uint64_t> failures{0};

  struct Job {
    bool admit = true;
    std::string account_id;
    BucketLimits limits;
    int64_t want_tokens = 0;    // admit
    int64_t token_delta = 0;    // complete
    bool refund_request = false;
    SharedAdmission admitted;   // complete: the quota reservation to release
    int64_t actual_tokens = 0;  // complete
    std::function<void(const SharedAdmission&)> done;  // admit
  };
  std::mutex mu;
  std::condition_variable cv;
  std::condition_variable idle_cv;
  std::deque<Job> queue;
  bool busy = false;
  bool stopping = false;
  std::thread worker;

  // Last answer per account, for Peek.
  struct Seen {
    BucketLimits limits;
    double requests = 0;
    double tokens = 0;
    int64_t at_ms = 0;  // steady clock
  };
  mutable std::mutex seen_mu;
  std::unordered_map<std::string, Seen> seen;

  ~Impl() {
    if (ctx != nullptr) redisFree(ctx);
  }

  ReplyPtr Command(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    return ReplyPtr(static_cast<redisReply*>(
        redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data())));
  }

  Status Connect() {
    if (ctx != nullptr) {
      redisFree(ctx);
      ctx = nullptr;
    }
    const timeval connect_tv{kRedisConnectTimeoutMs / 1000, (kRedisConnectTimeoutMs % 1000) * 1000};
    ctx = redisConnectWithTimeout(url.host.c_str(), url.port, connect_tv);
    auto fail = [&](const std::string& what) {
      std::string msg = "Redis " + url.host + ":" + std::to_string(url.port) + ": " + what;
      if (ctx != nullptr && ctx->err != 0) msg += ": " + std::string(ctx->errstr);
      if (ctx != nullptr) redisFree(ctx);
      ctx = nullptr;
      return IoError(msg);
    };
    if (ctx == nullptr || ctx->err != 0) return fail("cannot connect");
    const timeval cmd_tv{kRedisCommandTimeoutMs / 1000, (kRedisCommandTimeoutMs % 1000) * 1000};
    if (redisSetTimeout(ctx, cmd_tv) != REDIS_OK) return fail("cannot set the command timeout");
    if (!url.password.empty()) {
      ReplyPtr r = Command({"AUTH", url.password});
      if (!r || r->type == REDIS_REPLY_ERROR) return fail("AUTH failed");
    }
    if (url.db != 0) {
      ReplyPtr r = Command({"SELECT", std::to_string(url.db)});
      if (!r || r->type == REDIS_REPLY_ERROR) return fail("SELECT " + std::to_string(url.db) + " failed");
    }
    for (auto [script, sha] : {std::pair{&AdmitScript(), &admit_sha}, std::pair{&CompleteScript(), &complete_sha}}) {
      ReplyPtr r = Command({"SCRIPT", "LOAD", *script});
      if (!r || r->type != REDIS_REPLY_STRING) {
        return fail(r && r->type == REDIS_REPLY_ERROR ? "SCRIPT LOAD: " + std::string(r->str, r->len)
                                                       : "SCRIPT LOAD failed");
      }
      *sha = std::string(r->str, r->len);
    }
    return Status::Ok();
  }

  // Runs one script; a null reply means Redis could not be used.
  ReplyPtr Eval(const std::string& sha, const std::string& script, const std::vector<std::string>& keys,
                const std::vector<std::string>& argv) {
    const int64_t now = SteadyMs();
    if (ctx == nullptr) {
      if (now < retry_at_ms) return nullptr;
      if (!Connect().ok()) {
        retry_at_ms = now + kRedisRetryBackoffMs;
        return nullptr;
      }
    }
    std::vector<std::string> args = {"EVALSHA", sha, std::to_string(keys.size())};
    args.insert(args.end(), keys.begin(), keys.end());
    args.insert(args.end(), argv.begin(), argv.end());
    ReplyPtr r = Command(args);
    if (r && r->type == REDIS_REPLY_ERROR && std::string_view(r->str, r->len).substr(0, 8) == "NOSCRIPT") {
      // Redis restarted or its script cache was flushed: EVAL loads the script again.
      args[0] = "EVAL";
      args[1] = script;
      r = Command(args);
    }
    if (!r || ctx->err != 0 || r->type != REDIS_REPLY_ARRAY || r->elements != kLuaReplyElements) {
      if (!r || ctx->err != 0) {
        redisFree(ctx);
        ctx = nullptr;
        retry_at_ms = now + kRedisRetryBackoffMs;
      }
      return nullptr;
    }
    return r;
  }

  void Remember(const std::string& account_id, BucketLimits limits, double requests, double tokens) {
    std::lock_guard<std::mutex> lock(seen_mu);
    seen[account_id] = Seen{limits, requests, tokens, SteadyMs()};
  }

  static RateLimitHeaders HeadersFrom(BucketLimits limits, double requests, double tokens) {
    RateLimitHeaders h;
    h.limit_requests = limits.rpm;
    h.limit_tokens = limits.tpm;
    if (limits.rpm > 0) {
      h.remaining_requests = static_cast<int64_t>(std::floor(std::max(0.0, requests)));
      h.reset_requests_ms = static_cast<int64_t>(
          std::ceil((static_cast<double>(limits.rpm) - requests) * kMsPerMinute / static_cast<double>(limits.rpm)));
    }
    if (limits.tpm > 0) {
      h.remaining_tokens = static_cast<int64_t>(std::floor(std::max(0.0, tokens)));
      h.reset_tokens_ms = static_cast<int64_t>(
          std::ceil((static_cast<double>(limits.tpm) - tokens) * kMsPerMinute / static_cast<double>(limits.tpm)));
    }
    return h;
  }

  std::string DayKey(const std::string& account_id, int64_t day_start_ms) const {
    return prefix + account_id + ":day:" + std::to_string(day_start_ms);
  }
  std::string MonthKey(const std::string& account_id, int64_t month_start_ms) const {
    return prefix + account_id + ":month:" + std::to_string(month_start_ms);
  }
  static int64_t NextMonthStartMs(int64_t month_start_ms) {
    return RateLimiter::MonthStartMs(month_start_ms + 32 * kMsPerDay);
  }

  // The admission script, run once more with seeds from the ledger when a counter is missing.
  ReplyPtr EvalAdmit(const Job& job, int64_t day_start, int64_t month_start) {
    const std::vector<std::string> keys = {prefix + job.account_id, DayKey(job.account_id, day_start),
                                           MonthKey(job.account_id, month_start)};
    std::vector<std::string> argv = {
        std::to_string(job.limits.rpm),
        std::to_string(job.limits.tpm),
        std::to_string(std::max<int64_t>(0, job.want_tokens)),
        std::to_string(std::max<int64_t>(0, job.limits.tokens_per_day)),
        std::to_string(std::max<int64_t>(0, job.limits.tokens_per_month)),
        std::to_string((day_start + kMsPerDay + kRedisQuotaKeyGraceMs) / 1000),
        std::to_string((NextMonthStartMs(month_start) + kRedisQuotaKeyGraceMs) / 1000),
        "-1",
        "-1"};
    ReplyPtr r = Eval(admit_sha, AdmitScript(), keys, argv);
    if (!r || r->element[0]->integer != kLuaNeedSeed) return r;
    QuotaUsage seed;
    QuotaUsageSource source;
    {
      std::lock_guard<std::mutex> lock(mu);
      source = usage_source;
    }
    if (source) {
      Result<QuotaUsage> usage = source(job.account_id, day_start, month_start);
      if (!usage.ok()) return nullptr;
      seed = *usage;
    }
    argv[7] = std::to_string(std::max<int64_t>(0, seed.tokens_today));
    argv[8] = std::to_string(std::max<int64_t>(0, seed.tokens_this_month));
    r = Eval(admit_sha, AdmitScript(), keys, argv);
    if (r && r->element[0]->integer == kLuaNeedSeed) return nullptr;  // cannot happen: seeds given
    return r;
  }

  void RunJob(Job& job) {
    const int64_t now = clock->NowMs();
    const int64_t day_start = RateLimiter::DayStartMs(now);
    const int64_t month_start = RateLimiter::MonthStartMs(now);
    if (job.admit) {
      SharedAdmission a;
      ReplyPtr r = EvalAdmit(job, day_start, month_start);
      if (r) {
        a.available = true;
        const int64_t outcome = r->element[0]->integer;
        a.outcome = outcome == kLuaRequestRate    ? AdmitOutcome::kRequestRateExceeded
                    : outcome == kLuaTokenRate    ? AdmitOutcome::kTokenRateExceeded
                    : outcome == kLuaDailyQuota   ? AdmitOutcome::kDailyQuotaExceeded
                    : outcome == kLuaMonthlyQuota ? AdmitOutcome::kMonthlyQuotaExceeded
                                                  : AdmitOutcome::kAdmitted;
        a.taken_tokens = r->element[1]->integer;
        a.retry_after_ms = r->element[2]->integer;
        if (outcome == kLuaDailyQuota) a.retry_after_ms = day_start + kMsPerDay - now;
        if (outcome == kLuaMonthlyQuota) a.retry_after_ms = NextMonthStartMs(month_start) - now;
        const double requests = ParseDouble(r->element[3]);
        const double tokens = ParseDouble(r->element[4]);
        a.headers = HeadersFrom(job.limits, requests, tokens);
        a.tokens_today = r->element[5]->integer;
        a.tokens_this_month = r->element[6]->integer;
        if (outcome == kLuaAdmitted) {
          a.quota_reserved = std::max<int64_t>(0, job.want_tokens);
          if (job.limits.tokens_per_day > 0) a.day_start_ms = day_start;
          if (job.limits.tokens_per_month > 0) a.month_start_ms = month_start;
        }
        Remember(job.account_id, job.limits, requests, tokens);
      } else {
        ++failures;
      }
      if (job.done) job.done(a);
      return;
    }
    const SharedAdmission& adm = job.admitted;
    const std::vector<std::string> keys = {
        prefix + job.account_id,
        DayKey(job.account_id, adm.day_start_ms),
        MonthKey(job.account_id, adm.month_start_ms),
        DayKey(job.account_id, day_start),
        MonthKey(job.account_id, month_start)};
    ReplyPtr r = Eval(complete_sha, CompleteScript(), keys,
                      {std::to_string(job.limits.rpm), std::to_string(job.limits.tpm),
                       std::to_string(job.token_delta), job.refund_request ? "1" : "0",
                       std::to_string(adm.quota_reserved), std::to_string(std::max<int64_t>(0, job.actual_tokens)),
                       adm.day_start_ms != 0 && adm.quota_reserved > 0 ? "1" : "0",
                       adm.month_start_ms != 0 && adm.quota_reserved > 0 ? "1" : "0",
                       job.limits.tokens_per_day > 0 ? "1" : "0", job.limits.tokens_per_month > 0 ? "1" : "0"});
    if (r) {
      Remember(job.account_id, job.limits, ParseDouble(r->element[3]), ParseDouble(r->element[4]));
    } else {
      ++failures;
    }
  }

  void Loop() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return stopping || !queue.empty(); });
      if (queue.empty()) return;  // stopping, and everything queued has run
      Job job = std::move(queue.front());
      queue.pop_front();
      busy = true;
      lock.unlock();
      RunJob(job);
      lock.lock();
      busy = false;
      if (queue.empty()) idle_cv.notify_all();
    }
  }

  void Enqueue(Job job) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (queue.size() < kMaxRedisQueue && !stopping) {
        queue.push_back(std::move(job));
        cv.notify_one();
        return;
      }
    }
    ++failures;
    if (job.admit && job.done) job.done(SharedAdmission{});
  }
};

RedisRateLimiter::RedisRateLimiter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RedisRateLimiter::~RedisRateLimiter() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
}

Result<std::unique_ptr<RedisRateLimiter>> RedisRateLimiter::Connect(std::string_view url,
                                                                    std::string_view key_prefix,
                                                                    const Clock* clock) {
  static const SystemClock kSystemClock;
  TM_ASSIGN_OR_RETURN(RedisUrl parsed, ParseRedisUrl(url));
  auto impl = std::make_unique<Impl>();
  impl->url = std::move(parsed);
  impl->prefix = std::string(key_prefix);
  impl->clock = clock != nullptr ? clock : &kSystemClock;
  TM_RETURN_IF_ERROR(impl->Connect());
  std::unique_ptr<RedisRateLimiter> limiter(new RedisRateLimiter(std::move(impl)));
  Impl* raw = limiter->impl_.get();
  raw->worker = std::thread([raw] { raw->Loop(); });
  return limiter;
}

void RedisRateLimiter::SetQuotaUsageSource(QuotaUsageSource source) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->usage_source = std::move(source);
}

void RedisRateLimiter::AdmitAsync(std::string_view account_id, BucketLimits limits, int64_t want_tokens,
                                  std::function<void(const SharedAdmission&)> done) {
  Impl::Job job;
  job.admit = true;
  job.account_id = std::string(account_id);
  job.limits = limits;
  job.want_tokens = want_tokens;
  job.done = std::move(done);
  impl_->Enqueue(std::move(job));
}

SharedAdmission RedisRateLimiter::Admit(std::string_view account_id, BucketLimits limits, int64_t want_tokens) {
  std::mutex mu;
  std::condition_variable cv;
  bool ready = false;
  SharedAdmission out;
  AdmitAsync(account_id, limits, want_tokens, [&](const SharedAdmission& a) {
    std::lock_guard<std::mutex> lock(mu);
    out = a;
    ready = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return ready; });
  return out;
}

void RedisRateLimiter::Complete(std::string_view account_id, BucketLimits limits, const SharedAdmission& admitted,
                                int64_t actual_tokens, bool refund_request) {
  // Only an admission made in Redis took from the shared buckets.
  const int64_t delta = admitted.available && limits.tpm > 0 ? admitted.taken_tokens - actual_tokens : 0;
  const bool quotas = admitted.quota_reserved > 0 || limits.tokens_per_day > 0 || limits.tokens_per_month > 0;
  if (delta == 0 && !(refund_request && admitted.available) && !quotas) return;
  Impl::Job job;
  job.admit = false;
  job.account_id = std::string(account_id);
  job.limits = limits;
  job.token_delta = delta;
  job.refund_request = refund_request && admitted.available;
  job.admitted = admitted;
  job.actual_tokens = actual_tokens;
  impl_->Enqueue(std::move(job));
}

void RedisRateLimiter::Complete(std::string_view account_id, BucketLimits limits, int64_t taken_tokens,
                                int64_t actual_tokens, bool refund_request) {
  limits.tokens_per_day = 0;
  limits.tokens_per_month = 0;
  SharedAdmission admitted;
  admitted.available = true;
  admitted.taken_tokens = taken_tokens;
  Complete(account_id, limits, admitted, actual_tokens, refund_request);
}

RateLimitHeaders RedisRateLimiter::Peek(std::string_view account_id, BucketLimits limits) const {
  double requests = static_cast<double>(limits.rpm);
  double tokens = static_cast<double>(limits.tpm);
  {
    std::lock_guard<std::mutex> lock(impl_->seen_mu);
    auto it = impl_->seen.find(std::string(account_id));
    if (it != impl_->seen.end()) {
      const double minutes = static_cast<double>(SteadyMs() - it->second.at_ms) / kMsPerMinute;
      requests = std::min(requests, it->second.requests + minutes * static_cast<double>(limits.rpm));
      tokens = std::min(tokens, it->second.tokens + minutes * static_cast<double>(limits.tpm));
    }
  }
  return Impl::HeadersFrom(limits, requests, tokens);
}

void RedisRateLimiter::Drain() {
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->idle_cv.wait(lock, [&] { return impl_->queue.empty() && !impl_->busy; });
}

uint64_t RedisRateLimiter::failures() const { return impl_->failures.load(); }

}  // namespace tracemark::policy
