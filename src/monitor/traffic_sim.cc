#include "monitor/traffic_sim.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string_view>

namespace tracemark::monitor::sim {
namespace {

constexpr int kTopics = 48;
constexpr int kWordsPerTopic = 40;
constexpr int64_t kMinuteMs = 60000;
constexpr double kDefaultQuotaTpm = 10000;
constexpr double kPipelineQuotaTpm = 20000;

// splitmix64: small, fast and fully specified, so runs are identical across platforms.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : Next() % n; }
  int Between(int lo, int hi) { return lo + static_cast<int>(Below(static_cast<uint64_t>(hi - lo + 1))); }
  bool Chance(double p) { return Uniform() < p; }
  double Normal() {
    const double u1 = std::max(Uniform(), 1e-300), u2 = Uniform();
    return std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double LogNormal(double mu, double sigma) { return std::exp(mu + sigma * Normal()); }

 private:
  uint64_t s_;
};

constexpr std::array<std::string_view, 40> kGeneralWords = {
    "the", "a", "is", "of", "to", "and", "in", "it", "for", "on", "with", "can", "you", "i", "my",
    "how", "why", "do", "be", "what", "about", "which", "would", "like", "need", "help", "make",
    "good", "best", "some", "there", "when", "this", "that", "know", "want", "use", "time", "way",
    "does"};
constexpr std::array<std::string_view, 16> kSyllables = {"ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi",
                                                         "pe", "shu", "gra", "bel", "tor", "den", "mar", "qui"};

const std::vector<std::string>& TopicWords() {
  static const std::vector<std::string> words = [] {
    std::vector<std::string> w;
    Rng rng(0x70b1c5);
    for (int i = 0; i < kTopics * kWordsPerTopic; ++i) {
      std::string s;
      const int syl = rng.Between(2, 4);
      for (int k = 0; k < syl; ++k) s += kSyllables[rng.Below(kSyllables.size())];
      w.push_back(s);
    }
    return w;
  }();
  return words;
}

// Harvest templates; "{P}" is the payload. Indices 0-9 elicit reasoning, grading or rewrites.
constexpr std::array<std::string_view, 14> kHarvestTemplates = {
    "Solve the following problem step by step and explain your reasoning. {P}",
    "{P} Think through this carefully and show your work before the final answer.",
    "Here is a question and a candidate answer. Grade this answer with a rubric from 1 to 10 and justify each point. {P}",
    "Imagine and write out step by step the internal reasoning behind the following completed response. {P}",
    "Rewrite the following text so that it is censorship-safe while keeping all facts. {P}",
    "You are a senior engineer. Implement the following task in Python and explain your reasoning line by line. {P}",
    "Compare two answers to the following and say which response is better and why. {P}",
    "Provide a chain of thought for this problem, then give the answer in a box. {P}",
    "Score this response for helpfulness and accuracy using the rubric below. {P}",
    "Show your reasoning in detail for the question that follows. {P}",
    "Write a detailed expert tutorial covering the following material with worked examples. {P}",
    "Answer the question below as an expert would, with full detail. {P}",
    "Generate five diverse question and answer pairs about the following topic. {P}",
    "Continue the following passage in the same style for three paragraphs. {P}"};
constexpr int kElicitingTemplates = 10;

constexpr std::array<std::string_view, 5> kPipelineTemplates = {
    "Summarize the following customer review in one sentence. {P}",
    "Classify the sentiment of this text as positive, negative or neutral. {P}",
    "Extract every product name mentioned in the text below. {P}",
    "Translate the following message into French. {P}",
    "Write a short polite reply to this support ticket. {P}"};
constexpr std::array<std::string_view, 2> kCotPipelineTemplates = {
    "Answer the student's question step by step, showing your work. {P}",
    "Explain your reasoning briefly, then answer the customer question: {P}"};
constexpr std::array<std::string_view, 3> kBenignElicitSuffixes = {
    " Please explain step by step.", " Can you show your reasoning?", " Walk me through it step by step."};

struct Profile {
  Kind kind = Kind::kBenignChat;
  std::string id, fingerprint, prefix, org;
  uint64_t seed = 0;
  std::array<int, 4> topics{};
  int topic_count = 1;
  double elicit_rate = 0;
  float temperature = 1.0f;
  bool seed_per_request = false;
  bool sweep = false;          // harvest requests sweep sampling parameters
  std::vector<int> templates;  // harvest or pipeline template indices
  double quota_tpm = kDefaultQuotaTpm;
  int cluster_index = -1;
};

struct Req {
  int64_t time_ms;
  uint32_t account;
  uint16_t turn;
  uint8_t harvest;
  uint8_t topic;
  uint32_t completion_tokens;
};

void AppendWords(Rng& rng, const Profile& p, int topic, int count, double topic_share, std::string* out) {
  const auto& tw = TopicWords();
  for (int i = 0; i < count; ++i) {
    if (!out->empty() && out->back() != ' ') out->push_back(' ');
    if (rng.Chance(topic_share)) {
      *out += tw[static_cast<size_t>(topic * kWordsPerTopic) + rng.Below(kWordsPerTopic)];
    } else if (rng.Chance(0.03)) {
      *out += std::to_string(rng.Below(1000));
    } else {
      *out += kGeneralWords[rng.Below(kGeneralWords.size())];
    }
  }
}

void FillTemplate(std::string_view tmpl, const std::string& payload, std::string* out) {
  const size_t at = tmpl.find("{P}");
  out->append(tmpl.substr(0, at));
  out->append(payload);
  out->append(tmpl.substr(at + 3));
}

// Builds the prompt and sampling parameters of one request.
void MakeRequest(const Profile& p, const Req& r, uint64_t index, std::string* prompt, SamplingParams* sp) {
  Rng rng(HashCombine(p.seed, index));
  prompt->clear();
  *sp = SamplingParams{};
  sp->temperature = p.temperature;
  if (rng.Chance(0.03)) sp->temperature = static_cast<float>(rng.Between(0, 12)) / 10.0f;  // user fiddles
  if (p.seed_per_request) sp->seed = static_cast<int64_t>(rng.Below(1u << 30));
  if (r.harvest) {
    const int focus = p.topics[rng.Below(static_cast<uint64_t>(p.topic_count))];
    std::string payload;
    AppendWords(rng, p, focus, rng.Between(12, 70), 0.6, &payload);
    FillTemplate(kHarvestTemplates[static_cast<size_t>(p.templates[rng.Below(p.templates.size())])], payload, prompt);
    if (p.sweep) {
      sp->temperature = static_cast<float>(rng.Between(0, 12)) / 10.0f;
      sp->top_p = std::array<float, 4>{0.8f, 0.9f, 0.95f, 1.0f}[rng.Below(4)];
      if (rng.Chance(0.5)) sp->seed = static_cast<int64_t>(rng.Below(1u << 30));
    }
    return;
  }
  switch (p.kind) {
    case Kind::kBenignPipeline:
    case Kind::kBenignCotPipeline: {
      std::string payload;
      AppendWords(rng, p, static_cast<int>(rng.Below(kTopics)), rng.Between(10, 120), 0.4, &payload);
      const std::string_view tmpl = p.kind == Kind::kBenignPipeline
                                        ? kPipelineTemplates[static_cast<size_t>(p.templates[0])]
                                        : kCotPipelineTemplates[static_cast<size_t>(p.templates[0])];
      FillTemplate(tmpl, payload, prompt);
      return;
    }
    default: {
      const int len = std::clamp(static_cast<int>(std::lround(rng.LogNormal(r.turn > 0 ? 2.2 : 2.8, 0.9))), 2, 300);
      AppendWords(rng, p, r.topic, len, 0.45, prompt);
      if (!prompt->empty()) (*prompt)[0] = static_cast<char>(std::toupper(static_cast<unsigned char>((*prompt)[0])));
      prompt->push_back(rng.Chance(0.6) ? '?' : '.');
      if (rng.Chance(p.elicit_rate)) *prompt += kBenignElicitSuffixes[rng.Below(kBenignElicitSuffixes.size())];
      return;
    }
  }
}

uint32_t Tokens(Rng& rng, double mu, double sigma, uint32_t lo, uint32_t hi) {
  return std::clamp(static_cast<uint32_t>(rng.LogNormal(mu, sigma)), lo, hi);
}

// Chat-like sessions for one account.
void ChatSessions(Rng& rng, uint32_t a, int sessions, double p_next_turn, int64_t duration_ms, const Profile& p,
                  std::vector<Req>* out) {
  for (int s = 0; s < sessions; ++s) {
    int64_t t = static_cast<int64_t>(rng.Uniform() * static_cast<double>(duration_ms));
    const uint8_t topic = static_cast<uint8_t>(p.topics[rng.Below(static_cast<uint64_t>(p.topic_count))]);
    for (int turn = 0; turn < 30 && t < duration_ms; ++turn) {
      out->push_back({t, a, static_cast<uint16_t>(turn), 0, topic, Tokens(rng, 5.3, 0.8, 5, 3000)});
      if (!rng.Chance(p_next_turn)) break;
      t += rng.Between(20, 240) * 1000LL;
    }
  }
}

void HarvestBursts(Rng& rng, uint32_t a, int requests, int64_t duration_ms, std::vector<Req>* out) {
  while (requests > 0) {
    int64_t t = static_cast<int64_t>(rng.Uniform() * static_cast<double>(duration_ms));
    const int burst = std::min(requests, rng.Between(10, 40));
    for (int i = 0; i < burst && t < duration_ms; ++i) {
      out->push_back({t, a, 0, 1, 0, Tokens(rng, 6.1, 0.6, 50, 4000)});
      t += rng.Between(3, 10) * 1000LL;
    }
    requests -= burst;
  }
}

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%012llx", static_cast<unsigned long long>(v & 0xffffffffffffULL));
  return buf;
}

struct World {
  std::vector<Profile> profiles;
  std::vector<Req> reqs;
};

World Build(const SimConfig& cfg) {
  World w;
  Rng rng(Mix64(cfg.seed ^ 0x51b1a7e5ULL));
  const int64_t duration_ms = cfg.duration_minutes * kMinuteMs;
  auto base_profile = [&](Kind kind, int n) {
    Profile p;
    p.kind = kind;
    p.id = std::string("acct-") + KindName(kind) + "-" + std::to_string(n);
    p.seed = rng.Next();
    p.topic_count = rng.Between(1, 4);
    for (int i = 0; i < p.topic_count; ++i) p.topics[static_cast<size_t>(i)] = static_cast<int>(rng.Below(kTopics));
    p.elicit_rate = rng.Chance(0.5) ? 0.0 : rng.Uniform() * 0.06;
    p.temperature = std::array<float, 4>{1.0f, 1.0f, 0.7f, 0.2f}[rng.Below(4)];
    p.fingerprint = "fp-sdk-" + std::to_string(std::min<uint64_t>(rng.Below(8), rng.Below(8)));
    p.prefix = "res-" + Hex(rng.Next());
    p.org = "org-" + Hex(rng.Next());
    return p;
  };

  // Benign accounts; about 15% belong to companies that share a network prefix and org.
  int company = -1, company_left = 0;
  for (int i = 0; i < cfg.benign_accounts; ++i) {
    const double u = rng.Uniform();
    const Kind kind = u < 0.80   ? Kind::kBenignChat
                      : u < 0.83 ? Kind::kBenignPower
                      : u < 0.90 ? Kind::kBenignPipeline
                      : u < 0.91 ? Kind::kBenignCotPipeline
                      : u < 0.96 ? Kind::kBenignStudent
                                 : Kind::kBenignSeedDev;
    Profile p = base_profile(kind, i);
    if (company_left == 0 && rng.Chance(0.02)) {
      company = i;
      company_left = rng.Between(2, 20);
    }
    if (company_left > 0) {
      p.prefix = "corp-" + std::to_string(company);
      p.org = "corp-org-" + std::to_string(company);
      --company_left;
    } else if (rng.Chance(0.1)) {
      p.prefix = "cloud-" + std::to_string(rng.Below(30));
    }
    const uint32_t a = static_cast<uint32_t>(w.profiles.size());
    switch (kind) {
      case Kind::kBenignChat:
        ChatSessions(rng, a, std::clamp(static_cast<int>(rng.LogNormal(1.0, 0.9)), 1, 60), 0.7, duration_ms, p, &w.reqs);
        break;
      case Kind::kBenignPower:
        ChatSessions(rng, a, rng.Between(60, 200), 0.75, duration_ms, p, &w.reqs);
        break;
      case Kind::kBenignStudent:
        p.elicit_rate = 0.15 + 0.3 * rng.Uniform();
        ChatSessions(rng, a, std::clamp(static_cast<int>(rng.LogNormal(1.5, 0.9)), 1, 80), 0.6, duration_ms, p, &w.reqs);
        break;
      case Kind::kBenignSeedDev:
        p.seed_per_request = true;
        ChatSessions(rng, a, std::clamp(static_cast<int>(rng.LogNormal(2.5, 0.9)), 1, 300), 0.2, duration_ms, p, &w.reqs);
        break;
      case Kind::kBenignPipeline:
      case Kind::kBenignCotPipeline: {
        p.quota_tpm = kPipelineQuotaTpm;
        p.templates = {static_cast<int>(rng.Below(kind == Kind::kBenignPipeline ? kPipelineTemplates.size()
                                                                                 : kCotPipelineTemplates.size()))};
        const int jobs = rng.Between(2, 10);
        const bool hard = rng.Chance(0.3);
        for (int j = 0; j < jobs; ++j) {
          int64_t t = static_cast<int64_t>(rng.Uniform() * static_cast<double>(duration_ms));
          const int n = rng.Between(50, 400);
          for (int k = 0; k < n && t < duration_ms; ++k) {
            const uint32_t tok = kind == Kind::kBenignPipeline ? Tokens(rng, 4.4, 0.5, 10, 400) : Tokens(rng, 5.6, 0.5, 50, 1500);
            w.reqs.push_back({t, a, 0, 0, 0, tok});
            t += hard ? rng.Between(300, 1000) : rng.Between(2000, 6000);
          }
        }
        break;
      }
      default:
        break;
    }
    w.profiles.push_back(std::move(p));
  }

  auto harvest_setup = [&](Profile* p, bool stealthy) {
    p->topic_count = rng.Between(1, 3);
    for (int i = 0; i < p->topic_count; ++i) p->topics[static_cast<size_t>(i)] = static_cast<int>(rng.Below(kTopics));
    p->templates.clear();
    if (stealthy) {
      // Mostly plain templates: about 40% of requests elicit reasoning; parameters fixed.
      p->templates = {static_cast<int>(rng.Below(kElicitingTemplates)), static_cast<int>(rng.Below(kElicitingTemplates)),
                      kElicitingTemplates + static_cast<int>(rng.Below(4)), kElicitingTemplates + static_cast<int>(rng.Below(4)),
                      kElicitingTemplates + static_cast<int>(rng.Below(4))};
      p->sweep = false;
    } else {
      const int k = rng.Between(4, 6);
      for (int i = 0; i < k; ++i) p->templates.push_back(static_cast<int>(rng.Below(kHarvestTemplates.size())));
      p->sweep = rng.Chance(0.7);
    }
  };

  for (int i = 0; i < cfg.harvesters; ++i) {
    Profile p = base_profile(Kind::kHarvester, i);
    harvest_setup(&p, rng.Chance(0.3));
    p.fingerprint = "fp-script-" + std::to_string(rng.Below(4));
    p.prefix = "cloud-" + std::to_string(rng.Below(30));
    const uint32_t a = static_cast<uint32_t>(w.profiles.size());
    int64_t t = static_cast<int64_t>(rng.Uniform() * static_cast<double>(duration_ms) / 2);
    while (t < duration_ms) {
      const uint32_t tok = Tokens(rng, 6.1, 0.6, 50, 4000);
      w.reqs.push_back({t, a, 0, 1, 0, tok});
      const double pace = 0.9 + 0.15 * rng.Uniform();  // share of the quota used
      t += std::max<int64_t>(200, static_cast<int64_t>(tok / (p.quota_tpm * pace) * kMinuteMs));
    }
    w.profiles.push_back(std::move(p));
  }

  for (int i = 0; i < cfg.mixed; ++i) {
    Profile p = base_profile(Kind::kMixed, i);
    const std::array<int, 4> benign_topics = p.topics;
    const int benign_topic_count = p.topic_count;
    harvest_setup(&p, rng.Chance(0.3));
    const std::array<int, 4> harvest_topics = p.topics;
    const int harvest_topic_count = p.topic_count;
    p.topics = benign_topics;
    p.topic_count = benign_topic_count;
    const uint32_t a = static_cast<uint32_t>(w.profiles.size());
    const size_t before = w.reqs.size();
    ChatSessions(rng, a, rng.Between(30, 150), 0.7, duration_ms, p, &w.reqs);
    const double share = 0.25 + 0.25 * rng.Uniform();  // harvesting share of all requests, <= 50%
    const int benign_n = static_cast<int>(w.reqs.size() - before);
    HarvestBursts(rng, a, static_cast<int>(benign_n * share / (1 - share)), duration_ms, &w.reqs);
    p.topics = harvest_topics;  // MakeRequest draws harvest focus from topics; benign turns carry their topic
    p.topic_count = harvest_topic_count;
    w.profiles.push_back(std::move(p));
  }

  // The hydra cluster: shared proxies, fingerprints, payment attributes and templates.
  if (cfg.cluster_size > 0) {
    const uint32_t first = static_cast<uint32_t>(w.profiles.size());
    Profile tmpl = base_profile(Kind::kCluster, 0);
    harvest_setup(&tmpl, false);
    tmpl.sweep = true;
    for (int i = 0; i < cfg.cluster_size; ++i) {
      Profile p = tmpl;
      p.id = std::string("acct-") + KindName(Kind::kCluster) + "-" + std::to_string(i);
      p.seed = rng.Next();
      p.cluster_index = i;
      const double u = rng.Uniform();
      p.org = "pay-" + std::to_string(rng.Below(5));
      if (u < 0.80) {
        p.prefix = "proxy-" + std::to_string(rng.Below(4));
        p.fingerprint = "fp-hydra-" + std::to_string(rng.Below(3));
      } else if (u < 0.95) {  // residential proxy, custom client: only payment and template shared
        p.prefix = "res-" + Hex(rng.Next());
        p.fingerprint = "fp-custom-" + Hex(rng.Next());
      } else {  // fully separate: only the template is shared (one kind: not linkable by design)
        p.prefix = "res-" + Hex(rng.Next());
        p.fingerprint = "fp-custom-" + Hex(rng.Next());
        p.org = "org-" + Hex(rng.Next());
      }
      w.profiles.push_back(std::move(p));
    }
    // Coordinated bursts from one orchestrator, load-balanced over the members.
    const int total = cfg.cluster_size * 30;
    int emitted = 0;
    int64_t t = rng.Between(0, 60) * kMinuteMs;
    while (emitted < total && t < duration_ms) {
      const int64_t end = t + rng.Between(5, 15) * kMinuteMs;
      while (t < end && emitted < total) {
        const uint32_t a = first + static_cast<uint32_t>(rng.Below(static_cast<uint64_t>(cfg.cluster_size)));
        w.reqs.push_back({t, a, 0, 1, 0, Tokens(rng, 6.1, 0.6, 50, 4000)});
        ++emitted;
        t += rng.Between(1500, 4500);
      }
      t += rng.Between(20, 50) * kMinuteMs;
    }
  }
  std::stable_sort(w.reqs.begin(), w.reqs.end(), [](const Req& x, const Req& y) { return x.time_ms < y.time_ms; });
  return w;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kBenignChat: return "benign-chat";
    case Kind::kBenignPower: return "benign-power";
    case Kind::kBenignPipeline: return "benign-pipeline";
    case Kind::kBenignCotPipeline: return "benign-cot-pipeline";
    case Kind::kBenignStudent: return "benign-student";
    case Kind::kBenignSeedDev: return "benign-seed-dev";
    case Kind::kHarvester: return "harvester";
    case Kind::kMixed: return "mixed";
    case Kind::kCluster: return "cluster";
  }
  return "?";
}

