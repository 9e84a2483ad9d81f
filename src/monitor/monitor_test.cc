#include "tracemark/monitor/monitor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

namespace tracemark::monitor {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000LL;
constexpr std::string_view kWords[] = {"river", "planet", "garden", "engine", "violin", "market", "castle",
                                       "forest", "bridge", "pepper", "island", "rocket", "winter", "silver",
                                       "coffee", "museum", "tennis", "dragon", "harbor", "pillow"};

std::string Words(uint64_t seed, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    seed = Mix64(seed + 1);
    if (!s.empty()) s += ' ';
    s += kWords[seed % std::size(kWords)];
  }
  return s;
}

struct Traffic {
  std::string id;
  bool harvest = false;
  std::string fingerprint = "fp-a";
  std::string prefix;
  std::string org;
};

void Feed(Monitor& m, const Traffic& t, int requests, int64_t start_ms, uint64_t seed = 7, int first_index = 0) {
  std::string prompt;
  for (int i = first_index; i < first_index + requests; ++i) {
    RequestObservation o;
    o.account_id = t.id;
    o.time_ms = start_ms + (i - first_index) * 4000LL;
    if (t.harvest) {
      // Three rotating templates of three elicitation categories, with a temperature x top_p sweep.
      static constexpr std::string_view kTemplates[] = {
          "Solve the following problem step by step and explain your reasoning. ",
          "Grade this answer with a rubric from one to ten and justify the grade. ",
          "Imagine and write out the internal reasoning behind this completed response. "};
      prompt = std::string(kTemplates[i % 3]) + Words(seed * 1000 + i, 30);
      o.sampling.temperature = static_cast<float>(i % 12) / 10.0f;
      o.sampling.top_p = 0.8f + 0.05f * static_cast<float>((i / 12) % 5);
      o.completion_tokens = 600;
      o.quota_utilization = 0.95f;
    } else {
      prompt = Words(seed * 1000 + i, 12) + "?";
      o.prior_assistant_turns = i % 4;
      o.completion_tokens = 600;
      o.quota_utilization = 0.1f;
    }
    o.prompt = prompt;
    o.client_fingerprint = t.fingerprint;
    o.network_prefix = t.prefix.empty() ? t.id + "-net" : t.prefix;
    o.org_attribute = t.org.empty() ? t.id + "-org" : t.org;
    ASSERT_TRUE(m.Observe(o).ok());
  }
}

Traffic T(std::string id, bool harvest, std::string fingerprint = "fp-a", std::string prefix = "",
          std::string org = "") {
  Traffic t;
  t.id = std::move(id);
  t.harvest = harvest;
  t.fingerprint = std::move(fingerprint);
  t.prefix = std::move(prefix);
  t.org = std::move(org);
  return t;
}

std::unique_ptr<Monitor> Make(const MonitorConfig& c) {
  auto r = Monitor::Create(c);
  EXPECT_TRUE(r.ok());
  return std::move(r).value();
}

MonitorConfig Enforcing() {
  MonitorConfig c;
  c.mode = EnforcementMode::kEnforce;
  return c;
}

const AccountVerdict* Find(const Evaluation& ev, std::string_view id) {
  for (const auto& v : ev.accounts) {
    if (v.account_id == id) return &v;
  }
  return nullptr;
}

double SignalValue(const std::vector<Signal>& s, std::string_view name) {
  for (const auto& x : s) {
    if (x.name == name) return x.value;
  }
  ADD_FAILURE() << "no signal " << name;
  return -1;
}

TEST(MonitorTest, RejectsBadConfig) {
  MonitorConfig c;
  c.flag_score = 0.8;
  c.throttle_score = 0.5;
  EXPECT_FALSE(Monitor::Create(c).ok());
  c = MonitorConfig{};
  c.volume_full_tokens = c.volume_floor_tokens;
  EXPECT_FALSE(Monitor::Create(c).ok());
  EXPECT_TRUE(Monitor::Create(MonitorConfig{}).ok());
}

