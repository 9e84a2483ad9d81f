// MockEngine: a fixed-latency fake generation engine for gateway benchmarks and tests
// (`tracemark serve --engine mock`). It needs no model file. Every job gets its first token
// `token_latency_us` after Submit and one more every `token_latency_us` after that, so a reply
// of L tokens takes exactly L * token_latency_us of engine time and everything above that is
// gateway overhead. Tokens go through the same per-sequence machinery as the real Scheduler:
// a Sampler with the job's watermark hook (over small fake logits that put all but ~1e-13 of
// the mass on the scripted token, so the output is deterministic), a StreamDecoder, the stop
// matcher, cancellation and the same GenerationEvent sink. The text is a fixed English sentence
// repeated, one byte per token; the reply ends with "stop" after `output_tokens` tokens or with
// "length" at the job's max_tokens, whichever comes first. Jobs are not limited by slots: any
// number run at once (up to max_queued waiting for their next token).
//
// MockTokenizer: byte-level vocabulary (ids 0..255 are bytes) plus <s>, </s>, <|im_start|> and
// <|im_end|>; MockChatTemplateSource() is a ChatML template over it.
//
// Thread-safety: as Scheduler (Submit and stats from any thread; sinks run on the engine thread
// and must not block). MockTokenizer is immutable and thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "tracemark/serve/scheduler.h"
#include "tracemark/text/tokenizer.h"

namespace tracemark::serve {

inline constexpr int64_t kDefaultMockTokenLatencyUs = 1000;
inline constexpr int64_t kMaxMockTokenLatencyUs = 10'000'000;
inline constexpr int32_t kDefaultMockOutputTokens = 16;
inline constexpr int32_t kMaxMockOutputTokens = 1 << 20;
inline constexpr int32_t kDefaultMockContext = 4096;
// Jobs in flight at once (the HTTP layer's connection limit is the practical bound).
inline constexpr size_t kDefaultMockMaxJobs = 65536;

struct MockEngineOptions {
  int64_t token_latency_us = kDefaultMockTokenLatencyUs;
  int32_t output_tokens = kDefaultMockOutputTokens;
  int32_t context = kDefaultMockContext;  // prompt + completion tokens per job
  size_t max_jobs = kDefaultMockMaxJobs;
};

class MockTokenizer final : public text::Tokenizer {
 public:
  static constexpr int32_t kBos = 256;
  static constexpr int32_t kEos = 257;
  static constexpr int32_t kImStart = 258;
  static constexpr int32_t kImEnd = 259;
  static constexpr int32_t kVocab = 260;

  std::vector<int32_t> Encode(std::string_view text, bool add_special, bool parse_special) const override;
  std::string TokenBytes(int32_t id, bool skip_special = false) const override;
  int32_t vocab_size() const override { return kVocab; }
  int32_t bos_id() const override { return kBos; }
  int32_t eos_id() const override { return kEos; }
  bool IsEog(int32_t id) const override { return id == kEos || id == kImEnd; }
  text::TokenType type(int32_t id) const override;
  std::string_view piece(int32_t id) const override;
  int32_t Find(std::string_view piece) const override;
};

// ChatML over MockTokenizer's special tokens.
std::string_view MockChatTemplateSource();

class MockEngine final : public GenerationEngine {
 public:
  // `tokenizer` is not owned and must outlive the engine (normally a MockTokenizer).
  static Result<std::unique_ptr<MockEngine>> Create(const text::Tokenizer& tokenizer, const MockEngineOptions& options);
  ~MockEngine() override;  // fails unfinished jobs, joins the thread

  Status Submit(std::shared_ptr<GenerationJob> job) override;
  SchedulerStats stats() const override;
  int32_t slot_context() const override { return options_.context; }
  int32_t vocab_size() const override { return tokenizer_.vocab_size(); }

 private:
  struct Seq;
  MockEngine(const text::Tokenizer& tokenizer, const MockEngineOptions& options);
  void Loop();
  // Emits the next token of `s`; returns false when the job finished.
  bool Step(Seq& s);
  void Finish(Seq& s, const char* reason, Status status);

  const text::Tokenizer& tokenizer_;
  MockEngineOptions options_;
  std::vector<int32_t> script_;  // token ids of the scripted text
  std::vector<float> logits_;    // scratch, engine thread only

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Seq>> incoming_;
  bool stop_ = false;
  SchedulerStats stats_;
  std::thread thread_;
};

}  // namespace tracemark::serve
