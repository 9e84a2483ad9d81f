#include "tracemark/monitor/monitor.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tracemark::monitor {
namespace {

// Decayed counter slots.
enum Counter : int {
  kRequests,
  kCompletionTokens,
  kCeiling,
  kTemplateHit,
  kElicitation,
  kSingleTurn,
  kStreamElicitation,  // elicitation on template-hit requests (the templated sub-stream)
  kStreamTokens,       // completion tokens of template-hit requests
  kCounterCount
};

// Linkage attribute kinds.
enum AttributeKind : int { kFingerprint, kNetwork, kOrg, kTemplate, kAttributeKinds };
constexpr std::string_view kAttributeNames[kAttributeKinds] = {"fingerprint", "network_prefix",
                                                               "org_attribute", "template"};

// A template anchor becomes an account's linkage attribute once it has been seen this often and
// on at least kTemplateMinShare of the account's requests.
constexpr uint32_t kTemplateMinCount = 5;
constexpr double kTemplateMinShare = 0.2;
// An anchor counts towards template variety once seen this share of the account's requests.
constexpr double kVarietyMinShare = 0.02;
// Clusters larger than this are scored but timing correlation is computed on the first members.
constexpr size_t kMaxTimingMembers = 512;
// The templated sub-stream's behaviour score is its intent times this (it has no shape term).
constexpr double kStreamWeight = 0.75;
// Accounts reported by Evaluate: level above none, or score at least this share of flag_score.
constexpr double kReportScoreShare = 0.5;

double Ramp(double x, double lo, double hi) {
  if (x <= lo) return 0;
  if (x >= hi) return 1;
  return (x - lo) / (hi - lo);
}

// Misra-Gries summary with four slots: share of requests that used the most common sampling
// setting (an undercount by at most 1/5 of the total, irrelevant for a dominant mode).
struct ModeSummary {
  std::array<uint64_t, 4> key{};
  std::array<uint32_t, 4> count{};
  uint32_t total = 0;

  void Add(uint64_t k) {
    ++total;
    for (int i = 0; i < 4; ++i) {
      if (count[i] > 0 && key[i] == k) {
        ++count[i];
        return;
      }
    }
    for (int i = 0; i < 4; ++i) {
      if (count[i] == 0) {
        key[i] = k;
        count[i] = 1;
        return;
      }
    }
    for (uint32_t& c : count) --c;
  }
  double NonModalShare() const {
    if (total == 0) return 0;
    uint32_t best = 0;
    for (uint32_t c : count) best = std::max(best, c);
    return 1.0 - static_cast<double>(best) / total;
  }
};

}  // namespace

struct Monitor::AccountState {
  DecayedCounters<kCounterCount> c;
  uint64_t total_requests = 0;
  uint64_t total_completion_tokens = 0;
  HyperLogLog<7> distinct_prompts;
  HyperLogLog<6> distinct_sampling;
  HyperLogLog<6> stream_sampling;  // sampling parameters of template-hit requests
  ModeSummary sampling_mode;
  ModeSummary stream_sampling_mode;
  std::array<MinHashSignature, kSignatureRing> ring{};
  int ring_size = 0;
  int ring_pos = 0;
  struct AnchorSlot {
    uint64_t key = 0;
    uint32_t count = 0;
    uint32_t last_seen = 0;  // request number (low 32 bits)
  };
  std::array<AnchorSlot, kAnchorSlots> anchors{};
  HyperLogLog<7> vocabulary;  // distinct content words
  uint64_t content_words = 0;
  std::array<uint32_t, kElicitationCategories> categories{};
  std::array<uint16_t, kTimingMinutes> minutes{};
  int64_t minute_head = -1;
  std::array<std::array<uint64_t, kMaxValuesPerAttribute>, 3> attrs{};

