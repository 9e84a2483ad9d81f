// `tracemark probe`: radioactivity test of a suspect model (docs/probe.md).
//   open mode   --suspect-gguf S.gguf: reading mode over our watermarked --text files
//   closed mode --suspect-url URL --suspect-model NAME: prompt the suspect, score its outputs
//               (--suspect-gguf S.gguf --mode closed: the same with a local model)
//   completion  --suspect-gguf S.gguf --mode completion --text T: closed mode without chat
//               template: the suspect continues the first --prompt-tokens tokens of each text
// Prints a one-line verdict, or with --json one object (mode, p_value, log10_p_value,
// tokens_scored, tuples_scored, verdict, alpha, curve, account, scheme, key_version); --out also
// writes that object to a file (the input of `tracemark report --probe`).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "tracemark/base/file.h"
#include "tracemark/model/model.h"
#include "tracemark/probe/openai_client.h"
#include "tracemark/probe/probe.h"
#include "tracemark/text/tokenizer.h"
#include "tracemark/watermark/keyring.h"

namespace tracemark::cli {
namespace {

// Closed mode without --text: generic prompts (no watermarked windows to exclude, none to copy).
constexpr const char* kGenericPrompts[] = {
    "Write a short story about a lighthouse keeper.",
    "Explain how photosynthesis works to a high-school student.",
    "Describe the history of the printing press.",
    "Give advice to someone starting to learn the piano.",
    "Write a letter to a friend about a recent trip to the mountains.",
    "Explain the difference between weather and climate.",
    "Describe how a bicycle works.",
    "Write a product description for a handmade wooden chair.",
    "Summarize the main causes of the French Revolution.",
    "Explain what a database index is and why it helps.",
    "Write a recipe for a simple vegetable soup.",
    "Describe a day in the life of a honeybee.",
    "Explain how vaccines train the immune system.",
    "Write a short essay on the importance of sleep.",
    "Describe the water cycle.",
    "Give tips for writing a good cover letter.",
};

struct ProbeArgs {
  std::string keyring;
  std::string model;
  std::string suspect_gguf;
  std::string suspect_url;
  std::string suspect_model;
  std::string api_key_env;
  std::vector<std::string> texts;
  std::vector<std::string> filter_texts;
  int32_t max_tokens = probe::kDefaultMaxTokens;
  int32_t prompt_tokens = probe::kDefaultPromptTokens;
  double alpha = probe::kDefaultAlpha;
  uint64_t account = 0;
  bool account_given = false;
  int key_version = 0;
  int32_t threads = 2;
  bool json = false;
  std::string out;
  std::string mode;  // "", "open", "closed" or "completion"
  uint64_t seed = 1;
  int32_t samples = 1;  // completion mode: continuations per prompt
  int32_t prompt_stride = 0;  // completion mode: tokens between prompts of one text (0: one)
  float temperature = 1.0f;
};

// A .jsonl file holds one text per line (field "text", else "completion" or "content"); any other
// file is one text.
Status LoadTexts(const std::vector<std::string>& paths, std::vector<std::string>* texts) {
  for (const std::string& path : paths) {
    TM_ASSIGN_OR_RETURN(std::string data, ReadFile(path, probe::kMaxTextBytes * 4));
    if (path.size() < 6 || path.compare(path.size() - 6, 6, ".jsonl") != 0) {
      texts->push_back(std::move(data));
    } else {
      size_t line_no = 0, begin = 0;
      while (begin < data.size()) {
        size_t end = data.find('\n', begin);
        if (end == std::string::npos) end = data.size();
        const std::string_view line(data.data() + begin, end - begin);
        begin = end + 1;
        ++line_no;
        if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
        const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        std::string text;
        for (const char* key : {"text", "completion", "content"}) {
          if (j.is_object() && j.contains(key) && j[key].is_string()) {
            text = j[key].get<std::string>();
            break;
          }
        }
        if (text.empty()) {
          return InvalidArgument(path + ":" + std::to_string(line_no) +
                                 ": expected a JSON object with a string field text, completion or content");
        }
        texts->push_back(std::move(text));
      }
    }
    if (texts->size() > probe::kMaxTexts) {
      return ResourceExhausted("more than " + std::to_string(probe::kMaxTexts) + " texts");
    }
  }
  return Status::Ok();
}

Status RunProbe(const ProbeArgs& a) {
  const bool local = !a.suspect_gguf.empty();
  if (local == !a.suspect_url.empty()) {
    return InvalidArgument("give exactly one suspect: --suspect-gguf FILE (open model) or --suspect-url URL --suspect-model NAME (closed model)");
  }
  if (!a.mode.empty() && a.mode != "open" && a.mode != "closed" && a.mode != "completion") {
    return InvalidArgument("--mode must be open, closed or completion");
  }
  if (a.mode == "open" && !local) return InvalidArgument("--mode open needs the suspect's weights (--suspect-gguf)");
  const bool completion = a.mode == "completion";
  if (completion && !local) return InvalidArgument("--mode completion needs the suspect's weights (--suspect-gguf)");
  if (completion && a.texts.empty()) return InvalidArgument("--mode completion needs our watermarked texts: add --text FILE");
  // A local GGUF is probed in reading mode unless --mode closed asks to prompt it instead.
  const bool open = local && a.mode != "closed" && !completion;
  if (open && a.texts.empty()) return InvalidArgument("reading mode needs our watermarked texts: add --text FILE");
  if (!(a.alpha > 0.0 && a.alpha < 1.0)) return InvalidArgument("--alpha must be in (0, 1)");
  if (a.max_tokens < 1 || a.max_tokens > probe::kMaxMaxTokens) {
    return InvalidArgument("--max-tokens must be in [1, " + std::to_string(probe::kMaxMaxTokens) + "]");
  }
  TM_ASSIGN_OR_RETURN(watermark::Keyring ring, watermark::Keyring::Load(a.keyring));
  std::vector<std::string> texts, filter;
  TM_RETURN_IF_ERROR(LoadTexts(a.texts, &texts));
  TM_RETURN_IF_ERROR(LoadTexts(a.filter_texts, &filter));
  TM_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> our_file, gguf::GgufFile::Open(a.model));
  TM_ASSIGN_OR_RETURN(std::unique_ptr<text::Tokenizer> our_tok, text::Tokenizer::FromGguf(*our_file));

