// Distillation monitor measurements (no model needed):
//   monitor_bench speed   Monitor::Observe cost per request (mean, p50, p99, max) over 10,000
//                         accounts with pre-built chat and harvest prompts, an 8 KiB worst-case
//                         prompt, and Monitor::Evaluate cost; target <= 20 us per Observe (T15).
//   monitor_bench detect  full-size simulation (5,000 benign accounts, 100 pure harvesters, 100
//                         mixed, a 200-account cluster): the detection table of docs/monitor.md.
// Options: --seed S (detect; default 1 is the TUNING seed, report held-out seeds such as 2001),
// --benign N, --harvesters N, --mixed N, --cluster N, --min-member-requests N (MonitorConfig), --notes N (print N false-positive/missed
// accounts with their signals). Output: Markdown on stdout. Deterministic
// apart from timings.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "monitor/traffic_sim.h"
#include "tracemark/monitor/monitor.h"

namespace mon = tracemark::monitor;
namespace sim = tracemark::monitor::sim;

namespace {

using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

int Speed() {
  constexpr int kAccounts = 10000;
  constexpr int kRequests = 200000;
  constexpr int kDistinctPrompts = 4096;
  auto created = mon::Monitor::Create(mon::MonitorConfig{});
  if (!created.ok()) return 1;
  mon::Monitor& m = **created;
  std::vector<std::string> prompts(kDistinctPrompts);
  std::vector<mon::RequestObservation> obs(kDistinctPrompts);
  size_t bytes = 0;
  for (int i = 0; i < kDistinctPrompts; ++i) {
    const sim::Kind kind = i % 3 == 0 ? sim::Kind::kHarvester : (i % 3 == 1 ? sim::Kind::kBenignChat : sim::Kind::kBenignPipeline);
    sim::SampleRequest(kind, 42 + static_cast<uint64_t>(i), static_cast<uint64_t>(i), &prompts[i], &obs[i]);
    obs[i].prompt = prompts[i];
    bytes += prompts[i].size();
  }
  std::vector<std::string> ids(kAccounts);
  for (int i = 0; i < kAccounts; ++i) ids[i] = "acct-" + std::to_string(i);
  std::vector<double> ns;
  ns.reserve(kRequests);
  for (int r = 0; r < kRequests; ++r) {
    mon::RequestObservation o = obs[r % kDistinctPrompts];
    o.account_id = ids[(static_cast<uint64_t>(r) * 2654435761u) % kAccounts];
    o.time_ms = 1'700'000'000'000LL + r * 50LL;
    o.client_fingerprint = "fp-sdk-1";
    o.network_prefix = "203.0.113.0/24";
    o.org_attribute = o.account_id;
    const auto t0 = Clock::now();
    const tracemark::Status st = m.Observe(o);
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    if (!st.ok()) return 1;
  }
  double sum = 0;
  for (double x : ns) sum += x;
  std::printf("| case | requests | mean us | p50 us | p99 us | max us |\n|---|---|---|---|---|---|\n");
  std::printf("| mixed prompts (mean %zu bytes), 10k accounts | %d | %.2f | %.2f | %.2f | %.2f |\n",
              bytes / kDistinctPrompts, kRequests, sum / kRequests / 1e3, Percentile(ns, 0.5) / 1e3,
              Percentile(ns, 0.99) / 1e3, *std::max_element(ns.begin(), ns.end()) / 1e3);

  // Worst case: a prompt at the scan limit (8 KiB of words).
  std::string big;
  while (big.size() < mon::kMaxPromptBytesScanned) big += "explain the mechanism of photosynthesis in detail ";
  std::vector<double> big_ns;
  for (int r = 0; r < 20000; ++r) {
    mon::RequestObservation o = obs[0];
    o.prompt = big;
    o.account_id = ids[r % kAccounts];
    o.time_ms = 1'700'000'000'000LL + (kRequests + r) * 50LL;
    const auto t0 = Clock::now();
    if (!m.Observe(o).ok()) return 1;
    big_ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
  }
  double big_sum = 0;
  for (double x : big_ns) big_sum += x;
  std::printf("| 8 KiB prompt (scan limit) | %d | %.2f | %.2f | %.2f | %.2f |\n", 20000, big_sum / 20000 / 1e3,
              Percentile(big_ns, 0.5) / 1e3, Percentile(big_ns, 0.99) / 1e3,
              *std::max_element(big_ns.begin(), big_ns.end()) / 1e3);

  const auto t0 = Clock::now();
  const mon::Evaluation ev = m.Evaluate();
  std::printf("\nper-account state: %zu bytes\n", mon::Monitor::AccountStateBytes());
  std::printf("Evaluate over %zu accounts: %.1f ms (%zu clusters, %zu reported accounts)\n", m.account_count(),
              std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), ev.clusters.size(),
              ev.accounts.size());
  return 0;
}

int Detect(int argc, char** argv) {
  sim::SimConfig cfg;
  mon::MonitorConfig monitor;
  int notes = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--notes") {
      notes = std::atoi(argv[i + 1]);
      continue;
    }
    const long long v = std::atoll(argv[i + 1]);
    if (flag == "--seed") cfg.seed = static_cast<uint64_t>(v);
    else if (flag == "--benign") cfg.benign_accounts = static_cast<int>(v);
    else if (flag == "--harvesters") cfg.harvesters = static_cast<int>(v);
    else if (flag == "--mixed") cfg.mixed = static_cast<int>(v);
    else if (flag == "--cluster") cfg.cluster_size = static_cast<int>(v);
    else if (flag == "--min-member-requests") monitor.min_member_requests = static_cast<int>(v);
    else {
      std::fprintf(stderr, "monitor_bench: unknown option %s; see the header of bench/monitor_bench.cc\n", flag.c_str());
      return 2;
    }
  }
  const auto t0 = Clock::now();
  const sim::DetectionReport r = sim::MeasureDetection(cfg, monitor);
  std::printf("seed %llu (%s), %.1f s\n\n%s", static_cast<unsigned long long>(cfg.seed),
              cfg.seed == 1 ? "tuning seed" : "held-out seed",
              std::chrono::duration<double>(Clock::now() - t0).count(), sim::FormatReport(r).c_str());
  for (int i = 0; i < notes && i < static_cast<int>(r.notes.size()); ++i) std::printf("%s\n", r.notes[i].c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "speed";
  if (mode == "speed") return Speed();
  if (mode == "detect") return Detect(argc, argv);
  std::fprintf(stderr, "usage: monitor_bench [speed | detect [--seed S] [--benign N] ...]\n");
  return 2;
}