DetectionReport MeasureDetection(const SimConfig& cfg, const MonitorConfig& mcfg_in) {
  MonitorConfig mcfg = mcfg_in;
  mcfg.mode = EnforcementMode::kEnforce;
  mcfg.max_level = EnforcementLevel::kSuspend;
  auto created = Monitor::Create(mcfg);
  DetectionReport rep;
  if (!created.ok()) return rep;
  Monitor& mon = **created;
  World w = Build(cfg);
  const size_t n = w.profiles.size();
  std::vector<double> served(n, 0), rate(n, 0), flag_tokens(n, -1);
  std::vector<int64_t> last_ms(n, -1);
  std::vector<uint64_t> counter(n, 0);
  std::vector<EnforcementLevel> level(n, EnforcementLevel::kNone);
  std::unordered_map<std::string, uint32_t> by_id;
  for (uint32_t a = 0; a < n; ++a) by_id.emplace(w.profiles[a].id, a);
  double cluster_served = 0;
  int cluster_flagged = 0;
  Evaluation last;
  const int64_t interval = cfg.eval_interval_minutes * kMinuteMs;
  int64_t next_eval = interval;
  using Clock = std::chrono::steady_clock;

  auto evaluate = [&] {
    const auto t0 = Clock::now();
    last = mon.Evaluate();
    rep.evaluate_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    ++rep.evaluations;
    for (const EnforcementAction& act : last.actions) {
      const uint32_t a = by_id.at(act.account_id);
      if (flag_tokens[a] < 0) {
        flag_tokens[a] = served[a];
        if (w.profiles[a].kind == Kind::kCluster) {
          if (cluster_flagged == 0) rep.cluster_tokens_before_first_flag = cluster_served;
          if (++cluster_flagged >= (cfg.cluster_size * 9 + 9) / 10 && rep.cluster_tokens_before_90pct_flag < 0) {
            rep.cluster_tokens_before_90pct_flag = cluster_served;
          }
        }
      }
      level[a] = std::max(level[a], act.level);
    }
  };

  std::string prompt;
  for (const Req& r : w.reqs) {
    while (r.time_ms >= next_eval) {
      evaluate();
      next_eval += interval;
    }
    const Profile& p = w.profiles[r.account];
    RequestObservation obs;
    MakeRequest(p, r, counter[r.account]++, &prompt, &obs.sampling);
    // Quota utilization: tokens over about the last minute (exponential window) vs the TPM quota.
    if (last_ms[r.account] >= 0) {
      rate[r.account] *= std::exp(-static_cast<double>(r.time_ms - last_ms[r.account]) / kMinuteMs);
    }
    rate[r.account] += r.completion_tokens;
    last_ms[r.account] = r.time_ms;
    obs.account_id = p.id;
    obs.time_ms = 1'700'000'000'000LL + r.time_ms;
    obs.prompt = prompt;
    obs.prior_assistant_turns = r.turn;
    obs.prompt_tokens = static_cast<uint32_t>(prompt.size() / 4 + 1);
    obs.completion_tokens = r.completion_tokens;
    obs.quota_utilization = static_cast<float>(std::min(1.0, rate[r.account] / p.quota_tpm));
    obs.client_fingerprint = p.fingerprint;
    obs.network_prefix = p.prefix;
    obs.org_attribute = p.org;
    const auto t0 = Clock::now();
    const Status st = mon.Observe(obs);
    rep.observe_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    if (!st.ok()) continue;
    served[r.account] += r.completion_tokens;
    if (p.kind == Kind::kCluster) cluster_served += r.completion_tokens;
    ++rep.requests;
  }
  evaluate();

  for (uint32_t a = 0; a < n; ++a) {
    if (counter[a] == 0) continue;
    KindResult& k = rep.kinds[static_cast<int>(w.profiles[a].kind)];
    ++k.accounts;
    if (level[a] >= EnforcementLevel::kFlag) {
      ++k.flagged;
      k.tokens_before_flag.push_back(flag_tokens[a]);
    }
    if (level[a] >= EnforcementLevel::kSuspend) ++k.suspended;
    const bool benign = IsBenign(w.profiles[a].kind);
    if (benign) {
      if (auto v = mon.Explain(w.profiles[a].id); v.ok()) rep.max_benign_score = std::max(rep.max_benign_score, v->score);
    }
    if (benign == (level[a] >= EnforcementLevel::kFlag)) {
      std::string line = std::string(benign ? "false positive " : "missed ") + w.profiles[a].id;
      if (auto v = mon.Explain(w.profiles[a].id); v.ok()) {
        for (const Signal& sig : v->evidence) {
          char buf[96];
          std::snprintf(buf, sizeof(buf), " %s=%.3g", sig.name.c_str(), sig.value);
          line += buf;
        }
      }
      rep.notes.push_back(std::move(line));
    }
  }
  // Linkage: the component holding most hydra members.
  for (const ClusterVerdict& c : last.clusters) {
    int hydra = 0, benign = 0;
    for (const std::string& m : c.members) {
      const Kind k = w.profiles[by_id.at(m)].kind;
      hydra += k == Kind::kCluster;
      benign += IsBenign(k);
    }
    if (hydra > rep.cluster_linked) {
      rep.cluster_linked = hydra;
      rep.cluster_component_benign = benign;
    }
  }
  return rep;
}

