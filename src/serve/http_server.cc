// The HTTP front of `tracemark serve`: see include/tracemark/serve/server.h. Beast and Asio stay
// inside this translation unit.
#include <boost/asio.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>

#include "tracemark/base/file.h"
#include "tracemark/crypto/crypto.h"
#include "tracemark/ledger/usage_journal.h"
#include "tracemark/model/model.h"
#include "tracemark/monitor/monitor.h"
#include "tracemark/policy/accounts.h"
#include "tracemark/policy/rate_limiter.h"
#include "tracemark/policy/redis_rate_limiter.h"
#include "tracemark/policy/server_keys.h"
#include "tracemark/serve/api_types.h"
#include "tracemark/serve/chat_prompt.h"
#include "tracemark/serve/server.h"
#include "tracemark/watermark/hook.h"
#include "tracemark/watermark/keyring.h"

namespace tracemark::serve {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Json = nlohmann::json;
using EventChannel =
    net::experimental::concurrent_channel<void(boost::system::error_code, GenerationEvent)>;
using CommitChannel = net::experimental::concurrent_channel<void(boost::system::error_code, Status)>;
using AdmitChannel =
    net::experimental::concurrent_channel<void(boost::system::error_code, policy::SharedAdmission)>;

constexpr size_t kMaxAdminTokenBytes = 4096;
constexpr const char* kServerHeader = "tracemark";
// Bytes of the User-Agent header kept as the monitor's client fingerprint.
constexpr size_t kMaxUserAgentBytes = 256;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string DumpJson(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// Counters exported on /metrics.
struct Metrics {
  std::atomic<uint64_t> requests_total{0};
  std::atomic<uint64_t> responses_2xx{0};
  std::atomic<uint64_t> responses_4xx{0};
  std::atomic<uint64_t> responses_5xx{0};
  std::atomic<uint64_t> responses_401{0};
  std::atomic<uint64_t> responses_403{0};
  std::atomic<uint64_t> responses_429{0};
  std::atomic<uint64_t> completion_tokens{0};
  std::atomic<uint64_t> prompt_tokens{0};
  std::atomic<uint64_t> streams_total{0};
  std::atomic<uint64_t> clients_dropped{0};
  std::atomic<int64_t> connections{0};
  // Distillation monitor.
  std::atomic<uint64_t> monitor_observe_failures{0};
  std::atomic<uint64_t> monitor_evaluations{0};
  std::atomic<uint64_t> monitor_actions{0};
  std::atomic<uint64_t> monitor_action_failures{0};
  std::atomic<int64_t> monitor_accounts_tracked{0};
  std::atomic<int64_t> monitor_accounts_flag{0};      // merited level at the last Evaluate
  std::atomic<int64_t> monitor_accounts_throttle{0};
  std::atomic<int64_t> monitor_accounts_suspend{0};
  void Count(int status) {
    if (status < 300) ++responses_2xx;
    else if (status < 500) ++responses_4xx;
    else ++responses_5xx;
    if (status == 401) ++responses_401;
    if (status == 403) ++responses_403;
    if (status == 429) ++responses_429;
  }
};

struct ServerState {
  ServerOptions options;
  std::unique_ptr<Model> model;
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::unique_ptr<ChatPrompt> chat;
  std::unique_ptr<GenerationEngine> scheduler;  // Scheduler, or MockEngine with --engine mock
  std::unique_ptr<watermark::Keyring> keyring;
  std::string wm_scheme;
  int wm_key_version = 0;
  std::unique_ptr<ledger::LedgerStore> store;
  std::unique_ptr<ledger::AuditSigner> signer;
  std::unique_ptr<ledger::AuditLog> audit;
  policy::SystemClock clock;
  std::unique_ptr<policy::AccountService> accounts;
  std::unique_ptr<policy::AuthCache> auth;
  std::unique_ptr<policy::RateLimiter> limiter;
  // --redis: request/token buckets shared by every replica; `limiter` then keeps only the
  // day/month quotas, and `fallback_limiter` the buckets while Redis is unreachable.
  std::unique_ptr<policy::RedisRateLimiter> shared_limiter;
  std::unique_ptr<policy::RateLimiter> fallback_limiter;
  std::unique_ptr<ledger::UsageJournal> journal;
  std::unique_ptr<monitor::Monitor> monitor;
  std::string admin_token;  // empty: admin API off
  std::string demo_key;     // set when a demo account was created at start-up
  std::string model_id;
  int64_t model_created = 0;
  Metrics metrics;
  std::mutex rng_mu;
  std::mt19937_64 rng{std::random_device{}()};

  std::string NewId(const char* prefix) {
    static constexpr char kAlnum[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    std::string id = prefix;
    std::lock_guard<std::mutex> lock(rng_mu);
    for (int i = 0; i < 24; ++i) id.push_back(kAlnum[rng() % 62]);
    return id;
  }
  uint64_t NewSeed() {
    std::lock_guard<std::mutex> lock(rng_mu);
    return rng();
  }
};

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

void SetRateLimitHeaders(http::fields& f, const policy::RateLimitHeaders& h) {
  f.set("x-ratelimit-limit-requests", std::to_string(h.limit_requests));
  f.set("x-ratelimit-remaining-requests", std::to_string(h.remaining_requests));
  f.set("x-ratelimit-reset-requests", policy::FormatResetDuration(h.reset_requests_ms));
  f.set("x-ratelimit-limit-tokens", std::to_string(h.limit_tokens));
  f.set("x-ratelimit-remaining-tokens", std::to_string(h.remaining_tokens));
  f.set("x-ratelimit-reset-tokens", policy::FormatResetDuration(h.reset_tokens_ms));
}

Response MakeResponse(const Request& req, int status, std::string body, const char* content_type) {
  Response res{static_cast<http::status>(status), req.version()};
  res.set(http::field::server, kServerHeader);
  res.set(http::field::content_type, content_type);
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

Response ErrorResponse(const Request& req, const ApiError& e) {
  return MakeResponse(req, e.http_status, ErrorBody(e), "application/json");
}

ApiError MakeError(int status, std::string message, std::string type, std::optional<std::string> code,
                   std::optional<std::string> param = std::nullopt) {
  ApiError e;
  e.http_status = status;
  e.message = std::move(message);
  e.type = std::move(type);
  e.code = std::move(code);
  e.param = std::move(param);
  return e;
}

std::string BearerToken(const Request& req) {
  auto it = req.find(http::field::authorization);
  if (it == req.end()) return "";
  std::string_view v(it->value().data(), it->value().size());
  constexpr std::string_view kBearer = "Bearer ";
  if (v.size() < kBearer.size() || !std::equal(kBearer.begin(), kBearer.end(), v.begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
      })) {
    return "";
  }
  v.remove_prefix(kBearer.size());
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  return std::string(v);
}

// Authenticates; on failure fills *err with the OpenAI-shaped error.
std::optional<policy::AuthResult> Authenticate(ServerState& st, const Request& req, ApiError* err) {
  const std::string key = BearerToken(req);
  policy::AuthResult r = st.auth->Authenticate(key);
  switch (r.error) {
    case policy::AuthError::kNone:
      return r;
    case policy::AuthError::kMissingKey:
      *err = MakeError(401,
                       "You didn't provide an API key. You need to provide your API key in an "
                       "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                       "invalid_request_error", "invalid_api_key");
      return std::nullopt;
    case policy::AuthError::kInvalidKey:
      *err = MakeError(401, "Incorrect API key provided: " + policy::RedactApiKey(key) + ".",
                       "invalid_request_error", "invalid_api_key");
      return std::nullopt;
    case policy::AuthError::kSuspended:
      *err = MakeError(403,
                       "This account is suspended pending an investigation of its usage. If you "
                       "believe this is an error, contact the provider.",
                       "access_denied", "account_suspended");
      return std::nullopt;
    case policy::AuthError::kTerminated:
      *err = MakeError(403, "This key is associated with a deactivated account.", "access_denied",
                       "account_deactivated");
      return std::nullopt;
  }
  return std::nullopt;
}

template <class Body>
net::awaitable<bool> Send(beast::tcp_stream& stream, http::response<Body>& res, ServerState& st) {
  st.metrics.Count(static_cast<int>(res.result_int()));
  stream.expires_after(std::chrono::seconds(kWriteTimeoutSeconds));
  boost::system::error_code ec;
  co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
  co_return !ec;
}

net::awaitable<bool> WriteChunk(beast::tcp_stream& stream, const std::string& data) {
  stream.expires_after(std::chrono::seconds(kWriteTimeoutSeconds));
  boost::system::error_code ec;
  co_await net::async_write(stream, http::make_chunk(net::buffer(data)),
                            net::redirect_error(net::use_awaitable, ec));
  co_return !ec;
}

// ---- /v1/models ----
Response ModelsResponse(ServerState& st, const Request& req) {
  Json m = {{"id", st.model_id}, {"object", "model"}, {"created", st.model_created}, {"owned_by", "tracemark"}};
  Json body = {{"object", "list"}, {"data", Json::array({m})}};
  return MakeResponse(req, 200, DumpJson(body), "application/json");
}

// ---- /metrics ----
Response MetricsResponse(ServerState& st, const Request& req) {
  const SchedulerStats s = st.scheduler->stats();
  const Metrics& m = st.metrics;
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& value,
                    const char* labels = "") {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name +
           labels + " " + value + "\n";
  };
  metric("tracemark_http_requests_total", "counter", "HTTP requests received.", std::to_string(m.requests_total.load()));
  out += "# HELP tracemark_http_responses_total HTTP responses by status class.\n"
         "# TYPE tracemark_http_responses_total counter\n";
  out += "tracemark_http_responses_total{code=\"2xx\"} " + std::to_string(m.responses_2xx.load()) + "\n";
  out += "tracemark_http_responses_total{code=\"4xx\"} " + std::to_string(m.responses_4xx.load()) + "\n";
  out += "tracemark_http_responses_total{code=\"5xx\"} " + std::to_string(m.responses_5xx.load()) + "\n";
  out += "tracemark_http_responses_total{code=\"401\"} " + std::to_string(m.responses_401.load()) + "\n";
  out += "tracemark_http_responses_total{code=\"403\"} " + std::to_string(m.responses_403.load()) + "\n";
  out += "tracemark_http_responses_total{code=\"429\"} " + std::to_string(m.responses_429.load()) + "\n";
  if (st.shared_limiter) {
    metric("tracemark_ratelimit_redis_failures_total", "counter",
           "Rate-limit and quota operations that could not reach Redis (served under this replica's own "
           "buckets and quotas).",
           std::to_string(st.shared_limiter->failures()));
  }
  metric("tracemark_open_connections", "gauge", "Open client connections.", std::to_string(m.connections.load()));
  metric("tracemark_sse_streams_total", "counter", "Streaming responses started.", std::to_string(m.streams_total.load()));
  metric("tracemark_clients_dropped_total", "counter", "Clients dropped on write failure or timeout.",
         std::to_string(m.clients_dropped.load()));
  metric("tracemark_prompt_tokens_total", "counter", "Prompt tokens of completed requests.", std::to_string(m.prompt_tokens.load()));
  metric("tracemark_completion_tokens_total", "counter", "Completion tokens of completed requests.",
         std::to_string(m.completion_tokens.load()));
  metric("tracemark_decode_steps_total", "counter", "Batched forward passes.", std::to_string(s.decode_steps));
  metric("tracemark_decode_batch_rows_total", "counter", "Tokens over all forward passes.", std::to_string(s.batch_rows));
  metric("tracemark_sampled_tokens_total", "counter", "Tokens sampled by the scheduler.", std::to_string(s.sampled_tokens));
  metric("tracemark_active_sequences", "gauge", "Sequences in KV slots.", std::to_string(s.active));
  metric("tracemark_queued_requests", "gauge", "Requests waiting for a slot.", std::to_string(s.queued));
  metric("tracemark_usage_records_committed_total", "counter", "Usage records made durable in the journal.",
         std::to_string(st.journal->committed_records()));
  metric("tracemark_usage_journal_fsyncs_total", "counter", "Group-commit fsyncs of the usage journal.",
         std::to_string(st.journal->fsyncs()));
  metric("tracemark_monitor_observe_failures_total", "counter", "Requests the distillation monitor could not score.",
         std::to_string(m.monitor_observe_failures.load()));
  metric("tracemark_monitor_evaluations_total", "counter", "Distillation monitor evaluation passes.",
         std::to_string(m.monitor_evaluations.load()));
  metric("tracemark_monitor_actions_total", "counter", "Monitor actions applied (flag, throttle, suspend).",
         std::to_string(m.monitor_actions.load()));
  metric("tracemark_monitor_action_failures_total", "counter", "Monitor actions that could not be applied.",
         std::to_string(m.monitor_action_failures.load()));
  metric("tracemark_monitor_accounts", "gauge", "Accounts tracked by the distillation monitor.",
         std::to_string(m.monitor_accounts_tracked.load()));
  out += "# HELP tracemark_monitor_accounts_at_level Accounts whose score merits each rung at the last evaluation "
         "(also in shadow mode).\n# TYPE tracemark_monitor_accounts_at_level gauge\n";
  out += "tracemark_monitor_accounts_at_level{level=\"flag\"} " + std::to_string(m.monitor_accounts_flag.load()) + "\n";
  out += "tracemark_monitor_accounts_at_level{level=\"throttle\"} " +
         std::to_string(m.monitor_accounts_throttle.load()) + "\n";
  out += "tracemark_monitor_accounts_at_level{level=\"suspend\"} " +
         std::to_string(m.monitor_accounts_suspend.load()) + "\n";
  return MakeResponse(req, 200, std::move(out), "text/plain; version=0.0.4");
}

// ---- completions ----
Json UsageJson(int32_t prompt, int32_t completion) {
  return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

Json ChunkJson(bool chat, const std::string& id, int64_t created, const std::string& model,
               const std::string* text, const char* finish_reason, bool first, bool include_usage,
               int32_t index = 0) {
  Json choice;
  choice["index"] = index;
  if (chat) {
    Json delta = Json::object();
    if (first) delta["role"] = "assistant";
    if (text) delta["content"] = *text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text ? *text : "";
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason ? Json(finish_reason) : Json();
  Json j = {{"id", id},
            {"object", chat ? "chat.completion.chunk" : "text_completion"},
            {"created", created},
            {"model", model},
            {"system_fingerprint", nullptr},
            {"choices", Json::array({choice})}};
  if (include_usage) j["usage"] = nullptr;
  return j;
}

// The client's network prefix for cross-account linkage: /24 for IPv4 (and v4-mapped IPv6),
// /48 for IPv6; "" when the peer is unknown.
std::string NetworkPrefix(beast::tcp_stream& stream) {
  boost::system::error_code ec;
  const tcp::endpoint peer = stream.socket().remote_endpoint(ec);
  if (ec) return "";
  net::ip::address a = peer.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped()) a = net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6());
  if (a.is_v4()) {
    net::ip::address_v4::bytes_type b = a.to_v4().to_bytes();
    b[3] = 0;
    return net::ip::address_v4(b).to_string() + "/24";
  }
  net::ip::address_v6::bytes_type b = a.to_v6().to_bytes();
  for (size_t i = 6; i < b.size(); ++i) b[i] = 0;
  return net::ip::address_v6(b).to_string() + "/48";
}

// ---- rate limits: local buckets, or with --redis the buckets shared by all replicas ----
// An admission, plus where its bucket reservation was made (released by CompleteRequest).
struct AdmissionTicket : policy::Admission {
  bool via_redis = false;        // buckets taken in Redis (else in a local limiter)
  policy::SharedAdmission redis;  // with --redis: the shared quota reservation to settle
};

ledger::AccountLimits QuotasOnly(ledger::AccountLimits l) {
  l.requests_per_minute = 0;
  l.tokens_per_minute = 0;
  return l;
}

ledger::AccountLimits BucketsOnly(ledger::AccountLimits l) {
  l.tokens_per_day = 0;
  l.tokens_per_month = 0;
  return l;
}

policy::RateLimitHeaders PeekLimits(ServerState& st, const ledger::AccountRecord& account, bool throttled) {
  if (!st.shared_limiter) return st.limiter->Peek(account.id, account.limits, throttled);
  return st.shared_limiter->Peek(account.id, policy::EffectiveBucketLimits(account.limits, throttled));
}

// Quotas first (local, seeded from the ledger), then the buckets: with --redis one Lua script
// on the limiter's own thread while this coroutine waits without blocking the event loop.
net::awaitable<AdmissionTicket> AdmitRequest(ServerState& st, const ledger::AccountRecord& account, bool throttled,
                                             int64_t estimated_tokens) {
  AdmissionTicket t;
  if (!st.shared_limiter) {
    static_cast<policy::Admission&>(t) = st.limiter->Admit(account.id, account.limits, throttled, estimated_tokens);
    co_return t;
  }
  static_cast<policy::Admission&>(t) =
      st.limiter->Admit(account.id, QuotasOnly(account.limits), throttled, estimated_tokens);
  if (t.outcome != policy::AdmitOutcome::kAdmitted) {
    t.headers = PeekLimits(st, account, throttled);
    co_return t;
  }
  const policy::BucketLimits buckets = policy::EffectiveBucketLimits(account.limits, throttled);
  auto channel = std::make_shared<AdmitChannel>(co_await net::this_coro::executor, 1);
  st.shared_limiter->AdmitAsync(account.id, buckets, estimated_tokens, [channel](const policy::SharedAdmission& a) {
    channel->try_send(boost::system::error_code{}, a);
  });
  boost::system::error_code ec;
  policy::SharedAdmission shared = co_await channel->async_receive(net::redirect_error(net::use_awaitable, ec));
  if (ec) shared.available = false;
  t.redis = shared;
  if (shared.available) {
    t.via_redis = true;
    t.outcome = shared.outcome;
    t.retry_after_ms = shared.retry_after_ms;
    t.headers = shared.headers;
  } else {
    // Redis unreachable: this replica's own buckets (each replica then allows the full limit).
    const policy::Admission local =
        st.fallback_limiter->Admit(account.id, BucketsOnly(account.limits), throttled, estimated_tokens);
    t.outcome = local.outcome;
    t.retry_after_ms = local.retry_after_ms;
    t.headers = local.headers;
  }
  if (t.outcome != policy::AdmitOutcome::kAdmitted) {
    st.limiter->Complete(account.id, t.reserved_tokens, 0);  // release the quota reservation
    t.reserved_tokens = 0;
  }
  co_return t;
}

// Reconciles an admitted request with what it actually used.
void CompleteRequest(ServerState& st, const ledger::AccountRecord& account, bool throttled, const AdmissionTicket& t,
                     int64_t actual_tokens) {
  st.limiter->Complete(account.id, t.reserved_tokens, actual_tokens);
  if (!st.shared_limiter) return;
  // Settles the shared quota reservation (and, for an admission made in Redis, the buckets);
  // usage served under local limits during an outage is still charged to the shared quotas.
  st.shared_limiter->Complete(account.id, policy::EffectiveBucketLimits(account.limits, throttled), t.redis,
                              actual_tokens);
  if (!t.via_redis) st.fallback_limiter->Complete(account.id, t.reserved_tokens, actual_tokens);
}

// Reports a completed request to the distillation monitor. Never fails the request.
void ObserveForMonitor(ServerState& st, beast::tcp_stream& stream, const Request& req, const CompletionRequest& cr,
                       const ledger::AccountRecord& account, bool throttled, int32_t n_prompt, int32_t n_completion) {
  if (!st.monitor) return;
  monitor::RequestObservation obs;
  obs.account_id = account.id;
  obs.time_ms = NowMs();
  if (cr.chat) {
    for (auto it = cr.messages.rbegin(); it != cr.messages.rend(); ++it) {
      if (it->role == "user") {
        obs.prompt = it->content;
        break;
      }
    }
    for (const ChatMessage& m : cr.messages) obs.prior_assistant_turns += m.role == "assistant" ? 1 : 0;
  } else if (!cr.prompt_is_tokens) {
    obs.prompt = cr.prompt;
  }
  obs.sampling.temperature = static_cast<float>(cr.temperature);
  obs.sampling.top_p = static_cast<float>(cr.top_p);
  obs.sampling.seed = cr.seed ? static_cast<int64_t>(*cr.seed & 0x7fffffffffffffffULL) : -1;
  obs.sampling.n = cr.n;
  obs.prompt_tokens = static_cast<uint32_t>(std::max<int32_t>(n_prompt, 0));
  obs.completion_tokens = static_cast<uint32_t>(std::max<int32_t>(n_completion, 0));
  const policy::RateLimitHeaders h = PeekLimits(st, account, throttled);
  if (h.limit_tokens > 0) {
    const double used = 1.0 - static_cast<double>(h.remaining_tokens) / static_cast<double>(h.limit_tokens);
    obs.quota_utilization = static_cast<float>(std::clamp(used, 0.0, 1.0));
  }
  std::string user_agent;
  if (auto it = req.find(http::field::user_agent); it != req.end()) {
    user_agent.assign(it->value().data(), std::min<size_t>(it->value().size(), kMaxUserAgentBytes));
  }
  obs.client_fingerprint = user_agent;
  const std::string prefix = NetworkPrefix(stream);
  obs.network_prefix = prefix;
  obs.org_attribute = account.org;
  if (Status s = st.monitor->Observe(obs); !s.ok()) {
    if (st.metrics.monitor_observe_failures.fetch_add(1) == 0) {
      std::fprintf(stderr, "tracemark serve: monitor: %s (further failures only counted in /metrics)\n",
                   s.message().c_str());
    }
  }
}

net::awaitable<bool> HandleCompletion(ServerState& st, beast::tcp_stream& stream, const Request& req, bool chat) {
  const int64_t started_ms = NowMs();
  ApiError err;
  std::optional<policy::AuthResult> auth = Authenticate(st, req, &err);
  if (!auth) {
    Response res = ErrorResponse(req, err);
    co_return co_await Send(stream, res, st);
  }
  const ledger::AccountRecord& account = auth->account;
  const bool throttled = auth->state == policy::AccountState::kThrottled;
  auto fail = [&](const ApiError& e, const policy::RateLimitHeaders& h) {
    Response res = ErrorResponse(req, e);
    SetRateLimitHeaders(res.base(), h);
    return res;
  };
  ParseResult parsed = ParseCompletionRequest(req.body(), chat);
  if (!parsed.request) {
    Response res = fail(parsed.error, PeekLimits(st, account, throttled));
    co_return co_await Send(stream, res, st);
  }
  const CompletionRequest& cr = *parsed.request;
  if (cr.model != st.model_id) {
    Response res = fail(MakeError(404, "The model '" + cr.model + "' does not exist or you do not have access to it.",
                                  "invalid_request_error", "model_not_found", "model"),
                        PeekLimits(st, account, throttled));
    co_return co_await Send(stream, res, st);
  }
  // Prompt tokens.
  std::vector<int32_t> prompt;
  if (chat) {
    Result<std::vector<int32_t>> p = st.chat->Render(cr.messages);
    if (!p.ok()) {
      Response res = fail(BadRequest(p.status().message(), "messages", "invalid_value"),
                          PeekLimits(st, account, throttled));
      co_return co_await Send(stream, res, st);
    }
    prompt = std::move(p).value();
  } else if (cr.prompt_is_tokens) {
    prompt = cr.prompt_tokens;
    for (int32_t t : prompt) {
      if (t >= st.scheduler->vocab_size()) {
        Response res = fail(BadRequest("Invalid 'prompt': token id " + std::to_string(t) + " is not in the vocabulary.",
                                       "prompt", "invalid_value"),
                            PeekLimits(st, account, throttled));
        co_return co_await Send(stream, res, st);
      }
    }
  } else {
    prompt = st.tokenizer->Encode(cr.prompt, /*add_special=*/true, /*parse_special=*/false);
  }
  const int32_t ctx = st.scheduler->slot_context();
  const int32_t n_prompt = static_cast<int32_t>(prompt.size());
  if (n_prompt == 0 || n_prompt >= ctx || (cr.max_tokens && n_prompt + *cr.max_tokens > ctx)) {
    Response res = fail(
        BadRequest("This model's maximum context length is " + std::to_string(ctx) + " tokens. However, you requested " +
                       std::to_string(n_prompt + cr.max_tokens.value_or(0)) + " tokens (" + std::to_string(n_prompt) +
                       " in the messages, " + std::to_string(cr.max_tokens.value_or(0)) +
                       " in the completion). Please reduce the length of the messages or completion.",
                   chat ? "messages" : "prompt", "context_length_exceeded"),
        PeekLimits(st, account, throttled));
    co_return co_await Send(stream, res, st);
  }
  const int32_t max_tokens = cr.max_tokens.value_or(std::min(kDefaultCompletionTokens, ctx - n_prompt));

  // Rate limits and quotas.
  // As OpenAI, the token limits reserve max_tokens for each of the n choices.
  AdmissionTicket adm = co_await AdmitRequest(st, account, throttled, n_prompt + int64_t{cr.n} * max_tokens);
  if (adm.outcome != policy::AdmitOutcome::kAdmitted) {
    ApiError e;
    if (adm.outcome == policy::AdmitOutcome::kDailyQuotaExceeded ||
        adm.outcome == policy::AdmitOutcome::kMonthlyQuotaExceeded) {
      e = MakeError(429, "You exceeded your current quota of tokens per " +
                             std::string(adm.outcome == policy::AdmitOutcome::kDailyQuotaExceeded ? "day" : "month") +
                             ". Please check your plan and usage.",
                    "insufficient_quota", "insufficient_quota");
    } else {
      const bool req_limit = adm.outcome == policy::AdmitOutcome::kRequestRateExceeded;
      e = MakeError(429, std::string("Rate limit reached for ") + st.model_id + " on " +
                             (req_limit ? "requests per min (RPM)" : "tokens per min (TPM)") + ": Limit " +
                             std::to_string(req_limit ? adm.headers.limit_requests : adm.headers.limit_tokens) +
                             ". Please try again in " + policy::FormatResetDuration(adm.retry_after_ms) + ".",
                    req_limit ? "requests" : "tokens", "rate_limit_exceeded");
    }
    Response res = fail(e, adm.headers);
    res.set(http::field::retry_after, std::to_string((adm.retry_after_ms + 999) / 1000));
    co_return co_await Send(stream, res, st);
  }

  // n choices: independent samples, each with its own watermark hook and seed, decoded in the
  // same batches; every event carries its choice index.
  const int32_t n_choices = cr.n;
  auto executor = co_await net::this_coro::executor;
  auto channel = std::make_shared<EventChannel>(
      executor, static_cast<size_t>(n_choices) * (static_cast<size_t>(max_tokens) + 8));
  // Non-streaming replies accumulate their text on the engine thread, and only each choice's
  // final event crosses to the event loop: one wake-up per choice instead of one per token. The
  // channel's lock orders the engine thread's writes before the final event is received.
  auto texts = std::make_shared<std::vector<std::string>>(static_cast<size_t>(n_choices));
  std::vector<std::shared_ptr<GenerationJob>> jobs;
  auto cancel_all = [&jobs] {
    for (auto& j : jobs) j->cancelled.store(true);
  };
  for (int32_t i = 0; i < n_choices; ++i) {
    // The account's watermark.
    Result<std::unique_ptr<SamplerHook>> hook = watermark::MakeWatermarkHook(*st.keyring, std::stoull(account.id));
    if (!hook.ok()) {
      cancel_all();
      CompleteRequest(st, account, throttled, adm, 0);
      Response res = fail(MakeError(500, "watermark unavailable: " + hook.status().message(), "server_error", std::nullopt),
                          adm.headers);
      co_return co_await Send(stream, res, st);
    }
    auto job = std::make_shared<GenerationJob>();
    job->prompt = prompt;
    job->sampling.temperature = static_cast<float>(cr.temperature);
    job->sampling.top_p = static_cast<float>(cr.top_p);
    job->sampling.seed = cr.seed ? *cr.seed + static_cast<uint64_t>(i) : st.NewSeed();
    job->max_tokens = max_tokens;
    job->stop = cr.stop;
    job->hook = std::move(hook).value();
    job->sink = [channel, texts, i, streaming = cr.stream](GenerationEvent e) {
      if (!streaming) {
        (*texts)[static_cast<size_t>(i)] += e.text;
        if (!e.done) return;
        e.text.clear();
      }
      e.choice = i;
      channel->try_send(boost::system::error_code{}, std::move(e));
    };
    if (Status s = st.scheduler->Submit(job); !s.ok()) {
      cancel_all();
      CompleteRequest(st, account, throttled, adm, 0);
      const bool busy = s.code() == StatusCode::kResourceExhausted;
      Response res = fail(busy ? MakeError(503, s.message(), "server_error", "server_overloaded")
                               : BadRequest(s.message(), chat ? "messages" : "prompt", "invalid_value"),
                          adm.headers);
      co_return co_await Send(stream, res, st);
    }
    jobs.push_back(std::move(job));
  }

  const std::string id = st.NewId(chat ? "chatcmpl-" : "cmpl-");
  const int64_t created = started_ms / 1000;
  bool client_ok = true;
  std::vector<GenerationEvent> dones(static_cast<size_t>(n_choices));
  http::response<http::empty_body> sse{http::status::ok, req.version()};
  if (cr.stream) {
    ++st.metrics.streams_total;
    sse.set(http::field::server, kServerHeader);
    sse.set(http::field::content_type, "text/event-stream");
    sse.set(http::field::cache_control, "no-cache");
    sse.set("x-request-id", id);
    SetRateLimitHeaders(sse.base(), adm.headers);
    sse.keep_alive(req.keep_alive());
    sse.chunked(true);
    http::response_serializer<http::empty_body> sr{sse};
    stream.expires_after(std::chrono::seconds(kWriteTimeoutSeconds));
    boost::system::error_code ec;
    co_await http::async_write_header(stream, sr, net::redirect_error(net::use_awaitable, ec));
    st.metrics.Count(200);
    client_ok = !ec;
    if (client_ok && chat) {
      // OpenAI's first chunk of each choice announces the role with empty content.
      const std::string empty;
      std::string out;
      for (int32_t i = 0; i < n_choices; ++i) {
        out += "data: " + DumpJson(ChunkJson(true, id, created, st.model_id, &empty, nullptr, true, cr.include_usage, i)) +
               "\n\n";
      }
      client_ok = co_await WriteChunk(stream, out);
    }
  }
  int32_t remaining = n_choices;
  while (remaining > 0) {
    boost::system::error_code ec;
    GenerationEvent e = co_await channel->async_receive(net::redirect_error(net::use_awaitable, ec));
    if (ec) {
      for (GenerationEvent& d : dones) {
        if (!d.done) {
          d.done = true;
          d.status = Internal("generation channel closed");
        }
      }
      break;
    }
    const size_t i = static_cast<size_t>(std::clamp(e.choice, 0, n_choices - 1));
    // Streaming: every event's text, the final event's included (text the stop matcher held
    // back), goes out here once; the finish chunk below carries no content.
    if (!e.text.empty() && cr.stream && client_ok) {
      client_ok = co_await WriteChunk(stream, "data: " + DumpJson(ChunkJson(chat, id, created, st.model_id, &e.text,
                                                                           nullptr, false, cr.include_usage,
                                                                           static_cast<int32_t>(i))) + "\n\n");
      if (!client_ok) {
        cancel_all();
        ++st.metrics.clients_dropped;
      }
    }
    if (e.done && !dones[i].done) {
      dones[i] = std::move(e);
      --remaining;
    }
  }
  int32_t n_completion = 0;
  const Status* failed = nullptr;
  for (const GenerationEvent& d : dones) {
    n_completion += d.completion_tokens;
    if (!d.status.ok() && failed == nullptr) failed = &d.status;
  }
  // Aborted streams are charged what was generated.
  CompleteRequest(st, account, throttled, adm, n_prompt + n_completion);
  ObserveForMonitor(st, stream, req, cr, account, throttled, n_prompt, n_completion);
  st.metrics.prompt_tokens += static_cast<uint64_t>(n_prompt);
  st.metrics.completion_tokens += static_cast<uint64_t>(n_completion);

  // Meter: the record must be durable before the client sees the response complete.
  ledger::UsageRecord rec;
  rec.request_id = id;
  rec.account_id = account.id;
  rec.key_id = auth->key_id;
  rec.model = st.model_id;
  rec.endpoint = chat ? "chat.completions" : "completions";
  rec.prompt_tokens = n_prompt;
  rec.completion_tokens = n_completion;
  // Gumbel and SynthID choose among sampled candidates, so a greedy request (temperature 0) is
  // not watermarked by them; KGW biases logits and also marks greedy output. Record the truth.
  const bool watermarked = cr.temperature > 0 || st.wm_scheme.rfind("kgw", 0) == 0;
  rec.wm_scheme = watermarked ? st.wm_scheme : "";
  rec.wm_key_version = watermarked ? st.wm_key_version : 0;
  rec.started_at_ms = started_ms;
  rec.finished_at_ms = NowMs();
  auto commit = std::make_shared<CommitChannel>(executor, 1);
  st.journal->Append(std::move(rec), [commit](const Status& s) { commit->try_send(boost::system::error_code{}, s); });
  Status committed;
  {
    boost::system::error_code ec;
    committed = co_await commit->async_receive(net::redirect_error(net::use_awaitable, ec));
    if (ec) committed = Internal("usage journal did not answer");
  }
  const bool ok = failed == nullptr && committed.ok();
  auto finish_of = [](const GenerationEvent& d) { return d.finish_reason.empty() ? std::string("stop") : d.finish_reason; };

  if (cr.stream) {
    if (!client_ok) co_return false;
    if (!ok) {
      const Status& bad = failed == nullptr ? committed : *failed;
      ApiError e = MakeError(500, "generation failed: " + bad.message(), "server_error", std::nullopt);
      co_await WriteChunk(stream, "data: " + ErrorBody(e) + "\n\n");
      co_return false;  // no [DONE]: the client must not take this as complete
    }
    std::string out;
    for (int32_t i = 0; i < n_choices; ++i) {
      const GenerationEvent& d = dones[static_cast<size_t>(i)];
      out += "data: " + DumpJson(ChunkJson(chat, id, created, st.model_id, nullptr, finish_of(d).c_str(), false,
                                           cr.include_usage, i)) + "\n\n";
    }
    if (cr.include_usage) {
      Json u = {{"id", id},
                {"object", chat ? "chat.completion.chunk" : "text_completion"},
                {"created", created},
                {"model", st.model_id},
                {"system_fingerprint", nullptr},
                {"choices", Json::array()},
                {"usage", UsageJson(n_prompt, n_completion)}};
      out += "data: " + DumpJson(u) + "\n\n";
    }
    out += "data: [DONE]\n\n";
    if (!co_await WriteChunk(stream, out)) co_return false;
    stream.expires_after(std::chrono::seconds(kWriteTimeoutSeconds));
    boost::system::error_code ec;
    co_await net::async_write(stream, http::make_chunk_last(), net::redirect_error(net::use_awaitable, ec));
    co_return !ec && req.keep_alive();
  }
  if (!ok) {
    const Status& bad = failed == nullptr ? committed : *failed;
    Response res = fail(MakeError(500, "generation failed: " + bad.message(), "server_error", std::nullopt), adm.headers);
    co_return co_await Send(stream, res, st);
  }
  Json choices = Json::array();
  for (int32_t i = 0; i < n_choices; ++i) {
    const GenerationEvent& d = dones[static_cast<size_t>(i)];
    const std::string& text = (*texts)[static_cast<size_t>(i)];
    Json choice = {{"index", i}, {"logprobs", nullptr}, {"finish_reason", finish_of(d)}};
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", text}, {"refusal", nullptr}};
    } else {
      choice["text"] = text;
    }
    choices.push_back(std::move(choice));
  }
  Json body = {{"id", id},
               {"object", chat ? "chat.completion" : "text_completion"},
               {"created", created},
               {"model", st.model_id},
               {"system_fingerprint", nullptr},
               {"choices", std::move(choices)},
               {"usage", UsageJson(n_prompt, n_completion)}};
  Response res = MakeResponse(req, 200, DumpJson(body), "application/json");
  res.set("x-request-id", id);
  // As OpenAI: the limits as they stood once this request was counted (a later peek would show
  // the bucket refilled during generation, e.g. 600 of 600 after a long first request).
  SetRateLimitHeaders(res.base(), adm.headers);
  co_return co_await Send(stream, res, st);
}

// ---- admin API ----
std::optional<ApiError> CheckAdmin(ServerState& st, const Request& req) {
  if (st.admin_token.empty()) {
    return MakeError(404, "The admin API is disabled (start the server with --admin-token-file).",
                     "invalid_request_error", "unknown_url");
  }
  const std::string token = BearerToken(req);
  if (!crypto::ConstantTimeEqual(crypto::AsBytes(crypto::HexEncode(crypto::Sha256(token))),
                                 crypto::AsBytes(crypto::HexEncode(crypto::Sha256(st.admin_token))))) {
    return MakeError(401, "Invalid admin token.", "invalid_request_error", "invalid_api_key");
  }
  return std::nullopt;
}

Json AccountJson(const ledger::AccountRecord& a) {
  return {{"id", std::stoull(a.id)},
          {"name", a.name},
          {"state", a.state},
          {"state_reason", a.state_reason},
          {"org", a.org},
          {"limits",
           {{"requests_per_minute", a.limits.requests_per_minute},
            {"tokens_per_minute", a.limits.tokens_per_minute},
            {"tokens_per_day", a.limits.tokens_per_day},
            {"tokens_per_month", a.limits.tokens_per_month}}}};
}

Response StatusError(const Request& req, const Status& s) {
  const int code = s.code() == StatusCode::kNotFound ? 404 : s.code() == StatusCode::kInvalidArgument ? 400 : 500;
  return ErrorResponse(req, MakeError(code, s.message(), code == 500 ? "server_error" : "invalid_request_error",
                                      std::nullopt));
}

Response HandleAdmin(ServerState& st, const Request& req, std::string_view target) {
  if (auto e = CheckAdmin(st, req)) return ErrorResponse(req, *e);
  Json body = Json::object();
  if (!req.body().empty()) {
    body = Json::parse(req.body(), nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return ErrorResponse(req, BadRequest("The request body must be a JSON object."));
    }
  }
  auto str = [&](const char* k) { return body.contains(k) && body[k].is_string() ? body[k].get<std::string>() : std::string(); };
  constexpr std::string_view kAccounts = "/admin/v1/accounts";
  if (target == kAccounts && req.method() == http::verb::get) {
    Result<std::vector<ledger::AccountRecord>> list = st.store->ListAccounts();
    if (!list.ok()) return StatusError(req, list.status());
    Json arr = Json::array();
    for (const auto& a : *list) arr.push_back(AccountJson(a));
    return MakeResponse(req, 200, DumpJson({{"object", "list"}, {"data", arr}}), "application/json");
  }
  if (target == kAccounts && req.method() == http::verb::post) {
    ledger::AccountLimits limits{policy::kDefaultRequestsPerMinute, policy::kDefaultTokensPerMinute, 0, 0};
    if (body.contains("limits") && body["limits"].is_object()) {
      const Json& l = body["limits"];
      auto num = [&](const char* k, int64_t def) { return l.contains(k) && l[k].is_number_integer() ? l[k].get<int64_t>() : def; };
      limits.requests_per_minute = num("requests_per_minute", limits.requests_per_minute);
      limits.tokens_per_minute = num("tokens_per_minute", limits.tokens_per_minute);
      limits.tokens_per_day = num("tokens_per_day", 0);
      limits.tokens_per_month = num("tokens_per_month", 0);
    }
    Result<policy::NewAccount> n = st.accounts->CreateAccount(str("name"), limits, "admin-api", str("org"));
    if (!n.ok()) return StatusError(req, n.status());
    Json j = AccountJson(n->account);
    j["api_key"] = n->api_key;
    j["key_id"] = n->key_id;
    st.auth->Refresh().ok();
    return MakeResponse(req, 201, DumpJson(j), "application/json");
  }
  // /admin/v1/monitor/accounts/{id}: the monitor's view of one account (Explain).
  constexpr std::string_view kMonitorAccounts = "/admin/v1/monitor/accounts/";
  if (target.substr(0, kMonitorAccounts.size()) == kMonitorAccounts && req.method() == http::verb::get) {
    const std::string id(target.substr(kMonitorAccounts.size()));
    if (id.empty() || id.find('/') != std::string::npos) {
      return ErrorResponse(req, MakeError(404, "Unknown admin URL.", "invalid_request_error", "unknown_url"));
    }
    Result<monitor::AccountVerdict> v = st.monitor->Explain(id);
    if (!v.ok()) return StatusError(req, v.status());
    Json signals = Json::object();
    for (const monitor::Signal& sig : v->evidence) signals[sig.name] = sig.value;
    Json j = {{"account_id", v->account_id},
              {"mode", std::string(MonitorModeName(st.options.monitor_mode))},
              {"score", v->score},
              {"level", std::string(monitor::EnforcementLevelName(v->level))},
              {"signals", signals}};
    return MakeResponse(req, 200, DumpJson(j), "application/json");
  }
  // /admin/v1/accounts/{id}/{action}
  if (target.substr(0, kAccounts.size() + 1) == std::string(kAccounts) + "/" && req.method() == http::verb::post) {
    std::string_view rest = target.substr(kAccounts.size() + 1);
    const size_t slash = rest.find('/');
    if (slash != std::string_view::npos) {
      const std::string id(rest.substr(0, slash));
      const std::string_view action = rest.substr(slash + 1);
      static const std::map<std::string_view, policy::AccountState> kActions = {
          {"suspend", policy::AccountState::kSuspended},   {"reinstate", policy::AccountState::kReinstated},
          {"terminate", policy::AccountState::kTerminated}, {"throttle", policy::AccountState::kThrottled},
          {"activate", policy::AccountState::kActive}};
      auto it = kActions.find(action);
      if (it != kActions.end()) {
        Status s = st.accounts->Transition(id, it->second, "admin-api", str("reason"), str("evidence_sha256"));
        if (!s.ok()) return StatusError(req, s);
        // Reinstatement is a human decision; the monitor starts afresh and may act again.
        if (it->second == policy::AccountState::kReinstated && st.monitor) st.monitor->ResetAccount(id);
        st.auth->Refresh().ok();
        Result<std::optional<ledger::AccountRecord>> a = st.store->GetAccount(id);
        if (!a.ok() || !a->has_value()) return StatusError(req, NotFound("account vanished"));
        return MakeResponse(req, 200, DumpJson(AccountJson(**a)), "application/json");
      }
    }
  }
  return ErrorResponse(req, MakeError(404, "Unknown admin URL.", "invalid_request_error", "unknown_url"));
}

// ---- distillation monitor pass (worker thread, never on the request path) ----
// Evaluates every account and applies the returned actions: flag -> audit entry only; throttle
// and suspend -> account transition by actor "monitor". The evidence JSON is written into the
// audit entry's reason and its SHA-256 is the entry's evidence_sha256.
void RunMonitorPass(ServerState& st) {
  monitor::Evaluation ev = st.monitor->Evaluate();
  ++st.metrics.monitor_evaluations;
  int64_t at_level[4] = {0, 0, 0, 0};
  for (const monitor::AccountVerdict& v : ev.accounts) ++at_level[static_cast<int>(v.level)];
  st.metrics.monitor_accounts_tracked.store(static_cast<int64_t>(st.monitor->account_count()));
  st.metrics.monitor_accounts_flag.store(at_level[1]);
  st.metrics.monitor_accounts_throttle.store(at_level[2]);
  st.metrics.monitor_accounts_suspend.store(at_level[3]);
  bool changed = false;
  for (const monitor::EnforcementAction& a : ev.actions) {
    Json signals = Json::object();
    for (const monitor::Signal& sig : a.evidence) signals[sig.name] = sig.value;
    const std::string level(monitor::EnforcementLevelName(a.level));
    const std::string evidence = DumpJson({{"source", "distillation-monitor"},
                                           {"account_id", a.account_id},
                                           {"level", level},
                                           {"reason", a.reason},
                                           {"signals", signals}});
    const std::string sha = crypto::HexEncode(crypto::Sha256(evidence));
    std::string reason = "distillation monitor " + level + " (" + a.reason + "); evidence " +
                         evidence.substr(0, kMaxAuditEvidenceBytes);
    Status s;
    switch (a.level) {
      case monitor::EnforcementLevel::kFlag: {
        ledger::AuditEvent e{"monitor", "account.flagged", a.account_id, reason, sha, NowMs()};
        Result<uint64_t> r = st.audit->Append(e);
        s = r.ok() ? Status::Ok() : r.status();
        break;
      }
      case monitor::EnforcementLevel::kThrottle:
        s = st.accounts->Transition(a.account_id, policy::AccountState::kThrottled, "monitor", reason, sha);
        changed = changed || s.ok();
        break;
      case monitor::EnforcementLevel::kSuspend:
        s = st.accounts->Transition(a.account_id, policy::AccountState::kSuspended, "monitor", reason, sha);
        changed = changed || s.ok();
        break;
      case monitor::EnforcementLevel::kNone:
        continue;
    }
    if (s.ok()) {
      ++st.metrics.monitor_actions;
      std::fprintf(stderr, "tracemark serve: monitor: account %s -> %s (%s), evidence sha256 %s\n",
                   a.account_id.c_str(), level.c_str(), a.reason.c_str(), sha.c_str());
    } else {
      ++st.metrics.monitor_action_failures;
      std::fprintf(stderr, "tracemark serve: monitor: %s on account %s failed: %s\n", level.c_str(),
                   a.account_id.c_str(), s.message().c_str());
    }
  }
  if (changed) {
    if (Status s = st.auth->Refresh(); !s.ok()) {
      std::fprintf(stderr, "tracemark serve: account refresh failed: %s\n", s.message().c_str());
    }
  }
}

// A reinstatement is a human decision and the monitor starts afresh for that account, whichever
// path made it: this replica's admin API, another replica, or `tracemark accounts reinstate`
// writing the ledger. Called after each account refresh with the states seen at the previous one
// (the first call only records them).
void ResetMonitorOnReinstatement(ServerState& st, std::unordered_map<std::string, std::string>* last) {
  const std::string_view reinstated = policy::AccountStateName(policy::AccountState::kReinstated);
  const bool first = last->empty();
  std::unordered_map<std::string, std::string> now;
  for (ledger::AccountRecord& a : st.auth->Accounts()) {
    auto it = last->find(a.id);
    if (!first && st.monitor && a.state == reinstated && it != last->end() && it->second != reinstated) {
      st.monitor->ResetAccount(a.id);
    }
    now.emplace(std::move(a.id), std::move(a.state));
  }
  last->swap(now);
}

// ---- routing ----
net::awaitable<bool> Route(ServerState& st, beast::tcp_stream& stream, const Request& req) {
  ++st.metrics.requests_total;
  std::string_view target(req.target().data(), req.target().size());
  const size_t q = target.find('?');
  if (q != std::string_view::npos) target = target.substr(0, q);
  const http::verb method = req.method();
  if (target == "/v1/chat/completions" || target == "/v1/completions") {
    if (method != http::verb::post) {
      Response res = ErrorResponse(req, MakeError(405, "Method not allowed; use POST.", "invalid_request_error", "method_not_allowed"));
      co_return co_await Send(stream, res, st);
    }
    co_return co_await HandleCompletion(st, stream, req, target == "/v1/chat/completions");
  }
  if (target == "/v1/models" && method == http::verb::get) {
    ApiError err;
    std::optional<policy::AuthResult> auth = Authenticate(st, req, &err);
    Response res = auth ? ModelsResponse(st, req) : ErrorResponse(req, err);
    if (auth) {
      SetRateLimitHeaders(res.base(),
                          PeekLimits(st, auth->account, auth->state == policy::AccountState::kThrottled));
    }
    co_return co_await Send(stream, res, st);
  }
  if (target == "/healthz" && method == http::verb::get) {
    Response res = MakeResponse(req, 200, "{\"status\":\"ok\"}", "application/json");
    co_return co_await Send(stream, res, st);
  }
  if (target == "/metrics" && method == http::verb::get) {
    Response res = MetricsResponse(st, req);
    co_return co_await Send(stream, res, st);
  }
  if (target.substr(0, 10) == "/admin/v1/") {
    Response res = HandleAdmin(st, req, target);
    co_return co_await Send(stream, res, st);
  }
  Response res = ErrorResponse(
      req, MakeError(404,
                     "Unknown request URL: " + std::string(http::to_string(method)) + " " + std::string(target) +
                         ". Please check the URL for typos.",
                     "invalid_request_error", "unknown_url"));
  co_return co_await Send(stream, res, st);
}

// Sends an error for a request that could not be read, then the connection closes.
net::awaitable<void> SendReadError(ServerState& st, beast::tcp_stream& stream, int status, const std::string& msg) {
  Request dummy;
  dummy.version(11);
  dummy.keep_alive(false);
  Response res = ErrorResponse(dummy, MakeError(status, msg, "invalid_request_error", std::nullopt));
  res.keep_alive(false);
  co_await Send(stream, res, st);
}

net::awaitable<void> Session(tcp::socket socket, ServerState& st) {
  ++st.metrics.connections;
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer(kMaxHeaderBytes + kMaxBodyBytes + 1024);
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(kMaxHeaderBytes));
    parser.body_limit(kMaxBodyBytes);
    boost::system::error_code ec;
    stream.expires_after(std::chrono::seconds(kHeaderTimeoutSeconds));
    co_await http::async_read_header(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
    if (ec) {
      if (ec == http::error::header_limit) {
        co_await SendReadError(st, stream, 431, "Request header fields too large (limit " +
                                                    std::to_string(kMaxHeaderBytes) + " bytes).");
      } else if (ec == http::error::body_limit) {
        // Content-Length above the limit: refused before reading the body.
        co_await SendReadError(st, stream, 413, "Request body too large (limit " + std::to_string(kMaxBodyBytes) + " bytes).");
      } else if (ec != http::error::end_of_stream && ec != beast::error::timeout && ec != net::error::eof &&
                 ec != net::error::connection_reset && ec != net::error::operation_aborted) {
        co_await SendReadError(st, stream, 400, "Malformed HTTP request: " + ec.message() + ".");
      }
      break;
    }
    const auto& h = parser.get();
    if (h.count(http::field::content_length) && h.count(http::field::transfer_encoding)) {
      co_await SendReadError(st, stream, 400, "Content-Length together with Transfer-Encoding is not allowed.");
      break;
    }
    stream.expires_after(std::chrono::seconds(kBodyTimeoutSeconds));
    co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
    if (ec) {
      if (ec == http::error::body_limit) {
        co_await SendReadError(st, stream, 413, "Request body too large (limit " + std::to_string(kMaxBodyBytes) + " bytes).");
      } else if (ec != beast::error::timeout && ec != net::error::eof && ec != http::error::end_of_stream) {
        co_await SendReadError(st, stream, 400, "Malformed HTTP request: " + ec.message() + ".");
      }
      break;
    }
    Request req = parser.release();
    const bool keep = co_await Route(st, stream, req);
    if (!keep || !req.keep_alive()) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  --st.metrics.connections;
}

net::awaitable<void> Listen(tcp::acceptor& acceptor, ServerState& st) {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
    if (ec) {
      if (ec == net::error::operation_aborted) co_return;
      continue;
    }
    if (st.metrics.connections.load() >= kMaxConnections) {
      socket.close(ec);
      continue;
    }
    // Responses and SSE chunks are written whole: never hold one back for Nagle's algorithm.
    socket.set_option(tcp::no_delay(true), ec);
    net::co_spawn(acceptor.get_executor(), Session(std::move(socket), st), net::detached);
  }
}

Status Setup(ServerState& st, const ServerOptions& o) {
  st.options = o;
  TM_ASSIGN_OR_RETURN(watermark::Keyring keyring, watermark::Keyring::Load(o.keyring_path));
  st.keyring = std::make_unique<watermark::Keyring>(std::move(keyring));
  st.wm_key_version = st.keyring->active_version();
  if (const watermark::KeyVersion* v = st.keyring->Find(st.wm_key_version)) {
    st.wm_scheme = watermark::PublicSchemeSpec(v->scheme);  // synthid-hf explicit keys redacted
  }
  TM_ASSIGN_OR_RETURN(policy::ServerSecrets secrets, policy::ServerSecretsFromKeyring(*st.keyring));

  TM_ASSIGN_OR_RETURN(st.store, ledger::OpenLedgerStore(o.db_url));
  std::error_code fec;
  const std::string abs_keyring = std::filesystem::absolute(o.keyring_path, fec).string();
  TM_RETURN_IF_ERROR(st.store->SetMeta(policy::kKeyringPathMeta, abs_keyring));
  TM_ASSIGN_OR_RETURN(st.signer, ledger::AuditSigner::FromSeed(secrets.audit_signing_seed.span()));
  st.audit = std::make_unique<ledger::AuditLog>(st.store.get(), st.signer.get());
  TM_ASSIGN_OR_RETURN(st.accounts, policy::AccountService::Create(st.store.get(), secrets.api_key_pepper,
                                                                  st.audit.get(), &st.clock));
  st.auth = std::make_unique<policy::AuthCache>(st.accounts.get());
  TM_RETURN_IF_ERROR(st.auth->Refresh());
  st.limiter = std::make_unique<policy::RateLimiter>(&st.clock);
  if (!o.redis_url.empty()) {
    TM_ASSIGN_OR_RETURN(st.shared_limiter, policy::RedisRateLimiter::Connect(o.redis_url));
    st.fallback_limiter = std::make_unique<policy::RateLimiter>(&st.clock);
    // Shared quota counters start from the ledger's usage (new period, or Redis restarted).
    ledger::LedgerStore* store = st.store.get();
    st.shared_limiter->SetQuotaUsageSource(
        [store](std::string_view account_id, int64_t day_start_ms,
                int64_t month_start_ms) -> Result<policy::QuotaUsage> {
          TM_ASSIGN_OR_RETURN(int64_t day, store->TokensSince(account_id, day_start_ms));
          TM_ASSIGN_OR_RETURN(int64_t month, store->TokensSince(account_id, month_start_ms));
          return policy::QuotaUsage{day, month};
        });
  }
  if (o.monitor_interval_s < 1 || o.monitor_interval_s > kMaxMonitorIntervalSeconds) {
    return InvalidArgument("--monitor-interval-s must be in 1.." + std::to_string(kMaxMonitorIntervalSeconds));
  }
  TM_ASSIGN_OR_RETURN(st.monitor, monitor::Monitor::Create(MonitorConfigFor(o.monitor_mode, o.monitor)));
  if (o.create_demo_account && st.auth->Accounts().empty()) {
    TM_ASSIGN_OR_RETURN(policy::NewAccount demo,
                        st.accounts->CreateAccount("demo",
                                                   {policy::kDefaultRequestsPerMinute, policy::kDefaultTokensPerMinute, 0, 0},
                                                   "serve:demo"));
    st.demo_key = demo.api_key;
    TM_RETURN_IF_ERROR(st.auth->Refresh());
  }

  std::string journal_dir = o.usage_journal_dir;
  if (journal_dir.empty()) {
    if (ledger::IsPostgresUrl(o.db_url)) {
      return InvalidArgument("--usage-journal DIR is required with a postgresql:// ledger "
                             "(a local directory, one per replica)");
    }
    TM_ASSIGN_OR_RETURN(std::string db_path, ledger::SqlitePathFromUrl(o.db_url));
    journal_dir = db_path + ".usage-journal";
  }
  uint64_t replayed = 0;
  TM_ASSIGN_OR_RETURN(st.journal, ledger::UsageJournal::Open(journal_dir, st.store.get(), &replayed,
                                                              o.journal_sync_commit ? ledger::JournalSync::kCommit
                                                                                    : ledger::JournalSync::kInterval));
  if (replayed > 0) std::fprintf(stderr, "tracemark serve: replayed %llu usage records from %s\n",
                                 static_cast<unsigned long long>(replayed), journal_dir.c_str());
  // Quotas survive restarts: seed the counters from the durable usage.
  const int64_t now = st.clock.NowMs();
  for (const ledger::AccountRecord& a : st.auth->Accounts()) {
    if (a.limits.tokens_per_day == 0 && a.limits.tokens_per_month == 0) continue;
    TM_ASSIGN_OR_RETURN(int64_t day, st.store->TokensSince(a.id, policy::RateLimiter::DayStartMs(now)));
    TM_ASSIGN_OR_RETURN(int64_t month, st.store->TokensSince(a.id, policy::RateLimiter::MonthStartMs(now)));
    st.limiter->SeedUsage(a.id, day, month);
  }

  if (!o.admin_token_file.empty()) {
    TM_ASSIGN_OR_RETURN(std::string token, ReadFile(o.admin_token_file, kMaxAdminTokenBytes));
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.size() < 16) return InvalidArgument("the admin token in " + o.admin_token_file + " is shorter than 16 characters");
    st.admin_token = token;
  }