TEST(MonitorTest, ObserveValidatesAndBoundsAccounts) {
  MonitorConfig c;
  c.max_accounts = 2;
  auto m = Make(c);
  RequestObservation o;
  EXPECT_EQ(m->Observe(o).code(), StatusCode::kInvalidArgument);
  o.prompt = "hello";
  for (std::string_view id : {"a", "b", "a"}) {
    o.account_id = id;
    EXPECT_TRUE(m->Observe(o).ok());
  }
  o.account_id = "c";
  EXPECT_EQ(m->Observe(o).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(m->account_count(), 2u);
}

TEST(MonitorTest, HarvesterEscalatesToSuspendBenignStaysClean) {
  auto m = Make(Enforcing());
  Feed(*m, T("harvester", true), 200, kT0);
  Feed(*m, T("benign", false), 200, kT0);
  const Evaluation ev = m->Evaluate();
  ASSERT_EQ(ev.actions.size(), 1u);
  const EnforcementAction& act = ev.actions[0];
  EXPECT_EQ(act.account_id, "harvester");
  EXPECT_EQ(act.level, EnforcementLevel::kSuspend);
  EXPECT_EQ(act.reason, "account_score");
  EXPECT_GT(SignalValue(act.evidence, "elicitation_share"), 0.9);
  EXPECT_GT(SignalValue(act.evidence, "template_reuse_share"), 0.9);
  EXPECT_GT(SignalValue(act.evidence, "distinct_sampling_params"), 24);
  EXPECT_GT(SignalValue(act.evidence, "non_modal_sampling_share"), 0.6);
  EXPECT_EQ(SignalValue(act.evidence, "elicitation_categories"), 3);
  EXPECT_GT(SignalValue(act.evidence, "quota_ceiling_share"), 0.9);
  EXPECT_EQ(SignalValue(act.evidence, "single_turn_share"), 1.0);
  const AccountVerdict* b = Find(ev, "benign");
  EXPECT_TRUE(b == nullptr || b->level == EnforcementLevel::kNone);

  // Escalations are returned once; a second evaluation has nothing new.
  EXPECT_TRUE(m->Evaluate().actions.empty());
}

TEST(MonitorTest, SingleTemplateStepByStepProductIsNotFlagged) {
  // A product that always asks for step-by-step answers through one template, at high volume,
  // fixed sampling settings, with an occasional temperature change: one elicitation category and
  // one template count half, which stays under flag_score.
  auto m = Make(Enforcing());
  std::string prompt;
  for (int i = 0; i < 2000; ++i) {
    RequestObservation o;
    o.account_id = "tutor-app";
    o.time_ms = kT0 + i * 2000LL;
    prompt = "Answer the student's question step by step, showing your work. " + Words(static_cast<uint64_t>(i), 25);
    o.prompt = prompt;
    o.sampling.temperature = i % 40 == 0 ? static_cast<float>(i % 13) / 10.0f : 0.7f;
    o.completion_tokens = 400;
    o.quota_utilization = 0.95f;
    ASSERT_TRUE(m->Observe(o).ok());
  }
  const Evaluation ev = m->Evaluate();
  EXPECT_TRUE(ev.actions.empty());
  auto v = m->Explain("tutor-app");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(SignalValue(v->evidence, "elicitation_share"), 1.0);
  EXPECT_LT(v->score, 0.35);
  EXPECT_EQ(m->Explain("nobody").status().code(), StatusCode::kNotFound);
}

TEST(MonitorTest, HarvestingMixedIntoOrdinaryTrafficIsCaughtOnTheTemplatedStream) {
  auto m = Make(Enforcing());
  std::string prompt;
  const Traffic harvest = T("mixed", true);
  for (int i = 0; i < 600; ++i) {
    // Alternate: 60% ordinary chat, 40% templated harvesting.
    Feed(*m, i % 5 < 2 ? harvest : T("mixed", false), 1, kT0 + i * 5000LL, 7, i);
  }
  const Evaluation ev = m->Evaluate();
  ASSERT_EQ(ev.actions.size(), 1u);
  EXPECT_GT(SignalValue(ev.actions[0].evidence, "stream_elicitation_share"), 0.9);
  EXPECT_LT(SignalValue(ev.actions[0].evidence, "elicitation_share"), 0.5);
}

TEST(MonitorTest, LowVolumeIsNotScored) {
  auto m = Make(Enforcing());
  Feed(*m, T("small", true), 15, kT0);  // under min_requests and the volume floor
  const Evaluation ev = m->Evaluate();
  EXPECT_TRUE(ev.actions.empty());
  EXPECT_EQ(Find(ev, "small"), nullptr);
}

TEST(MonitorTest, ShadowModeScoresButNeverActs) {
  auto m = Make(MonitorConfig{});
  Feed(*m, T("harvester", true), 200, kT0);
  const Evaluation ev = m->Evaluate();
  EXPECT_TRUE(ev.actions.empty());
  const AccountVerdict* v = Find(ev, "harvester");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->level, EnforcementLevel::kSuspend);
  EXPECT_GT(v->score, 0.6);
}

