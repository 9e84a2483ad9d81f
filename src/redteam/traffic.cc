#include "tracemark/redteam/traffic.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

namespace tracemark::redteam {
namespace {

using Clock = std::chrono::steady_clock;

// Longest line of a keys file.
constexpr size_t kMaxKeyLineBytes = 4096;
// Smallest wait after a 429 whose headers name no reset time.
constexpr double kMinBackoffSeconds = 0.05;
// Pause after a transport error or a 5xx before the next try.
constexpr double kErrorPauseSeconds = 0.2;
// Sleep granularity while waiting (so `stop` is honoured promptly).
constexpr double kSleepSliceSeconds = 0.1;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

const std::vector<std::string> kAspects = {
    "the basic principles",   "the history",          "common misconceptions", "practical applications",
    "a worked example",       "the key formulas",     "the main trade-offs",   "recent developments",
    "the underlying theory",  "typical mistakes",     "measurement methods",   "the open problems"};
const std::vector<std::string> kAudiences = {"a beginner", "a high-school student", "an undergraduate",
                                             "a working engineer", "an expert reviewer"};
const std::vector<std::string> kCandidateAnswers = {
    "It mostly depends on the initial conditions and the scale involved.",
    "The answer is that the effect doubles every time the input doubles.",
    "It was discovered by accident and later explained with a simple model.",
    "There is no single answer; several factors interact in non-obvious ways.",
    "The standard approach is to measure twice and average the results."};
// The sampling sweep stays at temperature >= 0.6: the harvester wants diverse, natural samples.
const std::vector<double> kTemperatures = {0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.1, 1.2};
const std::vector<double> kTopPs = {0.9, 0.95, 0.98, 1.0};

const std::vector<std::string> kChatOpeners = {
    "Hi! Can you tell me something interesting about {}?",
    "I've been thinking about {} lately. Where should I start?",
    "What's a good way for a beginner to get into {}?",
    "Quick question about {}: what do most people get wrong?",
    "My friend and I were arguing about {}. Can you help?",
    "Could you recommend a few ideas related to {} for this weekend?"};
const std::vector<std::string> kChatFollowUps = {
    "Thanks! Could you say a bit more about that?", "Interesting. What would you recommend for me?",
    "Can you give me a short example?", "Ok, and what should I avoid?", "That helps. Anything else I should know?",
    "Could you make that shorter?", "Nice, thank you!"};
const std::vector<std::string> kBenignTopics = {
    "gardening", "cooking pasta", "learning guitar", "running a first marathon", "birdwatching",
    "knitting", "planning a trip to Lisbon", "keeping houseplants alive", "board games", "baking bread",
    "photography", "learning Spanish", "home workouts", "camping", "writing poetry", "caring for a puppy"};

std::string Fill(std::string_view pattern, std::string_view value) {
  std::string out(pattern);
  const size_t at = out.find("{}");
  if (at != std::string::npos) out.replace(at, 2, value);
  return out;
}

template <typename T>
const T& Pick(Rng& rng, const std::vector<T>& v) {
  return v[rng.Below(v.size())];
}

void SleepFor(double seconds, const std::atomic<bool>* stop) {
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < until) {
    if (stop != nullptr && stop->load()) return;
    const double left = Seconds(until - Clock::now());
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(left, kSleepSliceSeconds)));
  }
}

// Thread-safe JSONL writer (one line per record, flushed at the end and on Close).
class JsonlWriter {
 public:
  Status Open(const std::string& path) {
    if (path.empty()) return Status::Ok();
    file_ = std::fopen(path.c_str(), "wb");
    if (file_ == nullptr) return IoError("cannot write " + path);
    path_ = path;
    return Status::Ok();
  }
  void Write(const nlohmann::ordered_json& j) {
    if (file_ == nullptr) return;
    const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::lock_guard<std::mutex> lock(mu_);
    if (std::fwrite(line.data(), 1, line.size(), file_) != line.size()) failed_ = true;
  }
  Status Close() {
    if (file_ == nullptr) return Status::Ok();
    const bool bad = std::fflush(file_) != 0 || std::fclose(file_) != 0 || failed_;
    file_ = nullptr;
    return bad ? IoError("writing " + path_ + " failed") : Status::Ok();
  }
  ~JsonlWriter() {
    if (file_ != nullptr) std::fclose(file_);
  }