  // Returns whether the anchor was already present; inserts it otherwise.
  // Returns whether the anchor was already present; otherwise replaces the least used slot
  // (oldest among equals), so a new anchor survives about kAnchorSlots other new ones.
  bool TouchAnchor(uint64_t key) {
    const uint32_t now = static_cast<uint32_t>(total_requests);
    int victim = 0;
    for (int i = 0; i < kAnchorSlots; ++i) {
      AnchorSlot& a = anchors[i];
      if (a.key == key) {
        ++a.count;
        a.last_seen = now;
        return true;
      }
      const AnchorSlot& v = anchors[victim];
      if (a.count < v.count || (a.count == v.count && a.last_seen < v.last_seen)) victim = i;
    }
    anchors[victim] = {key, 1, now};
    return false;
  }

  // Number of anchors in active use: a harvesting sweep rotates several templates, a product
  // pipeline usually has one.
  int TemplateVariety() const {
    int n = 0;
    for (const auto& a : anchors) {
      n += a.count >= kTemplateMinCount && a.count >= kVarietyMinShare * static_cast<double>(total_requests);
    }
    return n;
  }

  uint64_t DominantTemplate() const {
    const AnchorSlot* best = &anchors[0];
    for (const auto& s : anchors) best = s.count > best->count ? &s : best;
    if (best->count >= kTemplateMinCount &&
        best->count >= kTemplateMinShare * static_cast<double>(total_requests)) {
      return best->key;
    }
    return 0;
  }
};

