// `tracemark replay`: one command replays the harvesting incident end to end on this machine
// (docs/replay.md): a server with the distillation monitor in suspend mode, benign customers and a
// harvesting cluster using the API at the same time, the monitor suspending the cluster, the
// harvested data desensitized, a student trained on it, the corpus scanned, the student probed,
// the evidence report written; then it checks its own verdicts and exits 1 if one fails.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "tracemark/base/file.h"
#include "tracemark/redteam/child_process.h"
#include "tracemark/redteam/desensitize.h"
#include "tracemark/redteam/traffic.h"

namespace tracemark::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

// Time limits of the child steps (seconds).
constexpr double kServerStartTimeoutS = 90;
constexpr double kCliTimeoutS = 120;
constexpr double kTrainTimeoutS = 600;
constexpr double kProbeTimeoutS = 300;
constexpr double kScanTimeoutS = 300;
constexpr double kSuspendWaitS = 30;  // after the harvest ends, how long to wait for the last suspension
constexpr char kAdminToken[] = "replay-admin-token-0123456789abcdef";
constexpr char kClusterOrg[] = "northwind-distill-labs";
constexpr char kClusterUserAgent[] = "harvest-client/2.3 (python-requests compatible)";
// The students' probe (completion mode, docs/probe.md): prompt tokens, tokens between two prompts
// of one served text, continuation tokens (a student's context is 64 tokens).
constexpr int kProbePromptTokens = 16;
constexpr int kProbeStride = 32;
constexpr int kProbeMaxTokens = 48;
// Verdict of a step that could not run because its subcommand is not in this build.
constexpr char kNotAvailable[] = "not_available";

// What changes between --size ci and --size full.
struct ReplaySize {
  int benign_accounts;
  int cluster_accounts;
  int harvest_max_tokens;
  int64_t harvest_max_requests;
  double harvest_max_seconds;
  int harvest_concurrency;
  int benign_max_tokens;
  int64_t benign_sessions;
  int benign_concurrency;
  double benign_think_scale;
  int cluster_rpm;  // per-minute limits of each cluster account: it paces at its ceiling
  int cluster_tpm;
  int monitor_min_requests;
  double monitor_volume_tokens;
  double monitor_stream_volume_tokens;
  int monitor_interval_s;
  double scan_fraction;  // harvested share of the scanned corpus
  int student_steps;
  int student_batch;
  double student_fraction;
};

constexpr ReplaySize kCiSize{/*benign_accounts=*/4,       /*cluster_accounts=*/3,
                             /*harvest_max_tokens=*/96,   /*harvest_max_requests=*/400,
                             /*harvest_max_seconds=*/150, /*harvest_concurrency=*/4,
                             /*benign_max_tokens=*/24,    /*benign_sessions=*/400,
                             /*benign_concurrency=*/2,    /*benign_think_scale=*/0.5,
                             /*cluster_rpm=*/20, /*cluster_tpm=*/4000, /*monitor_min_requests=*/20,
                             /*monitor_volume_tokens=*/3000, /*monitor_stream_volume_tokens=*/2000,
                             /*monitor_interval_s=*/2,    /*scan_fraction=*/0.1,
                             /*student_steps=*/600,       /*student_batch=*/16,
                             /*student_fraction=*/0.5};
constexpr ReplaySize kFullSize{/*benign_accounts=*/12,      /*cluster_accounts=*/8,
                               /*harvest_max_tokens=*/160,  /*harvest_max_requests=*/3000,
                               /*harvest_max_seconds=*/480, /*harvest_concurrency=*/6,
                               /*benign_max_tokens=*/48,    /*benign_sessions=*/5000,
                               /*benign_concurrency=*/3,    /*benign_think_scale=*/1.0,
                               /*cluster_rpm=*/20, /*cluster_tpm=*/6000, /*monitor_min_requests=*/40,
                               /*monitor_volume_tokens=*/20000, /*monitor_stream_volume_tokens=*/12000,
                               /*monitor_interval_s=*/5,    /*scan_fraction=*/0.05,
                               /*student_steps=*/1200,      /*student_batch=*/16,
                               /*student_fraction=*/0.5};

struct ReplayArgs {
  std::string size = "ci";
  std::string out;
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string clean = "tests/data/redteam/kjv_docs.txt";
  int threads = 2;
  uint64_t seed = 1;
};

