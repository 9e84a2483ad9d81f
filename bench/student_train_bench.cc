// Student trainer speed: training tokens per second (forward + backward + AdamW) of the
// test-sized student over the full 49,152-token SmolLM2 vocabulary, with 1 and 2 threads, and
// the share of a step spent in the output head. Random token windows (speed does not depend on
// the data): once with all 49,152 tokens in the head, once with the head restricted to 6,000
// tokens (about what a few hundred KB of English uses; TrainOptions::restrict_vocabulary).
// Usage: student_train_bench [STEPS] [D_MODEL] [CONTEXT] [BATCH]
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "redteam/train/rng.h"
#include "tracemark/redteam/train.h"

int main(int argc, char** argv) {
  namespace rt = tracemark::redteam;
  const int steps = argc > 1 ? std::stoi(argv[1]) : 10;
  rt::StudentConfig c;
  c.n_vocab = 49152;
  c.d_model = argc > 2 ? std::stoi(argv[2]) : rt::kDefaultStudentDModel;
  c.n_ctx = argc > 3 ? std::stoi(argv[3]) : rt::kDefaultStudentContext;
  const int batch = argc > 4 ? std::stoi(argv[4]) : 8;
  constexpr int kRestrictedVocab = 6000;
  rt::TrainData data;
  rt::SplitMix64 rng(1);
  for (int i = 0; i < 64; ++i) {
    std::vector<int32_t> w(static_cast<size_t>(c.n_ctx) + 1);
    for (auto& t : w) t = static_cast<int32_t>(rng.Below(kRestrictedVocab)) * (c.n_vocab / kRestrictedVocab);
    data.windows.push_back(std::move(w));
  }
  std::printf("student d_model %d layers %d heads %d context %d vocab %d, batch %d, %d steps\n", c.d_model, c.n_layer,
              c.n_head, c.n_ctx, c.n_vocab, batch, steps);
  for (int run = 0; run < 4; ++run) {
    const int threads = 1 + run % 2;
    const bool restrict = run >= 2;
    auto m = rt::StudentModel::Create(c, 1);
    if (!m.ok()) {
      std::fprintf(stderr, "%s\n", m.status().message().c_str());
      return 1;
    }
    rt::TrainOptions o;
    o.steps = steps;
    o.batch = batch;
    o.threads = threads;
    o.restrict_vocabulary = restrict;
    auto r = rt::Train(&*m, data, o);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().message().c_str());
      return 1;
    }
    std::printf("head over %5d tokens, threads %d: %.0f tokens/s (%lld tokens in %.2f s, %.3f s/step)\n", r->active_vocabulary, threads,
                r->tokens_per_second,
                static_cast<long long>(r->tokens_seen), r->seconds, r->seconds / steps);
  }
  return 0;
}
