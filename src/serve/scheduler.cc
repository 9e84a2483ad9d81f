// Continuous-batching scheduler: see include/tracemark/serve/scheduler.h.
#include "tracemark/serve/scheduler.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <vector>

#include "tracemark/model/stop.h"

namespace tracemark::serve {

struct Scheduler::Slot {
  int32_t index = 0;
  std::shared_ptr<GenerationJob> job;  // null when free
  std::unique_ptr<Sampler> sampler;
  std::optional<StopMatcher> stop;
  std::unique_ptr<text::StreamDecoder> decoder;
  std::vector<int32_t> tokens;  // prompt + generated: the sampler's context
  int32_t prompt_len = 0;
  int32_t prefilled = 0;        // prompt tokens already in the KV cache
  int32_t generated = 0;
  int32_t pending = -1;         // sampled token not yet decoded
  int32_t row = -1;             // batch row with logits this step
  std::string out;              // scratch for emitted text
};

Scheduler::Scheduler(const Model& model, const text::Tokenizer& tokenizer, const SchedulerOptions& options)
    : model_(model), tokenizer_(tokenizer), options_(options) {}

Result<std::unique_ptr<Scheduler>> Scheduler::Create(const Model& model, const text::Tokenizer& tokenizer,
                                                     const SchedulerOptions& options) {
  if (options.slots < 1 || options.slots > kMaxSequences) {
    return InvalidArgument("slots must be between 1 and " + std::to_string(kMaxSequences));
  }
  std::unique_ptr<Scheduler> s(new Scheduler(model, tokenizer, options));
  ContextOptions copt;
  copt.n_ctx = options.slot_context;
  copt.n_seq = options.slots;
  copt.max_batch = std::max(options.max_batch, options.slots);
  copt.max_outputs = options.slots;
  copt.n_threads = options.threads;
  copt.profile = options.profile;
  TM_ASSIGN_OR_RETURN(s->ctx_, Context::Create(model, copt));
  s->options_.slot_context = s->ctx_->n_ctx();  // clamped to the model's context length
  s->options_.max_batch = copt.max_batch;
  s->vocab_size_ = static_cast<int32_t>(s->ctx_->Logits(0).size());
  for (int32_t i = 0; i < options.slots; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->index = i;
    s->slots_.push_back(std::move(slot));
  }
  s->thread_ = std::thread([p = s.get()] { p->Loop(); });
  return s;
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& job : queue_) {
    GenerationEvent e;
    e.done = true;
    e.status = Internal("server is shutting down");
    job->sink(std::move(e));
  }
  for (auto& s : slots_) {
    if (s->job) Finish(*s, "stop", Internal("server is shutting down"));
  }
}

Status Scheduler::Submit(std::shared_ptr<GenerationJob> job) {
  if (job->prompt.empty()) return InvalidArgument("empty prompt");
  if (static_cast<int64_t>(job->prompt.size()) + job->max_tokens > options_.slot_context) {
    return InvalidArgument("prompt plus max_tokens exceeds the context of " +
                           std::to_string(options_.slot_context) + " tokens");
  }
  for (int32_t t : job->prompt) {
    if (t < 0 || t >= vocab_size_) return InvalidArgument("token id " + std::to_string(t) + " is out of range");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return Internal("server is shutting down");
    if (queue_.size() >= options_.max_queued) {
      return ResourceExhausted("the server is at capacity; retry later");
    }
    queue_.push_back(std::move(job));
    stats_.queued = static_cast<int64_t>(queue_.size());
  }
  cv_.notify_one();
  return Status::Ok();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Scheduler::Finish(Slot& s, const std::string& reason, Status status) {
  if (!status.ok()) s.out.clear();
  if (status.ok() && !s.job->cancelled.load(std::memory_order_relaxed)) {
    s.out.clear();
    if (s.decoder) s.out += s.decoder->Flush();
    if (s.stop && !s.stop->stopped()) {
      std::string held;
      s.stop->Feed(s.out, &held);
      s.stop->Flush(&held);
      s.out.swap(held);
    }
  }
  GenerationEvent e;
  e.text = s.out;
  e.done = true;
  e.finish_reason = reason;
  e.prompt_tokens = s.prompt_len;
  e.completion_tokens = s.generated;
  e.status = std::move(status);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.jobs_finished;
    --stats_.active;
  }
  s.job->sink(std::move(e));
  s.job.reset();
  s.sampler.reset();
  s.decoder.reset();
  s.stop.reset();
  s.tokens.clear();
  s.pending = -1;
  ctx_->ClearSeq(s.index);
}

void Scheduler::Admit() {
  for (auto& s : slots_) {
    if (s->job) continue;
    std::shared_ptr<GenerationJob> job;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      stats_.queued = static_cast<int64_t>(queue_.size());
      ++stats_.active;
    }
    s->job = std::move(job);
    ctx_->ClearSeq(s->index);
    s->tokens.assign(s->job->prompt.begin(), s->job->prompt.end());
    s->tokens.reserve(s->tokens.size() + s->job->max_tokens);
    s->prompt_len = static_cast<int32_t>(s->job->prompt.size());
    s->prefilled = 0;
    s->generated = 0;
    s->pending = -1;
    s->sampler = std::make_unique<Sampler>(s->job->sampling, vocab_size_, s->job->hook.get());
    s->decoder = std::make_unique<text::StreamDecoder>(tokenizer_);
    s->stop.reset();
    if (!s->job->stop.empty()) {
      Result<StopMatcher> m = StopMatcher::Create(s->job->stop);
      if (!m.ok()) {
        Finish(*s, "stop", m.status());
        continue;
      }
      s->stop.emplace(std::move(m).value());
    }
  }
}

