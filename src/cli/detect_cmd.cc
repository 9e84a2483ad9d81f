// `tracemark detect --keyring FILE --model GGUF [FILE|-] [--json]`: tokenizes the text with the
// generating model's tokenizer, masks PII placeholders, and runs the watermark detector over every
// key version in the keyring. Prints a one-line verdict, or with --json one object with p_value,
// watermarked, tokens_scored, scheme, key_version, account, account_p_value and spans.
// `--max-token-prob P` runs the model over the text and scores only tokens the model gives
// probability <= P (DetectOptions::token_prob; docs/watermark.md, "Real model"): more power on
// low-temperature answers, still an exact test. Off by default (it costs one model pass).
// `--suspects ID,...|@FILE`: targeted detection against named accounts (DetectOptions::suspects;
// docs/watermark.md, "Suspects (targeted detection)").
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "tracemark/base/file.h"
#include "tracemark/model/gguf.h"
#include "tracemark/model/model.h"
#include "tracemark/model/token_prob.h"
#include "tracemark/text/tokenizer.h"
#include "tracemark/watermark/detector.h"
#include "tracemark/watermark/keyring.h"
#include "tracemark/watermark/placeholders.h"

namespace tracemark::cli {
namespace {

// Largest text `detect` reads (stdin or file); scan corpora with `tracemark scan` instead.
constexpr size_t kMaxDetectInputBytes = size_t{64} << 20;
// Kernel threads of the token-probability pass (tracemark/model/token_prob.h).
constexpr int kProbThreads = 2;

struct DetectArgs {
  std::string keyring;
  std::string model;
  std::string input = "-";
  bool json = false;
  double threshold = watermark::kDefaultThreshold;
  double max_token_prob = 0.0;  // 0: token-probability filter off
  std::string suspects;         // --suspects ID[,ID...] or @FILE: targeted detection
};

// p[i] = the model's probability (temperature 1, full vocabulary) of ids[i] after ids[0, i),
// from the text alone (TokenProbModel: chunks of 1,024 predicted tokens, 256 carried); p[0] = 1.
Result<std::vector<float>> TokenProbabilities(const std::string& model_path, std::span<const int32_t> ids) {
  if (ids.size() < 2) return std::vector<float>(ids.size(), 1.0f);
  TM_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Load(model_path));
  TokenProbOptions o;
  o.n_threads = kProbThreads;
  TM_ASSIGN_OR_RETURN(std::unique_ptr<TokenProbModel> probs, TokenProbModel::Create(*model, o));
  return probs->Probabilities(ids);
}

Result<std::string> ReadInput(const std::string& path) {
  if (path != "-") return ReadFile(path, kMaxDetectInputBytes);
  std::string out;
  char buf[1 << 16];
  while (std::cin.read(buf, sizeof(buf)) || std::cin.gcount() > 0) {
    out.append(buf, static_cast<size_t>(std::cin.gcount()));
    if (out.size() > kMaxDetectInputBytes) {
      return ResourceExhausted("stdin is larger than " + std::to_string(kMaxDetectInputBytes) +
                               " bytes; use `tracemark scan` for corpora");
    }
  }
  return out;
}

Status RunDetect(const DetectArgs& a) {
  if (!(a.threshold > 0.0 && a.threshold < 1.0)) return InvalidArgument("--threshold must be in (0, 1)");
  if (a.max_token_prob != 0.0 && !(a.max_token_prob > 0.0 && a.max_token_prob < 1.0)) {
    return InvalidArgument("--max-token-prob must be in (0, 1) (0.5 recommended), or absent for no filter");
  }
  std::vector<uint64_t> suspects;
  if (!a.suspects.empty()) {
    TM_ASSIGN_OR_RETURN(suspects, watermark::ParseSuspectsArg(a.suspects));
  }
  TM_ASSIGN_OR_RETURN(watermark::Keyring ring, watermark::Keyring::Load(a.keyring));
  TM_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> file, gguf::GgufFile::Open(a.model));
  TM_ASSIGN_OR_RETURN(std::unique_ptr<text::Tokenizer> tok, text::Tokenizer::FromGguf(*file));
  TM_ASSIGN_OR_RETURN(std::string input, ReadInput(a.input));

  const std::vector<int32_t> ids = tok->Encode(input, /*add_special=*/false, /*parse_special=*/false);
  // Byte offset of each token in the decoded text; a SentencePiece prefix space shifts it by one.
  std::vector<size_t> offsets(ids.size() + 1, 0);
  for (size_t i = 0; i < ids.size(); ++i) offsets[i + 1] = offsets[i] + tok->TokenBytes(ids[i]).size();
  const size_t shift = offsets.back() > input.size() ? offsets.back() - input.size() : 0;
  for (size_t& o : offsets) o = o > shift ? o - shift : 0;
  const auto ranges = watermark::FindPlaceholders(input);
  const std::vector<uint8_t> mask = watermark::MaskTokens(offsets, ranges);
  std::vector<int32_t> eos;
  for (int32_t id : ids) {
    if (tok->IsEog(id)) eos.push_back(id);
  }