 private:
  std::mutex mu_;
  std::FILE* file_ = nullptr;
  std::string path_;
  bool failed_ = false;
};

// Per-account pacing and outcome, shared by the workers.
struct AccountBook {
  struct Entry {
    AccountOutcome outcome;
    std::string key;
    Clock::time_point next_ok{};
  };
  std::mutex mu;
  std::vector<Entry> entries;
  size_t cursor = 0;

  explicit AccountBook(const std::vector<ApiAccount>& accounts) {
    for (const ApiAccount& a : accounts) {
      Entry e;
      e.outcome.label = a.label;
      e.key = a.key;
      entries.push_back(std::move(e));
    }
  }

  // Round robin over accounts still in use: the next one free now, else the one free soonest
  // (*wait_s says how long). -1 when every account has stopped.
  int Acquire(double* wait_s) {
    std::lock_guard<std::mutex> lock(mu);
    const auto now = Clock::now();
    int soonest = -1;
    for (size_t k = 0; k < entries.size(); ++k) {
      const size_t i = (cursor + k) % entries.size();
      Entry& e = entries[i];
      if (!e.outcome.stopped.empty()) continue;
      if (e.next_ok <= now) {
        cursor = i + 1;
        *wait_s = 0;
        return static_cast<int>(i);
      }
      if (soonest < 0 || e.next_ok < entries[soonest].next_ok) soonest = static_cast<int>(i);
    }
    if (soonest >= 0) *wait_s = Seconds(entries[soonest].next_ok - now);
    return soonest;
  }

  void Defer(int i, double seconds) {
    std::lock_guard<std::mutex> lock(mu);
    const auto t = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(std::min(seconds, kMaxBackoffSeconds)));
    if (t > entries[i].next_ok) entries[i].next_ok = t;
  }

  // Returns true when this call stopped the account (it was not stopped before).
  bool Stop(int i, const std::string& why) {
    std::lock_guard<std::mutex> lock(mu);
    if (!entries[i].outcome.stopped.empty()) return false;
    entries[i].outcome.stopped = why.empty() ? "refused" : why;
    return true;
  }

  std::vector<AccountOutcome> Outcomes() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<AccountOutcome> out;
    for (const Entry& e : entries) out.push_back(e.outcome);
    return out;
  }
};

// What the caller should do after one HTTP answer.
enum class Next { kDone, kRetry, kGiveUp };

// Applies the pacing headers and the error policy shared by harvester and simulator.
Next Classify(const ChatResult& r, int account, AccountBook* book, int max_tokens, bool* suspended,
              int64_t* rate_limited, int64_t* other_errors) {
  *suspended = false;
  {
    std::lock_guard<std::mutex> lock(book->mu);
    AccountOutcome& o = book->entries[account].outcome;
    ++o.requests;
    if (r.http_status == 200) {
      ++o.completions;
      o.completion_tokens += r.completion_tokens;
    } else if (r.http_status == 429) {
      ++o.rate_limited;
    }
  }
  if (r.http_status == 200) {
    // Pace before the limiter says no: out of requests, or nearly out of tokens, in this window.
    // The reset headers give the time to a full bucket; waiting only for the refill of what the
    // next request needs (limit per minute -> per second) keeps the account at its ceiling.
    if (r.remaining_requests && *r.remaining_requests <= 0) {
      book->Defer(account, r.limit_requests && *r.limit_requests > 0 ? 60.0 / static_cast<double>(*r.limit_requests)
                                                                      : r.reset_requests_s);
    }
    if (r.remaining_tokens && *r.remaining_tokens < 2 * max_tokens) {
      const double need = static_cast<double>(2 * max_tokens - *r.remaining_tokens);
      book->Defer(account, r.limit_tokens && *r.limit_tokens > 0 ? need * 60.0 / static_cast<double>(*r.limit_tokens)
                                                                  : r.reset_tokens_s);
    }
    return Next::kDone;
  }
  if (r.http_status == 429) {
    ++*rate_limited;
    if (r.error_code == "insufficient_quota") {
      book->Stop(account, r.error_code);
      return Next::kRetry;
    }
    book->Defer(account, std::max(r.retry_after_s, kMinBackoffSeconds));
    return Next::kRetry;
  }
  if (r.http_status == 401 || r.http_status == 403) {
    if (book->Stop(account, r.error_code) && r.error_code == "account_suspended") *suspended = true;
    return Next::kRetry;
  }
  ++*other_errors;
  if (r.http_status >= 500) {
    book->Defer(account, kErrorPauseSeconds);
    return Next::kRetry;
  }
  return Next::kGiveUp;
}

}  // namespace