namespace {

// Rates pooled over one account or over a cluster, and the score computed from them.
struct Pooled {
  double requests = 0;
  double completion_tokens = 0;
  double counters[kCounterCount] = {};
  HyperLogLog<7> distinct_prompts;
  HyperLogLog<7> vocabulary;
  double content_words = 0;
  // Requests per elicitation category, summed over members.
  std::array<double, kElicitationCategories> category_requests{};
  int min_category_requests = 1;
  double variety_weighted = 0;  // template variety, request-weighted
  // Union of the members' sampling settings. A union alone would let many benign members with
  // one setting each look like a sweep, so the sweep signal also needs the request-weighted mean
  // non-modal share below, which stays near 0 for such members.
  HyperLogLog<6> distinct_sampling;
  HyperLogLog<6> stream_sampling;
  double non_modal_weighted = 0;
  double stream_non_modal_weighted = 0;
};

struct Scored {
  double score = 0;
  double behaviour = 0;  // intent x shape, without the volume factor
  std::vector<Signal> signals;
};

void Accumulate(Pooled* p, const Monitor::AccountState& s, int min_category_requests);

Scored ScorePooled(const Pooled& p, const MonitorConfig& cfg) {
  Scored out;
  const double n = std::max(p.counters[kRequests], 1e-9);
  const double elicit = p.counters[kElicitation] / n;
  const double templ = p.counters[kTemplateHit] / n;
  const double single = p.counters[kSingleTurn] / n;
  const double ceiling = p.counters[kCeiling] / n;
  const double distinct_sampling = p.distinct_sampling.Estimate();
  const double distinct_prompts = p.distinct_prompts.Estimate();
  // Narrow focus: average number of uses per distinct content word.
  const double focus = p.content_words / std::max(p.vocabulary.Estimate(), 1.0);
  double categories = 0;
  for (double c : p.category_requests) categories += c >= p.min_category_requests;
  const double variety = p.variety_weighted / std::max(p.requests, 1.0);
  const double tokens = p.counters[kCompletionTokens];

  // Intent: what the prompts ask for (reasoning traces, grading) and how (parameter sweeps).
  // Elicitation from one template of one category (a product that always asks for step-by-step
  // answers) counts half; two or more categories (reasoning, hidden-trace reconstruction,
  // grading, rewriting) or several rotating templates count fully.
  const double category_factor = 0.5 + 0.5 * std::max(Ramp(categories, 1, 2), Ramp(variety, 1, 3));
  const double s_elicit = Ramp(elicit, 0.08, 0.30) * category_factor;
  // A sweep uses many settings AND leaves the usual one most of the time (a user who changes the
  // temperature now and then reaches many distinct values over thousands of requests).
  const double non_modal = p.non_modal_weighted / std::max(p.requests, 1.0);
  const double stream_non_modal = p.stream_non_modal_weighted / std::max(p.requests, 1.0);
  const double s_sweep = Ramp(distinct_sampling, 8, 24) * Ramp(non_modal, 0.3, 0.6);
  const double intent = (3 * s_elicit + 2 * s_sweep) / 5;
  // Shape: templated, single-turn, saturating traffic. Benign pipelines share it, so it only
  // amplifies intent and never flags on its own.
  const double s_template = Ramp(templ, 0.15, 0.50);
  const double s_single = Ramp(single, 0.60, 0.95);
  const double s_ceiling = Ramp(ceiling, 0.10, 0.50);
  const double shape = (2 * s_template + s_single + s_ceiling) / 4;
  const double volume = Ramp(tokens, cfg.volume_floor_tokens, cfg.volume_full_tokens);
  const double account_behaviour = intent * (0.5 + 0.5 * shape);

  // The templated sub-stream (requests that reuse a template anchor or near-duplicate a recent
  // prompt), scored on its own so that harvesting mixed into ordinary traffic is not diluted.
  const double stream_n = p.counters[kTemplateHit];
  const double stream_elicit = stream_n > 0 ? p.counters[kStreamElicitation] / stream_n : 0;
  const double stream_sampling = p.stream_sampling.Estimate();
  const double stream_intent =
      (3 * Ramp(stream_elicit, 0.08, 0.30) * category_factor + 2 * Ramp(stream_sampling, 8, 24) * Ramp(stream_non_modal, 0.3, 0.6)) / 5;
  const double stream_behaviour = kStreamWeight * stream_intent;
  const double stream_volume = Ramp(p.counters[kStreamTokens], cfg.stream_volume_floor_tokens, cfg.stream_volume_full_tokens);

  const bool enough = p.requests >= cfg.min_requests;
  out.behaviour = std::max(account_behaviour, stream_behaviour);
  out.score = enough ? std::max(account_behaviour * volume, stream_behaviour * stream_volume) : 0;

  out.signals = {{"requests", p.requests},
                 {"completion_tokens_decayed", tokens},
                 {"elicitation_share", elicit},
                 {"distinct_sampling_params", distinct_sampling},
                 {"non_modal_sampling_share", non_modal},
                 {"template_reuse_share", templ},
                 {"single_turn_share", single},
                 {"elicitation_categories", categories},
                 {"template_variety", variety},
                 {"content_word_reuse", focus},
                 {"quota_ceiling_share", ceiling},
                 {"distinct_prompt_ratio", std::min(1.0, distinct_prompts / std::max(p.requests, 1.0))},
                 {"stream_requests", stream_n},
                 {"stream_elicitation_share", stream_elicit},
                 {"stream_distinct_sampling_params", stream_sampling},
                 {"stream_non_modal_sampling_share", stream_non_modal},
                 {"stream_completion_tokens_decayed", p.counters[kStreamTokens]},
                 {"intent", intent},
                 {"stream_intent", stream_intent},
                 {"behaviour", out.behaviour},
                 {"shape", shape},
                 {"volume_factor", volume},
                 {"score", out.score}};
  return out;
}

EnforcementLevel LevelFor(double score, const MonitorConfig& cfg) {
  if (score >= cfg.suspend_score) return EnforcementLevel::kSuspend;
  if (score >= cfg.throttle_score) return EnforcementLevel::kThrottle;
  if (score >= cfg.flag_score) return EnforcementLevel::kFlag;
  return EnforcementLevel::kNone;
}

struct UnionFind {
  std::vector<uint32_t> parent;
  explicit UnionFind(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0u); }
  uint32_t Find(uint32_t x) {
    while (parent[x] != x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  }
  void Union(uint32_t a, uint32_t b) {
    a = Find(a);
    b = Find(b);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);
  }
};

double Correlation(const std::array<double, kTimingMinutes>& a, const std::array<double, kTimingMinutes>& b) {
  double ma = 0, mb = 0;
  for (int i = 0; i < kTimingMinutes; ++i) {
    ma += a[i];
    mb += b[i];
  }
  ma /= kTimingMinutes;
  mb /= kTimingMinutes;
  double sab = 0, saa = 0, sbb = 0;
  for (int i = 0; i < kTimingMinutes; ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  if (saa <= 0 || sbb <= 0) return 0;
  return sab / std::sqrt(saa * sbb);
}

}  // namespace

