// `tracemark redteam train-student`: trains a small llama-style student on harvested (watermarked)
// text mixed with clean text and writes it as a GGUF our engine serves (docs/student.md).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "tracemark/model/gguf.h"
#include "tracemark/redteam/train.h"
#include "tracemark/text/tokenizer.h"

namespace tracemark::cli {
namespace {

// Progress lines on stderr: one every this many steps (and the last).
constexpr int32_t kProgressEvery = 25;

struct TrainStudentArgs {
  std::string teacher;
  std::string data;
  std::string field = "text";
  std::string clean;
  double fraction = -1.0;
  std::string out;
  redteam::StudentConfig config;
  redteam::TrainOptions train;
  bool json = false;
  bool quiet = false;
};

Status RunTrainStudent(TrainStudentArgs& a) {
  if (!std::filesystem::exists(a.teacher)) {
    return NotFound("teacher model '" + a.teacher + "' does not exist; pass our GGUF with --teacher");
  }
  if (a.data.empty() && a.fraction != 0.0) {
    return InvalidArgument("--data is required unless --fraction 0 (a clean-only control student)");
  }
  if (a.fraction != 0.0 && a.fraction < 1.0 && a.fraction >= 0.0 && a.clean.empty()) {
    return InvalidArgument("--fraction below 1 needs clean text: pass --clean FILE");
  }
  if (a.fraction > 1.0) return InvalidArgument("--fraction must be in [0, 1]");
  TM_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> teacher, gguf::GgufFile::Open(a.teacher));
  TM_ASSIGN_OR_RETURN(std::unique_ptr<text::Tokenizer> tok, text::Tokenizer::FromGguf(*teacher));
  std::vector<std::string> wm, clean;
  if (!a.data.empty() && a.fraction != 0.0) {
    TM_ASSIGN_OR_RETURN(wm, redteam::ReadDocuments(a.data, a.field));
  }
  if (!a.clean.empty() && a.fraction != 1.0) {
    TM_ASSIGN_OR_RETURN(clean, redteam::ReadDocuments(a.clean, a.field));
  }
  a.config.n_vocab = tok->vocab_size();
  TM_ASSIGN_OR_RETURN(redteam::StudentModel model, redteam::StudentModel::Create(a.config, a.train.seed));
  TM_ASSIGN_OR_RETURN(redteam::TrainData data,
                      redteam::BuildTrainData(*tok, wm, clean, a.fraction, a.config.n_ctx + 1, a.train.seed));
  if (!a.quiet) {
    std::fprintf(stderr,
                 "train-student: %zu windows (%lld watermarked tokens, %lld clean), %zu parameters, %d threads\n",
                 data.windows.size(), static_cast<long long>(data.watermarked_tokens),
                 static_cast<long long>(data.clean_tokens), model.params().size(), a.train.threads);
    const int32_t steps = a.train.steps;
    a.train.on_step = [steps](int32_t step, double loss, double grad_norm, float lr) {
      if ((step + 1) % kProgressEvery == 0 || step + 1 == steps) {
        std::fprintf(stderr, "step %d/%d loss %.4f grad_norm %.3f lr %.2e\n", step + 1, steps, loss, grad_norm, lr);
      }
    };
  }
  TM_ASSIGN_OR_RETURN(redteam::TrainReport r, redteam::Train(&model, data, a.train));
  TM_RETURN_IF_ERROR(redteam::WriteStudentGguf(model, *teacher, a.out));
  const int64_t total = data.watermarked_tokens + data.clean_tokens;
  const double share = total > 0 ? static_cast<double>(data.watermarked_tokens) / static_cast<double>(total) : 0.0;
  if (a.json) {
    nlohmann::ordered_json j;
    j["out"] = a.out;
    j["final_loss"] = r.final_loss;
    j["initial_loss"] = r.initial_loss;
    j["tokens_seen"] = r.tokens_seen;
    j["steps"] = r.steps;
    j["seconds"] = r.seconds;
    j["tokens_per_second"] = r.tokens_per_second;
    j["watermarked_tokens"] = data.watermarked_tokens;
    j["clean_tokens"] = data.clean_tokens;
    j["watermarked_share"] = share;
    j["parameters"] = model.params().size();
    j["d_model"] = a.config.d_model;
    j["layers"] = a.config.n_layer;
    j["heads"] = a.config.n_head;
    j["context"] = a.config.n_ctx;
    j["threads"] = a.train.threads;
    j["seed"] = a.train.seed;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("wrote %s: final loss %.4f (initial %.4f), %lld tokens seen in %.1f s (%.0f tokens/s), "
                "watermarked share %.3f\n",
                a.out.c_str(), r.final_loss, r.initial_loss, static_cast<long long>(r.tokens_seen), r.seconds,
                r.tokens_per_second, share);
  }
  return Status::Ok();
}

}  // namespace

void AddTrainStudentCommand(CLI::App& group, int* exit_code) {
  auto a = std::make_shared<TrainStudentArgs>();
  CLI::App* cmd = group.add_subcommand(
      "train-student", "Train a small llama-style student on harvested + clean text and write it as GGUF");
  cmd->add_option("--teacher", a->teacher, "Our model (GGUF): its tokenizer and vocabulary are kept")->required();
  cmd->add_option("--data", a->data, "Harvested text: .jsonl (field --field) or plain text (blank-line paragraphs)");
  cmd->add_option("--field", a->field, "JSONL field holding the text")->capture_default_str();
  cmd->add_option("--clean", a->clean, "Clean text mixed in (.jsonl or plain text)");
  cmd->add_option("--fraction", a->fraction,
                  "Share of watermarked tokens in the training mix (default: all of both files)");
  cmd->add_option("--out", a->out, "Student GGUF to write")->required();
  cmd->add_option("--steps", a->train.steps, "Optimizer steps")
      ->check(CLI::Range(1, redteam::kMaxTrainSteps))
      ->capture_default_str();
  cmd->add_option("--batch", a->train.batch, "Sequences per step")
      ->check(CLI::Range(1, redteam::kMaxTrainBatch))
      ->capture_default_str();
  cmd->add_option("--lr", a->train.lr, "Peak learning rate (AdamW, warmup then cosine)")->capture_default_str();
  cmd->add_option("--seed", a->train.seed, "Seed (initialization, data order)")->capture_default_str();
  cmd->add_option("--threads", a->train.threads, "Threads")->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_option("--d-model", a->config.d_model, "Embedding width")
      ->check(CLI::Range(redteam::kStudentDimMultiple, redteam::kMaxStudentDModel))
      ->capture_default_str();
  cmd->add_option("--layers", a->config.n_layer, "Transformer blocks")
      ->check(CLI::Range(1, redteam::kMaxStudentLayers))
      ->capture_default_str();
  cmd->add_option("--heads", a->config.n_head, "Attention heads")
      ->check(CLI::Range(1, redteam::kMaxStudentHeads))
      ->capture_default_str();
  cmd->add_option("--ff", a->config.n_ff, "MLP width (0: 3 x d-model)")->capture_default_str();
  cmd->add_option("--context", a->config.n_ctx, "Training context (tokens)")
      ->check(CLI::Range(2, redteam::kMaxStudentContext))
      ->capture_default_str();
  cmd->add_flag("--json", a->json, "Print one JSON object");
  cmd->add_flag("--quiet", a->quiet, "No progress on stderr");
  cmd->callback([a, exit_code] {
    Status s = RunTrainStudent(*a);
    if (!s.ok()) *exit_code = ReportError("redteam train-student", s);
  });
}

}  // namespace tracemark::cli
