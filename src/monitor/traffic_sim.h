// Deterministic traffic simulator for the distillation monitor (test and bench code, not part of
// the server): benign chat users of varied topics, lengths and session shapes, plus the hard
// benign cases (templated pipelines, some with chain-of-thought prompts; students who ask for
// step-by-step answers; developers who set a random seed per request; power users), pure
// harvesters pacing at their quota, mixed accounts that harvest on a share of their traffic, and
// a "hydra" cluster of low-volume accounts sharing proxies, client fingerprints, payment
// attributes and templates, driven in coordinated bursts. The same SimConfig gives the same
// requests byte for byte (own splitmix64 RNG, no std distributions).
// MeasureDetection streams the traffic through a Monitor in time order, evaluating every
// eval_interval, and reports detection and false-positive rates. Not synchronized.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tracemark/monitor/monitor.h"

namespace tracemark::monitor::sim {

enum class Kind : uint8_t {
  kBenignChat,
  kBenignPower,
  kBenignPipeline,
  kBenignCotPipeline,
  kBenignStudent,
  kBenignSeedDev,
  kHarvester,
  kMixed,
  kCluster
};
inline constexpr int kKindCount = 9;
const char* KindName(Kind k);
inline bool IsBenign(Kind k) { return k <= Kind::kBenignSeedDev; }

struct SimConfig {
  uint64_t seed = 1;
  int benign_accounts = 5000;
  int harvesters = 100;
  int mixed = 100;
  int cluster_size = 200;
  int64_t duration_minutes = 24 * 60;
  int64_t eval_interval_minutes = 5;
};

struct KindResult {
  int accounts = 0;
  int flagged = 0;  // reached at least kFlag (own or cluster score)
  int suspended = 0;
  // Completion tokens served to each detected account before its first flag.
  std::vector<double> tokens_before_flag;
};

struct DetectionReport {
  KindResult kinds[kKindCount];
  int64_t requests = 0;
  int cluster_linked = 0;          // hydra members in the component holding most of them
  int cluster_component_benign = 0;  // benign accounts in that component
  double cluster_tokens_before_first_flag = -1;  // whole cluster, completion tokens
  double cluster_tokens_before_90pct_flag = -1;
  double observe_seconds = 0;   // wall time spent in Monitor::Observe
  double evaluate_seconds = 0;  // wall time spent in Monitor::Evaluate
  int evaluations = 0;
  double max_benign_score = 0;  // highest own score of a benign account at the end (margin to flag)
  // One line per benign account flagged and per harvesting account missed: kind, id and the
  // account's own signals at the end (Monitor::Explain).
  std::vector<std::string> notes;
};

DetectionReport MeasureDetection(const SimConfig& sim, const MonitorConfig& monitor);

// Markdown table of a report (used by the bench and printed by the test).
std::string FormatReport(const DetectionReport& r);

// One-shot generator of a few requests for micro-benchmarks: fills `prompt` and `obs` with a
// request of the given kind (index varies the content).
void SampleRequest(Kind kind, uint64_t seed, uint64_t index, std::string* prompt, RequestObservation* obs);

}  // namespace tracemark::monitor::sim