  if (o.engine == "mock") {
    // Same request path, fake engine: no model file (bench/gateway/README.md).
    st.tokenizer = std::make_unique<MockTokenizer>();
    TM_ASSIGN_OR_RETURN(ChatTemplate tmpl, ChatTemplate::FromString(MockChatTemplateSource(), "<s>", "</s>"));
    st.chat = ChatPrompt::FromTemplate(std::move(tmpl), *st.tokenizer);
    TM_ASSIGN_OR_RETURN(st.scheduler, MockEngine::Create(*st.tokenizer, o.mock));
    st.model_id = o.model_id.empty() ? "mock" : o.model_id;
    st.model_created = now / 1000;
    return Status::Ok();
  }
  if (o.engine != "model") return InvalidArgument("unknown --engine '" + o.engine + "' (model, mock)");
  TM_ASSIGN_OR_RETURN(st.model, Model::Load(o.model_path));
  TM_ASSIGN_OR_RETURN(st.tokenizer, text::Tokenizer::FromGguf(st.model->file()));
  TM_ASSIGN_OR_RETURN(st.chat, ChatPrompt::Create(*st.model, *st.tokenizer));
  TM_ASSIGN_OR_RETURN(st.scheduler, Scheduler::Create(*st.model, *st.tokenizer, o.scheduler));
  st.model_id = o.model_id;
  if (st.model_id.empty()) {
    st.model_id = std::filesystem::path(o.model_path).filename().string();
    if (st.model_id.size() > 5 && st.model_id.substr(st.model_id.size() - 5) == ".gguf") {
      st.model_id.resize(st.model_id.size() - 5);
    }
  }
  std::error_code tec;
  const auto mtime = std::filesystem::last_write_time(o.model_path, tec);
  st.model_created = tec ? now / 1000
                         : std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::file_clock::to_sys(mtime).time_since_epoch())
                               .count();
  return Status::Ok();
}

}  // namespace