  TM_ASSIGN_OR_RETURN(watermark::Detector detector, watermark::Detector::Create(ring));
  watermark::DetectOptions opt;
  opt.threshold = a.threshold;
  opt.account_threshold = a.threshold;
  opt.skip_mask = mask;
  opt.eos_ids = eos;
  opt.suspects = suspects;
  std::vector<float> token_prob;
  if (a.max_token_prob > 0.0) {
    TM_ASSIGN_OR_RETURN(token_prob, TokenProbabilities(a.model, ids));
    opt.token_prob = token_prob;
    opt.max_token_prob = a.max_token_prob;
  }
  TM_ASSIGN_OR_RETURN(watermark::Detection d, detector.Detect(ids, opt));

  if (a.json) {
    nlohmann::json j;
    j["p_value"] = d.p_value;
    j["log10_p_value"] = d.log10_p_value;
    j["watermarked"] = d.watermarked;
    j["threshold"] = a.threshold;
    j["tokens"] = ids.size();
    j["tokens_scored"] = d.tokens_scored;
    j["tokens_masked"] = std::count(mask.begin(), mask.end(), 1);
    if (a.max_token_prob > 0.0) j["max_token_prob"] = a.max_token_prob;
    j["scheme"] = d.scheme;
    j["key_version"] = d.key_version;
    j["account"] = d.account ? nlohmann::json(*d.account) : nlohmann::json(nullptr);
    j["account_p_value"] = d.account_p_value;
    j["account_log10_p_value"] = d.account_log10_p_value;
    if (!d.account_note.empty()) j["account_note"] = d.account_note;  // why account is null
    if (!suspects.empty()) {  // targeted detection (docs/cli.md, "detect")
      j["suspects"] = suspects.size();
      j["targeted_log10_p"] = d.targeted_log10_p;
      j["targeted_suspect"] =
          d.targeted_suspect ? nlohmann::json(*d.targeted_suspect) : nlohmann::json(nullptr);
    }
    nlohmann::json spans = nlohmann::json::array();
    for (const auto& s : d.spans) {
      spans.push_back({{"begin_token", s.begin},
                       {"end_token", s.end},
                       {"begin_byte", offsets[std::min(s.begin, ids.size())]},
                       {"end_byte", offsets[std::min(s.end, ids.size())]},
                       {"log10_p_value", s.log10_p}});
    }
    j["spans"] = spans;
    j["components"] = {{"provider_log10_p", d.provider_log10_p},
                       {"combined_log10_p", d.combined_log10_p},
                       {"window_log10_p", d.window_log10_p},
                       {"provider_tuples", d.provider_tuples},
                       {"payload_tuples", d.payload_tuples},
                       {"account_tuples", d.account_tuples},
                       {"candidates_verified", d.candidates_verified},
                       {"versions_tested", d.versions_tested}};
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("%s: p=%.3g (log10 %.2f), %lld tokens scored, scheme %s, key version %d",
                d.watermarked ? "watermarked" : "not watermarked", d.p_value, d.log10_p_value,
                static_cast<long long>(d.tokens_scored), d.scheme.c_str(), d.key_version);
    if (d.account) {
      std::printf(", account %llu (p=%.3g)", static_cast<unsigned long long>(*d.account), d.account_p_value);
    }
    if (d.suspects_tested > 0) {
      std::printf(", %d suspects (targeted log10 p %.2f)", d.suspects_tested, d.targeted_log10_p);
    }
    std::printf("\n");
  }
  return Status::Ok();
}

}  // namespace

void AddDetectCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<DetectArgs>();
  auto* cmd = app.add_subcommand("detect", "Test text for this provider's watermark and name the account");
  cmd->add_option("--keyring", args->keyring, "Keyring file (mode 0600)")->required();
  cmd->add_option("--model", args->model, "GGUF model whose tokenizer generated the text")->required();
  cmd->add_option("FILE", args->input, "Text file, or - for stdin (default)");
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->add_option("--threshold", args->threshold, "p-value threshold (default 1e-6)");
  cmd->add_option("--max-token-prob", args->max_token_prob,
                  "Score only tokens the model (--model, run over the text) gives probability <= P; "
                  "0.5 recommended for low-temperature text (default: off)");
  cmd->add_option(
      "--suspects", args->suspects,
      "Targeted detection against these accounts: ID[,ID...] or @FILE (one id per line); "
      "attribution then names only a suspect");
  cmd->callback([args, exit_code] {
    const Status s = RunDetect(*args);
    *exit_code = s.ok() ? 0 : ReportError("detect", s);
  });
}

}  // namespace tracemark::cli
