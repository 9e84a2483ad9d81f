// The distillation monitor: the gateway reports every completed request with Observe(), which
// updates fixed-size per-account sketches in a few microseconds; Evaluate(), run off the hot path
// (e.g. every minute), scores each account and each linked cluster of accounts ("hydra"
// networks), and returns the enforcement actions the deployment's ladder allows, each with the
// evidence (signal names and values) to write into the audit log. Signals and the scoring rule
// are documented in docs/monitor.md; the basis is the signal set of the gateway reference
// (shared/reference/gateway.md §4.6).
// Thread-safety: safe to call from any thread. Observe holds one internal mutex for a few
// microseconds; Evaluate holds it only while it copies the account states (1.5 KiB each)
// and again while it records the escalations it returns, and scores the copy unlocked.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/monitor/prompt_features.h"
#include "tracemark/monitor/sketch.h"

namespace tracemark::monitor {

// Default bound on tracked accounts (1.5 KiB of state each, see AccountStateBytes()); Observe
// for a new account beyond it returns ResourceExhausted and the request is not scored.
inline constexpr size_t kDefaultMaxAccounts = 1 << 18;
// Each attribute kind keeps at most this many distinct values per account (first ones seen).
inline constexpr int kMaxValuesPerAttribute = 2;
// Recent MinHash signatures kept per account for near-duplicate detection.
inline constexpr int kSignatureRing = 4;
// Per-account table of recently seen template anchors (prefix/suffix hashes).
inline constexpr int kAnchorSlots = 32;
// Per-minute request counters kept per account for timing correlation (a ring).
inline constexpr int kTimingMinutes = 64;

// The enforcement ladder, lowest first. Reinstate and terminate are human decisions and do not
// appear here.
enum class EnforcementLevel { kNone = 0, kFlag = 1, kThrottle = 2, kSuspend = 3 };
std::string_view EnforcementLevelName(EnforcementLevel level);

// Deployment mode: kShadow scores and reports but never returns actions; otherwise actions up to
// and including max_level are returned.
enum class EnforcementMode { kShadow, kEnforce };

struct MonitorConfig {
  EnforcementMode mode = EnforcementMode::kShadow;
  EnforcementLevel max_level = EnforcementLevel::kSuspend;
  // Score thresholds for each rung (score in [0, 1]).
  double flag_score = 0.35;
  double throttle_score = 0.50;
  double suspend_score = 0.65;
  // Below min_requests an account (or cluster) is never scored above 0.
  int min_requests = 20;
  // A cluster member takes the cluster's level only when its own volume-free behaviour score
  // (intent x shape) reaches flag_score over at least min_member_requests requests: the cluster
  // supplies the volume, the member the behaviour, so benign accounts that happen to share
  // infrastructure with a harvester are not swept up.
  int min_member_requests = 3;
  // Volume factor: completion tokens (decayed) at which it reaches 0 and 1.
  double volume_floor_tokens = 15000;
  double volume_full_tokens = 60000;
  // The same for the templated sub-stream (template-hit requests only), whose intent is measured
  // without dilution by ordinary traffic and so needs less volume to be trusted.
  double stream_volume_floor_tokens = 5000;
  double stream_volume_full_tokens = 25000;
  // An elicitation category counts as used once seen on this many requests.
  int min_category_requests = 3;
  // Half-life of all decayed counters.
  int64_t half_life_ms = 3LL * 24 * 3600 * 1000;
  // quota_utilization at or above this counts as "at the ceiling".
  float ceiling_utilization = 0.9f;
  // A request is a near-duplicate when its MinHash similarity to a recent one reaches this.
  double near_duplicate_similarity = 0.5;
  size_t max_accounts = kDefaultMaxAccounts;
};

struct SamplingParams {
  float temperature = 1.0f;
  float top_p = 1.0f;
  int64_t seed = -1;  // -1: none given
  int n = 1;
};

// What the gateway knows about one completed request. Views must stay valid during Observe only.
struct RequestObservation {
  std::string_view account_id;
  int64_t time_ms = 0;          // wall clock, Unix milliseconds
  std::string_view prompt;      // the last user message (or the completion prompt)
  int prior_assistant_turns = 0;  // 0: single-turn request, no conversation continuity
  SamplingParams sampling;
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  float quota_utilization = 0;  // share of the account's TPM/RPM window used, in [0, 1]
  // Linkage attributes; empty when unknown.
  std::string_view client_fingerprint;  // TLS/JA4 + user agent/SDK
  std::string_view network_prefix;      // e.g. "203.0.113.0/24" or ASN
  std::string_view org_attribute;       // payment instrument / organization id at creation
};

// One named signal value, for evidence.
struct Signal {
  std::string name;
  double value = 0;
};

struct AccountVerdict {
  std::string account_id;
  double score = 0;             // own score in [0, 1]
  int64_t cluster_id = -1;      // -1 when not linked to another account
  EnforcementLevel level = EnforcementLevel::kNone;  // merited by max(own, cluster) score
  std::vector<Signal> evidence;
};

struct ClusterVerdict {
  int64_t cluster_id = 0;
  std::vector<std::string> members;
  double score = 0;
  EnforcementLevel level = EnforcementLevel::kNone;
  std::vector<Signal> evidence;
};

// An action to apply now: an escalation beyond what was already returned for this account.
struct EnforcementAction {
  std::string account_id;
  EnforcementLevel level = EnforcementLevel::kNone;
  std::string reason;            // "account_score" or "cluster_score"
  std::vector<Signal> evidence;  // for the audit entry
};

struct Evaluation {
  std::vector<AccountVerdict> accounts;  // every account with level > kNone or score > 0
  std::vector<ClusterVerdict> clusters;  // linked components of two or more accounts
  std::vector<EnforcementAction> actions;  // empty in shadow mode
};

class Monitor {
 public:
  static Result<std::unique_ptr<Monitor>> Create(const MonitorConfig& config);
  ~Monitor();

  // Hot path: updates the account's sketches. Cost bounded by kMaxPromptBytesScanned.
  Status Observe(const RequestObservation& obs);

  // Scores every account and cluster and returns escalations. Cost O(accounts).
  Evaluation Evaluate();

  // The account's own signals and score (no cluster), for an admin "why" view; NotFound when the
  // account was never observed.
  Result<AccountVerdict> Explain(std::string_view account_id) const;

  // A human reinstated the account: forget the level already returned so that the monitor may
  // act again if the behaviour continues, and clear its counters.
  void ResetAccount(std::string_view account_id);

  size_t account_count() const;
  // Bytes of fixed per-account state (excluding the id string and hash-map node).
  static size_t AccountStateBytes();

  struct AccountState;  // defined in monitor.cc

 private:
  explicit Monitor(const MonitorConfig& config);

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return HashBytes(s); }
  };

  MonitorConfig config_;
  mutable std::mutex mu_;  // guards everything below
  std::mutex eval_mu_;     // serializes Evaluate (taken before mu_)
  PromptAnalyzer analyzer_;
  PromptFeatures features_;
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> index_;
  std::vector<std::string> ids_;
  std::vector<std::unique_ptr<AccountState>> accounts_;
  std::vector<EnforcementLevel> issued_;
};

}  // namespace tracemark::monitor
