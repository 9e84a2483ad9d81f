// Fixed-latency fake engine: see include/tracemark/serve/mock_engine.h.
#include "tracemark/serve/mock_engine.h"

#include <sys/prctl.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <optional>

#include "tracemark/model/sampler.h"
#include "tracemark/model/stop.h"

namespace tracemark::serve {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::array<std::string_view, 4> kSpecials = {"<s>", "</s>", "<|im_start|>", "<|im_end|>"};
// The scripted reply, one byte per token, repeated as long as the reply runs.
constexpr std::string_view kScript = "The quick brown fox jumps over the lazy dog. ";
// Logit of every token but the scripted one: e^-30 ~ 1e-13 of the mass each.
constexpr float kOffLogit = -30.0f;
// Timer slack of the engine thread, so token deadlines are met within microseconds.
constexpr unsigned long kTimerSlackNs = 1000;

}  // namespace

// ---- MockTokenizer ----

std::vector<int32_t> MockTokenizer::Encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() + 1);
  if (add_special) out.push_back(kBos);
  size_t i = 0;
  while (i < text.size()) {
    bool matched = false;
    if (parse_special && text[i] == '<') {
      for (size_t k = 0; k < kSpecials.size(); ++k) {
        if (text.substr(i, kSpecials[k].size()) == kSpecials[k]) {
          out.push_back(kBos + static_cast<int32_t>(k));
          i += kSpecials[k].size();
          matched = true;
          break;
        }
      }
    }
    if (!matched) out.push_back(static_cast<uint8_t>(text[i++]));
  }
  return out;
}

std::string MockTokenizer::TokenBytes(int32_t id, bool skip_special) const {
  if (id >= 0 && id < 256) return std::string(1, static_cast<char>(id));
  if (id >= kBos && id < kVocab && !skip_special) return std::string(kSpecials[id - kBos]);
  return "";
}

text::TokenType MockTokenizer::type(int32_t id) const {
  if (id >= 0 && id < 256) return text::TokenType::kByte;
  if (id >= kBos && id < kVocab) return text::TokenType::kControl;
  return text::TokenType::kUndefined;
}

std::string_view MockTokenizer::piece(int32_t id) const {
  static const std::array<char, 256> kBytes = [] {
    std::array<char, 256> b{};
    for (int i = 0; i < 256; ++i) b[i] = static_cast<char>(i);
    return b;
  }();
  if (id >= 0 && id < 256) return std::string_view(&kBytes[id], 1);
  if (id >= kBos && id < kVocab) return kSpecials[id - kBos];
  return {};
}

int32_t MockTokenizer::Find(std::string_view p) const {
  if (p.size() == 1) return static_cast<uint8_t>(p[0]);
  for (size_t k = 0; k < kSpecials.size(); ++k) {
    if (p == kSpecials[k]) return kBos + static_cast<int32_t>(k);
  }
  return -1;
}

std::string_view MockChatTemplateSource() {
  return "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
         "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
}

// ---- MockEngine ----

struct MockEngine::Seq {
  std::shared_ptr<GenerationJob> job;
  Clock::time_point next;  // when the next token is due
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<text::StreamDecoder> decoder;
  std::optional<StopMatcher> stop;
  std::vector<int32_t> tokens;  // prompt + generated: the watermark's context
  int32_t prompt_len = 0;
  int32_t generated = 0;
  std::string out;
};

MockEngine::MockEngine(const text::Tokenizer& tokenizer, const MockEngineOptions& options)
    : tokenizer_(tokenizer), options_(options) {}

Result<std::unique_ptr<MockEngine>> MockEngine::Create(const text::Tokenizer& tokenizer,
                                                       const MockEngineOptions& options) {
  if (options.token_latency_us < 0 || options.token_latency_us > kMaxMockTokenLatencyUs) {
    return InvalidArgument("mock token latency must be in 0.." + std::to_string(kMaxMockTokenLatencyUs) + " us");
  }
  if (options.output_tokens < 1 || options.output_tokens > kMaxMockOutputTokens) {
    return InvalidArgument("mock output tokens must be in 1.." + std::to_string(kMaxMockOutputTokens));
  }
  if (options.context < 2) return InvalidArgument("mock context must be at least 2 tokens");
  if (options.max_jobs < 1) return InvalidArgument("mock max_jobs must be at least 1");
  std::unique_ptr<MockEngine> e(new MockEngine(tokenizer, options));
  for (char c : kScript) {
    const int32_t id = tokenizer.Find(std::string_view(&c, 1));
    if (id < 0) return InvalidArgument("the mock engine needs a byte-level tokenizer");
    e->script_.push_back(id);
  }
  e->logits_.assign(static_cast<size_t>(tokenizer.vocab_size()), kOffLogit);
  e->thread_ = std::thread([p = e.get()] { p->Loop(); });
  return e;
}

MockEngine::~MockEngine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status MockEngine::Submit(std::shared_ptr<GenerationJob> job) {
  if (job->prompt.empty()) return InvalidArgument("empty prompt");
  if (static_cast<int64_t>(job->prompt.size()) + job->max_tokens > options_.context) {
    return InvalidArgument("prompt plus max_tokens exceeds the context of " + std::to_string(options_.context) +
                           " tokens");
  }
  for (int32_t t : job->prompt) {
    if (t < 0 || t >= tokenizer_.vocab_size()) {
      return InvalidArgument("token id " + std::to_string(t) + " is out of range");
    }
  }
  auto s = std::make_unique<Seq>();
  s->next = Clock::now() + std::chrono::microseconds(options_.token_latency_us);
  s->job = std::move(job);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return Internal("server is shutting down");
    if (static_cast<size_t>(stats_.active + stats_.queued) >= options_.max_jobs) {
      return ResourceExhausted("the server is at capacity; retry later");
    }
    incoming_.push_back(std::move(s));
    ++stats_.queued;
  }
  cv_.notify_one();
  return Status::Ok();
}