  probe::ProbeOptions opt;
  opt.alpha = a.alpha;
  opt.version = a.key_version;
  if (a.account_given) opt.account = a.account;

  probe::ProbeResult result;
  if (open) {
    TM_ASSIGN_OR_RETURN(std::unique_ptr<Model> suspect, Model::Load(a.suspect_gguf));
    TM_ASSIGN_OR_RETURN(std::unique_ptr<text::Tokenizer> suspect_tok, text::Tokenizer::FromGguf(suspect->file()));
    TM_ASSIGN_OR_RETURN(std::vector<probe::ReadText> data,
                        probe::ReadTop1(*suspect, *suspect_tok, *our_tok, texts, a.threads));
    TM_ASSIGN_OR_RETURN(result, probe::ScoreReading(data, ring, opt));
  } else if (completion) {
    TM_ASSIGN_OR_RETURN(std::unique_ptr<Model> suspect, Model::Load(a.suspect_gguf));
    TM_ASSIGN_OR_RETURN(std::unique_ptr<text::Tokenizer> suspect_tok, text::Tokenizer::FromGguf(suspect->file()));
    probe::RawCompletionOptions ropt;
    ropt.prompt_tokens = a.prompt_tokens;
    ropt.max_tokens = a.max_tokens;
    ropt.samples = a.samples;
    ropt.prompt_stride = a.prompt_stride;
    ropt.temperature = a.temperature;
    ropt.seed = a.seed;
    ropt.n_threads = a.threads;
    TM_ASSIGN_OR_RETURN(std::vector<probe::ClosedExchange> exchanges,
                        probe::CollectRawCompletions(*suspect, *suspect_tok, *our_tok, texts, ropt));
    TM_ASSIGN_OR_RETURN(result, probe::ScoreClosed(exchanges, *our_tok, ring, filter, opt));
  } else {
    std::unique_ptr<Model> suspect;
    std::unique_ptr<text::Tokenizer> suspect_tok;
    std::unique_ptr<probe::CompletionClient> client;
    if (local) {
      TM_ASSIGN_OR_RETURN(suspect, Model::Load(a.suspect_gguf));
      TM_ASSIGN_OR_RETURN(suspect_tok, text::Tokenizer::FromGguf(suspect->file()));
      TM_ASSIGN_OR_RETURN(std::unique_ptr<probe::LocalCompletionClient> lc,
                          probe::LocalCompletionClient::Create(*suspect, *suspect_tok, a.seed, a.threads));
      client = std::move(lc);
    } else {
      probe::OpenAiEndpoint ep;
      ep.url = a.suspect_url;
      ep.model = a.suspect_model;
      if (!a.api_key_env.empty()) {
        const char* key = std::getenv(a.api_key_env.c_str());
        if (key == nullptr || *key == '\0') {
          return InvalidArgument("--api-key-env " + a.api_key_env + ": that environment variable is not set");
        }
        ep.api_key = key;
      }
      TM_ASSIGN_OR_RETURN(client, probe::MakeOpenAiClient(ep));
    }
    std::vector<probe::ClosedExchange> exchanges;
    if (texts.empty()) {
      for (const char* prompt : kGenericPrompts) {
        probe::ClosedExchange ex;
        ex.prompt = prompt;
        TM_ASSIGN_OR_RETURN(ex.completion, client->Complete(ex.prompt, a.max_tokens));
        exchanges.push_back(std::move(ex));
      }
    } else {
      TM_ASSIGN_OR_RETURN(exchanges, probe::CollectClosed(*client, *our_tok, texts, a.prompt_tokens, a.max_tokens));
    }
    TM_ASSIGN_OR_RETURN(result, probe::ScoreClosed(exchanges, *our_tok, ring, filter, opt));
  }