uint64_t Rng::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

uint64_t Rng::Below(uint64_t n) { return n == 0 ? 0 : Next() % n; }

Result<std::vector<ApiAccount>> LoadKeys(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("cannot read keys file " + path + " (one API key per line)");
  std::vector<ApiAccount> out;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.size() > kMaxKeyLineBytes) return InvalidArgument(path + ":" + std::to_string(line_no) + ": line too long");
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream fields(line);
    std::vector<std::string> parts;
    std::string part;
    while (fields >> part) parts.push_back(part);
    if (parts.empty()) continue;
    if (parts.size() > 2) {
      return InvalidArgument(path + ":" + std::to_string(line_no) + ": want 'KEY' or 'LABEL KEY'");
    }
    ApiAccount a;
    a.key = parts.back();
    a.label = parts.size() == 2 ? parts[0] : "key" + std::to_string(line_no);
    out.push_back(std::move(a));
    if (out.size() > static_cast<size_t>(kMaxAccounts)) return InvalidArgument(path + ": too many keys");
  }
  if (out.empty()) return InvalidArgument("keys file " + path + " holds no key");
  return out;
}

const std::vector<std::string>& DefaultTopics() {
  static const std::vector<std::string> topics = {
      "algebra",          "probability",        "organic chemistry", "thermodynamics",   "computer networks",
      "operating systems", "macroeconomics",    "cell biology",      "European history", "contract law",
      "compilers",        "statistics",         "linear algebra",    "geology",          "machine learning"};
  return topics;
}

PromptSpec HarvestPrompt(uint64_t seed, uint64_t i, const std::vector<std::string>& topics, double benign_mix,
                         double stream_share) {
  Rng rng(seed * 0x100000001b3ULL + i * 0x9e3779b97f4a7c15ULL + 17);
  PromptSpec p;
  const std::vector<std::string>& tl = topics.empty() ? DefaultTopics() : topics;
  p.topic = Pick(rng, tl);
  p.stream = rng.Chance(stream_share);
  if (rng.Chance(benign_mix)) {
    // Ordinary-looking traffic: a short chat with a prior assistant turn, one usual setting.
    p.kind = "benign";
    p.template_id = "chat";
    p.temperature = 0.7;
    p.top_p = 1.0;
    p.messages.push_back({"user", Fill(Pick(rng, kChatOpeners), p.topic)});
    p.messages.push_back({"assistant", "Sure! Here is a short overview to get you started."});
    p.messages.push_back({"user", Pick(rng, kChatFollowUps)});
    return p;
  }
  p.kind = "harvest";
  const std::string& aspect = Pick(rng, kAspects);
  const std::string& audience = Pick(rng, kAudiences);
  const uint64_t case_no = rng.Below(100000);
  std::string prompt;
  switch (rng.Below(4)) {
    case 0:
      p.template_id = "cot-solve";
      prompt = "Solve the following problem step by step and explain your reasoning. Problem " +
               std::to_string(case_no) + ": in " + p.topic + ", work out " + aspect + " for " + audience + ".";
      break;
    case 1:
      p.template_id = "rubric";
      prompt = "Here is a question and a candidate answer. Grade this answer with a rubric from 1 to 10 and justify "
               "each point. Question: what is " + aspect + " of " + p.topic + "? Answer: " +
               Pick(rng, kCandidateAnswers) + " (item " + std::to_string(case_no) + ")";
      break;
    case 2:
      p.template_id = "reconstruct";
      prompt = "Imagine and write out step by step the internal reasoning behind an expert's answer about " + aspect +
               " of " + p.topic + ", as if explaining to " + audience + ". Case " + std::to_string(case_no) + ".";
      break;
    default:
      p.template_id = "explain";
      prompt = "Explain " + aspect + " of " + p.topic + " to " + audience +
               ". Think through it step by step and show your work. Variant " + std::to_string(case_no) + ".";
      break;
  }
  p.messages.push_back({"user", std::move(prompt)});
  p.temperature = Pick(rng, kTemperatures);
  p.top_p = Pick(rng, kTopPs);
  return p;
}

