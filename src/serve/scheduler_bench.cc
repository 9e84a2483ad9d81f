// Aggregate decode throughput of the continuous-batching scheduler without HTTP: one job alone
// vs N concurrent jobs. Usage:
//   tm_scheduler_bench MODEL.gguf [N=8] [MAX_TOKENS=64] [THREADS=2] [ROUNDS=2]
//
// Every job generates exactly MAX_TOKENS tokens: a hook masks the end-of-generation tokens, so
// 1 and N streams do the same work per stream whatever the sampled text is (with EOS allowed, a
// stream that stops early makes the two runs incomparable). Per run it prints
//  - tokens_per_second: all tokens / wall time from the first Submit to the last token
//    (prefill included), and
//  - decode_tokens_per_second: tokens sampled after every stream has its first token, over the
//    time from that moment to the last token (prefill excluded: what batched decode does);
//  - tokens_per_cpu_second: all tokens / CPU time of the process (with THREADS=1 the work per
//    token, the figure that a machine shared with other jobs disturbs least; with more threads
//    it counts the pool's spin-waits too).
// The ratio lines divide the N-stream figures by the 1-stream ones of the same round.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <sys/resource.h>

#include "tracemark/serve/scheduler.h"

namespace {

using Clock = std::chrono::steady_clock;

// Masks the end-of-generation tokens and records when each token was accepted.
class BenchHook : public tracemark::SamplerHook {
 public:
  BenchHook(const std::vector<int32_t>* eog, size_t max_tokens) : eog_(eog) { times_.reserve(max_tokens); }
  void ProcessLogits(std::span<float> logits, std::span<const int32_t>) override {
    for (int32_t id : *eog_) logits[static_cast<size_t>(id)] = -std::numeric_limits<float>::infinity();
  }
  void Accept(int32_t) override { times_.push_back(Clock::now()); }
  const std::vector<Clock::time_point>& times() const { return times_; }

