// `tracemark redteam ...`: the simulated harvesting customer (docs/redteam.md). One group, several
// owners: each subcommand registers itself on the group from its own function (harvest, benign and
// desensitize here; train-student from its own file, declared in commands.h). Single-threaded
// start-up code.
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "tracemark/redteam/desensitize.h"
#include "tracemark/redteam/traffic.h"

namespace tracemark::cli {
namespace {

nlohmann::ordered_json OutcomesJson(const std::vector<redteam::AccountOutcome>& accounts) {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const redteam::AccountOutcome& a : accounts) {
    arr.push_back({{"account", a.label},
                   {"requests", a.requests},
                   {"completions", a.completions},
                   {"completion_tokens", a.completion_tokens},
                   {"rate_limited", a.rate_limited},
                   {"stopped", a.stopped.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(a.stopped)}});
  }
  return arr;
}

void PrintJsonLine(const nlohmann::ordered_json& j) {
  std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  std::fflush(stdout);
}

struct HarvestArgs {
  redteam::HarvestOptions o;
  std::string keys;
};

void AddHarvestCommand(CLI::App& group, int* exit_code) {
  auto a = std::make_shared<HarvestArgs>();
  CLI::App* cmd = group.add_subcommand(
      "harvest", "Harvest completions over the OpenAI API with many accounts (templated CoT/rubric sweeps)");
  cmd->add_option("--base-url", a->o.base_url, "Server URL, e.g. http://127.0.0.1:8080")->required();
  cmd->add_option("--keys", a->keys, "File with one API key per line ('LABEL KEY' also accepted)")->required();
  cmd->add_option("--out", a->o.out_path, "Output JSONL (account, prompt, text per completion)")->required();
  cmd->add_option("--requests", a->o.requests, "Completions to record")->capture_default_str();
  cmd->add_option("--concurrency", a->o.concurrency, "Parallel connections")
      ->check(CLI::Range(1, redteam::kMaxConcurrency))
      ->capture_default_str();
  cmd->add_option("--topics", a->o.topics, "Topics to sweep (default: a built-in list)");
  cmd->add_option("--benign-mix", a->o.benign_mix, "Share of ordinary-looking chat requests")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--stream-share", a->o.stream_share, "Share of streaming requests")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--max-tokens", a->o.max_tokens, "max_tokens per request")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--max-seconds", a->o.max_seconds, "Stop after this long (0: no limit)")->capture_default_str();
  cmd->add_option("--model", a->o.model, "Model id (default: the first of /v1/models)");
  cmd->add_option("--user-agent", a->o.user_agent, "User-Agent every account sends")->capture_default_str();
  cmd->add_option("--seed", a->o.seed, "Prompt sweep seed")->capture_default_str();
  cmd->callback([a, exit_code] {
    Result<std::vector<redteam::ApiAccount>> keys = redteam::LoadKeys(a->keys);
    if (!keys.ok()) {
      *exit_code = ReportError("redteam harvest", keys.status());
      return;
    }
    a->o.accounts = std::move(*keys);
    Result<redteam::HarvestStats> r = redteam::RunHarvest(a->o);
    if (!r.ok()) {
      *exit_code = ReportError("redteam harvest", r.status());
      return;
    }
    nlohmann::ordered_json j;
    j["out"] = a->o.out_path;
    j["requests_sent"] = r->requests_sent;
    j["completions"] = r->completions;
    j["harvest_completions"] = r->harvest_completions;
    j["benign_completions"] = r->benign_completions;
    j["completion_tokens"] = r->completion_tokens;
    j["rate_limited"] = r->rate_limited;
    j["transport_errors"] = r->transport_errors;
    j["other_errors"] = r->other_errors;
    j["accounts_suspended"] = r->accounts_suspended;
    j["accounts_stopped"] = r->accounts_stopped;
    j["wall_s"] = r->wall_s;
    j["completions_per_s"] = r->wall_s > 0 ? r->completions / r->wall_s : 0.0;
    j["completion_tokens_per_s"] = r->wall_s > 0 ? r->completion_tokens / r->wall_s : 0.0;
    j["accounts"] = OutcomesJson(r->accounts);
    PrintJsonLine(j);
    *exit_code = 0;
  });
}

struct BenignArgs {
  redteam::BenignOptions o;
  std::string keys;
};