void Scheduler::Loop() {
  // Slots that sample this step and their tokens; sized once, no allocation per step.
  std::vector<Slot*> sampling;
  std::vector<int32_t> sampled(slots_.size(), -1);
  sampling.reserve(slots_.size());
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        if (stop_ || !queue_.empty()) return true;
        for (const auto& s : slots_) {
          if (s->job) return true;
        }
        return false;
      });
      if (stop_) return;
    }
    Admit();
    // Drop cancelled jobs before spending compute on them.
    for (auto& s : slots_) {
      if (s->job && s->job->cancelled.load(std::memory_order_relaxed)) {
        Finish(*s, "stop", Status(StatusCode::kInternal, "cancelled"));
      }
    }
    batch_.Clear();
    int32_t budget = options_.max_batch;
    for (auto& s : slots_) {
      s->row = -1;
      if (!s->job || s->pending < 0) continue;
      s->row = batch_.size();
      batch_.Add(s->pending, ctx_->seq_length(s->index), s->index, true);
      --budget;
    }
    for (auto& s : slots_) {
      if (!s->job || s->prefilled >= s->prompt_len || budget <= 0) continue;
      const int32_t n = std::min(budget, s->prompt_len - s->prefilled);
      const int32_t start = ctx_->seq_length(s->index);
      for (int32_t k = 0; k < n; ++k) {
        const bool last = s->prefilled + k + 1 == s->prompt_len;
        if (last) s->row = batch_.size();
        batch_.Add(s->tokens[s->prefilled + k], start + k, s->index, last);
      }
      s->prefilled += n;
      budget -= n;
    }
    if (batch_.size() == 0) continue;
    Status st = ctx_->Decode(batch_);
    const auto sample_start = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.decode_steps;
      stats_.batch_rows += static_cast<uint64_t>(batch_.size());
      if (options_.profile) stats_.decode = ctx_->profile();
    }
    // Pass 1: which slots sample. Pass 2: their samplers (each with its own hook, RNG and
    // logits row) run in parallel on the context's pool, idle between decode steps. Pass 3, in
    // slot order as before: stop checks, detokenizing and the sinks. The tokens do not depend
    // on the thread count or the order the samplers ran in.
    sampling.clear();
    for (auto& s : slots_) {
      if (!s->job) continue;
      const bool in_batch = std::find(batch_.seq.begin(), batch_.seq.end(), s->index) != batch_.seq.end();
      if (!in_batch) continue;
      if (!st.ok()) {
        Finish(*s, "stop", st);
        continue;
      }
      if (s->pending >= 0) s->pending = -1;  // decoded now
      if (s->row < 0) continue;              // prompt chunk without logits yet
      if (ctx_->OutputOf(s->row) < 0) {
        Finish(*s, "stop", Internal("engine returned no logits for an active sequence"));
        continue;
      }
      sampling.push_back(s.get());
    }
    auto sample_task = [&](int64_t i, int) {
      Slot& s = *sampling[static_cast<size_t>(i)];
      sampled[static_cast<size_t>(s.index)] =
          s.sampler->Sample(ctx_->Logits(ctx_->OutputOf(s.row)), s.tokens);
    };
    // std::ref: no std::function allocation per dispatch.
    ctx_->pool().Run(static_cast<int64_t>(sampling.size()), std::ref(sample_task));
    for (Slot* s : sampling) {
      const int32_t tok = sampled[static_cast<size_t>(s->index)];
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.sampled_tokens;
        if (s->generated == 0) stats_.prompt_tokens += static_cast<uint64_t>(s->prompt_len);
      }
      if (tokenizer_.IsEog(tok)) {
        Finish(*s, "stop", Status::Ok());
        continue;
      }
      s->tokens.push_back(tok);
      ++s->generated;
      const std::string piece = s->decoder->Push(tok);
      s->out.clear();
      bool stopped = false;
      if (s->stop) {
        stopped = s->stop->Feed(piece, &s->out);
      } else {
        s->out = piece;
      }
      if (stopped) {
        GenerationEvent e;
        e.text = s->out;
        if (!e.text.empty()) s->job->sink(std::move(e));
        s->out.clear();
        s->decoder.reset();  // nothing after the stop string is emitted
        Finish(*s, "stop", Status::Ok());
        continue;
      }
      if (s->generated >= s->job->max_tokens) {
        GenerationEvent e;
        e.text = s->out;
        if (!e.text.empty()) s->job->sink(std::move(e));
        Finish(*s, "length", Status::Ok());
        continue;
      }
      if (!s->out.empty()) {
        GenerationEvent e;
        e.text = s->out;
        s->job->sink(std::move(e));
      }
      s->pending = tok;
    }
    if (options_.profile) {
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sample_start).count();
      std::lock_guard<std::mutex> lock(mu_);
      stats_.sample_ms += ms;
    }
  }
}

}  // namespace tracemark::serve