 private:
  const std::vector<int32_t>* eog_;
  std::vector<Clock::time_point> times_;
};

double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

struct RunResult {
  int64_t tokens = 0;
  double seconds = 0;
  double cpu_seconds = 0;
  int64_t decode_tokens = 0;
  double decode_seconds = 0;
};

RunResult Run(tracemark::serve::Scheduler& s, const tracemark::text::Tokenizer& tok,
              const std::vector<int32_t>& eog, int n, int max_tokens) {
  std::vector<std::shared_ptr<std::promise<int>>> done;
  // Held until the end so the hooks can be read after the scheduler has let go of the jobs.
  std::vector<std::shared_ptr<tracemark::serve::GenerationJob>> jobs;
  std::vector<const BenchHook*> hooks;
  const auto t0 = Clock::now();
  const double cpu0 = ProcessCpuSeconds();
  for (int i = 0; i < n; ++i) {
    auto p = std::make_shared<std::promise<int>>();
    done.push_back(p);
    auto job = std::make_shared<tracemark::serve::GenerationJob>();
    job->prompt = tok.Encode("Story " + std::to_string(i) + ": Once upon a time, in a land far away,", true, false);
    job->max_tokens = max_tokens;
    job->sampling.temperature = 1.0f;
    job->sampling.seed = static_cast<uint64_t>(i + 1);
    auto hook = std::make_unique<BenchHook>(&eog, static_cast<size_t>(max_tokens));
    hooks.push_back(hook.get());
    job->hook = std::move(hook);
    job->sink = [p](tracemark::serve::GenerationEvent e) {
      if (e.done) p->set_value(e.status.ok() ? e.completion_tokens : -1);
    };
    jobs.push_back(job);
    if (!s.Submit(job).ok()) std::abort();
  }
  RunResult r;
  for (auto& p : done) {
    const int got = p->get_future().get();
    if (got < 0) std::abort();
    r.tokens += got;
  }
  const auto t_end = Clock::now();
  r.cpu_seconds = ProcessCpuSeconds() - cpu0;
  r.seconds = std::chrono::duration<double>(t_end - t0).count();
  // Decode phase: from the moment the last stream got its first token.
  Clock::time_point decode_start = t0, last = t0;
  for (const BenchHook* h : hooks) {
    if (h->times().empty()) std::abort();
    decode_start = std::max(decode_start, h->times().front());
    last = std::max(last, h->times().back());
  }
  for (const BenchHook* h : hooks) {
    for (const auto& t : h->times()) r.decode_tokens += t > decode_start ? 1 : 0;
  }
  r.decode_seconds = std::chrono::duration<double>(last - decode_start).count();
  return r;
}

void PrintPhase(const char* label, const tracemark::serve::SchedulerStats& a,
                const tracemark::serve::SchedulerStats& b) {
  const double steps = static_cast<double>(b.decode_steps - a.decode_steps);
  std::printf("{\"phase_ms_per_step\":\"%s\",\"steps\":%.0f,\"matmul\":%.3f,\"attention\":%.3f,"
              "\"other\":%.3f,\"sample_emit\":%.3f}\n",
              label, steps, (b.decode.matmul_ms - a.decode.matmul_ms) / steps,
              (b.decode.attention_ms - a.decode.attention_ms) / steps,
              (b.decode.other_ms - a.decode.other_ms) / steps, (b.sample_ms - a.sample_ms) / steps);
}

void PrintRun(int streams, const RunResult& r) {
  std::printf("{\"streams\":%d,\"tokens\":%lld,\"seconds\":%.3f,\"tokens_per_second\":%.1f,"
              "\"decode_tokens\":%lld,\"decode_seconds\":%.3f,\"decode_tokens_per_second\":%.1f,"
              "\"cpu_seconds\":%.3f,\"tokens_per_cpu_second\":%.1f}\n",
              streams, static_cast<long long>(r.tokens), r.seconds, r.tokens / r.seconds,
              static_cast<long long>(r.decode_tokens), r.decode_seconds,
              r.decode_tokens / r.decode_seconds, r.cpu_seconds, r.tokens / r.cpu_seconds);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf [N] [MAX_TOKENS] [THREADS] [ROUNDS]\n", argv[0]);
    return 2;
  }
  const int n = argc > 2 ? std::atoi(argv[2]) : 8;
  const int max_tokens = argc > 3 ? std::atoi(argv[3]) : 64;
  const int rounds = argc > 5 ? std::max(1, std::atoi(argv[5])) : 2;
  if (n < 1 || max_tokens < 2) {
    std::fprintf(stderr, "N must be >= 1 and MAX_TOKENS >= 2\n");
    return 2;
  }
  auto model = tracemark::Model::Load(argv[1]);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  auto tok = tracemark::text::Tokenizer::FromGguf((*model)->file());
  if (!tok.ok()) return 1;
  std::vector<int32_t> eog;
  for (int32_t id = 0; id < (*tok)->vocab_size(); ++id) {
    if ((*tok)->IsEog(id)) eog.push_back(id);
  }
  tracemark::serve::SchedulerOptions opt;
  opt.slots = n;
  opt.slot_context = 256;
  opt.threads = argc > 4 ? std::atoi(argv[4]) : 2;
  opt.profile = true;
  auto s = tracemark::serve::Scheduler::Create(**model, **tok, opt);
  if (!s.ok()) return 1;
  Run(**s, **tok, eog, 1, 8);  // warm-up
  for (int rep = 0; rep < rounds; ++rep) {
    const tracemark::serve::SchedulerStats s0 = (*s)->stats();
    const RunResult one = Run(**s, **tok, eog, 1, max_tokens);
    const tracemark::serve::SchedulerStats s1 = (*s)->stats();
    PrintPhase("1 stream", s0, s1);
    PrintRun(1, one);
    const RunResult many = Run(**s, **tok, eog, n, max_tokens);
    PrintPhase("n streams", s1, (*s)->stats());
    PrintRun(n, many);
    std::printf("{\"round\":%d,\"ratio_total\":%.2f,\"ratio_decode\":%.2f,\"ratio_cpu\":%.2f}\n", rep,
                (many.tokens / many.seconds) / (one.tokens / one.seconds),
                (many.decode_tokens / many.decode_seconds) / (one.decode_tokens / one.decode_seconds),
                (many.tokens / many.cpu_seconds) / (one.tokens / one.cpu_seconds));
    std::fflush(stdout);
  }
  return 0;
}