Result<MonitorMode> ParseMonitorMode(std::string_view name) {
  if (name == "shadow") return MonitorMode::kShadow;
  if (name == "flag") return MonitorMode::kFlag;
  if (name == "throttle") return MonitorMode::kThrottle;
  if (name == "suspend") return MonitorMode::kSuspend;
  return InvalidArgument("unknown monitor mode '" + std::string(name) + "' (shadow, flag, throttle, suspend)");
}

std::string_view MonitorModeName(MonitorMode mode) {
  switch (mode) {
    case MonitorMode::kShadow: return "shadow";
    case MonitorMode::kFlag: return "flag";
    case MonitorMode::kThrottle: return "throttle";
    case MonitorMode::kSuspend: return "suspend";
  }
  return "shadow";
}

monitor::MonitorConfig MonitorConfigFor(MonitorMode mode, monitor::MonitorConfig base) {
  base.mode = mode == MonitorMode::kShadow ? monitor::EnforcementMode::kShadow : monitor::EnforcementMode::kEnforce;
  switch (mode) {
    case MonitorMode::kShadow:
    case MonitorMode::kSuspend: base.max_level = monitor::EnforcementLevel::kSuspend; break;
    case MonitorMode::kFlag: base.max_level = monitor::EnforcementLevel::kFlag; break;
    case MonitorMode::kThrottle: base.max_level = monitor::EnforcementLevel::kThrottle; break;
  }
  return base;
}