struct Account {
  uint64_t id = 0;
  std::string key;
  std::string name;
  bool cluster = false;
};

class Replay {
 public:
  Replay(const ReplayArgs& a, const ReplaySize& z) : a_(a), z_(z), t0_(Clock::now()) {}
  Status Run();

 private:
  double Elapsed() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }
  void Say(const std::string& line) {
    std::fprintf(stderr, "[replay %6.1fs] %s\n", Elapsed(), line.c_str());
    std::fflush(stderr);
  }
  std::string P(const std::string& name) const { return (fs::path(a_.out) / name).string(); }
  Result<redteam::CommandResult> Cli(std::vector<std::string> args, double timeout_s = kCliTimeoutS) {
    args.insert(args.begin(), self_);
    return redteam::RunCommand(args, a_.out, P("commands.log"), timeout_s);
  }
  // True when `tracemark <words...> --help` exits 0 (the subcommand is in this build).
  bool Available(const std::vector<std::string>& words) {
    std::vector<std::string> args = words;
    args.push_back("--help");
    Result<redteam::CommandResult> r = Cli(args, 30);
    return r.ok() && r->exit_code == 0;
  }
  void Verdict(const std::string& name, const std::string& outcome, const std::string& detail) {
    verdicts_[name] = {{"verdict", outcome}, {"detail", detail}};
    Say("verdict " + name + ": " + outcome + " (" + detail + ")");
  }
  Status Setup();
  Status StartServer();
  Status Traffic();
  Status CheckAccounts();
  Status Desensitize();
  Status Scan();
  Status TrainAndProbe();
  // Trains a student (fraction 0: clean text only) and probes it; returns the probe's JSON.
  Result<Json> TrainStudentAndProbe(const std::string& name, double fraction, uint64_t seed);
  // Probes DIR/NAME.gguf in completion mode, with or without the served-data filter.
  Result<Json> ProbeStudent(const std::string& name, bool served_filter);
  Status WriteReport();

  ReplayArgs a_;
  ReplaySize z_;
  Clock::time_point t0_;
  std::string self_;
  std::string keyring_;
  std::string db_;
  std::vector<Account> accounts_;
  std::unique_ptr<redteam::ChildProcess> server_;
  std::string base_url_;
  Json summary_;
  Json verdicts_ = Json::object();
  Json timings_ = Json::object();
  std::string scan_dir_;
  std::string probe_json_;
};

Status Replay::Setup() {
  TM_ASSIGN_OR_RETURN(self_, redteam::SelfExe());
  std::error_code ec;
  fs::create_directories(a_.out, ec);
  if (ec) return IoError("cannot create --out " + a_.out + ": " + ec.message());
  if (!fs::is_empty(a_.out)) return InvalidArgument("--out " + a_.out + " is not empty; give a new folder");
  if (!fs::exists(a_.model)) return NotFound("model not found: " + a_.model + " (run scripts/setup.sh)");
  if (!fs::exists(a_.clean)) return NotFound("clean text not found: " + a_.clean);
  keyring_ = P("keyring");
  db_ = "sqlite:" + P("ledger.db");
  TM_ASSIGN_OR_RETURN(redteam::CommandResult kr, Cli({"keyring", "init", keyring_}));
  if (kr.exit_code != 0) return Internal("keyring init failed; see " + P("commands.log"));
  TM_RETURN_IF_ERROR(WriteFileAtomic(P("admin-token"), std::string(kAdminToken) + "\n", 0600));
  // Benign customers: each its own organization. The cluster: one organization (payment), one
  // client fingerprint, tight per-minute request limits it paces under.
  const int n = z_.benign_accounts + z_.cluster_accounts;
  for (int i = 0; i < n; ++i) {
    const bool cluster = i >= z_.benign_accounts;
    Account acc;
    acc.cluster = cluster;
    acc.name = cluster ? "nw-research-" + std::to_string(i - z_.benign_accounts) : "customer-" + std::to_string(i);
    const std::string org = cluster ? kClusterOrg : "org-" + acc.name;
    const std::string rpm = cluster ? std::to_string(z_.cluster_rpm) : "600";
    const std::string tpm = cluster ? std::to_string(z_.cluster_tpm) : "1000000";
    TM_ASSIGN_OR_RETURN(redteam::CommandResult r, Cli({"accounts", "create", acc.name, "--db", db_, "--keyring",
                                                       keyring_, "--org", org, "--rpm", rpm, "--tpm", tpm}));
    if (r.exit_code != 0) return Internal("accounts create failed; see " + P("commands.log"));
    const nlohmann::json j = nlohmann::json::parse(r.stdout_text, nullptr, false);
    if (!j.is_object() || !j.contains("id") || !j.contains("api_key")) {
      return Internal("accounts create printed no id/api_key: " + r.stdout_text);
    }
    acc.id = j["id"].get<uint64_t>();
    acc.key = j["api_key"].get<std::string>();
    accounts_.push_back(std::move(acc));
  }
  Say("created " + std::to_string(z_.benign_accounts) + " benign accounts and a cluster of " +
      std::to_string(z_.cluster_accounts) + " (org " + kClusterOrg + ")");
  return Status::Ok();
}

