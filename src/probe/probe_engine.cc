// The parts of the probe that run a model with our engine: reading mode (top-1 predictions over
// our texts) and local completions for closed-mode tests.
#include <algorithm>

#include "tracemark/model/generate.h"
#include "tracemark/probe/probe.h"

namespace tracemark::probe {
namespace {

// KV cache of a local completion client (prompt + completion).
constexpr int32_t kLocalContextTokens = 2048;

Status CheckSameVocabulary(const text::Tokenizer& a, const text::Tokenizer& b) {
  if (a.vocab_size() != b.vocab_size()) {
    return InvalidArgument("the suspect's vocabulary (" + std::to_string(a.vocab_size()) +
                           " tokens) differs from our model's (" + std::to_string(b.vocab_size()) +
                           "); reading mode needs the same tokenizer, use the closed mode (--suspect-url)");
  }
  for (int32_t id = 0; id < a.vocab_size(); ++id) {
    if (a.piece(id) != b.piece(id)) {
      return InvalidArgument("the suspect's token " + std::to_string(id) +
                             " differs from our model's; reading mode needs the same tokenizer, "
                             "use the closed mode (--suspect-url)");
    }
  }
  return Status::Ok();
}

int32_t ArgMax(std::span<const float> logits) {
  int32_t best = 0;
  float best_v = logits[0];
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > best_v) {
      best_v = logits[i];
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

}  // namespace

Result<std::vector<ReadText>> ReadTop1(const Model& suspect, const text::Tokenizer& suspect_tok,
                                       const text::Tokenizer& our_tok,
                                       std::span<const std::string> texts, int32_t n_threads) {
  TM_RETURN_IF_ERROR(CheckSameVocabulary(suspect_tok, our_tok));
  if (texts.size() > kMaxTexts) {
    return ResourceExhausted("more than " + std::to_string(kMaxTexts) + " texts in one probe");
  }
  const std::vector<int32_t> bos_probe = suspect_tok.Encode("", /*add_special=*/true, false);
  const int32_t bos = (!bos_probe.empty() && bos_probe[0] == suspect_tok.bos_id()) ? bos_probe[0] : -1;
  // A suspect trained on a short context (a small student) reads in chunks that fit it.
  const int32_t chunk_tokens = std::max(1, std::min(kReadChunkTokens, suspect.config().n_ctx_train - 1));
  const int32_t rows = chunk_tokens + 1;
  ContextOptions copt;
  copt.n_ctx = rows;
  copt.max_batch = rows;
  copt.max_outputs = rows;
  copt.n_threads = n_threads;
  TM_ASSIGN_OR_RETURN(std::unique_ptr<Context> ctx, Context::Create(suspect, copt));

  std::vector<ReadText> out;
  out.reserve(texts.size());
  Batch batch;
  std::vector<int64_t> target;  // text index predicted by each batch row (-1: none)
  for (const std::string& text : texts) {
    if (text.size() > kMaxTextBytes) {
      return ResourceExhausted("a text is larger than " + std::to_string(kMaxTextBytes) + " bytes");
    }
    ReadText rt;
    rt.tokens = our_tok.Encode(text, /*add_special=*/false, /*parse_special=*/false);
    rt.top1.assign(rt.tokens.size(), -1);
    const size_t n = rt.tokens.size();
    for (size_t start = 0; start < n; start += static_cast<size_t>(chunk_tokens)) {
      const size_t len = std::min(n - start, static_cast<size_t>(chunk_tokens));
      ctx->ClearSeq(0);
      batch.Clear();
      target.clear();
      int32_t pos = 0;
      if (bos >= 0) {
        // The BOS row predicts the chunk's first token; after the first chunk the previous
        // chunk's last row already did, with more context.
        batch.Add(bos, pos++, 0, start == 0);
        target.push_back(start == 0 ? 0 : -1);
      }
      for (size_t j = 0; j < len; ++j) {
        const size_t next = start + j + 1;  // this row predicts tokens[next]
        const bool want = next < n;
        batch.Add(rt.tokens[start + j], pos++, 0, want);
        target.push_back(want ? static_cast<int64_t>(next) : -1);
      }
      TM_RETURN_IF_ERROR(ctx->Decode(batch));
      for (int32_t o = 0; o < ctx->n_outputs(); ++o) {
        const int64_t t = target[static_cast<size_t>(ctx->output_row(o))];
        if (t >= 0 && static_cast<size_t>(t) < n) rt.top1[static_cast<size_t>(t)] = ArgMax(ctx->Logits(o));
      }
    }
    out.push_back(std::move(rt));
  }
  return out;
}

Result<std::unique_ptr<LocalCompletionClient>> LocalCompletionClient::Create(
    const Model& model, const text::Tokenizer& tok, uint64_t seed, int32_t n_threads) {
  std::unique_ptr<LocalCompletionClient> c(new LocalCompletionClient(model, tok));
  ContextOptions copt;
  copt.n_ctx = kLocalContextTokens;
  copt.n_threads = n_threads;
  TM_ASSIGN_OR_RETURN(c->ctx_, Context::Create(model, copt));
  auto tmpl = ChatTemplate::FromGguf(model.file());
  if (tmpl.ok()) c->chat_ = std::move(tmpl).value();
  c->seed_ = seed;
  return c;
}

Result<std::string> LocalCompletionClient::Complete(const std::string& prompt, int32_t max_tokens) {
  std::vector<int32_t> ids;
  if (chat_) {
    const ChatMessage message{"user", prompt};
    TM_ASSIGN_OR_RETURN(std::string rendered, chat_->Render(std::span<const ChatMessage>(&message, 1), true));
    ids = tok_.Encode(rendered, /*add_special=*/true, /*parse_special=*/true);
    if (ids.size() >= 2 && ids[0] == tok_.bos_id() && ids[1] == tok_.bos_id()) ids.erase(ids.begin());
  } else {
    ids = tok_.Encode(prompt, /*add_special=*/true, /*parse_special=*/false);
  }
  if (ids.empty()) return InvalidArgument("the prompt encodes to no tokens");
  if (static_cast<int64_t>(ids.size()) + max_tokens > kLocalContextTokens) {
    return ResourceExhausted("prompt + max tokens exceed " + std::to_string(kLocalContextTokens) + " tokens");
  }
  GenerateOptions gopt;
  gopt.max_tokens = max_tokens;
  gopt.sampling.temperature = 1.0f;
  gopt.sampling.seed = seed_++;
  gopt.hook = hook_;
  TM_ASSIGN_OR_RETURN(GenerateResult r, Generate(*ctx_, tok_, ids, gopt));
  return r.text;
}

Result<std::vector<ClosedExchange>> CollectRawCompletions(const Model& suspect,
                                                          const text::Tokenizer& suspect_tok,
                                                          const text::Tokenizer& our_tok,
                                                          std::span<const std::string> texts,
                                                          const RawCompletionOptions& options) {
  if (options.prompt_tokens < 1) return InvalidArgument("prompt tokens must be at least 1");
  if (options.max_tokens < 1 || options.max_tokens > kMaxMaxTokens) {
    return InvalidArgument("max tokens must be in [1, " + std::to_string(kMaxMaxTokens) + "]");
  }
  if (options.prompt_stride < 0) return InvalidArgument("prompt stride must be 0 (one prompt per text) or more");
  if (options.samples < 1 || options.samples > kMaxRawSamples) {
    return InvalidArgument("samples per prompt must be in [1, " + std::to_string(kMaxRawSamples) + "]");
  }
  if (texts.size() > kMaxTexts) {
    return ResourceExhausted("more than " + std::to_string(kMaxTexts) + " texts in one probe");
  }
  // The suspect continues within the context it was trained on (a small student: 64 tokens).
  const int32_t n_ctx_train = suspect.config().n_ctx_train;
  const int32_t n_ctx = n_ctx_train > 0 ? std::min(n_ctx_train, kLocalContextTokens) : kLocalContextTokens;
  ContextOptions copt;
  copt.n_ctx = n_ctx;
  copt.n_threads = options.n_threads;
  TM_ASSIGN_OR_RETURN(std::unique_ptr<Context> ctx, Context::Create(suspect, copt));

  std::vector<ClosedExchange> out;
  uint64_t seed = options.seed;
  for (const std::string& text : texts) {
    if (text.size() > kMaxTextBytes) {
      return ResourceExhausted("a text is larger than " + std::to_string(kMaxTextBytes) + " bytes");
    }
    const std::vector<int32_t> ids = our_tok.Encode(text, /*add_special=*/false, /*parse_special=*/false);
    const size_t prompt_len = static_cast<size_t>(options.prompt_tokens);
    int32_t prompts_here = 0;
    for (size_t begin = static_cast<size_t>(kRawPromptOffset); begin + prompt_len < ids.size();
         begin += static_cast<size_t>(options.prompt_stride)) {
      if (prompts_here++ == kMaxRawPromptsPerText) break;
      const std::span<const int32_t> prompt_ids_ours(ids.data() + begin, prompt_len);
      const std::string prompt = our_tok.Decode(prompt_ids_ours);
      // Plain text, no chat template; BOS (and nothing else) when the model's flags ask for one.
      std::vector<int32_t> prompt_ids = suspect_tok.Encode(prompt, /*add_special=*/true, /*parse_special=*/false);
      if (!prompt_ids.empty() && prompt_ids.back() == suspect_tok.eos_id() && prompt_ids.size() > 1) {
        prompt_ids.pop_back();
      }
      // Generate stops when the context is full.
      const int32_t room = n_ctx - static_cast<int32_t>(prompt_ids.size());
      if (room < 1) {
        return InvalidArgument("a prompt of " + std::to_string(prompt_ids.size()) +
                               " suspect tokens leaves no room in the suspect's context of " +
                               std::to_string(n_ctx) + " tokens; lower --prompt-tokens");
      }
      // What the scorer must exclude: the prompt and the text before it that chose its tokens.
      const size_t context_begin = begin - std::min(begin, static_cast<size_t>(watermark::kMaxContextWidth));
      const std::vector<int32_t> prompt_context(ids.begin() + static_cast<std::ptrdiff_t>(context_begin),
                                                ids.begin() + static_cast<std::ptrdiff_t>(begin + prompt_len));
      for (int32_t s = 0; s < options.samples; ++s) {
        GenerateOptions gopt;
        gopt.max_tokens = std::min(options.max_tokens, room);
        gopt.sampling.temperature = options.temperature;
        gopt.sampling.seed = seed++;
        TM_ASSIGN_OR_RETURN(GenerateResult r, Generate(*ctx, suspect_tok, prompt_ids, gopt));
        ClosedExchange ex;
        ex.prompt = prompt;
        ex.completion = std::move(r.text);
        ex.raw = true;
        ex.prompt_context = prompt_context;
        ex.prompt_begin = begin - context_begin;
        out.push_back(std::move(ex));
      }
      if (options.prompt_stride == 0) break;
    }
  }
  return out;
}

}  // namespace tracemark::probe