std::string_view EnforcementLevelName(EnforcementLevel level) {
  switch (level) {
    case EnforcementLevel::kNone: return "none";
    case EnforcementLevel::kFlag: return "flag";
    case EnforcementLevel::kThrottle: return "throttle";
    case EnforcementLevel::kSuspend: return "suspend";
  }
  return "unknown";
}

Monitor::Monitor(const MonitorConfig& config) : config_(config) {}
Monitor::~Monitor() = default;

Result<std::unique_ptr<Monitor>> Monitor::Create(const MonitorConfig& config) {
  if (!(config.flag_score > 0 && config.flag_score <= config.throttle_score &&
        config.throttle_score <= config.suspend_score && config.suspend_score <= 1)) {
    return InvalidArgument("monitor: need 0 < flag_score <= throttle_score <= suspend_score <= 1");
  }
  if (!(config.volume_floor_tokens >= 0 && config.volume_full_tokens > config.volume_floor_tokens &&
        config.stream_volume_floor_tokens >= 0 &&
        config.stream_volume_full_tokens > config.stream_volume_floor_tokens)) {
    return InvalidArgument("monitor: need 0 <= volume_floor_tokens < volume_full_tokens (also for stream_)");
  }
  if (config.half_life_ms <= 0 || config.max_accounts == 0 || config.min_requests < 1) {
    return InvalidArgument("monitor: half_life_ms, max_accounts and min_requests must be positive");
  }
  return std::unique_ptr<Monitor>(new Monitor(config));
}

size_t Monitor::AccountStateBytes() { return sizeof(AccountState); }

size_t Monitor::account_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return accounts_.size();
}