SchedulerStats MockEngine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void MockEngine::Finish(Seq& s, const char* reason, Status status) {
  if (status.ok() && !s.job->cancelled.load(std::memory_order_relaxed)) {
    s.out = s.decoder->Flush();
    if (s.stop && !s.stop->stopped()) {
      std::string held;
      s.stop->Feed(s.out, &held);
      s.stop->Flush(&held);
      s.out.swap(held);
    }
  } else {
    s.out.clear();
  }
  GenerationEvent e;
  e.text = std::move(s.out);
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
}

bool MockEngine::Step(Seq& s) {
  if (s.job->cancelled.load(std::memory_order_relaxed)) {
    Finish(s, "stop", Status(StatusCode::kInternal, "cancelled"));
    return false;
  }
  const int32_t target = script_[static_cast<size_t>(s.generated) % script_.size()];
  logits_[static_cast<size_t>(target)] = 0.0f;
  const int32_t tok = s.sampler->Sample(logits_, s.tokens);
  std::fill(logits_.begin(), logits_.end(), kOffLogit);  // the hook may have changed any logit
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.decode_steps;
    ++stats_.batch_rows;
    ++stats_.sampled_tokens;
    if (s.generated == 0) stats_.prompt_tokens += static_cast<uint64_t>(s.prompt_len);
  }
  if (tokenizer_.IsEog(tok)) {
    Finish(s, "stop", Status::Ok());
    return false;
  }
  s.tokens.push_back(tok);
  ++s.generated;
  const std::string piece = s.decoder->Push(tok);
  s.out.clear();
  bool stopped = false;
  if (s.stop) {
    stopped = s.stop->Feed(piece, &s.out);
  } else {
    s.out = piece;
  }
  const bool at_max = s.generated >= s.job->max_tokens;
  if (stopped || at_max || s.generated >= options_.output_tokens) {
    if (!s.out.empty()) {
      GenerationEvent e;
      e.text = std::move(s.out);
      s.job->sink(std::move(e));
    }
    if (stopped) s.decoder = std::make_unique<text::StreamDecoder>(tokenizer_);  // nothing after the stop string
    Finish(s, at_max && !stopped ? "length" : "stop", Status::Ok());
    return false;
  }
  if (!s.out.empty()) {
    GenerationEvent e;
    e.text = s.out;
    s.job->sink(std::move(e));
  }
  return true;
}

void MockEngine::Loop() {
  prctl(PR_SET_TIMERSLACK, kTimerSlackNs, 0, 0, 0);
  const auto latency = std::chrono::microseconds(options_.token_latency_us);
  // Min-heap on the due time.
  auto later = [](const std::unique_ptr<Seq>& a, const std::unique_ptr<Seq>& b) { return a->next > b->next; };
  std::vector<std::unique_ptr<Seq>> heap;
  std::vector<std::unique_ptr<Seq>> fresh;
  bool stopping = false;
  while (!stopping) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      for (;;) {
        if (stop_) {
          stopping = true;
          break;
        }
        if (!incoming_.empty()) break;
        if (!heap.empty() && heap.front()->next <= Clock::now()) break;
        if (heap.empty()) {
          cv_.wait(lock);
        } else {
          cv_.wait_until(lock, heap.front()->next);
        }
      }
      fresh.swap(incoming_);
      stats_.queued -= static_cast<int64_t>(fresh.size());
      stats_.active += static_cast<int64_t>(fresh.size());
    }
    for (auto& s : fresh) {
      s->prompt_len = static_cast<int32_t>(s->job->prompt.size());
      s->tokens.reserve(s->job->prompt.size() + static_cast<size_t>(options_.output_tokens));
      s->tokens.assign(s->job->prompt.begin(), s->job->prompt.end());
      s->sampler = std::make_unique<Sampler>(s->job->sampling, tokenizer_.vocab_size(), s->job->hook.get());
      s->decoder = std::make_unique<text::StreamDecoder>(tokenizer_);
      if (!s->job->stop.empty()) {
        Result<StopMatcher> m = StopMatcher::Create(s->job->stop);
        if (!m.ok()) {
          Finish(*s, "stop", m.status());
          continue;
        }
        s->stop.emplace(std::move(m).value());
      }
      heap.push_back(std::move(s));
      std::push_heap(heap.begin(), heap.end(), later);
    }
    fresh.clear();
    if (stopping) break;
    const Clock::time_point now = Clock::now();
    while (!heap.empty() && heap.front()->next <= now) {
      std::pop_heap(heap.begin(), heap.end(), later);
      std::unique_ptr<Seq> s = std::move(heap.back());
      heap.pop_back();
      if (Step(*s)) {
        s->next += latency;
        heap.push_back(std::move(s));
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
  }
  for (auto& s : heap) Finish(*s, "stop", Internal("server is shutting down"));
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& s : incoming_) {
    GenerationEvent e;
    e.done = true;
    e.status = Internal("server is shutting down");
    s->job->sink(std::move(e));
  }
  incoming_.clear();
}

}  // namespace tracemark::serve
