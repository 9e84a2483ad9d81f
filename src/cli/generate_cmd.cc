// `tracemark generate`: run a GGUF model on one prompt and stream the text to stdout.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "cli/commands.h"
#include "tracemark/model/context.h"
#include "tracemark/model/generate.h"
#include "tracemark/model/model.h"
#include "tracemark/text/chat_template.h"
#include "tracemark/text/tokenizer.h"
#include "tracemark/watermark/hook.h"
#include "tracemark/watermark/keyring.h"

namespace tracemark::cli {
namespace {

constexpr int32_t kCliContextLength = 4096;

struct GenerateArgs {
  std::string model;
  std::string prompt;
  bool chat = false;
  int32_t max_tokens = kDefaultMaxTokens;
  float temperature = 0.8f;
  float top_p = 0.95f;
  int32_t top_k = 40;
  uint64_t seed = 0;
  bool seed_given = false;
  int32_t threads = 2;
  int32_t ctx_size = kCliContextLength;
  bool json = false;
  bool verbose = false;
  std::string keyring;      // with account: watermark the output for that account
  uint64_t account = 0;
  bool account_given = false;
};

Status RunGenerate(const GenerateArgs& a) {
  if (a.keyring.empty() != !a.account_given) {
    return InvalidArgument("--keyring and --account go together; give both to watermark the output, or neither");
  }
  // Load the keyring first: a bad keyring should fail before the model is mapped.
  std::unique_ptr<SamplerHook> hook;
  if (!a.keyring.empty()) {
    TM_ASSIGN_OR_RETURN(watermark::Keyring keyring, watermark::Keyring::Load(a.keyring));
    TM_ASSIGN_OR_RETURN(hook, watermark::MakeWatermarkHook(keyring, a.account));
  }
  TM_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Load(a.model));
  TM_ASSIGN_OR_RETURN(std::unique_ptr<text::Tokenizer> tok, text::Tokenizer::FromGguf(model->file()));

  std::vector<int32_t> prompt;
  if (a.chat) {
    auto tmpl = ChatTemplate::FromGguf(model->file());
    if (!tmpl.ok()) return tmpl.status().WithContext("--chat");
    const ChatMessage message{"user", a.prompt};
    TM_ASSIGN_OR_RETURN(std::string rendered, tmpl->Render(std::span<const ChatMessage>(&message, 1), true));
    prompt = tok->Encode(rendered, /*add_special=*/true, /*parse_special=*/true);
    // Templates that write the BOS text themselves would get a second BOS from add_special.
    if (prompt.size() >= 2 && prompt[0] == tok->bos_id() && prompt[1] == tok->bos_id()) prompt.erase(prompt.begin());
  } else {
    prompt = tok->Encode(a.prompt, /*add_special=*/true, /*parse_special=*/false);
  }
  if (prompt.empty()) return InvalidArgument("the prompt encodes to no tokens; give a non-empty --prompt");

  ContextOptions copt;
  copt.n_ctx = a.ctx_size;
  copt.n_threads = a.threads;
  TM_ASSIGN_OR_RETURN(std::unique_ptr<Context> ctx, Context::Create(*model, copt));

  GenerateOptions gopt;
  gopt.max_tokens = a.max_tokens;
  gopt.sampling.temperature = a.temperature;
  gopt.sampling.top_p = a.top_p;
  gopt.sampling.top_k = a.top_k;
  gopt.sampling.seed = a.seed_given ? a.seed : std::random_device{}();
  // With --keyring/--account the account's watermark chooses each sampled token; without, sampling
  // is plain. (At temperature 0 the Gumbel and SynthID schemes cannot act: greedy is unmarked.)
  gopt.hook = hook.get();

  TextCallback stream;
  if (!a.json) {
    stream = [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  }
  TM_ASSIGN_OR_RETURN(GenerateResult r, Generate(*ctx, *tok, prompt, gopt, stream));
  const GenerateTimings& t = r.timings;
  if (a.json) {
    nlohmann::json j;
    j["text"] = r.text;
    j["tokens"] = r.tokens;
    j["finish_reason"] = r.finish_reason;
    j["usage"] = {{"prompt_tokens", t.prompt_tokens}, {"completion_tokens", t.completion_tokens}};
    j["timings"] = {{"prefill_ms", t.prefill_ms},
                    {"decode_ms", t.decode_ms},
                    {"sample_ms", t.sample_ms},
                    {"prefill_tokens_per_second", t.PrefillTokensPerSecond()},
                    {"decode_tokens_per_second", t.DecodeTokensPerSecond()}};
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
  }
  if (a.verbose) {
    std::fprintf(stderr, "prompt %d tokens, %.1f tok/s; generated %d tokens, %.1f tok/s; finish %s\n",
                 t.prompt_tokens, t.PrefillTokensPerSecond(), t.completion_tokens, t.DecodeTokensPerSecond(),
                 r.finish_reason.c_str());
  }
  return Status::Ok();
}

}  // namespace

void AddGenerateCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt with a GGUF model");
  cmd->add_option("--model", args->model, "GGUF model file")->required();
  cmd->add_option("--prompt", args->prompt, "Prompt text")->required();
  cmd->add_flag("--chat", args->chat, "Format the prompt with the model's chat template");
  cmd->add_option("--max-tokens", args->max_tokens, "Maximum tokens to generate")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--temperature", args->temperature, "Sampling temperature; 0 = greedy")
      ->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("--top-p", args->top_p, "Nucleus sampling mass (1 = off)")->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--top-k", args->top_k, "Keep the k most likely tokens (0 = off)")->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--seed", args->seed, "RNG seed (same seed, same output)")->each([args](const std::string&) {
    args->seed_given = true;
  });
  cmd->add_option("--threads", args->threads, "Worker threads")->check(CLI::Range(1, 256));
  cmd->add_option("--ctx-size", args->ctx_size, "Context length in tokens")->check(CLI::Range(16, 1 << 20));
  cmd->add_option("--keyring", args->keyring, "Keyring file (tracemark keyring init); needs --account");
  cmd->add_option("--account", args->account, "Account id whose watermark the output carries")
      ->each([args](const std::string&) { args->account_given = true; });
  cmd->add_flag("--json", args->json, "Print one JSON object instead of streaming text");
  cmd->add_flag("--verbose", args->verbose, "Print token counts and speed to stderr");
  cmd->callback([args, exit_code]() {
    const Status s = RunGenerate(*args);
    *exit_code = s.ok() ? 0 : ReportError("generate", s);
  });
}

}  // namespace tracemark::cli