Status Monitor::Observe(const RequestObservation& obs) {
  if (obs.account_id.empty()) return InvalidArgument("monitor: observation without account_id");
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t idx;
  auto it = index_.find(obs.account_id);
  if (it != index_.end()) {
    idx = it->second;
  } else {
    if (accounts_.size() >= config_.max_accounts) {
      return ResourceExhausted("monitor: tracking " + std::to_string(accounts_.size()) +
                               " accounts (max_accounts); raise MonitorConfig::max_accounts");
    }
    idx = static_cast<uint32_t>(accounts_.size());
    index_.emplace(std::string(obs.account_id), idx);
    ids_.emplace_back(obs.account_id);
    accounts_.push_back(std::make_unique<AccountState>());
    issued_.push_back(EnforcementLevel::kNone);
  }
  AccountState& s = *accounts_[idx];
  analyzer_.Analyze(obs.prompt, &features_);
  const PromptFeatures& f = features_;

  s.c.Advance(obs.time_ms, static_cast<double>(config_.half_life_ms));
  s.c.v[kRequests] += 1;
  s.c.v[kCompletionTokens] += static_cast<float>(obs.completion_tokens);
  if (obs.quota_utilization >= config_.ceiling_utilization) s.c.v[kCeiling] += 1;
  if (f.elicitation_mask != 0) s.c.v[kElicitation] += 1;
  if (obs.prior_assistant_turns == 0) s.c.v[kSingleTurn] += 1;
  ++s.total_requests;
  s.total_completion_tokens += obs.completion_tokens;

  s.distinct_prompts.Add(f.prompt_hash);
  // Seeds are left out: many benign developers send a fresh seed with every request.
  const uint64_t sampling_key =
      HashCombine(HashCombine(static_cast<uint64_t>(std::lround(obs.sampling.temperature * 100)),
                              static_cast<uint64_t>(std::lround(obs.sampling.top_p * 100))),
                  static_cast<uint64_t>(obs.sampling.n));
  s.distinct_sampling.Add(sampling_key);
  s.sampling_mode.Add(sampling_key);

  // Template reuse: a known prefix/suffix anchor, or a near-duplicate skeleton.
  bool hit = false;
  if (f.prefix_anchor != 0) hit |= s.TouchAnchor(f.prefix_anchor);
  if (f.suffix_anchor != 0) hit |= s.TouchAnchor(f.suffix_anchor);
  for (int r = 0; r < s.ring_size && !hit; ++r) {
    hit = MinHashSimilarity(s.ring[r], f.signature) >= config_.near_duplicate_similarity;
  }
  s.ring[s.ring_pos] = f.signature;
  s.ring_pos = (s.ring_pos + 1) % kSignatureRing;
  s.ring_size = std::min(s.ring_size + 1, kSignatureRing);
  if (hit) {
    s.c.v[kTemplateHit] += 1;
    s.c.v[kStreamTokens] += static_cast<float>(obs.completion_tokens);
    if (f.elicitation_mask != 0) s.c.v[kStreamElicitation] += 1;
    s.stream_sampling.Add(sampling_key);
    s.stream_sampling_mode.Add(sampling_key);
  }

  // Topical focus and elicitation categories.
  for (int w = 0; w < f.content_word_count; ++w) s.vocabulary.Add(Mix64(f.content_words[w]));
  s.content_words += static_cast<uint64_t>(f.content_word_count);
  if (f.elicitation_mask != 0) {
    uint32_t cats = 0;
    for (uint32_t m = f.elicitation_mask; m != 0; m &= m - 1) cats |= 1u << kElicitationCategory[static_cast<size_t>(__builtin_ctz(m))];
    for (int c = 0; c < kElicitationCategories; ++c) s.categories[static_cast<size_t>(c)] += (cats >> c) & 1;
  }

  // Per-minute timing ring.
  const int64_t minute = obs.time_ms / 60000;
  if (minute > s.minute_head) {
    const int64_t gap = s.minute_head < 0 ? kTimingMinutes : std::min<int64_t>(minute - s.minute_head, kTimingMinutes);
    for (int64_t m = 1; m <= gap; ++m) s.minutes[(minute - gap + m) % kTimingMinutes] = 0;
    s.minute_head = minute;
  }
  if (minute > s.minute_head - kTimingMinutes) {
    uint16_t& slot = s.minutes[minute % kTimingMinutes];
    if (slot < UINT16_MAX) ++slot;
  }

  // Linkage attributes: keep the first kMaxValuesPerAttribute distinct values of each kind.
  const std::string_view values[3] = {obs.client_fingerprint, obs.network_prefix, obs.org_attribute};
  for (int k = 0; k < 3; ++k) {
    if (values[k].empty()) continue;
    const uint64_t h = HashBytes(values[k], static_cast<uint64_t>(k + 1)) | 1;
    for (uint64_t& v : s.attrs[k]) {
      if (v == h) break;
      if (v == 0) {
        v = h;
        break;
      }
    }
  }
  return Status::Ok();
}

namespace {

void Accumulate(Pooled* p, const Monitor::AccountState& s, int min_category_requests) {
  p->requests += static_cast<double>(s.total_requests);
  for (int i = 0; i < kCounterCount; ++i) p->counters[i] += s.c.v[i];
  p->completion_tokens += s.c.v[kCompletionTokens];
  p->distinct_prompts.Merge(s.distinct_prompts);
  p->distinct_sampling.Merge(s.distinct_sampling);
  p->stream_sampling.Merge(s.stream_sampling);
  p->non_modal_weighted += s.sampling_mode.NonModalShare() * static_cast<double>(s.total_requests);
  p->stream_non_modal_weighted += s.stream_sampling_mode.NonModalShare() * static_cast<double>(s.total_requests);
  p->vocabulary.Merge(s.vocabulary);
  p->content_words += static_cast<double>(s.content_words);
  for (int c = 0; c < kElicitationCategories; ++c) p->category_requests[static_cast<size_t>(c)] += s.categories[static_cast<size_t>(c)];
  p->min_category_requests = min_category_requests;
  p->variety_weighted += s.TemplateVariety() * static_cast<double>(s.total_requests);
}

}  // namespace

