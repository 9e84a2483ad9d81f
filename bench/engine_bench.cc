// Engine speed: prefill of N tokens in one batch and token-by-token decode, like llama-bench's
// pp512 / tg128 (forward passes only; decode picks the argmax so the sequence is realistic).
// Prints one JSON object per run; scripts/bench.sh runs it next to tools/bench_llamacpp.py.
//
//   engine_bench --model GGUF [--threads 2] [--prefill 512] [--decode 128] [--reps 3] [--kv f16|f32]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "tracemark/model/context.h"
#include "tracemark/model/model.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Resident set size and its peak, in MiB, from /proc/self/status.
void Rss(double* rss, double* hwm) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) *rss = std::atof(line.c_str() + 6) / 1024.0;
    if (line.rfind("VmHWM:", 0) == 0) *hwm = std::atof(line.c_str() + 6) / 1024.0;
  }
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path;
  int threads = 2, n_prefill = 512, n_decode = 128, reps = 3;
  tracemark::KvType kv = tracemark::KvType::kF16;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "engine_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") model_path = next();
    else if (a == "--threads") threads = std::atoi(next());
    else if (a == "--prefill") n_prefill = std::atoi(next());
    else if (a == "--decode") n_decode = std::atoi(next());
    else if (a == "--reps") reps = std::max(1, std::atoi(next()));
    else if (a == "--kv") kv = std::strcmp(next(), "f32") == 0 ? tracemark::KvType::kF32 : tracemark::KvType::kF16;
    else {
      std::fprintf(stderr, "engine_bench: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (model_path.empty()) {
    std::fprintf(stderr, "engine_bench: --model GGUF is required\n");
    return 2;
  }
  auto model = tracemark::Model::Load(model_path);
  if (!model.ok()) {
    std::fprintf(stderr, "engine_bench: %s\n", model.status().message().c_str());
    return 1;
  }
  tracemark::ContextOptions opt;
  opt.n_ctx = n_prefill + n_decode + 16;
  opt.max_batch = std::max(n_prefill, 1);
  opt.n_threads = threads;
  opt.kv_type = kv;
  opt.profile = true;
  auto ctx_r = tracemark::Context::Create(**model, opt);
  if (!ctx_r.ok()) {
    std::fprintf(stderr, "engine_bench: %s\n", ctx_r.status().message().c_str());
    return 1;
  }
  tracemark::Context& ctx = **ctx_r;
  const int32_t n_vocab = (*model)->config().n_vocab;
  std::mt19937 rng(1234);
  tracemark::Batch batch;

  // Warm-up (pages the weights in).
  batch.Add(1, 0, 0, true);
  if (!ctx.Decode(batch).ok()) return 1;
  ctx.ResetProfile();

  std::vector<double> pp, tg;
  for (int r = 0; r < reps; ++r) {
    ctx.ClearSeq(0);
    batch.Clear();
    for (int i = 0; i < n_prefill; ++i) batch.Add(static_cast<int32_t>(rng() % n_vocab), i, 0, i + 1 == n_prefill);
    auto t0 = Clock::now();
    if (n_prefill > 0 && !ctx.Decode(batch).ok()) return 1;
    auto t1 = Clock::now();
    if (n_prefill > 0) pp.push_back(n_prefill / Seconds(t0, t1));
    const tracemark::DecodeProfile pre = ctx.profile();
    ctx.ResetProfile();

    ctx.ClearSeq(0);
    int32_t tok = 1;
    double decode_s = 0;
    for (int i = 0; i < n_decode; ++i) {
      batch.Clear();
      batch.Add(tok, i, 0, true);
      auto a = Clock::now();
      if (!ctx.Decode(batch).ok()) return 1;
      auto b = Clock::now();
      decode_s += Seconds(a, b);
      std::span<float> l = ctx.Logits(0);
      tok = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
    }
    if (n_decode > 0) tg.push_back(n_decode / decode_s);
    const tracemark::DecodeProfile dec = ctx.profile();
    ctx.ResetProfile();
    std::fprintf(stderr,
                 "rep %d: prefill matmul %.1f ms, attention %.1f ms, other %.1f ms | decode per token: matmul "
                 "%.3f ms, attention %.3f ms, other %.3f ms\n",
                 r, pre.matmul_ms, pre.attention_ms, pre.other_ms, dec.matmul_ms / std::max(1, n_decode),
                 dec.attention_ms / std::max(1, n_decode), dec.other_ms / std::max(1, n_decode));
  }
  double rss = 0, hwm = 0;
  Rss(&rss, &hwm);
  std::printf(
      "{\"impl\":\"tracemark\",\"model\":\"%s\",\"threads\":%d,\"prefill_tokens\":%d,\"prefill_tok_s\":%.2f,"
      "\"decode_tokens\":%d,\"decode_tok_s\":%.2f,\"rss_mib\":%.1f,\"peak_rss_mib\":%.1f,\"file_mib\":%.1f,"
      "\"kv_mib\":%.1f}\n",
      model_path.c_str(), threads, n_prefill, pp.empty() ? 0.0 : Median(pp), n_decode,
      tg.empty() ? 0.0 : Median(tg), rss, hwm, (*model)->file_size() / 1048576.0, ctx.kv_bytes() / 1048576.0);
  return 0;
}
