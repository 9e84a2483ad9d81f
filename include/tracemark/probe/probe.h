// Radioactivity probe: was a suspect model trained on our watermarked outputs? (Sander et al.,
// "Watermarking Makes Language Models Radioactive", NeurIPS 2024; docs/probe.md.)
//
// Two ways to question the suspect, one statistical core:
//   open   ("reading mode") the suspect's weights are available (a GGUF our engine runs): feed it
//          our watermarked texts and take its top-1 prediction at every position; score the tuple
//          (h-token window of the REAL text, predicted token).
//   closed the suspect is only an OpenAI-compatible endpoint: prompt it (prompts built from the
//          start of our watermarked texts) and score (window, token) tuples of its outputs.
// The core (RadioactivityScorer) scores each tuple with the watermark PRF of every key version,
// keeps only the first occurrence of each tuple across the whole probe (global de-duplication),
// and excludes the tuples whose PRF values the suspect may have SEEN rather than learned:
//   closed: every window that occurs in a prompt sent to the suspect (copying the prompt copies
//           its watermark);
//   open:   every (window, token) tuple that occurs in the texts read (a model that predicts the
//           real next token reproduces the watermark of that text, trained or not).
// The remaining PRF values are independent of, or negatively associated with, what a clean model
// saw, so the exact tail (Gamma / binomial, stats.h) is a valid, conservative p-value. Without
// de-duplication and exclusion a clean model looks radioactive; ProbeOptions keeps both switches
// for the tests that prove it.
//
// The expensive part (running the suspect) is separated from scoring: ReadTop1 / CollectClosed
// produce plain data that can be scored under any number of keyrings (calibration re-keys).
// Thread-safety: plain values and functions; a RadioactivityScorer or CompletionClient is used by
// one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/model/context.h"
#include "tracemark/model/model.h"
#include "tracemark/model/sampler.h"
#include "tracemark/text/chat_template.h"
#include "tracemark/text/tokenizer.h"
#include "tracemark/watermark/keyring.h"
#include "tracemark/watermark/scheme.h"
#include "tracemark/watermark/tuple_set.h"

namespace tracemark::probe {

// Sander et al. report p < 1e-5 at 5% watermarked fine-tuning data; an accusation needs a small
// alpha, so that is the default significance level.
inline constexpr double kDefaultAlpha = 1e-5;
// Below this many scored tuples a large p-value is "inconclusive", not "clean".
inline constexpr int64_t kMinTuplesForClean = 200;
// Reading mode feeds texts in chunks of this many tokens (Sander et al. use 256).
inline constexpr int32_t kReadChunkTokens = 256;
// Closed mode: prompt length (tokens of our text) and default completion length.
inline constexpr int32_t kDefaultPromptTokens = 48;
inline constexpr int32_t kDefaultMaxTokens = 128;
inline constexpr int32_t kMaxMaxTokens = 4096;
// The p-value curve keeps at most this many points (evenly thinned, last point always kept).
inline constexpr size_t kMaxCurvePoints = 64;
// Texts one probe reads, and bytes per text.
inline constexpr size_t kMaxTexts = 100000;
inline constexpr size_t kMaxTextBytes = size_t{16} << 20;

enum class Verdict { kRadioactive, kClean, kInconclusive };
const char* VerdictName(Verdict v);
// radioactive if p < alpha; clean if not and at least kMinTuplesForClean tuples were scored.
Verdict Decide(double log10_p, int64_t tuples, double alpha);

struct ProbeOptions {
  double alpha = kDefaultAlpha;
  std::optional<uint64_t> account;  // also test this account's lanes (payload + account key)
  int version = 0;                  // key version to test; 0 = every version (Bonferroni)
  // Test-only switches: turning either off makes clean models look radioactive (the trap).
  bool dedup = true;
  bool exclude_seen = true;
};

struct CurvePoint {
  int64_t tokens = 0;  // suspect tokens examined so far
  double log10_p = 0;  // provider-lane test over the tuples scored so far (all versions)
};

struct AccountFinding {
  uint64_t id = 0;
  double p_value = 1.0;
  double log10_p_value = 0.0;
  int64_t tuples_scored = 0;
  Verdict verdict = Verdict::kInconclusive;
};

struct ProbeResult {
  std::string mode;  // "open" or "closed"
  double p_value = 1.0;  // provider lane ("trained on our outputs?"); never 0, see log10_p_value
  double log10_p_value = 0.0;
  int64_t tokens_examined = 0;  // suspect predictions (open) or output tokens (closed)
  int64_t tuples_scored = 0;    // unique tuples scored in the provider lane of the best version
  int64_t tuples_excluded = 0;  // tuples dropped because the suspect saw them (all lanes)
  int64_t tuples_duplicate = 0; // repeats dropped by de-duplication (all lanes)
  int64_t tuples_filtered = 0;  // dropped by the served-data filter (closed mode)
  Verdict verdict = Verdict::kInconclusive;
  double alpha = kDefaultAlpha;
  std::vector<CurvePoint> curve;
  std::optional<AccountFinding> account;
  std::string scheme;  // canonical spec of the best version
  int key_version = 0;
  int versions_tested = 0;
  int64_t texts = 0;  // texts read (open) or completions scored (closed)
};

// One JSON object (docs/probe.md): mode, p_value, log10_p_value, tokens_scored, tuples_scored,
// verdict, alpha, curve [[tokens, p_value], ...], account, scheme, key_version, and details.
std::string ProbeResultToJson(const ProbeResult& r);
// Parses what ProbeResultToJson wrote (the report reads probe files).
Result<ProbeResult> ProbeResultFromJson(std::string_view json);

// The statistical core. Usage: Exclude*/Filter* first, then Score* in suspect order, then Finish.
class RadioactivityScorer {
 public:
  static Result<RadioactivityScorer> Create(const watermark::Keyring& keyring,
                                            const ProbeOptions& options, std::string mode);