Evaluation Monitor::Evaluate() {
  // Score a snapshot so that Observe (the request path) waits only for the copy, not for the
  // scoring; eval_mu_ keeps two evaluations from interleaving their issuance.
  std::lock_guard<std::mutex> eval_lock(eval_mu_);
  std::vector<AccountState> snap;
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    snap.reserve(accounts_.size());
    for (const auto& st : accounts_) snap.push_back(*st);
    ids = ids_;
  }
  Evaluation ev;
  const size_t n = snap.size();
  std::vector<uint32_t> action_account;  // parallel to ev.actions before filtering

  // Linkage: two accounts are joined when they share values of at least two attribute kinds.
  UnionFind uf(n);
  std::unordered_map<uint64_t, uint32_t> first_holder;
  first_holder.reserve(n * 8);
  std::vector<uint64_t> values[kAttributeKinds];
  for (uint32_t a = 0; a < n; ++a) {
    const AccountState& s = snap[a];
    for (int k = 0; k < 3; ++k) {
      values[k].clear();
      for (uint64_t v : s.attrs[k]) {
        if (v != 0) values[k].push_back(v);
      }
    }
    values[kTemplate].clear();
    if (const uint64_t t = s.DominantTemplate(); t != 0) values[kTemplate].push_back(t);
    for (int ka = 0; ka < kAttributeKinds; ++ka) {
      for (int kb = ka + 1; kb < kAttributeKinds; ++kb) {
        for (uint64_t va : values[ka]) {
          for (uint64_t vb : values[kb]) {
            const uint64_t key = HashCombine(HashCombine(static_cast<uint64_t>(ka * 8 + kb), va), vb);
            auto [pos, inserted] = first_holder.emplace(key, a);
            if (!inserted) uf.Union(a, pos->second);
          }
        }
      }
    }
  }
  std::unordered_map<uint32_t, std::vector<uint32_t>> components;
  for (uint32_t a = 0; a < n; ++a) components[uf.Find(a)].push_back(a);

  // Cluster scores.
  std::vector<double> cluster_score(n, 0);
  std::vector<int64_t> cluster_of(n, -1);
  std::vector<size_t> cluster_index(n, SIZE_MAX);
  std::vector<Pooled> pooled_of;  // by cluster index
  std::vector<uint32_t> roots;
  for (const auto& [root, members] : components) {
    if (members.size() >= 2) roots.push_back(root);
  }
  std::sort(roots.begin(), roots.end());
  for (uint32_t root : roots) {
    const std::vector<uint32_t>& members = components[root];
    Pooled pooled;
    for (uint32_t m : members) Accumulate(&pooled, snap[m], config_.min_category_requests);
    Scored sc = ScorePooled(pooled, config_);
    pooled_of.push_back(pooled);
    // Timing: mean correlation of each member's per-minute series with the rest of the cluster.
    std::array<double, kTimingMinutes> total{};
    int64_t head = -1;
    for (uint32_t m : members) head = std::max(head, snap[m].minute_head);
    const size_t timing_members = std::min(members.size(), kMaxTimingMembers);
    std::vector<std::array<double, kTimingMinutes>> series(timing_members);
    for (size_t i = 0; i < timing_members; ++i) {
      const AccountState& s = snap[members[i]];
      for (int k = 0; k < kTimingMinutes; ++k) {
        const int64_t minute = head - k;
        const bool live = minute >= 0 && minute <= s.minute_head && minute > s.minute_head - kTimingMinutes;
        series[i][k] = live ? s.minutes[minute % kTimingMinutes] : 0;
        total[k] += series[i][k];
      }
    }
    double corr = 0;
    for (size_t i = 0; i < timing_members; ++i) {
      std::array<double, kTimingMinutes> rest;
      for (int k = 0; k < kTimingMinutes; ++k) rest[k] = total[k] - series[i][k];
      corr += Correlation(series[i], rest);
    }
    corr /= static_cast<double>(timing_members);

    ClusterVerdict cv;
    cv.cluster_id = root;
    cv.score = sc.score;
    cv.level = LevelFor(sc.score, config_);
    cv.evidence = std::move(sc.signals);
    cv.evidence.push_back({"members", static_cast<double>(members.size())});
    cv.evidence.push_back({"timing_correlation", corr});
    for (uint32_t m : members) {
      cv.members.push_back(ids[m]);
      cluster_score[m] = cv.score;
      cluster_of[m] = root;
      cluster_index[m] = ev.clusters.size();
    }
    ev.clusters.push_back(std::move(cv));
  }

  for (uint32_t a = 0; a < n; ++a) {
    Pooled own;
    Accumulate(&own, snap[a], config_.min_category_requests);
    Scored sc = ScorePooled(own, config_);
    // The member gate: the member's own rates (elicitation, non-modal sampling, template reuse)
    // judged with the cluster's diversity facts (sampling settings, elicitation categories,
    // template variety), which a member with a handful of requests cannot show alone.
    bool member_behaves = false;
    if (cluster_of[a] >= 0 && snap[a].total_requests >= static_cast<uint64_t>(config_.min_member_requests)) {
      Pooled in_context = own;
      const Pooled& ctx = pooled_of[cluster_index[a]];
      in_context.distinct_sampling = ctx.distinct_sampling;
      in_context.stream_sampling = ctx.stream_sampling;
      in_context.category_requests = ctx.category_requests;
      in_context.variety_weighted = ctx.variety_weighted / std::max(ctx.requests, 1.0) * own.requests;
      member_behaves = ScorePooled(in_context, config_).behaviour >= config_.flag_score;
    }
    const double usable_cluster = member_behaves ? cluster_score[a] : 0;
    const bool cluster_wins = usable_cluster > sc.score;
    const double merit = std::max(sc.score, usable_cluster);
    const EnforcementLevel level = LevelFor(merit, config_);
    if (level != EnforcementLevel::kNone || sc.score >= kReportScoreShare * config_.flag_score) {
      AccountVerdict v;
      v.account_id = ids[a];
      v.score = sc.score;
      v.cluster_id = cluster_of[a];
      v.level = level;
      v.evidence = sc.signals;
      if (cluster_of[a] >= 0) v.evidence.push_back({"cluster_score", cluster_score[a]});
      ev.accounts.push_back(std::move(v));
    }
    if (config_.mode == EnforcementMode::kShadow) continue;
    const EnforcementLevel applied = std::min(level, config_.max_level);
    if (applied == EnforcementLevel::kNone) continue;
    EnforcementAction act;
    act.account_id = ids[a];
    act.level = applied;
    act.reason = cluster_wins ? "cluster_score" : "account_score";
    act.evidence = cluster_wins ? ev.clusters[cluster_index[a]].evidence : std::move(sc.signals);
    if (cluster_wins) {
      act.evidence.push_back({"cluster_id", static_cast<double>(cluster_of[a])});
      act.evidence.push_back({"member_behaviour", sc.behaviour});
      act.evidence.push_back({"member_requests", static_cast<double>(snap[a].total_requests)});
    }
    ev.actions.push_back(std::move(act));
    action_account.push_back(a);
  }

  // Issue only escalations beyond what was already returned.
  std::lock_guard<std::mutex> lock(mu_);
  size_t kept = 0;
  for (size_t i = 0; i < ev.actions.size(); ++i) {
    const uint32_t a = action_account[i];
    if (ev.actions[i].level > issued_[a]) {
      issued_[a] = ev.actions[i].level;
      if (kept != i) ev.actions[kept] = std::move(ev.actions[i]);
      ++kept;
    }
  }
  ev.actions.resize(kept);
  return ev;
}

Result<AccountVerdict> Monitor::Explain(std::string_view account_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(account_id);
  if (it == index_.end()) return NotFound("monitor: account '" + std::string(account_id) + "' was never observed");
  Pooled own;
  Accumulate(&own, *accounts_[it->second], config_.min_category_requests);
  Scored sc = ScorePooled(own, config_);
  AccountVerdict v;
  v.account_id = std::string(account_id);
  v.score = sc.score;
  v.level = LevelFor(sc.score, config_);
  v.evidence = std::move(sc.signals);
  return v;
}

void Monitor::ResetAccount(std::string_view account_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(account_id);
  if (it == index_.end()) return;
  const auto attrs = accounts_[it->second]->attrs;
  accounts_[it->second] = std::make_unique<AccountState>();
  accounts_[it->second]->attrs = attrs;  // linkage facts stay: they describe the account, not its traffic
  issued_[it->second] = EnforcementLevel::kNone;
}

}  // namespace tracemark::monitor