Result<HarvestStats> RunHarvest(const HarvestOptions& o) {
  if (o.accounts.empty()) return InvalidArgument("no API keys given");
  if (o.concurrency < 1 || o.concurrency > kMaxConcurrency) {
    return InvalidArgument("--concurrency must be in [1, " + std::to_string(kMaxConcurrency) + "]");
  }
  if (!(o.benign_mix >= 0 && o.benign_mix <= 1)) return InvalidArgument("--benign-mix must be in [0, 1]");
  if (o.requests < 0) return InvalidArgument("--requests must be >= 0");
  TM_ASSIGN_OR_RETURN(BaseUrl base, ParseBaseUrl(o.base_url));
  std::string model = o.model;
  if (model.empty()) {
    HttpClient c(base, o.user_agent);
    TM_ASSIGN_OR_RETURN(model, FirstModelId(c, o.accounts[0].key));
  }
  JsonlWriter out;
  TM_RETURN_IF_ERROR(out.Open(o.out_path));
  AccountBook book(o.accounts);
  std::atomic<int64_t> next_prompt{0};
  std::atomic<int64_t> recorded{0};
  std::mutex stats_mu;
  HarvestStats stats;
  const auto t0 = Clock::now();
  auto time_up = [&] {
    return (o.stop != nullptr && o.stop->load()) || (o.max_seconds > 0 && Seconds(Clock::now() - t0) > o.max_seconds);
  };

  auto worker = [&](int w) {
    HttpClient client(base, o.user_agent);
    int64_t sent = 0, completions = 0, harvest = 0, benign = 0, tokens = 0, limited = 0, transport = 0, other = 0,
            suspended = 0;
    while (!time_up() && recorded.load() < o.requests) {
      // Claim a slot before sending so that at most `requests` completions are recorded.
      if (recorded.fetch_add(1) >= o.requests) {
        recorded.fetch_sub(1);
        break;
      }
      const int64_t idx = next_prompt.fetch_add(1);
      const PromptSpec spec = HarvestPrompt(o.seed, static_cast<uint64_t>(idx), o.topics, o.benign_mix, o.stream_share);
      ChatRequest req;
      req.model = model;
      req.messages = spec.messages;
      req.max_tokens = o.max_tokens;
      req.temperature = spec.temperature;
      req.top_p = spec.top_p;
      req.stream = spec.stream;
      bool done = false;
      bool all_stopped = false;
      for (int attempt = 0; attempt < kMaxRetriesPerRequest && !done && !time_up(); ++attempt) {
        double wait = 0;
        const int account = book.Acquire(&wait);
        if (account < 0) {
          all_stopped = true;
          break;
        }
        if (wait > 0) {
          SleepFor(wait, o.stop);
          --attempt;  // waiting for the limiter is pacing, not a failed try
          continue;
        }
        const std::string key = book.entries[account].key;
        ++sent;
        Result<ChatResult> r = ChatCompletion(client, key, req);
        if (!r.ok()) {
          ++transport;
          SleepFor(kErrorPauseSeconds, o.stop);
          continue;
        }
        bool was_suspended = false;
        const Next next = Classify(*r, account, &book, o.max_tokens, &was_suspended, &limited, &other);
        if (was_suspended) ++suspended;
        if (next == Next::kGiveUp) break;
        if (next == Next::kRetry) continue;
        done = true;
        ++completions;
        (spec.kind == "harvest" ? harvest : benign) += 1;
        tokens += r->completion_tokens;
        nlohmann::ordered_json j;
        j["id"] = "h" + std::to_string(idx);
        j["account"] = book.entries[account].outcome.label;
        j["kind"] = spec.kind;
        j["template"] = spec.template_id;
        j["topic"] = spec.topic;
        j["prompt"] = spec.messages.back().content;
        j["text"] = r->text;
        j["temperature"] = spec.temperature;
        j["top_p"] = spec.top_p;
        j["stream"] = spec.stream;
        j["completion_tokens"] = r->completion_tokens;
        j["finish_reason"] = r->finish_reason;
        j["worker"] = w;
        out.Write(j);
      }
      if (!done) recorded.fetch_sub(1);
      if (all_stopped) break;
    }
    std::lock_guard<std::mutex> lock(stats_mu);
    stats.requests_sent += sent;
    stats.completions += completions;
    stats.harvest_completions += harvest;
    stats.benign_completions += benign;
    stats.completion_tokens += tokens;
    stats.rate_limited += limited;
    stats.transport_errors += transport;
    stats.other_errors += other;
    stats.accounts_suspended += suspended;
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < o.concurrency; ++w) threads.emplace_back(worker, w);
  for (std::thread& t : threads) t.join();
  stats.wall_s = Seconds(Clock::now() - t0);
  stats.accounts = book.Outcomes();
  for (const AccountOutcome& a : stats.accounts) stats.accounts_stopped += a.stopped.empty() ? 0 : 1;
  TM_RETURN_IF_ERROR(out.Close());
  return stats;
}

