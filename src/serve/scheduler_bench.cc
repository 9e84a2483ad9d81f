// Aggregate decode throughput of the continuous-batching scheduler without HTTP: one job alone
// vs N concurrent jobs. Usage: tm_scheduler_bench MODEL.gguf [N=8] [MAX_TOKENS=64] [THREADS=2]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>

#include "tracemark/serve/scheduler.h"

using namespace std::chrono;  // NOLINT: a small benchmark program

namespace {

double Run(tracemark::serve::Scheduler& s, const tracemark::text::Tokenizer& tok, int n, int max_tokens,
           int64_t* tokens) {
  std::vector<std::shared_ptr<std::promise<int>>> done;
  const auto t0 = steady_clock::now();
  for (int i = 0; i < n; ++i) {
    auto p = std::make_shared<std::promise<int>>();
    done.push_back(p);
    auto job = std::make_shared<tracemark::serve::GenerationJob>();
    job->prompt = tok.Encode("Story " + std::to_string(i) + ": Once upon a time, in a land far away,", true, false);
    job->max_tokens = max_tokens;
    job->sampling.temperature = 1.0f;
    job->sampling.seed = static_cast<uint64_t>(i + 1);
    job->sink = [p](tracemark::serve::GenerationEvent e) {
      if (e.done) p->set_value(e.completion_tokens);
    };
    if (!s.Submit(job).ok()) std::abort();
  }
  *tokens = 0;
  for (auto& p : done) *tokens += p->get_future().get();
  return duration<double>(steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf [N] [MAX_TOKENS] [THREADS]\n", argv[0]);
    return 2;
  }
  const int n = argc > 2 ? std::atoi(argv[2]) : 8;
  const int max_tokens = argc > 3 ? std::atoi(argv[3]) : 64;
  auto model = tracemark::Model::Load(argv[1]);
  if (!model.ok()) return 1;
  auto tok = tracemark::text::Tokenizer::FromGguf((*model)->file());
  if (!tok.ok()) return 1;
  tracemark::serve::SchedulerOptions opt;
  opt.slots = n;
  opt.slot_context = 256;
  opt.threads = argc > 4 ? std::atoi(argv[4]) : 2;
  opt.profile = true;
  auto s = tracemark::serve::Scheduler::Create(**model, **tok, opt);
  if (!s.ok()) return 1;
  int64_t tokens = 0;
  Run(**s, **tok, 1, 8, &tokens);  // warm-up
  for (int rep = 0; rep < 2; ++rep) {
    auto phase = [&](const char* label, const tracemark::serve::SchedulerStats& a,
                     const tracemark::serve::SchedulerStats& b) {
      const double steps = static_cast<double>(b.decode_steps - a.decode_steps);
      std::printf("{\"phase_ms_per_step\":\"%s\",\"steps\":%.0f,\"matmul\":%.3f,\"attention\":%.3f,"
                  "\"other\":%.3f,\"sample_emit\":%.3f}\n",
                  label, steps, (b.decode.matmul_ms - a.decode.matmul_ms) / steps,
                  (b.decode.attention_ms - a.decode.attention_ms) / steps,
                  (b.decode.other_ms - a.decode.other_ms) / steps, (b.sample_ms - a.sample_ms) / steps);
    };
    const tracemark::serve::SchedulerStats s0 = (*s)->stats();
    const double t1 = Run(**s, **tok, 1, max_tokens, &tokens);
    const tracemark::serve::SchedulerStats s1 = (*s)->stats();
    phase("1 stream", s0, s1);
    std::printf("{\"streams\":1,\"tokens\":%lld,\"seconds\":%.3f,\"tokens_per_second\":%.1f}\n",
                static_cast<long long>(tokens), t1, tokens / t1);
    const double tn = Run(**s, **tok, n, max_tokens, &tokens);
    phase("n streams", s1, (*s)->stats());
    std::printf("{\"streams\":%d,\"tokens\":%lld,\"seconds\":%.3f,\"tokens_per_second\":%.1f}\n", n,
                static_cast<long long>(tokens), tn, tokens / tn);
  }
  return 0;
}
