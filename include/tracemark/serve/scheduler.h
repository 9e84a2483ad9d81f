// Scheduler: continuous batching over one engine Context. A single thread owns the Context; it
// admits queued jobs into free sequence slots and runs ONE batched Decode per step for every
// active sequence (one new token each, plus prompt chunks of newly admitted jobs within the
// max_batch budget), samples each sequence with its own Sampler and watermark hook, turns tokens
// into text (StreamDecoder + StopMatcher) and hands each piece to the job's sink. A finished,
// failed or cancelled job frees its slot at once, so a new job joins the very next step.
//
// Thread-safety: Submit(), Cancel-by-flag (GenerationJob::cancelled) and stats() may be called
// from any thread. Sinks run on the scheduler thread and must not block (post to an executor).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/model/context.h"
#include "tracemark/model/model.h"
#include "tracemark/model/sampler.h"
#include "tracemark/text/tokenizer.h"

namespace tracemark::serve {

inline constexpr int32_t kDefaultSlots = 8;
inline constexpr int32_t kDefaultSlotContext = 2048;
inline constexpr size_t kDefaultMaxQueuedJobs = 256;

struct SchedulerOptions {
  int32_t slots = kDefaultSlots;             // concurrent sequences
  int32_t slot_context = kDefaultSlotContext;  // tokens per sequence (prompt + completion)
  int32_t max_batch = 256;                   // tokens per Decode
  int32_t threads = 2;
  size_t max_queued = kDefaultMaxQueuedJobs; // beyond this Submit fails (503)
  bool profile = false;  // time Decode phases and the per-step sampling (stats(); benchmarks)
};

struct GenerationEvent {
  std::string text;           // newly complete text (may be empty)
  bool done = false;
  std::string finish_reason;  // "stop" or "length" when done
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  Status status;              // non-OK when the job failed
  int32_t choice = 0;         // which of a request's n choices (set by the job's sink)
};

struct GenerationJob {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int32_t max_tokens = 16;
  std::vector<std::string> stop;
  std::unique_ptr<SamplerHook> hook;  // e.g. the account's watermark; may be null
  std::function<void(GenerationEvent)> sink;
  std::atomic<bool> cancelled{false};  // set by the connection when the client went away
};

struct SchedulerStats {
  uint64_t decode_steps = 0;
  uint64_t batch_rows = 0;          // sum of Decode batch sizes
  uint64_t sampled_tokens = 0;
  uint64_t prompt_tokens = 0;
  int64_t active = 0;
  int64_t queued = 0;
  uint64_t jobs_finished = 0;
  // With SchedulerOptions::profile: wall time inside Decode by phase, and in the serial part
  // after it (sampling with the hook, detokenizing, stop strings, sinks).
  DecodeProfile decode;
  double sample_ms = 0;
};

// What the gateway needs from a generation engine: the Scheduler below over a real model, or
// the fixed-latency MockEngine (serve/mock_engine.h) that gateway benchmarks run against.
// Implementations are thread-safe as documented for Scheduler.
class GenerationEngine {
 public:
  virtual ~GenerationEngine() = default;
  // Queues a job. Fails (ResourceExhausted) when the queue is full; the sink is then not called.
  virtual Status Submit(std::shared_ptr<GenerationJob> job) = 0;
  virtual SchedulerStats stats() const = 0;
  virtual int32_t slot_context() const = 0;
  virtual int32_t vocab_size() const = 0;
};

class Scheduler final : public GenerationEngine {
 public:
  // `model` and `tokenizer` are not owned and must outlive the scheduler.
  static Result<std::unique_ptr<Scheduler>> Create(const Model& model, const text::Tokenizer& tokenizer,
                                                   const SchedulerOptions& options);
  ~Scheduler() override;  // fails queued and active jobs, joins the thread

  Status Submit(std::shared_ptr<GenerationJob> job) override;
  SchedulerStats stats() const override;
  int32_t slot_context() const override { return options_.slot_context; }
  int32_t vocab_size() const override { return vocab_size_; }

 private:
  struct Slot;
  Scheduler(const Model& model, const text::Tokenizer& tokenizer, const SchedulerOptions& options);
  void Loop();
  void Admit();
  void Finish(Slot& s, const std::string& reason, Status status);

  const Model& model_;
  const text::Tokenizer& tokenizer_;
  SchedulerOptions options_;
  std::unique_ptr<Context> ctx_;
  int32_t vocab_size_ = 0;
  std::vector<std::unique_ptr<Slot>> slots_;
  Batch batch_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<GenerationJob>> queue_;
  bool stop_ = false;
  SchedulerStats stats_;
  std::thread thread_;
};

}  // namespace tracemark::serve