std::string FormatReport(const DetectionReport& r) {
  std::string s;
  char line[256];
  s += "| accounts | n | flagged | rate | suspended | median tokens before flag | max tokens before flag |\n";
  s += "|---|---|---|---|---|---|---|\n";
  int benign_n = 0, benign_flagged = 0;
  for (int k = 0; k < kKindCount; ++k) {
    const KindResult& kr = r.kinds[k];
    if (kr.accounts == 0) continue;
    if (IsBenign(static_cast<Kind>(k))) {
      benign_n += kr.accounts;
      benign_flagged += kr.flagged;
    }
    const double mx = kr.tokens_before_flag.empty()
                          ? 0
                          : *std::max_element(kr.tokens_before_flag.begin(), kr.tokens_before_flag.end());
    std::snprintf(line, sizeof(line), "| %s | %d | %d | %.2f%% | %d | %.0f | %.0f |\n", KindName(static_cast<Kind>(k)),
                  kr.accounts, kr.flagged, 100.0 * kr.flagged / kr.accounts, kr.suspended, Median(kr.tokens_before_flag), mx);
    s += line;
  }
  std::snprintf(line, sizeof(line), "| all benign | %d | %d | %.3f%% | | | |\n\nhighest own score of a benign account: %.3f\n",
                benign_n, benign_flagged, benign_n ? 100.0 * benign_flagged / benign_n : 0.0, r.max_benign_score);
  s += line;
  const int cs = r.kinds[static_cast<int>(Kind::kCluster)].accounts;
  std::snprintf(line, sizeof(line),
                "\ncluster: %d/%d members linked in one component (%.1f%%), %d benign accounts in it; cluster tokens "
                "before first flag %.0f, before 90%% of members flagged %.0f\n",
                r.cluster_linked, cs, cs ? 100.0 * r.cluster_linked / cs : 0.0, r.cluster_component_benign,
                r.cluster_tokens_before_first_flag, r.cluster_tokens_before_90pct_flag);
  s += line;
  std::snprintf(line, sizeof(line), "requests %lld, Observe mean %.2f us, %d evaluations, Evaluate mean %.2f ms\n",
                static_cast<long long>(r.requests), r.requests ? 1e6 * r.observe_seconds / r.requests : 0.0,
                r.evaluations, r.evaluations ? 1e3 * r.evaluate_seconds / r.evaluations : 0.0);
  s += line;
  return s;
}

void SampleRequest(Kind kind, uint64_t seed, uint64_t index, std::string* prompt, RequestObservation* obs) {
  Rng rng(seed);
  Profile p;
  p.kind = kind;
  p.seed = seed;
  p.topic_count = 2;
  p.topics = {static_cast<int>(rng.Below(kTopics)), static_cast<int>(rng.Below(kTopics)), 0, 0};
  p.templates = {0, 1, 10, 11};
  p.sweep = true;
  p.elicit_rate = 0.05;
  Req r{static_cast<int64_t>(index) * 1000, 0, static_cast<uint16_t>(index % 3), static_cast<uint8_t>(kind == Kind::kHarvester), static_cast<uint8_t>(p.topics[0]), 300};
  if (kind == Kind::kBenignPipeline) p.templates = {0};
  MakeRequest(p, r, index, prompt, &obs->sampling);
  obs->prompt = *prompt;
  obs->prior_assistant_turns = r.turn;
  obs->time_ms = 1'700'000'000'000LL + r.time_ms;
  obs->completion_tokens = r.completion_tokens;
  obs->prompt_tokens = static_cast<uint32_t>(prompt->size() / 4 + 1);
}

}  // namespace tracemark::monitor::sim
