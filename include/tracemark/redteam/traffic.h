// The red-team traffic generators over the real OpenAI API: the harvester (templated prompt sweeps,
// chain-of-thought and rubric elicitation, sampling sweeps, round-robin over many accounts, pacing
// under the rate limits, a share of ordinary-looking chat) and the benign simulator (chat-like
// multi-turn sessions of varied length, topics, users and think times).
//
// RunHarvest / RunBenign block until done and run `concurrency` worker threads, each with its own
// HttpClient; they may run at the same time (tracemark replay does). `stop`, when given, is polled
// between requests. The prompt generators are pure and deterministic for a seed.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/redteam/http_client.h"

namespace tracemark::redteam {

// Limits of the harness.
inline constexpr int kMaxConcurrency = 64;
inline constexpr int kMaxAccounts = 100000;
inline constexpr int kMaxRetriesPerRequest = 8;
inline constexpr double kMaxBackoffSeconds = 60;
inline constexpr int kMaxSessionTurns = 8;

// One line of a keys file: "KEY" or "LABEL KEY" (whitespace-separated; '#' comments and blank
// lines skipped). The label names the account in the outputs (tracemark replay uses the account
// id); it defaults to "key<LINE>".
struct ApiAccount {
  std::string label;
  std::string key;
};
Result<std::vector<ApiAccount>> LoadKeys(const std::string& path);

// splitmix64: a small deterministic generator with a fixed definition (std distributions are not
// the same across standard libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  double Uniform();                 // [0, 1)
  uint64_t Below(uint64_t n);       // [0, n), n > 0
  bool Chance(double p) { return Uniform() < p; }

 private:
  uint64_t state_;
};

// What a generated request looks like before it is sent.
struct PromptSpec {
  std::string kind;      // "harvest" or "benign"
  std::string template_id;  // e.g. "cot-solve", "rubric", "chat"
  std::string topic;
  std::vector<ChatMessage> messages;
  double temperature = 1.0;
  double top_p = 1.0;
  bool stream = false;
};

// Built-in topic list used when none is given.
const std::vector<std::string>& DefaultTopics();

// The harvester's i-th request for a seed: with probability benign_mix an ordinary-looking chat
// turn, else one of the harvest templates (step-by-step solutions, rubric grading, reasoning
// reconstruction, exhaustive topic explanations) over topic x subtopic x aspect, with a swept
// temperature / top_p grid.
PromptSpec HarvestPrompt(uint64_t seed, uint64_t i, const std::vector<std::string>& topics, double benign_mix,
                         double stream_share);

struct HarvestOptions {
  std::string base_url;
  std::vector<ApiAccount> accounts;
  std::string out_path;         // JSONL, one completion per line
  int64_t requests = 200;       // completions to record (the run also ends when every account stopped)
  int concurrency = 4;
  std::vector<std::string> topics;  // empty: DefaultTopics()
  double benign_mix = 0.1;
  double stream_share = 0.5;
  uint64_t seed = 1;
  int max_tokens = 64;
  double max_seconds = 0;       // 0: no time limit
  std::string user_agent = "harvest-client/2.3 (python-requests compatible)";
  std::string model;            // empty: the first of GET /v1/models
  std::atomic<bool>* stop = nullptr;
};

struct AccountOutcome {
  std::string label;
  int64_t requests = 0;    // HTTP requests sent
  int64_t completions = 0;
  int64_t completion_tokens = 0;
  int64_t rate_limited = 0;  // 429 answers
  std::string stopped;       // "" or the error code that stopped it (account_suspended, ...)
};

struct HarvestStats {
  int64_t requests_sent = 0;
  int64_t completions = 0;
  int64_t harvest_completions = 0;
  int64_t benign_completions = 0;
  int64_t completion_tokens = 0;
  int64_t rate_limited = 0;
  int64_t transport_errors = 0;
  int64_t other_errors = 0;
  int64_t accounts_suspended = 0;  // stopped by 403 account_suspended
  int64_t accounts_stopped = 0;    // stopped for any reason (suspended, deactivated, bad key, quota)
  double wall_s = 0;
  std::vector<AccountOutcome> accounts;
};

// Runs the harvester. Fails only on setup errors (bad URL, unwritable output, no model); request
// failures are counted.
Result<HarvestStats> RunHarvest(const HarvestOptions& options);

struct BenignOptions {
  std::string base_url;
  std::vector<ApiAccount> accounts;  // the users; each gets 1-3 favourite topics
  std::string out_path;              // optional JSONL of completions
  int64_t sessions = 50;
  int concurrency = 4;
  uint64_t seed = 2;
  int max_tokens = 48;
  double think_scale = 1.0;          // think time between turns: U(0.5, 3) s times this
  double max_seconds = 0;
  std::string model;
  std::atomic<bool>* stop = nullptr;
};

struct BenignStats {
  int64_t sessions = 0;
  int64_t requests_sent = 0;
  int64_t completions = 0;
  int64_t completion_tokens = 0;
  int64_t rate_limited = 0;
  int64_t refused = 0;             // 401/403 answers (a benign user refused: a false positive)
  int64_t transport_errors = 0;
  int64_t other_errors = 0;
  double wall_s = 0;
  std::vector<AccountOutcome> accounts;
};

Result<BenignStats> RunBenign(const BenignOptions& options);

}  // namespace tracemark::redteam
