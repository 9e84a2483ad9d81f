// Teacher-forced top-1 agreement with llama.cpp on the real models (reference written by
// tools/gen_llamacpp_reference.py with llama-cpp-python). Skips when the model file is missing.
//
// Greedy continuations of a small quantized model are full of near-ties: llama.cpp's own
// token-by-token generation agrees with its own batched evaluation of the same tokens on only
// ~97% of these positions (both recorded in the reference). So the raw agreement is held to that
// self-consistency minus two points (a handful of near-ties flip with any change in rounding),
// and 99% is required on the decisive positions, where llama.cpp's top-1 leads its runner-up by
// at least kDecisiveMargin logits.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tracemark/model/context.h"
#include "tracemark/model/model.h"

namespace tracemark {
namespace {

constexpr double kMinDecisiveAgreement = 0.99;
constexpr double kDecisiveMargin = 0.25;
constexpr double kSelfConsistencySlack = 0.02;

void CheckAgreement(const std::string& model_file, const std::string& ref_file, KvType kv) {
  const std::string model_path = std::string(TM_SOURCE_DIR) + "/models/" + model_file;
  if (!std::ifstream(model_path).good()) GTEST_SKIP() << model_path << " not present";
  auto model = Model::Load(model_path);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  std::ifstream js(std::string(TM_SOURCE_DIR) + "/tests/data/engine/" + ref_file);
  ASSERT_TRUE(js.good());
  const nlohmann::json ref = nlohmann::json::parse(js);
  ContextOptions opt;
  opt.n_ctx = 512;
  opt.max_batch = 256;
  opt.max_outputs = 64;
  opt.kv_type = kv;
  auto ctx = Context::Create(**model, opt);
  ASSERT_TRUE(ctx.ok()) << ctx.status().ToString();
  int64_t agree = 0, total = 0, decisive = 0, decisive_agree = 0, self_agree = 0, self_total = 0;
  double max_top5_diff = 0;
  for (const auto& rec : ref["records"]) {
    const auto tokens = rec["tokens"].get<std::vector<int32_t>>();
    const int32_t start = rec["start"].get<int32_t>();
    const auto top1 = rec["top1"].get<std::vector<int32_t>>();
    const auto top5_ids = rec["top5_ids"].get<std::vector<std::vector<int32_t>>>();
    const auto top5_logits = rec["top5_logits"].get<std::vector<std::vector<float>>>();
    (*ctx)->ClearSeq(0);
    Batch b;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const int32_t pos = static_cast<int32_t>(i);
      b.Add(tokens[i], pos, 0, pos >= start && pos < start + static_cast<int32_t>(top1.size()));
    }
    ASSERT_TRUE((*ctx)->Decode(b).ok());
    ASSERT_EQ((*ctx)->n_outputs(), static_cast<int32_t>(top1.size()));
    for (int32_t o = 0; o < (*ctx)->n_outputs(); ++o) {
      const std::span<float> l = (*ctx)->Logits(o);
      int32_t best = 0;
      for (int32_t i = 1; i < static_cast<int32_t>(l.size()); ++i) best = l[i] > l[best] ? i : best;
      agree += best == top1[o];
      ++total;
      if (top5_logits[o][0] - top5_logits[o][1] >= kDecisiveMargin) {
        ++decisive;
        decisive_agree += best == top1[o];
      }
      const size_t next = static_cast<size_t>(start) + 1 + o;  // llama.cpp's own greedy token
      if (next < tokens.size()) {
        self_agree += tokens[next] == top1[o];
        ++self_total;
      }
      for (size_t j = 0; j < top5_ids[o].size(); ++j) {
        max_top5_diff = std::max(max_top5_diff, double{std::abs(l[top5_ids[o][j]] - top5_logits[o][j])});
      }
    }
  }
  const double rate = static_cast<double>(agree) / total;
  const double self_rate = static_cast<double>(self_agree) / self_total;
  const double decisive_rate = static_cast<double>(decisive_agree) / decisive;
  std::printf("[%s] teacher-forced top-1 agreement with llama.cpp: %lld/%lld = %.2f%% (llama.cpp with itself, "
              "sequential vs batched: %.2f%%); decisive positions (margin >= %.2f): %lld/%lld = %.2f%%; max |logit "
              "diff| on llama.cpp's top-5 %.3f\n",
              model_file.c_str(), static_cast<long long>(agree), static_cast<long long>(total), 100 * rate,
              100 * self_rate, kDecisiveMargin, static_cast<long long>(decisive_agree),
              static_cast<long long>(decisive), 100 * decisive_rate, max_top5_diff);
  EXPECT_GE(rate, self_rate - kSelfConsistencySlack);
  EXPECT_GE(decisive_rate, kMinDecisiveAgreement);
}

TEST(RealModel, SmolLM2Top1AgreementWithLlamaCpp) {
  CheckAgreement("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2_top1.json", KvType::kF16);
}

TEST(RealModel, Gemma3Top1AgreementWithLlamaCpp) {
  CheckAgreement("gemma-3-270m-q4_k_m.gguf", "gemma3_top1.json", KvType::kF16);
}

}  // namespace
}  // namespace tracemark