Result<BenignStats> RunBenign(const BenignOptions& o) {
  if (o.accounts.empty()) return InvalidArgument("no API keys given");
  if (o.concurrency < 1 || o.concurrency > kMaxConcurrency) {
    return InvalidArgument("--concurrency must be in [1, " + std::to_string(kMaxConcurrency) + "]");
  }
  if (!(o.think_scale >= 0)) return InvalidArgument("--think-scale must be >= 0");
  TM_ASSIGN_OR_RETURN(BaseUrl base, ParseBaseUrl(o.base_url));
  // Each user: its own browser-like fingerprint, 1-3 favourite topics, a temperature habit.
  struct User {
    std::string user_agent;
    std::vector<std::string> topics;
    double temperature;
    bool stream;
  };
  std::vector<User> users;
  for (size_t u = 0; u < o.accounts.size(); ++u) {
    Rng rng(o.seed * 7919 + u);
    User user;
    user.user_agent = "Mozilla/5.0 (X11; Linux x86_64) chat-app/" + std::to_string(1 + rng.Below(9)) + "." +
                      std::to_string(rng.Below(20)) + " user-" + std::to_string(u);
    const uint64_t n = 1 + rng.Below(3);
    for (uint64_t k = 0; k < n; ++k) user.topics.push_back(Pick(rng, kBenignTopics));
    user.temperature = rng.Chance(0.7) ? 0.7 : 1.0;
    user.stream = rng.Chance(0.6);
    users.push_back(std::move(user));
  }
  std::string model = o.model;
  if (model.empty()) {
    HttpClient c(base, users[0].user_agent);
    TM_ASSIGN_OR_RETURN(model, FirstModelId(c, o.accounts[0].key));
  }
  JsonlWriter out;
  TM_RETURN_IF_ERROR(out.Open(o.out_path));
  AccountBook book(o.accounts);
  std::atomic<int64_t> next_session{0};
  std::mutex stats_mu;
  BenignStats stats;
  const auto t0 = Clock::now();
  auto time_up = [&] {
    return (o.stop != nullptr && o.stop->load()) || (o.max_seconds > 0 && Seconds(Clock::now() - t0) > o.max_seconds);
  };
  auto worker = [&] {
    int64_t sessions = 0, sent = 0, completions = 0, tokens = 0, limited = 0, refused = 0, transport = 0, other = 0;
    std::map<int, std::unique_ptr<HttpClient>> clients;  // one connection per user this worker served
    while (!time_up()) {
      const int64_t s = next_session.fetch_add(1);
      if (s >= o.sessions) break;
      Rng rng(o.seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(s) * 31 + 5);
      const int account = static_cast<int>(rng.Below(o.accounts.size()));
      const User& user = users[account];
      auto& client = clients[account];
      if (!client) client = std::make_unique<HttpClient>(base, user.user_agent);
      const std::string topic = Pick(rng, user.topics);
      // Session length: mostly short, sometimes long.
      const int turns = 1 + static_cast<int>(rng.Below(3)) + (rng.Chance(0.3) ? static_cast<int>(rng.Below(kMaxSessionTurns - 3)) : 0);
      std::vector<ChatMessage> history;
      ++sessions;
      for (int t = 0; t < turns && !time_up(); ++t) {
        history.push_back({"user", t == 0 ? Fill(Pick(rng, kChatOpeners), topic) : Pick(rng, kChatFollowUps)});
        ChatRequest req;
        req.model = model;
        req.messages = history;
        req.max_tokens = o.max_tokens;
        req.temperature = user.temperature;
        req.stream = user.stream;
        bool done = false;
        for (int attempt = 0; attempt < kMaxRetriesPerRequest && !done && !time_up(); ++attempt) {
          ++sent;
          Result<ChatResult> r = ChatCompletion(*client, o.accounts[account].key, req);
          if (!r.ok()) {
            ++transport;
            SleepFor(kErrorPauseSeconds, o.stop);
            continue;
          }
          bool suspended = false;
          const Next next = Classify(*r, account, &book, o.max_tokens, &suspended, &limited, &other);
          if (r->http_status == 401 || r->http_status == 403) {
            ++refused;
            break;
          }
          if (next == Next::kGiveUp) break;
          if (next == Next::kRetry) {
            SleepFor(std::max(r->retry_after_s, kMinBackoffSeconds), o.stop);
            continue;
          }
          done = true;
          ++completions;
          tokens += r->completion_tokens;
          history.push_back({"assistant", r->text});
          nlohmann::ordered_json j;
          j["id"] = "b" + std::to_string(s) + "-" + std::to_string(t);
          j["account"] = o.accounts[account].label;
          j["kind"] = "benign";
          j["topic"] = topic;
          j["prompt"] = history[history.size() - 2].content;
          j["text"] = r->text;
          j["turn"] = t;
          out.Write(j);
        }
        if (!done) break;
        if (t + 1 < turns) SleepFor((0.5 + 2.5 * rng.Uniform()) * o.think_scale, o.stop);
      }
    }
    std::lock_guard<std::mutex> lock(stats_mu);
    stats.sessions += sessions;
    stats.requests_sent += sent;
    stats.completions += completions;
    stats.completion_tokens += tokens;
    stats.rate_limited += limited;
    stats.refused += refused;
    stats.transport_errors += transport;
    stats.other_errors += other;
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < o.concurrency; ++w) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  stats.wall_s = Seconds(Clock::now() - t0);
  stats.accounts = book.Outcomes();
  TM_RETURN_IF_ERROR(out.Close());
  return stats;
}

}  // namespace tracemark::redteam