void AddBenignCommand(CLI::App& group, int* exit_code) {
  auto a = std::make_shared<BenignArgs>();
  CLI::App* cmd = group.add_subcommand(
      "benign", "Benign-traffic simulator: multi-turn chat sessions of varied length, topics, users, think times");
  cmd->add_option("--base-url", a->o.base_url, "Server URL, e.g. http://127.0.0.1:8080")->required();
  cmd->add_option("--keys", a->keys, "File with one API key per line (one user each)")->required();
  cmd->add_option("--out", a->o.out_path, "Optional JSONL of the completions");
  cmd->add_option("--sessions", a->o.sessions, "Chat sessions to run")->capture_default_str();
  cmd->add_option("--concurrency", a->o.concurrency, "Sessions in parallel")
      ->check(CLI::Range(1, redteam::kMaxConcurrency))
      ->capture_default_str();
  cmd->add_option("--max-tokens", a->o.max_tokens, "max_tokens per request")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--think-scale", a->o.think_scale, "Multiplies the think time between turns (U(0.5, 3) s)")
      ->capture_default_str();
  cmd->add_option("--max-seconds", a->o.max_seconds, "Stop after this long (0: no limit)")->capture_default_str();
  cmd->add_option("--model", a->o.model, "Model id (default: the first of /v1/models)");
  cmd->add_option("--seed", a->o.seed, "Simulation seed")->capture_default_str();
  cmd->callback([a, exit_code] {
    Result<std::vector<redteam::ApiAccount>> keys = redteam::LoadKeys(a->keys);
    if (!keys.ok()) {
      *exit_code = ReportError("redteam benign", keys.status());
      return;
    }
    a->o.accounts = std::move(*keys);
    Result<redteam::BenignStats> r = redteam::RunBenign(a->o);
    if (!r.ok()) {
      *exit_code = ReportError("redteam benign", r.status());
      return;
    }
    int64_t refused_accounts = 0;
    for (const auto& acc : r->accounts) refused_accounts += acc.stopped.empty() ? 0 : 1;
    nlohmann::ordered_json j;
    j["sessions"] = r->sessions;
    j["requests_sent"] = r->requests_sent;
    j["completions"] = r->completions;
    j["completion_tokens"] = r->completion_tokens;
    j["rate_limited"] = r->rate_limited;
    j["refused"] = r->refused;
    j["accounts"] = static_cast<int64_t>(r->accounts.size());
    j["accounts_refused"] = refused_accounts;
    j["transport_errors"] = r->transport_errors;
    j["other_errors"] = r->other_errors;
    j["wall_s"] = r->wall_s;
    j["per_account"] = OutcomesJson(r->accounts);
    PrintJsonLine(j);
    *exit_code = 0;
  });
}

struct DesensitizeArgs {
  redteam::DesensitizeOptions o;
  std::string in;
  std::string out;
  std::string names_file;
};

void AddDesensitizeCommand(CLI::App& group, int* exit_code) {
  auto a = std::make_shared<DesensitizeArgs>();
  CLI::App* cmd = group.add_subcommand(
      "desensitize", "Mask PII, normalize, truncate, substitute synonyms, delete words, paraphrase, mix and shuffle");
  cmd->add_option("in", a->in, "Input JSONL (or plain text, one document per line)")->required();
  cmd->add_option("out", a->out, "Output JSONL")->required();
  cmd->add_option("--field", a->o.field, "JSONL field holding the text")->capture_default_str();
  cmd->add_flag("--mask-pii", a->o.mask_pii, "E-mails, phones, names, IDs and numbers -> [EMAIL], [PHONE], <NAME>, ...");
  cmd->add_option("--names", a->names_file, "Extra names to mask, one per line");
  cmd->add_flag("--normalize", a->o.normalize, "Whitespace and format normalization (markdown, quotes, dashes)");
  cmd->add_option("--truncate", a->o.truncate, "Keep a random contiguous fragment of this share of the words")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--synonyms", a->o.synonyms, "Share of words replaced by a synonym (built-in table)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--delete", a->o.delete_words, "Share of words deleted")->check(CLI::Range(0.0, 0.99));
  cmd->add_option("--paraphrase-model", a->o.paraphrase_model, "GGUF model that paraphrases each record");
  cmd->add_option("--threads", a->o.threads, "Threads for the paraphrase model")->check(CLI::Range(1, 256));
  cmd->add_option("--mix", a->o.mix_path, "Clean text to mix in, one document per line");
  cmd->add_option("--fraction", a->o.fraction, "With --mix: the input records' share of the output (1: all clean lines)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--shuffle", a->o.shuffle, "Shuffle the output records");
  cmd->add_option("--min-words", a->o.min_words, "Drop records left with fewer words")->capture_default_str();
  cmd->add_option("--seed", a->o.seed, "Seed (same seed, same output)")->capture_default_str();
  cmd->callback([a, exit_code] {
    if (!a->names_file.empty()) {
      std::ifstream in(a->names_file);
      if (!in) {
        *exit_code = ReportError("redteam desensitize", NotFound("cannot read --names " + a->names_file));
        return;
      }
      for (std::string line; std::getline(in, line);) {
        if (!line.empty()) a->o.extra_names.push_back(line);
      }
    }
    Result<redteam::DesensitizeStats> r = redteam::DesensitizeFile(a->in, a->out, a->o);
    if (!r.ok()) {
      *exit_code = ReportError("redteam desensitize", r.status());
      return;
    }
    nlohmann::ordered_json j;
    j["out"] = a->out;
    j["records_in"] = r->records_in;
    j["records_out"] = r->records_out;
    j["dropped"] = r->dropped;
    j["clean_added"] = r->clean_added;
    j["words"] = r->words;
    j["words_substituted"] = r->words_substituted;
    j["substituted_share"] = r->words > 0 ? static_cast<double>(r->words_substituted) / r->words : 0.0;
    j["words_deleted"] = r->words_deleted;
    j["paraphrased"] = r->paraphrased;
    j["pii"] = {{"emails", r->pii.emails}, {"phones", r->pii.phones}, {"names", r->pii.names},
                {"ids", r->pii.ids}, {"numbers", r->pii.numbers}};
    PrintJsonLine(j);
    *exit_code = 0;
  });
}

}  // namespace

void AddRedteamCommand(CLI::App& app, int* exit_code) {
  CLI::App* group = app.add_subcommand("redteam", "Play the harvesting customer: harvest, desensitize, train a student");
  group->require_subcommand(1);
  // Subcommands of the group (one line each):
  AddHarvestCommand(*group, exit_code);
  AddBenignCommand(*group, exit_code);
  AddDesensitizeCommand(*group, exit_code);
  AddTrainStudentCommand(*group, exit_code);
}

}  // namespace tracemark::cli