Status RunServer(const ServerOptions& options) {
  auto st = std::make_unique<ServerState>();
  TM_RETURN_IF_ERROR(Setup(*st, options));

  net::io_context ioc(1);
  boost::system::error_code ec;
  const net::ip::address addr = net::ip::make_address(options.host, ec);
  if (ec) return InvalidArgument("--host '" + options.host + "' is not an IP address");
  tcp::acceptor acceptor(ioc);
  const tcp::endpoint ep(addr, options.port);
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return IoError("cannot listen on " + options.host + ":" + std::to_string(options.port) + ": " + ec.message());
  const uint16_t port = acceptor.local_endpoint().port();
  if (options.on_listening) options.on_listening(options.host, port);
  if (!st->demo_key.empty()) {
    std::fprintf(stderr,
                 "tracemark serve: created account 'demo' (id 1); its API key is shown only now:\n  %s\n"
                 "try:\n  curl http://%s:%u/v1/chat/completions -H 'Authorization: Bearer %s' "
                 "-H 'Content-Type: application/json' -d '{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
                 "\"content\":\"Hello!\"}],\"max_tokens\":32}'\n",
                 st->demo_key.c_str(), options.host.c_str(), static_cast<unsigned>(port), st->demo_key.c_str(),
                 st->model_id.c_str());
  }

  // Suspensions and new keys made by other processes or replicas take effect within this bound;
  // with PostgreSQL the wait ends early on a change notification (LISTEN/NOTIFY), so they take
  // effect within milliseconds and the poll only covers a lost notification.
  std::atomic<bool> stopping{false};
  std::thread refresher([&] {
    std::unordered_map<std::string, std::string> last_states;
    ResetMonitorOnReinstatement(*st, &last_states);
    while (!stopping.load()) {
      st->store->WaitForAccountChange(policy::kAuthRefreshIntervalMs).ok();
      Status s = st->auth->Refresh();
      if (!s.ok()) std::fprintf(stderr, "tracemark serve: account refresh failed: %s\n", s.message().c_str());
      if (s.ok()) ResetMonitorOnReinstatement(*st, &last_states);
    }
  });

  // The distillation monitor's evaluation pass, every --monitor-interval-s seconds.
  std::mutex monitor_mu;
  std::condition_variable monitor_cv;
  std::thread monitor_worker([&] {
    std::unique_lock<std::mutex> lock(monitor_mu);
    for (;;) {
      if (monitor_cv.wait_for(lock, std::chrono::seconds(options.monitor_interval_s), [&] { return stopping.load(); })) {
        break;
      }
      lock.unlock();
      RunMonitorPass(*st);
      lock.lock();
    }
  });

  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    ioc.stop();
  });
  net::co_spawn(ioc, Listen(acceptor, *st), net::detached);
  ioc.run();
  {
    std::lock_guard<std::mutex> lock(monitor_mu);
    stopping.store(true);
  }
  monitor_cv.notify_all();
  refresher.join();
  monitor_worker.join();
  // Stop generation first (its sinks post into the now-stopped io_context), then drain the
  // journal into the ledger.
  st->scheduler.reset();
  Status flushed = st->journal->FlushToStore();
  st->journal.reset();
  return flushed;
}

}  // namespace tracemark::serve
