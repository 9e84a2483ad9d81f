// Generate(): prefill, sample, detokenize, stop strings.
#include "tracemark/model/generate.h"

#include <algorithm>
#include <chrono>

#include "tracemark/model/stop.h"

namespace tracemark {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

Result<GenerateResult> Generate(Context& ctx, const text::Tokenizer& tokenizer,
                                std::span<const int32_t> prompt, const GenerateOptions& options,
                                const TextCallback& on_text) {
  const int32_t n_vocab = ctx.model().config().n_vocab;
  if (prompt.empty()) return InvalidArgument("generate: the prompt has no tokens");
  if (options.max_tokens < 0) return InvalidArgument("generate: max_tokens must be >= 0");
  if (options.seq < 0 || options.seq >= ctx.options().n_seq) {
    return InvalidArgument("generate: sequence slot out of range");
  }
  auto stop_matcher = StopMatcher::Create(options.stop);
  if (!stop_matcher.ok()) return stop_matcher.status().WithContext("generate");
  StopMatcher& stops = *stop_matcher;
  if (static_cast<int64_t>(prompt.size()) >= ctx.n_ctx()) {
    return ResourceExhausted("generate: prompt of " + std::to_string(prompt.size()) +
                             " tokens does not fit the context length " + std::to_string(ctx.n_ctx()));
  }
  for (int32_t id : prompt) {
    if (id < 0 || id >= n_vocab) return InvalidArgument("generate: prompt token id out of range");
  }

  GenerateResult result;
  GenerateTimings& tm = result.timings;
  tm.prompt_tokens = static_cast<int32_t>(prompt.size());
  const int32_t seq = options.seq;
  ctx.ClearSeq(seq);

  // Prefill in chunks of max_batch; logits only for the last prompt token.
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  history.reserve(prompt.size() + options.max_tokens);
  Batch batch;
  const auto t_prefill = Clock::now();
  const int32_t chunk = ctx.options().max_batch;
  for (size_t start = 0; start < prompt.size(); start += chunk) {
    const size_t end = std::min(prompt.size(), start + chunk);
    batch.Clear();
    for (size_t i = start; i < end; ++i) {
      batch.Add(prompt[i], static_cast<int32_t>(i), seq, i + 1 == prompt.size());
    }
    TM_RETURN_IF_ERROR(ctx.Decode(batch));
  }
  tm.prefill_ms = MsSince(t_prefill);

  Sampler sampler(options.sampling, n_vocab, options.hook);
  text::StreamDecoder decoder(tokenizer, /*skip_special=*/true);
  std::string emit;
  bool cancelled = false;
  auto deliver = [&](const std::string& s) {
    if (s.empty() || cancelled) return;
    result.text += s;
    if (on_text && !on_text(s)) cancelled = true;
  };

  result.finish_reason = "length";
  bool stop_hit = false;
  while (static_cast<int32_t>(result.tokens.size()) < options.max_tokens) {
    const auto t_sample = Clock::now();
    std::span<float> logits = ctx.Logits(ctx.n_outputs() - 1);
    const int32_t token = sampler.Sample(logits, history);
    if (!options.ignore_eog && tokenizer.IsEog(token)) {
      result.finish_reason = "stop";
      tm.sample_ms += MsSince(t_sample);
      break;
    }
    result.tokens.push_back(token);
    history.push_back(token);
    emit.clear();
    const bool hit = stops.Feed(decoder.Push(token), &emit);
    deliver(emit);
    tm.sample_ms += MsSince(t_sample);
    if (hit || cancelled) {
      result.finish_reason = "stop";
      stop_hit = hit;
      break;
    }
    if (static_cast<int32_t>(result.tokens.size()) >= options.max_tokens) break;
    if (ctx.seq_length(seq) >= ctx.n_ctx()) break;  // context full: "length"
    const auto t_decode = Clock::now();
    batch.Clear();
    batch.Add(token, ctx.seq_length(seq), seq, true);
    TM_RETURN_IF_ERROR(ctx.Decode(batch));
    tm.decode_ms += MsSince(t_decode);
  }
  // Flush text held back by the decoder and the stop matcher (unless a stop string ended it).
  if (!cancelled && !stop_hit) {
    emit.clear();
    const bool hit = stops.Feed(decoder.Flush(), &emit);
    if (hit) {
      result.finish_reason = "stop";
    } else {
      stops.Flush(&emit);
    }
    deliver(emit);
  }
  tm.completion_tokens = static_cast<int32_t>(result.tokens.size());
  return result;
}

}  // namespace tracemark