  const std::string json = probe::ProbeResultToJson(result);
  if (!a.out.empty()) TM_RETURN_IF_ERROR(WriteFileAtomic(a.out, json + "\n"));
  if (a.json) {
    std::printf("%s\n", json.c_str());
  } else {
    std::printf("%s (%s mode): p=%.3g (log10 %.2f) over %lld unique tuples from %lld suspect tokens, alpha %g, scheme %s, key version %d",
                probe::VerdictName(result.verdict), result.mode.c_str(), result.p_value, result.log10_p_value,
                static_cast<long long>(result.tuples_scored), static_cast<long long>(result.tokens_examined),
                result.alpha, result.scheme.c_str(), result.key_version);
    if (result.account) {
      std::printf("; account %llu: p=%.3g, %s", static_cast<unsigned long long>(result.account->id),
                  result.account->p_value, probe::VerdictName(result.account->verdict));
    }
    std::printf("\n");
  }
  return Status::Ok();
}

}  // namespace

void AddProbeCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<ProbeArgs>();
  auto* cmd = app.add_subcommand("probe", "Radioactivity test: was a suspect model trained on our watermarked outputs?");
  cmd->add_option("--keyring", args->keyring, "Keyring file (mode 0600)")->required();
  cmd->add_option("--model", args->model, "Our GGUF model (its tokenizer generated the watermarked text)")->required();
  cmd->add_option("--suspect-gguf", args->suspect_gguf, "Open model: the suspect's GGUF (reading mode)");
  cmd->add_option("--suspect-url", args->suspect_url, "Closed model: OpenAI-compatible base URL, e.g. http://host:8080/v1");
  cmd->add_option("--suspect-model", args->suspect_model, "Closed model: the model name to request");
  cmd->add_option("--api-key-env", args->api_key_env, "Closed model: environment variable holding the API key");
  cmd->add_option("--text", args->texts, "Our watermarked texts (.txt = one text, .jsonl = one per line)");
  cmd->add_option("--filter-text", args->filter_texts, "Closed model: score only windows found in these texts (the account's served data)");
  cmd->add_option("--max-tokens", args->max_tokens, "Closed model: tokens per completion (default 128)");
  cmd->add_option("--prompt-tokens", args->prompt_tokens, "Closed model: tokens of our text per prompt (default 48)");
  cmd->add_option("--alpha", args->alpha, "Significance level of the verdict (default 1e-5)");
  cmd->add_option("--account", args->account, "Also test this account's lanes")->each([args](const std::string&) {
    args->account_given = true;
  });
  cmd->add_option("--mode", args->mode,
                  "open (reading mode, default for --suspect-gguf), closed (prompt the suspect) or completion "
                  "(--suspect-gguf continues the start of each --text, no chat template)");
  cmd->add_option("--seed", args->seed, "Closed or completion mode with --suspect-gguf: sampling seed (temperature 1)");
  cmd->add_option("--samples", args->samples, "Completion mode: continuations per prompt (default 1)");
  cmd->add_option("--prompt-stride", args->prompt_stride,
                  "Completion mode: a prompt every N tokens of each text (default 0: one prompt per text)");
  cmd->add_option("--temperature", args->temperature, "Completion mode: sampling temperature (default 1, 0 = greedy)");
  cmd->add_option("--key-version", args->key_version, "Key version to test (default: all, Bonferroni)");
  cmd->add_option("--threads", args->threads, "Engine threads (open model)");
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->add_option("--out", args->out, "Also write the JSON result to this file");
  cmd->callback([args, exit_code] {
    const Status s = RunProbe(*args);
    *exit_code = s.ok() ? 0 : ReportError("probe", s);
  });
}

}  // namespace tracemark::cli