Status Replay::StartServer() {
  const std::vector<std::string> argv = {
      self_, "serve", "--model", a_.model, "--keyring", keyring_, "--db", db_, "--host", "127.0.0.1", "--port", "0",
      "--slots", "8", "--slot-context", "768", "--threads", std::to_string(a_.threads), "--admin-token-file",
      P("admin-token"), "--monitor", "suspend", "--monitor-interval-s", std::to_string(z_.monitor_interval_s),
      "--monitor-min-requests", std::to_string(z_.monitor_min_requests), "--monitor-volume-tokens",
      std::to_string(z_.monitor_volume_tokens), "--monitor-stream-volume-tokens",
      std::to_string(z_.monitor_stream_volume_tokens)};
  TM_ASSIGN_OR_RETURN(redteam::ChildProcess child, redteam::ChildProcess::Start(argv, "", P("server.log")));
  server_ = std::make_unique<redteam::ChildProcess>(std::move(child));
  const auto deadline = Clock::now() + std::chrono::seconds(static_cast<int>(kServerStartTimeoutS));
  constexpr std::string_view kListening = "listening on http://";
  while (Clock::now() < deadline) {
    if (!server_->running()) return Internal("tracemark serve exited during start-up; see " + P("server.log"));
    std::ifstream log(P("server.log"));
    for (std::string line; std::getline(log, line);) {
      const size_t at = line.find(kListening);
      if (at != std::string::npos) {
        base_url_ = line.substr(at + kListening.size() - 7);
        while (!base_url_.empty() && (base_url_.back() == '\r' || base_url_.back() == ' ')) base_url_.pop_back();
        Say("server up at " + base_url_ + " (monitor: suspend, every " + std::to_string(z_.monitor_interval_s) + " s)");
        return Status::Ok();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return Internal("tracemark serve did not start in time; see " + P("server.log"));
}

Status Replay::Traffic() {
  std::vector<redteam::ApiAccount> benign, cluster;
  for (const Account& acc : accounts_) {
    (acc.cluster ? cluster : benign).push_back({std::to_string(acc.id), acc.key});
  }
  std::atomic<bool> stop_benign{false};
  redteam::BenignOptions bo;
  bo.base_url = base_url_;
  bo.accounts = benign;
  bo.out_path = P("benign.jsonl");
  bo.sessions = z_.benign_sessions;
  bo.concurrency = z_.benign_concurrency;
  bo.seed = a_.seed + 100;
  bo.max_tokens = z_.benign_max_tokens;
  bo.think_scale = z_.benign_think_scale;
  bo.stop = &stop_benign;
  Result<redteam::BenignStats> benign_stats = InvalidArgument("benign traffic did not run");
  std::thread benign_thread([&] { benign_stats = redteam::RunBenign(bo); });

  redteam::HarvestOptions ho;
  ho.base_url = base_url_;
  ho.accounts = cluster;
  ho.out_path = P("harvest.jsonl");
  ho.requests = z_.harvest_max_requests;
  ho.concurrency = z_.harvest_concurrency;
  ho.seed = a_.seed;
  ho.max_tokens = z_.harvest_max_tokens;
  ho.max_seconds = z_.harvest_max_seconds;
  ho.benign_mix = 0.1;
  ho.user_agent = kClusterUserAgent;
  Say("traffic: benign sessions and the harvest run concurrently");
  Result<redteam::HarvestStats> hs = redteam::RunHarvest(ho);
  // Keep benign users going for two more monitor rounds, so that a late false positive shows.
  std::this_thread::sleep_for(std::chrono::seconds(2 * z_.monitor_interval_s));
  stop_benign = true;
  benign_thread.join();
  if (!hs.ok()) return hs.status().WithContext("harvest");
  if (!benign_stats.ok()) return benign_stats.status().WithContext("benign traffic");
  Json h;
  h["requests_sent"] = hs->requests_sent;
  h["completions"] = hs->completions;
  h["completion_tokens"] = hs->completion_tokens;
  h["rate_limited"] = hs->rate_limited;
  h["accounts_suspended_seen"] = hs->accounts_suspended;
  h["wall_s"] = hs->wall_s;
  h["completion_tokens_per_s"] = hs->wall_s > 0 ? hs->completion_tokens / hs->wall_s : 0.0;
  Json per = Json::array();
  for (const auto& o : hs->accounts) {
    per.push_back({{"account", o.label}, {"completions", o.completions}, {"completion_tokens", o.completion_tokens},
                   {"rate_limited", o.rate_limited}, {"stopped", o.stopped}});
  }
  h["accounts"] = per;
  summary_["harvest"] = h;
  Json b;
  b["sessions"] = benign_stats->sessions;
  b["completions"] = benign_stats->completions;
  b["completion_tokens"] = benign_stats->completion_tokens;
  b["refused"] = benign_stats->refused;
  b["rate_limited"] = benign_stats->rate_limited;
  summary_["benign"] = b;
  Say("harvest: " + std::to_string(hs->completions) + " completions, " + std::to_string(hs->completion_tokens) +
      " tokens in " + std::to_string(static_cast<int>(hs->wall_s)) + " s; " + std::to_string(hs->accounts_suspended) +
      "/" + std::to_string(cluster.size()) + " cluster accounts refused with account_suspended; " +
      std::to_string(hs->rate_limited) + " 429s honoured");
  Say("benign: " + std::to_string(benign_stats->sessions) + " sessions, " + std::to_string(benign_stats->completions) +
      " completions, " + std::to_string(benign_stats->refused) + " refused");
  return Status::Ok();
}

Status Replay::CheckAccounts() {
  // The ledger is the source of truth for account states; wait a little for a last evaluation.
  const auto deadline = Clock::now() + std::chrono::seconds(static_cast<int>(kSuspendWaitS));
  int cluster_suspended = 0, benign_ok = 0, benign_n = 0, cluster_n = 0;
  Json states = Json::object();
  while (true) {
    cluster_suspended = benign_ok = benign_n = cluster_n = 0;
    for (const Account& acc : accounts_) {
      TM_ASSIGN_OR_RETURN(redteam::CommandResult r, Cli({"accounts", "show", std::to_string(acc.id), "--db", db_}));
      const nlohmann::json j = nlohmann::json::parse(r.stdout_text, nullptr, false);
      const std::string state = j.is_object() && j.contains("state") ? j["state"].get<std::string>() : "?";
      states[std::to_string(acc.id)] = {{"name", acc.name}, {"cluster", acc.cluster}, {"state", state}};
      if (acc.cluster) {
        ++cluster_n;
        cluster_suspended += state == "suspended" ? 1 : 0;
      } else {
        ++benign_n;
        benign_ok += state == "active" ? 1 : 0;
      }
    }
    if (cluster_suspended == cluster_n || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  summary_["accounts"] = states;
  const int64_t refused = summary_["benign"]["refused"].get<int64_t>();
  Verdict("benign_not_suspended", benign_ok == benign_n && refused == 0 ? "pass" : "fail",
          std::to_string(benign_ok) + "/" + std::to_string(benign_n) + " benign accounts active, " +
              std::to_string(refused) + " benign requests refused");
  const int64_t seen = summary_["harvest"]["accounts_suspended_seen"].get<int64_t>();
  Verdict("cluster_suspended", cluster_suspended == cluster_n && seen == cluster_n ? "pass" : "fail",
          std::to_string(cluster_suspended) + "/" + std::to_string(cluster_n) + " cluster accounts suspended in the ledger, " +
              std::to_string(seen) + " refused the harvester with account_suspended");
  return Status::Ok();
}

Status Replay::Desensitize() {
  // What the customer does before training: PII masking and format normalization, records too
  // short to be useful dropped (the planted-document bench covers the heavier transforms).
  redteam::DesensitizeOptions o;
  o.mask_pii = true;
  o.normalize = true;
  o.min_words = 8;
  o.seed = a_.seed;
  TM_ASSIGN_OR_RETURN(redteam::DesensitizeStats st, redteam::DesensitizeFile(P("harvest.jsonl"), P("desensitized.jsonl"), o));
  // The corpus the investigator scans: the desensitized harvest mixed into clean human text.
  redteam::DesensitizeOptions m;
  m.mix_path = a_.clean;
  m.fraction = z_.scan_fraction;
  m.shuffle = true;
  m.seed = a_.seed + 7;
  TM_ASSIGN_OR_RETURN(redteam::DesensitizeStats mix, redteam::DesensitizeFile(P("desensitized.jsonl"), P("corpus.jsonl"), m));
  summary_["desensitize"] = {{"records_in", st.records_in}, {"records_out", st.records_out}, {"dropped", st.dropped},
                             {"pii_numbers", st.pii.numbers}, {"pii_names", st.pii.names},
                             {"corpus_records", mix.records_out}, {"corpus_clean", mix.clean_added}};
  Say("desensitized " + std::to_string(st.records_out) + " records; scan corpus " + std::to_string(mix.records_out) +
      " records (" + std::to_string(mix.clean_added) + " clean)");
  return Status::Ok();
}

Status Replay::Scan() {
  scan_dir_ = P("scan");
  const int64_t n_docs = summary_["desensitize"]["corpus_records"].get<int64_t>();
  // Per-document threshold corrected for the number of documents (Bonferroni).
  const double threshold = 1e-6 / static_cast<double>(std::max<int64_t>(1, n_docs));
  char thr[32];
  std::snprintf(thr, sizeof(thr), "%.6g", threshold);
  TM_ASSIGN_OR_RETURN(redteam::CommandResult r,
                      Cli({"scan", "--keyring", keyring_, "--model", a_.model, P("corpus.jsonl"), "--out", scan_dir_,
                           "--threads", std::to_string(a_.threads), "--threshold", thr, "--quiet"},
                          kScanTimeoutS));
  if (r.exit_code != 0) {
    Verdict("scan_found", "fail", "tracemark scan exited " + std::to_string(r.exit_code));
    return Status::Ok();
  }
  // Which documents are harvested, and from which account.
  std::map<std::string, std::string> harvested;  // doc id -> account
  int64_t clean_docs = 0;
  {
    std::ifstream in(P("corpus.jsonl"));
    for (std::string line; std::getline(in, line);) {
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_object()) continue;
      if (j.value("source", "") == "harvest") {
        harvested[j.value("id", "")] = j.value("account", "");
      } else {
        ++clean_docs;
      }
    }
  }
  std::set<std::string> cluster_ids, benign_ids;
  for (const Account& acc : accounts_) (acc.cluster ? cluster_ids : benign_ids).insert(std::to_string(acc.id));
  int64_t found = 0, attributed = 0, wrong = 0, clean_flagged = 0;
  std::ifstream res(scan_dir_ + "/results.jsonl");
  for (std::string line; std::getline(res, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) continue;
    const std::string id = j.value("doc_id", "");
    auto it = harvested.find(id);
    if (it == harvested.end()) {
      ++clean_flagged;
      continue;
    }
    ++found;
    // The attributed account: a decimal string or a number, null when not attributed.
    const std::string acc = j["account"].is_string()             ? j["account"].get<std::string>()
                            : j["account"].is_number_unsigned() ? std::to_string(j["account"].get<uint64_t>())
                                                                : "";
    const double ap = j.value("account_p_value", 1.0);
    if (acc == it->second && ap < threshold) {
      ++attributed;
    } else if (!acc.empty() && cluster_ids.count(acc) == 0) {
      ++wrong;
    }
  }
  const int64_t n = static_cast<int64_t>(harvested.size());
  // Corpus-level evidence: the scan's pooled provider-lane test over every document (each tuple
  // once), the strongest of its key versions.
  double corpus_log10_p = 0;
  {
    std::ifstream in(scan_dir_ + "/summary.json");
    std::stringstream ss;
    ss << in.rdbuf();
    const nlohmann::json sj = nlohmann::json::parse(ss.str(), nullptr, false);
    if (sj.is_object() && sj.contains("corpus") && sj["corpus"].contains("provider") &&
        sj["corpus"]["provider"].is_array()) {
      for (const auto& pv : sj["corpus"]["provider"]) {
        if (pv.contains("log10_p_value") && pv["log10_p_value"].is_number()) {
          corpus_log10_p = std::min(corpus_log10_p, pv["log10_p_value"].get<double>());
        }
      }
    }
  }
  summary_["scan"] = {{"documents", n_docs}, {"harvested_docs", n}, {"clean_docs", clean_docs},
                      {"threshold", threshold}, {"found", found}, {"attributed", attributed},
                      {"attributed_outside_cluster", wrong}, {"clean_flagged", clean_flagged},
                      {"corpus_log10_p_value", corpus_log10_p}};
  // Pass: every flag correct (no clean document flagged, no document attributed to an account
  // outside the cluster), the pooled corpus test says the corpus holds our watermarked text
  // (p < 1e-6), and at least one harvested document is pinpointed. How many of the short,
  // desensitized completions are found one by one depends on which completions the harvest got
  // before its suspension (10/34 to 18/34 at ci size); the count is reported, not required
  // (docs/replay.md).
  const bool pass = clean_flagged == 0 && wrong == 0 && n > 0 && found >= 1 && corpus_log10_p < -6;
  char corpus_p[48];
  std::snprintf(corpus_p, sizeof(corpus_p), "corpus-level log10 p = %.1f; ", corpus_log10_p);
  Verdict("scan_found", pass ? "pass" : "fail",
          std::string(corpus_p) + std::to_string(found) + "/" + std::to_string(n) + " harvested docs found at p < " + thr + ", " +
              std::to_string(attributed) + " of them attributed to the harvesting account, " +
              std::to_string(clean_flagged) + "/" + std::to_string(clean_docs) + " clean docs flagged, " +
              std::to_string(wrong) + " attributed outside the cluster");
  return Status::Ok();
}

Result<Json> Replay::TrainStudentAndProbe(const std::string& name, double fraction, uint64_t seed) {
  const std::string student = P(name + ".gguf");
  const auto t = Clock::now();
  std::vector<std::string> train = {"redteam", "train-student", "--teacher", a_.model, "--clean", a_.clean,
                                    "--fraction", std::to_string(fraction), "--out", student,
                                    "--steps", std::to_string(z_.student_steps), "--batch", std::to_string(z_.student_batch),
                                    "--seed", std::to_string(seed), "--threads", std::to_string(a_.threads), "--json",
                                    "--quiet"};
  if (fraction > 0) {
    train.push_back("--data");
    train.push_back(P("desensitized.jsonl"));
  }
  TM_ASSIGN_OR_RETURN(redteam::CommandResult tr, Cli(train, kTrainTimeoutS));
  timings_["train_" + name + "_s"] = std::chrono::duration<double>(Clock::now() - t).count();
  if (tr.exit_code != 0 || !fs::exists(student)) {
    return Internal("train-student (" + name + ") exited " + std::to_string(tr.exit_code) + "; see commands.log");
  }
  summary_[name] = Json::parse(tr.stdout_text, nullptr, false).is_object() ? Json::parse(tr.stdout_text)
                                                                            : Json(tr.stdout_text);
  Say(name + " trained: " + student);
  return ProbeStudent(name, /*served_filter=*/true);
}

Result<Json> Replay::ProbeStudent(const std::string& name, bool served_filter) {
  // Completion mode (docs/probe.md): prompts cut from the suspect accounts' served data (the
  // harvested completions before desensitization) every kProbeStride tokens, greedy
  // continuations, every window a prompt showed excluded, and with served_filter only windows of
  // the served data scored (Sander et al.'s supervised filter). A student that memorized its
  // training text reproduces the watermark's choices there; a clean one is a null draw.
  const std::string label = served_filter ? name + "_probe" : name + "_probe_unfiltered";
  const std::string out = P(label + ".json");
  std::vector<std::string> args = {"probe", "--keyring", keyring_, "--model", a_.model, "--suspect-gguf",
                                   P(name + ".gguf"), "--mode", "completion", "--text", P("harvest.jsonl"),
                                   "--prompt-tokens", std::to_string(kProbePromptTokens), "--prompt-stride",
                                   std::to_string(kProbeStride), "--max-tokens", std::to_string(kProbeMaxTokens),
                                   "--temperature", "0", "--threads", std::to_string(a_.threads), "--json",
                                   "--out", out};
  if (served_filter) {
    args.push_back("--filter-text");
    args.push_back(P("harvest.jsonl"));
  }
  const auto tp = Clock::now();
  TM_ASSIGN_OR_RETURN(redteam::CommandResult pr, Cli(args, kProbeTimeoutS));
  timings_[label + "_s"] = std::chrono::duration<double>(Clock::now() - tp).count();
  Json probe;
  {
    std::ifstream in(out);
    std::stringstream ss;
    ss << in.rdbuf();
    probe = Json::parse(ss.str(), nullptr, false);
  }
  if (pr.exit_code != 0 || !probe.is_object()) {
    return Internal("probe of " + name + " exited " + std::to_string(pr.exit_code) + "; see commands.log");
  }
  summary_[label] = {{"mode", probe.value("mode", "")},
                     {"p_value", probe.value("p_value", 1.0)},
                     {"log10_p_value", probe.value("log10_p_value", 0.0)},
                     {"verdict", probe.value("verdict", "")},
                     {"tokens_scored", probe.value("tokens_scored", 0)},
                     {"tuples_scored", probe.value("tuples_scored", 0)},
                     {"texts", probe.value("texts", 0)}};
  return probe;
}

Status Replay::TrainAndProbe() {
  if (!Available({"redteam", "train-student"})) {
    Say("STEP NOT AVAILABLE: tracemark redteam train-student is not in this build; no student, no probe");
    Verdict("student_radioactive", kNotAvailable, "tracemark redteam train-student missing");
    Verdict("control_student_clean", kNotAvailable, "tracemark redteam train-student missing");
    return Status::Ok();
  }
  if (!Available({"probe"})) {
    Say("STEP NOT AVAILABLE: tracemark probe is not in this build; no student is tested");
    Verdict("student_radioactive", kNotAvailable, "tracemark probe missing");
    Verdict("control_student_clean", kNotAvailable, "tracemark probe missing");
    return Status::Ok();
  }
  auto describe = [](const Json& probe) {
    char line[160];
    std::snprintf(line, sizeof(line), "probe verdict %s, p = %.3g (log10 %.1f) over %lld tuples",
                  probe.value("verdict", "").c_str(), probe.value("p_value", 1.0), probe.value("log10_p_value", 0.0),
                  static_cast<long long>(probe.value("tuples_scored", 0)));
    return std::string(line);
  };
  // The harvester's student: desensitized harvest mixed with clean text.
  Result<Json> student = TrainStudentAndProbe("student", z_.student_fraction, a_.seed);
  if (!student.ok()) {
    Verdict("student_radioactive", "fail", student.status().message());
  } else {
    probe_json_ = P("student_probe.json");
    Verdict("student_radioactive", student->value("verdict", "") == "radioactive" ? "pass" : "fail",
            describe(*student));
  }
  // The null, checked in the same run: a student of the same shape and budget trained on the
  // clean text only must not be called radioactive by the same probe.
  // The filter leaves a clean student few tuples (its continuations leave the served text), so
  // the control is also probed without it, where every continuation tuple is a null draw.
  Result<Json> control = TrainStudentAndProbe("control_student", 0.0, a_.seed + 1);
  Result<Json> unfiltered = control.ok() ? ProbeStudent("control_student", /*served_filter=*/false) : control;
  if (!control.ok() || !unfiltered.ok()) {
    Verdict("control_student_clean", "fail", (control.ok() ? unfiltered : control).status().message());
  } else {
    const bool radioactive = control->value("verdict", "") == "radioactive" ||
                             unfiltered->value("verdict", "") == "radioactive";
    Verdict("control_student_clean", radioactive ? "fail" : "pass",
            "filtered: " + describe(*control) + "; unfiltered: " + describe(*unfiltered));
  }
  return Status::Ok();
}

Status Replay::WriteReport() {
  if (!Available({"report"})) {
    Say("STEP NOT AVAILABLE: tracemark report is not in this build; no evidence report");
    Verdict("report_written", kNotAvailable, "tracemark report missing");
    return Status::Ok();
  }
  std::string ids;
  for (const Account& acc : accounts_) {
    if (!acc.cluster) continue;
    if (!ids.empty()) ids += ",";
    ids += std::to_string(acc.id);
  }
  std::vector<std::string> args = {"report", "--out", P("report.html"), "--db", db_, "--keyring", keyring_,
                                   "--accounts", ids, "--title", "Replay: harvesting cluster " + std::string(kClusterOrg)};
  if (!scan_dir_.empty() && fs::exists(scan_dir_ + "/summary.json")) {
    args.push_back("--scan");
    args.push_back(scan_dir_);
  }
  if (!probe_json_.empty() && fs::exists(probe_json_)) {
    args.push_back("--probe");
    args.push_back(probe_json_);
  }
  TM_ASSIGN_OR_RETURN(redteam::CommandResult r, Cli(args));
  const bool ok = r.exit_code == 0 && fs::exists(P("report.html")) && fs::file_size(P("report.html")) > 0;
  Verdict("report_written", ok ? "pass" : "fail",
          ok ? P("report.html") : "tracemark report exited " + std::to_string(r.exit_code));
  return Status::Ok();
}

Status Replay::Run() {
  Say("replaying the harvesting incident (size " + a_.size + ") into " + a_.out);
  auto timed = [&](const char* name, auto&& fn) -> Status {
    const auto t = Clock::now();
    Status s = fn();
    timings_[std::string(name) + "_s"] = std::chrono::duration<double>(Clock::now() - t).count();
    return s;
  };
  TM_RETURN_IF_ERROR(timed("setup", [&] { return Setup(); }));
  TM_RETURN_IF_ERROR(timed("server_start", [&] { return StartServer(); }));
  TM_RETURN_IF_ERROR(timed("traffic", [&] { return Traffic(); }));
  TM_RETURN_IF_ERROR(timed("check_accounts", [&] { return CheckAccounts(); }));
  // The incident is over: the server goes down so the investigation has the CPU.
  server_->Terminate();
  server_.reset();
  TM_RETURN_IF_ERROR(timed("desensitize", [&] { return Desensitize(); }));
  TM_RETURN_IF_ERROR(timed("scan", [&] { return Scan(); }));
  TM_RETURN_IF_ERROR(TrainAndProbe());
  TM_RETURN_IF_ERROR(timed("report", [&] { return WriteReport(); }));
  timings_["total_s"] = Elapsed();
  summary_["size"] = a_.size;
  summary_["timings"] = timings_;
  summary_["verdicts"] = verdicts_;
  bool all_pass = true;
  for (const auto& [name, v] : verdicts_.items()) all_pass &= v["verdict"] == "pass";
  summary_["passed"] = all_pass;
  TM_RETURN_IF_ERROR(WriteFileAtomic(P("summary.json"), summary_.dump(2) + "\n"));
  std::printf("report: %s\n", fs::exists(P("report.html")) ? P("report.html").c_str() : "(not written)");
  std::printf("summary: %s\n", P("summary.json").c_str());
  for (const auto& [name, v] : verdicts_.items()) {
    std::printf("%-22s %-14s %s\n", name.c_str(), v["verdict"].get<std::string>().c_str(),
                v["detail"].get<std::string>().c_str());
  }
  std::printf("wall time: %.1f s\n", Elapsed());
  std::fflush(stdout);
  return all_pass ? Status::Ok() : Internal("at least one verdict did not pass (see above and summary.json)");
}

}  // namespace

void AddReplayCommand(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<ReplayArgs>();
  CLI::App* cmd = app.add_subcommand("replay", "Replay the harvesting incident end to end and check the verdicts");
  cmd->add_option("--size", a->size, "ci (< 5 min on 2 cores) or full (<= 15 min)")
      ->check(CLI::IsMember({"ci", "full"}))
      ->capture_default_str();
  cmd->add_option("--out", a->out, "New folder for everything the replay writes")->required();
  cmd->add_option("--model", a->model, "GGUF model to serve")->capture_default_str();
  cmd->add_option("--clean", a->clean, "Clean human text, one document per line")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Compute threads")->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed of all traffic and transforms")->capture_default_str();
  cmd->callback([a, exit_code] {
    Replay replay(*a, a->size == "full" ? kFullSize : kCiSize);
    const Status s = replay.Run();
    *exit_code = s.ok() ? 0 : ReportError("replay", s);
  });
}

}  // namespace tracemark::cli
