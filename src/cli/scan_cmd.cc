// `tracemark scan`: scan corpora for watermarked documents, one shard at a time, and
// `tracemark scan merge DIR`: reduce the shards of a finished job (docs/formats/scan.md).
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "fmt/format.h"
#include "tracemark/base/file.h"
#include "tracemark/scan/inputs.h"
#include "tracemark/scan/scanner.h"
#include "tracemark/scan/watermark_scorer.h"
#include "tracemark/watermark/detector.h"

namespace tracemark::cli {
namespace {

struct ScanArgs {
  std::string keyring;
  std::string model;
  std::vector<std::string> paths;
  std::vector<std::string> manifests;
  std::string out;
  int threads = 1;
  int rank = 0;
  int world_size = 1;
  std::string field = "text";
  std::string format = "auto";
  bool whole_file = false;
  bool all_roles = false;
  bool no_mask = false;
  double threshold = 1e-6;
  size_t max_line_bytes = scan::kDefaultMaxLineBytes;
  bool quiet = false;
  std::string merge_dir;
  // --max-token-prob P: the token-probability filter (0 < P < 1; part of the job identity).
  double max_token_prob = 0.0;
  bool max_token_prob_given = false;
  std::string suspects;  // --suspects ID,...|@FILE: targeted detection (part of the job identity)
};

Status PrintJson(const nlohmann::ordered_json& j) {
  const std::string out = j.dump() + "\n";
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0) {
    return IoError("writing stdout failed");
  }
  return Status::Ok();
}

Result<std::unique_ptr<scan::WatermarkScoring>> LoadScoring(const ScanArgs& a) {
  if (a.max_token_prob_given) {
    if (!(a.max_token_prob > 0.0 && a.max_token_prob < 1.0)) {
      return InvalidArgument(
          "--max-token-prob must be in (0, 1), e.g. 0.5; leave it out for no filter");
    }
    if (a.model.empty()) {
      return InvalidArgument(
          "--max-token-prob needs --model GGUF (the model is run over each document)");
    }
  }
  if (a.keyring.empty() || a.model.empty()) {
    return InvalidArgument("--keyring FILE and --model GGUF are required");
  }
  scan::WatermarkScoringOptions o;
  o.keyring_path = a.keyring;
  o.model_path = a.model;
  o.threshold = a.threshold;
  o.mask_placeholders = !a.no_mask;
  o.max_token_prob = a.max_token_prob_given ? a.max_token_prob : 0.0;
  if (!a.suspects.empty()) {
    TM_ASSIGN_OR_RETURN(o.suspects, watermark::ParseSuspectsArg(a.suspects));
  }
  return scan::WatermarkScoring::Create(o);
}

nlohmann::ordered_json CountsJson(const scan::ScanCounts& c) {
  nlohmann::ordered_json j;
  j["documents"] = c.documents;
  j["tokens_scored"] = c.tokens_scored;
  j["flagged"] = c.flagged;
  j["errors"] = c.errors;
  return j;
}

Status RunMerge(const std::string& dir, scan::WatermarkScoring* scoring) {
  TM_ASSIGN_OR_RETURN(scan::MergeReport m, scan::MergeShards(dir, scoring));
  nlohmann::ordered_json j = CountsJson(m.counts);
  j["world_size"] = m.world_size;
  j["results"] = dir + "/results.jsonl";
  j["summary"] = dir + "/summary.json";
  return PrintJson(j);
}

Status RunScan(const ScanArgs& a) {
  if (a.out.empty()) return InvalidArgument("--out DIR is required");
  if (a.paths.empty() && a.manifests.empty()) {
    return InvalidArgument("give at least one input PATH (file, folder or glob) or --manifest FILE");
  }
  if (!(a.threshold > 0 && a.threshold < 1)) return InvalidArgument("--threshold must be in (0, 1)");
  scan::ScanJob job;
  TM_ASSIGN_OR_RETURN(job.files, scan::ExpandInputs(a.paths, a.manifests));
  if (a.format == "text") {
    job.records.format = scan::InputFormat::kText;
  } else if (a.format == "jsonl") {
    job.records.format = scan::InputFormat::kJsonl;
  } else if (a.format != "auto") {
    return InvalidArgument("--format must be auto, text or jsonl");
  }
  job.records.field = a.field;
  job.records.whole_file = a.whole_file;
  job.records.all_roles = a.all_roles;
  job.records.limits.max_line_bytes = a.max_line_bytes;
  job.threshold = a.threshold;
  TM_ASSIGN_OR_RETURN(std::unique_ptr<scan::WatermarkScoring> scoring, LoadScoring(a));
  scan::ShardOptions o;
  o.rank = a.rank;
  o.world_size = a.world_size;
  o.threads = a.threads;
  o.out_dir = a.out;
  o.progress = !a.quiet && ::isatty(STDERR_FILENO) == 1;
  TM_ASSIGN_OR_RETURN(scan::ShardReport r, scan::RunShard(job, o, *scoring));
  nlohmann::ordered_json j = CountsJson(r.counts);
  j["rank"] = a.rank;
  j["world_size"] = a.world_size;
  j["skipped"] = r.skipped;
  j["out"] = a.out;
  TM_RETURN_IF_ERROR(PrintJson(j));
  // A world of one is complete now: merge right away.
  if (a.world_size == 1) return RunMerge(a.out, scoring.get());
  return Status::Ok();
}

}  // namespace

void AddScanCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<ScanArgs>();
  CLI::App* cmd = app.add_subcommand(
      "scan", "Scan corpora (txt, JSONL, .zst/.gz) for watermarked documents, one shard per rank");
  cmd->add_option("--keyring", args->keyring, "Keyring file (tracemark keyring init)");
  cmd->add_option("--model", args->model, "GGUF model whose tokenizer generated the text");
  cmd->add_option("paths", args->paths, "Input files, folders or glob patterns");
  cmd->add_option("--manifest", args->manifests, "File listing input paths, one per line");
  cmd->add_option("--out", args->out, "Output folder (shards/, completions/, results.jsonl, summary.json)");
  cmd->add_option("--threads", args->threads, "Worker threads")->check(CLI::Range(1, scan::kMaxThreads));
  cmd->add_option("--rank", args->rank, "This shard's rank in [0, world size)");
  cmd->add_option("--world-size", args->world_size, "Number of shards of the job");
  cmd->add_option("--field", args->field,
                  "JSONL field with the text, or with a chat messages array (e.g. messages)");
  cmd->add_option("--format", args->format, "auto (by file name), text or jsonl");
  cmd->add_flag("--whole-file", args->whole_file, "Plain text: one document per file, not per line");
  cmd->add_flag("--all-roles", args->all_roles, "Chat arrays: score every message, not only the assistant's");
  cmd->add_flag("--no-placeholder-mask", args->no_mask, "Do not skip PII placeholders such as [EMAIL]");
  cmd->add_option("--threshold", args->threshold, "Flag documents with p-value below this (default 1e-6)");
  cmd->add_option("--max-line-bytes", args->max_line_bytes, "Longest line read (longer lines are skipped)");
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  const auto set_max_token_prob = [args](const double& p) {
    args->max_token_prob = p;
    args->max_token_prob_given = true;
  };
  cmd->add_option_function<double>(
      "--max-token-prob", set_max_token_prob,
      "Score only tokens the model (--model, run over each document) gives probability <= P; "
      "0.5 recommended for low-temperature text (default: off; costs one model pass per document)");
  cmd->add_option(
      "--suspects", args->suspects,
      "Targeted detection against these accounts: ID[,ID...] or @FILE (one id per line); "
      "rows then name only a suspect");
  CLI::App* merge = cmd->add_subcommand("merge", "Merge the shards of a finished scan job in DIR");
  merge->add_option("dir", args->merge_dir, "The job's --out folder")->required();
  merge->add_option("--keyring", args->keyring, "Keyring file (for the pooled corpus-level test)");
  merge->add_option("--model", args->model, "GGUF model (with --keyring)");
  merge->add_option_function<double>("--max-token-prob", set_max_token_prob,
                                     "The scan's --max-token-prob (with --keyring)");
  merge->add_option("--suspects", args->suspects, "The scan's --suspects (with --keyring)");
  merge->callback([args, exit_code]() {
    Status s;
    if (args->keyring.empty() && args->model.empty()) {
      // Without the scorer the pooled test is skipped; its settings would be silently ignored.
      if (args->max_token_prob_given || !args->suspects.empty()) {
        s = InvalidArgument("--max-token-prob and --suspects describe the pooled corpus test: give them with "
                            "--keyring and --model, or leave them out");
      } else {
        s = RunMerge(args->merge_dir, nullptr);
      }
    } else {
      Result<std::unique_ptr<scan::WatermarkScoring>> scoring = LoadScoring(*args);
      s = scoring.ok() ? RunMerge(args->merge_dir, scoring->get()) : scoring.status();
    }
    *exit_code = s.ok() ? 0 : ReportError("scan merge", s);
  });
  cmd->callback([args, exit_code, merge]() {
    if (merge->parsed()) return;
    const Status s = RunScan(*args);
    *exit_code = s.ok() ? 0 : ReportError("scan", s);
  });
}

}  // namespace tracemark::cli