  // Closed mode: no window of these tokens (a prompt the suspect saw) is scored.
  void ExcludeWindowsOf(std::span<const int32_t> tokens);
  // Closed mode, a prompt cut from the middle of one of our texts: tokens[prompt_begin..] is the
  // prompt and tokens[..prompt_begin) what preceded it in the text. Excludes the window of every
  // prompt token (its h predecessors, which may lie before the prompt: the watermark chose the
  // token with that window, so the suspect saw its PRF winner) and the window after the last.
  void ExcludePromptWindows(std::span<const int32_t> tokens, size_t prompt_begin);
  // Open mode: no (window, next token) tuple of these tokens (a text the suspect read) is scored.
  void ExcludeTuplesOf(std::span<const int32_t> tokens);
  // Sander et al.'s filter: once called, only windows occurring in these tokens are scored.
  void AddFilterWindowsOf(std::span<const int32_t> tokens);

  // Scores `token` after the window tokens[end - h, end) (skipped when end < h).
  void Score(std::span<const int32_t> tokens, size_t end, int32_t token);
  // Marks the end of one text or completion that examined `tokens` suspect tokens (curve point).
  void EndText(int64_t tokens);
  ProbeResult Finish() const;

 private:
  struct VersionState {
    int version = 0;
    watermark::SchemeParams params;
    watermark::SchemeKeys keys;
    uint64_t account_key = 0;
    watermark::TupleSet excluded_tuples;   // (context hash, token) the suspect read
    watermark::TupleSet excluded_windows;  // (context hash, kWindowToken) the suspect was prompted with
    watermark::TupleSet filter_windows;    // (context hash, kWindowToken) of the served data
    watermark::TupleSet seen;              // tuples already scored
    double provider_sum = 0, account_sum = 0;
    int64_t provider_count = 0, account_count = 0;
    int64_t excluded = 0, duplicate = 0, filtered = 0;
  };
  RadioactivityScorer() = default;
  double ProviderLog10P() const;  // best version, Bonferroni over versions

  ProbeOptions options_;
  std::string mode_;
  std::vector<VersionState> versions_;
  bool filtering_ = false;
  int64_t tokens_examined_ = 0, texts_ = 0;
  std::vector<CurvePoint> curve_;
};

// ---- Open model: reading mode ----

struct ReadText {
  std::vector<int32_t> tokens;  // the real text (no BOS)
  std::vector<int32_t> top1;    // top1[i]: the suspect's prediction for tokens[i]; -1 = none
};

// Runs the suspect over each text in chunks of kReadChunkTokens (BOS prepended when the model
// wants one) and records its top-1 prediction at every position.
Result<std::vector<ReadText>> ReadTop1(const Model& suspect, const text::Tokenizer& suspect_tok,
                                       const text::Tokenizer& our_tok,
                                       std::span<const std::string> texts, int32_t n_threads);

// Scores reading-mode data: excludes every tuple of the texts, then scores (window, top1).
// The suspect must share our tokenizer (ReadTop1 checks the vocabulary).
Result<ProbeResult> ScoreReading(std::span<const ReadText> data, const watermark::Keyring& keyring,
                                 const ProbeOptions& options);

// ---- Closed model ----

// Something that completes a prompt: an OpenAI-compatible endpoint, a local model, a test fake.
class CompletionClient {
 public:
  virtual ~CompletionClient() = default;
  virtual Result<std::string> Complete(const std::string& prompt, int32_t max_tokens) = 0;
};

// Local completion with our engine (temperature 1, seeded) and the model's chat template: tests,
// and a closed-mode probe of a GGUF. `hook` (optional, not owned) watermarks the output.
class LocalCompletionClient : public CompletionClient {
 public:
  static Result<std::unique_ptr<LocalCompletionClient>> Create(const Model& model,
                                                               const text::Tokenizer& tok,
                                                               uint64_t seed, int32_t n_threads);
  Result<std::string> Complete(const std::string& prompt, int32_t max_tokens) override;
  void set_hook(SamplerHook* hook) { hook_ = hook; }