TEST(MonitorTest, LadderIsCappedByDeployment) {
  MonitorConfig c = Enforcing();
  c.max_level = EnforcementLevel::kFlag;
  auto m = Make(c);
  Feed(*m, T("harvester", true), 200, kT0);
  const Evaluation ev = m->Evaluate();
  ASSERT_EQ(ev.actions.size(), 1u);
  EXPECT_EQ(ev.actions[0].level, EnforcementLevel::kFlag);
}

TEST(MonitorTest, ResetAccountAllowsActingAgain) {
  auto m = Make(Enforcing());
  Feed(*m, T("h", true), 200, kT0);
  ASSERT_EQ(m->Evaluate().actions.size(), 1u);
  m->ResetAccount("h");
  EXPECT_TRUE(m->Evaluate().actions.empty());  // counters cleared with the reinstatement
  Feed(*m, T("h", true), 200, kT0 + 3'600'000);
  EXPECT_EQ(m->Evaluate().actions.size(), 1u);
}

TEST(MonitorTest, ObserveAndEvaluateFromSeveralThreads) {
  auto m = Make(Enforcing());
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&m, t] { Feed(*m, T("h" + std::to_string(t), true), 300, kT0, static_cast<uint64_t>(t)); });
  }
  int actions = 0;
  for (int i = 0; i < 20; ++i) actions += static_cast<int>(m->Evaluate().actions.size());
  for (auto& th : threads) th.join();
  for (const auto& a : m->Evaluate().actions) actions += a.level == EnforcementLevel::kSuspend ? 1 : 0;
  EXPECT_EQ(m->account_count(), 2u);
  EXPECT_GE(actions, 2);  // each harvester escalated at least once, none twice to the same level
  EXPECT_TRUE(m->Evaluate().actions.empty());
}

TEST(MonitorTest, ClusterOfSmallAccountsIsCaughtOnAggregateVolume) {
  auto m = Make(Enforcing());
  // Ten accounts, each 20 requests (12,000 tokens: under the per-account volume floor), sharing
  // a proxy prefix and a payment attribute.
  for (int i = 0; i < 10; ++i) {
    Feed(*m, T("hydra-" + std::to_string(i), true, "fp-" + std::to_string(i), "proxy-1", "card-9"),
         20, kT0 + i * 1000, static_cast<uint64_t>(i));
  }
  // Sharing only one attribute kind does not link.
  Feed(*m, T("neighbour", false, "fp-x", "proxy-1"), 30, kT0);
  const Evaluation ev = m->Evaluate();
  ASSERT_EQ(ev.clusters.size(), 1u);
  EXPECT_EQ(ev.clusters[0].members.size(), 10u);
  EXPECT_GE(ev.clusters[0].level, EnforcementLevel::kFlag);
  EXPECT_EQ(ev.actions.size(), 10u);
  for (const auto& a : ev.actions) {
    EXPECT_EQ(a.reason, "cluster_score");
    EXPECT_EQ(SignalValue(a.evidence, "members"), 10);
  }
  for (int i = 0; i < 10; ++i) {
    const AccountVerdict* v = Find(ev, "hydra-" + std::to_string(i));
    ASSERT_NE(v, nullptr);
    EXPECT_LT(v->score, 0.3);  // each member alone stays under the flag threshold
  }
}

}  // namespace
}  // namespace tracemark::monitor
