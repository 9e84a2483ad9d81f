// The generation loop shared by the CLI and the server: prompt ids -> prefill -> sample -> decode
// until an end-of-generation token, a stop string or the token limit.
//
// Generate() clears the context's sequence slot, prefills the prompt in chunks of the context's
// max_batch, then samples one token at a time (Sampler, with an optional SamplerHook such as a
// watermark), turns tokens into UTF-8 text with a StreamDecoder, holds back text that could be
// the start of a stop string (StopMatcher, stop.h), and hands each complete piece to the callback. Text after a stop
// string is never emitted. The same options, seed and thread count give the same bytes.
// One Generate call uses one Context from one thread; the Tokenizer may be shared.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/model/context.h"
#include "tracemark/model/sampler.h"
#include "tracemark/text/tokenizer.h"

namespace tracemark {

inline constexpr int32_t kDefaultMaxTokens = 256;

struct GenerateOptions {
  int32_t max_tokens = kDefaultMaxTokens;
  SamplingParams sampling;
  SamplerHook* hook = nullptr;       // not owned; e.g. the account's watermark
  std::vector<std::string> stop;     // stop strings (model/stop.h limits; not in the output)
  int32_t seq = 0;                   // context slot to use (cleared first)
  bool ignore_eog = false;           // keep going past end-of-generation tokens (benchmarks)
};

struct GenerateTimings {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  double prefill_ms = 0;   // prompt forward passes
  double decode_ms = 0;    // forward passes of generated tokens
  double sample_ms = 0;    // sampling, hook and detokenization
  double PrefillTokensPerSecond() const { return prefill_ms > 0 ? prompt_tokens * 1e3 / prefill_ms : 0; }
  // Generated tokens per second over forward + sampling time of the decode phase.
  double DecodeTokensPerSecond() const {
    const double ms = decode_ms + sample_ms;
    return ms > 0 && completion_tokens > 1 ? (completion_tokens - 1) * 1e3 / ms : 0;
  }
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (EOG token excluded)
  std::string text;             // emitted text (stop string excluded)
  std::string finish_reason;    // "stop" (EOG or stop string) or "length"
  GenerateTimings timings;
};

// Receives each newly complete piece of text. Return false to stop early (finish "stop").
using TextCallback = std::function<bool(std::string_view piece)>;

Result<GenerateResult> Generate(Context& ctx, const text::Tokenizer& tokenizer,
                                std::span<const int32_t> prompt, const GenerateOptions& options,
                                const TextCallback& on_text = nullptr);

}  // namespace tracemark