 private:
  LocalCompletionClient(const Model& model, const text::Tokenizer& tok) : model_(model), tok_(tok) {}
  const Model& model_;
  const text::Tokenizer& tok_;
  std::unique_ptr<Context> ctx_;
  std::optional<ChatTemplate> chat_;  // none: the prompt is sent as plain text
  uint64_t seed_ = 0;
  SamplerHook* hook_ = nullptr;
};

struct ClosedExchange {
  std::string prompt;
  std::string completion;
  // Raw completion: `completion` continues `prompt` directly (no instruction, no chat template),
  // so the windows that straddle the end of the prompt are scored too.
  bool raw = false;
  // Raw completion from the middle of a text: our token ids of the text from up to
  // watermark::kMaxContextWidth tokens before the prompt to its end, and where the prompt begins
  // in them (RadioactivityScorer::ExcludePromptWindows). Empty for prompts without that context.
  std::vector<int32_t> prompt_context;
  size_t prompt_begin = 0;
};

// Raw-completion closed mode of a local GGUF suspect (docs/probe.md): each prompt is
// prompt_tokens tokens of one of our texts, fed without chat template (BOS if the model wants
// one); the suspect continues it for up to max_tokens, bounded by its training context. Prompts
// start at token kRawPromptOffset of a text and then every prompt_stride tokens (stride 0: one
// prompt per text): the first tokens of a served completion were chosen with windows that hold
// the chat template, which the probe cannot exclude, so they are never shown to the suspect.
inline constexpr int32_t kMaxRawSamples = 64;
inline constexpr int32_t kRawPromptOffset = watermark::kMaxContextWidth;
// Prompts per text at most (a long text with a small stride).
inline constexpr int32_t kMaxRawPromptsPerText = 256;
struct RawCompletionOptions {
  int32_t prompt_tokens = kDefaultPromptTokens;
  int32_t max_tokens = kDefaultMaxTokens;
  int32_t samples = 1;  // continuations per prompt (seeds seed, seed + 1, ...; de-dup is global)
  int32_t prompt_stride = 0;  // tokens between two prompts of one text; 0 = one prompt per text
  uint64_t seed = 1;
  float temperature = 1.0f;  // 0 = greedy (the most memorized continuation)
  int32_t n_threads = 2;
};

// Runs the raw completions; a prompt needs at least one token of the text after it (shorter
// texts are skipped). Returns exchanges with raw = true and their prompt_context, scored by
// ScoreClosed.
Result<std::vector<ClosedExchange>> CollectRawCompletions(const Model& suspect,
                                                          const text::Tokenizer& suspect_tok,
                                                          const text::Tokenizer& our_tok,
                                                          std::span<const std::string> texts,
                                                          const RawCompletionOptions& options);

// The prompt built from the start of one of our texts: an instruction and its first
// `prompt_tokens` tokens (decoded with our tokenizer).
std::string BuildContinuationPrompt(const text::Tokenizer& our_tok, std::string_view text,
                                    int32_t prompt_tokens);

// Prompts the suspect once per text (continuation prompts) and returns the exchanges.
Result<std::vector<ClosedExchange>> CollectClosed(CompletionClient& client,
                                                  const text::Tokenizer& our_tok,
                                                  std::span<const std::string> texts,
                                                  int32_t prompt_tokens, int32_t max_tokens);

// Scores closed-mode exchanges: prompt windows excluded, global de-duplication, and when
// `filter_texts` is not empty only windows that occur in them (the account's served data).
Result<ProbeResult> ScoreClosed(std::span<const ClosedExchange> exchanges,
                                const text::Tokenizer& our_tok, const watermark::Keyring& keyring,
                                std::span<const std::string> filter_texts,
                                const ProbeOptions& options);

}  // namespace tracemark::probe
