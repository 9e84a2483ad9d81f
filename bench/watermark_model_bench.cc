// Real-model watermark check: generates with the account watermark on a GGUF model (chat
// template, fixed prompts), then detects: TPR at p < 1e-6 vs length, attribution, and the hook's
// time per token next to the decode time per token.
//   watermark_model_bench MODEL [--prompts N] [--tokens N] [--temperature T] [--scheme SPEC] [--threads N]
#include <chrono>
#include <iterator>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "tracemark/model/context.h"
#include "watermark_prompts.h"
#include "tracemark/model/generate.h"
#include "tracemark/model/model.h"
#include "tracemark/text/chat_template.h"
#include "tracemark/text/tokenizer.h"
#include "tracemark/watermark/detector.h"
#include "tracemark/watermark/hook.h"
#include "tracemark/watermark/keyring.h"

namespace tmk = tracemark;
namespace wm = tracemark::watermark;

namespace {

const auto& kPrompts = tracemark::bench::kWatermarkPrompts;

// Times the wrapped hook's calls.
class TimedHook : public tmk::SamplerHook {
 public:
  explicit TimedHook(tmk::SamplerHook* inner) : inner_(inner) {}
  void ProcessLogits(std::span<float> l, std::span<const int32_t> c) override {
    const auto t = Clock::now();
    inner_->ProcessLogits(l, c);
    ns_ += Elapsed(t);
  }
  int32_t Choose(const tmk::TokenCandidates& cand, std::span<const int32_t> c, tmk::Rng& r) override {
    const auto t = Clock::now();
    const int32_t v = inner_->Choose(cand, c, r);
    ns_ += Elapsed(t);
    return v;
  }
  void Accept(int32_t tok) override {
    const auto t = Clock::now();
    inner_->Accept(tok);
    ns_ += Elapsed(t);
  }
  double ms() const { return ns_ * 1e-6; }

 private:
  using Clock = std::chrono::steady_clock;
  static double Elapsed(Clock::time_point t) {
    return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count());
  }
  tmk::SamplerHook* inner_;
  double ns_ = 0;
};

int Fail(const tmk::Status& s) {
  std::fprintf(stderr, "watermark_model_bench: %s\n", s.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: watermark_model_bench MODEL [--prompts N] [--tokens N] [--temperature T] [--scheme SPEC] [--threads N]\n");
    return 2;
  }
  const std::string model_path = argv[1];
  int prompts = 12, tokens = 200, threads = 2;
  float temperature = 1.0f;
  std::string scheme(wm::kDefaultSchemeSpec);
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--prompts") prompts = std::atoi(argv[i + 1]);
    else if (k == "--tokens") tokens = std::atoi(argv[i + 1]);
    else if (k == "--temperature") temperature = static_cast<float>(std::atof(argv[i + 1]));
    else if (k == "--scheme") scheme = argv[i + 1];
    else if (k == "--threads") threads = std::atoi(argv[i + 1]);
  }
  auto model = tmk::Model::Load(model_path);
  if (!model.ok()) return Fail(model.status());
  auto tok = tmk::text::Tokenizer::FromGguf((*model)->file());
  if (!tok.ok()) return Fail(tok.status());
  tmk::ContextOptions copt;
  copt.n_ctx = 1024;
  copt.n_threads = threads;
  auto ctx = tmk::Context::Create(**model, copt);
  if (!ctx.ok()) return Fail(ctx.status());
  std::vector<uint8_t> secret(32, 0x42);
  auto ring = wm::Keyring::FromSecret(secret, scheme);
  if (!ring.ok()) return Fail(ring.status());
  auto det = wm::Detector::Create(*ring);
  const int lengths[] = {25, 50, 100, 200, 400};
  int detected[5] = {0, 0, 0, 0, 0}, counted[5] = {0, 0, 0, 0, 0};
  int attributed = 0, wrong = 0;
  double hook_ms = 0, decode_ms = 0, sample_ms = 0;
  int64_t generated = 0;
  auto tmpl = tmk::ChatTemplate::FromGguf((*model)->file());
  if (!tmpl.ok()) return Fail(tmpl.status());
  for (int p = 0; p < prompts; ++p) {
    const tmk::ChatMessage message{"user", kPrompts[p % std::size(kPrompts)]};
    auto rendered = tmpl->Render(std::span<const tmk::ChatMessage>(&message, 1), true);
    if (!rendered.ok()) return Fail(rendered.status());
    auto prompt = (*tok)->Encode(*rendered, true, true);
    if (prompt.size() >= 2 && prompt[0] == (*tok)->bos_id() && prompt[1] == (*tok)->bos_id()) prompt.erase(prompt.begin());
    const uint64_t account = 1000 + static_cast<uint64_t>(p) * 7919;
    auto hook = wm::MakeWatermarkHook(*ring, account);
    if (!hook.ok()) return Fail(hook.status());
    TimedHook timed(hook->get());
    tmk::GenerateOptions g;
    g.max_tokens = tokens;
    g.sampling.temperature = temperature;
    g.sampling.top_k = 40;
    g.sampling.top_p = 0.95f;
    g.sampling.seed = 100 + static_cast<uint64_t>(p);
    g.hook = &timed;
    g.ignore_eog = true;
    auto r = tmk::Generate(**ctx, **tok, prompt, g);
    if (!r.ok()) return Fail(r.status());
    hook_ms += timed.ms();
    decode_ms += r->timings.decode_ms;
    sample_ms += r->timings.sample_ms;
    generated += static_cast<int64_t>(r->tokens.size());
    for (int li = 0; li < 5; ++li) {
      if (static_cast<int>(r->tokens.size()) < lengths[li]) continue;
      auto d = det->Detect(std::span<const int32_t>(r->tokens).first(lengths[li]), wm::DetectOptions{});
      ++counted[li];
      detected[li] += d->watermarked;
      if (lengths[li] == tokens || li == 4) {
        if (d->account) (*d->account == account ? attributed : wrong) += 1;
      }
    }
  }
  std::printf("model %s, scheme %s, T=%.1f, top-k 40, top-p 0.95, %d prompts x %d tokens\n",
              model_path.c_str(), scheme.c_str(), temperature, prompts, tokens);
  std::printf("| length | TPR at p<1e-6 |\n|---|---|\n");
  for (int li = 0; li < 5; ++li) {
    if (counted[li] > 0) std::printf("| %d | %d/%d |\n", lengths[li], detected[li], counted[li]);
  }
  std::printf("attributed at %d tokens: %d correct, %d wrong of %d\n", tokens, attributed, wrong, prompts);
  std::printf("per token: decode %.3f ms, sampling+hook+detok %.3f ms, watermark hook %.4f ms (%.2f%% of decode)\n",
              decode_ms / generated, sample_ms / generated, hook_ms / generated, 100.0 * hook_ms / decode_ms);
  return 0;
}
