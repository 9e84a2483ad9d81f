// Watermark measurements on synthetic next-token distributions (no model needed):
//   watermark_bench power        TPR at p < 1e-6 vs length, T = 0.7 / 1.0, per scheme
//   watermark_bench calibration  empirical FPR at 1e-2 / 1e-3 / 1e-4 on never-watermarked text
//   watermark_bench attribution  10^6-account attribution: correct / wrong / none vs length
//   watermark_bench speed        detection tokens/s/core; hook cost per token at vocab 49152
//   watermark_bench robustness   TPR after masking, truncation, deletion, substitution, mixing
//   watermark_bench quality      synthetic perplexity (NLL per token), watermarked vs plain
// Options: --trials N, --threads N, --docs N (calibration). Output: Markdown tables on stdout,
// pasted into docs/watermark.md. Deterministic for a given option set.
#include <algorithm>
#include <atomic>
#include <ctime>
#include <iterator>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tracemark/model/sampler.h"
#include "tracemark/watermark/detector.h"
#include "tracemark/watermark/hook.h"
#include "tracemark/watermark/keyring.h"
#include "watermark/synthetic.h"

namespace tmk = tracemark;
namespace wm = tracemark::watermark;

namespace {

constexpr int32_t kVocab = 49152;
const char* const kSchemes[] = {"gumbel", "kgw-lefthash", "kgw-selfhash", "synthid"};

struct Options {
  int trials = 100;
  int threads = 2;
  int docs = 20000;
  int64_t accounts = 1000000;
  std::string scheme;  // attribution: one scheme only (default gumbel and synthid)
};

wm::Keyring MakeKeyring(const std::string& spec, uint8_t fill) {
  std::vector<uint8_t> secret(32);
  for (size_t i = 0; i < secret.size(); ++i) secret[i] = static_cast<uint8_t>(fill * 31 + i * 7);
  auto r = wm::Keyring::FromSecret(secret, spec);
  if (!r.ok()) {
    std::fprintf(stderr, "keyring: %s\n", r.status().message().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

template <typename F>
void ParallelFor(int n, int threads, F&& f) {
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i; (i = next.fetch_add(1)) < n;) f(i, t);
    });
  }
  for (auto& th : pool) th.join();
}

// A fast synthetic step without the full-vocabulary sampler: Zipf over `support` random ids,
// candidates sorted by probability, the hook's Choose() (or a plain draw). Used where 10^5+
// sequences are needed (Gumbel and SynthID only: KGW needs full-vocabulary logits).
class FastLm {
 public:
  FastLm(uint64_t seed, float temperature, int support = 256)
      : rng_(seed), temperature_(temperature), ids_(support), logits_(support), probs_(support) {}
  void Generate(std::vector<int32_t>& tokens, int n, tmk::SamplerHook* hook, tmk::Rng& sample_rng) {
    for (int step = 0; step < n; ++step) {
      const double s = 1.0 + 2.0 * rng_.Uniform();
      double z = 0;
      for (size_t r = 0; r < ids_.size(); ++r) {
        ids_[r] = static_cast<int32_t>(rng_.Next() % kVocab);
        logits_[r] = static_cast<float>(-s * std::log(1.0 + r) / temperature_);
        z += std::exp(logits_[r]);
      }
      for (size_t r = 0; r < ids_.size(); ++r) probs_[r] = static_cast<float>(std::exp(logits_[r]) / z);
      tmk::TokenCandidates c{ids_, logits_, probs_};
      int32_t tok = hook ? hook->Choose(c, tokens, sample_rng) : -1;
      if (tok < 0) {
        const double u = sample_rng.Uniform();
        double acc = 0;
        tok = ids_.back();
        for (size_t r = 0; r < ids_.size(); ++r) {
          acc += probs_[r];
          if (u < acc) {
            tok = ids_[r];
            break;
          }
        }
      }
      if (hook) hook->Accept(tok);
      tokens.push_back(tok);
    }
  }

 private:
  tmk::Rng rng_;
  float temperature_;
  std::vector<int32_t> ids_;
  std::vector<float> logits_, probs_;
};

void Power(const Options& o) {
  const int lengths[] = {25, 50, 100, 200, 400};
  std::printf("## Power: TPR at p < 1e-6 (synthetic Zipf LM, vocab %d, %d sequences per cell)\n\n",
              kVocab, o.trials);
  std::printf("| scheme | T | mean entropy (nats) | 25 | 50 | 100 | 200 | 400 | attributed@400 (correct/wrong) |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (const char* spec : kSchemes) {
    const wm::Keyring ring = MakeKeyring(spec, 1);
    for (float temp : {0.7f, 1.0f}) {
      std::vector<std::array<int, 5>> hits(o.threads, std::array<int, 5>{});
      std::vector<double> entropy(o.threads, 0.0);
      std::vector<int> correct(o.threads, 0), wrong(o.threads, 0);
      ParallelFor(o.trials, o.threads, [&](int i, int t) {
        auto det = wm::Detector::Create(ring);
        tmk::watermark::sim::SyntheticLmOptions lo;
        lo.vocab_size = kVocab;
        lo.temperature = temp;
        tmk::watermark::sim::SyntheticLm lm(lo, 1000 + i);
        const uint64_t account = (0x9E3779B97F4A7C15ull * (i + 1)) % 1000000;
        auto hook = wm::MakeWatermarkHook(ring, account);
        std::vector<int32_t> tokens{11, 12, 13, 14};
        entropy[t] += lm.Generate(tokens, 400, hook->get(), 77 + i);
        const std::span<const int32_t> gen(tokens.data() + 4, 400);
        for (int li = 0; li < 5; ++li) {
          auto d = det->Detect(gen.first(lengths[li]), wm::DetectOptions{});
          hits[t][li] += d->watermarked;
          if (li == 4 && d->account) (*d->account == account ? correct : wrong)[t] += 1;
        }
      });
      std::array<int, 5> h{};
      double e = 0;
      int c = 0, w = 0;
      for (int t = 0; t < o.threads; ++t) {
        for (int li = 0; li < 5; ++li) h[li] += hits[t][li];
        e += entropy[t];
        c += correct[t];
        w += wrong[t];
      }
      std::printf("| %s | %.1f | %.2f |", spec, temp, e / o.trials);
      for (int li = 0; li < 5; ++li) std::printf(" %.2f |", static_cast<double>(h[li]) / o.trials);
      std::printf(" %d / %d |\n", c, w);
      std::fflush(stdout);
    }
  }
  std::printf("\n");
}

void Calibration(const Options& o) {
  std::printf("## Calibration: empirical FPR on never-watermarked 200-token sequences\n\n");
  std::printf("| scheme | key | input | FPR provider @1e-2 | @1e-3 | @1e-4 | FPR reported p @1e-2 | @1e-3 | @1e-4 | wrong accounts @1e-6 |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  for (const char* spec : kSchemes) {
    for (uint8_t key : {1, 2}) {
      const wm::Keyring ring = MakeKeyring(spec, key);
      for (int input = 0; input < 2; ++input) {
        const int docs = input == 0 ? o.docs : o.docs / 4;
        std::vector<std::array<int, 7>> counts(o.threads, std::array<int, 7>{});
        ParallelFor(docs, o.threads, [&](int i, int t) {
          thread_local std::vector<int32_t> tokens;
          tokens.clear();
          tmk::Rng rng(0x5eed0000ull + static_cast<uint64_t>(i) * 7919 + key);
          if (input == 0) {
            // Zipf ids over a 5000-word vocabulary, 200 tokens: human-like repetition.
            tmk::watermark::sim::ZipfTokens(tokens, 200, 5000, 1.1, rng);
          } else {
            FastLm lm(rng.Next(), 1.0f);
            tokens = {1, 2, 3, 4};
            lm.Generate(tokens, 200, nullptr, rng);
          }
          thread_local std::optional<wm::Detector> det;
          thread_local const wm::Keyring* det_ring = nullptr;
          if (det_ring != &ring) {
            det.emplace(std::move(wm::Detector::Create(ring)).value());
            det_ring = &ring;
          }
          auto d = det->Detect(tokens, wm::DetectOptions{});
          auto& c = counts[t];
          c[0] += d->provider_log10_p < -2;
          c[1] += d->provider_log10_p < -3;
          c[2] += d->provider_log10_p < -4;
          c[3] += d->log10_p_value < -2;
          c[4] += d->log10_p_value < -3;
          c[5] += d->log10_p_value < -4;
          c[6] += d->account.has_value();
        });
        std::array<int, 7> c{};
        for (auto& x : counts)
          for (int k = 0; k < 7; ++k) c[k] += x[k];
        std::printf("| %s | %d | %s x %d |", spec, key, input == 0 ? "Zipf ids" : "unmarked LM", docs);
        for (int k = 0; k < 6; ++k) std::printf(" %.2e |", static_cast<double>(c[k]) / docs);
        std::printf(" %d |\n", c[6]);
        std::fflush(stdout);
      }
    }
  }
  std::printf("\n");
}

void Attribution(const Options& o) {
  const int lengths[] = {100, 200, 400, 800};
  std::vector<std::string> specs = {"gumbel", "synthid"};
  if (!o.scheme.empty()) specs = {o.scheme};
  std::printf("## Attribution: %lld accounts, %d trials per length (FastLm, T=1.0, support 256)\n\n",
              static_cast<long long>(o.accounts), o.trials);
  std::printf("| scheme | tokens | watermarked | correct account | wrong account | none |\n|---|---|---|---|---|---|\n");
  for (const std::string& spec_s : specs) {
    const char* spec = spec_s.c_str();
    const wm::Keyring ring = MakeKeyring(spec, 3);
    for (int len : lengths) {
      std::vector<std::array<int, 4>> counts(o.threads, std::array<int, 4>{});
      ParallelFor(o.trials, o.threads, [&](int i, int t) {
        tmk::Rng rng(0xacc0000ull + static_cast<uint64_t>(i) * 104729 + len);
        const uint64_t account = rng.Next() % static_cast<uint64_t>(o.accounts);
        auto hook = wm::MakeWatermarkHook(ring, account);
        FastLm lm(rng.Next(), 1.0f);
        thread_local std::vector<int32_t> tokens;
        tokens = {5, 6, 7, 8};
        lm.Generate(tokens, len, hook->get(), rng);
        thread_local std::optional<wm::Detector> det;
        thread_local const wm::Keyring* det_ring = nullptr;
        if (det_ring != &ring) {
          det.emplace(std::move(wm::Detector::Create(ring)).value());
          det_ring = &ring;
        }
        auto d = det->Detect(std::span<const int32_t>(tokens).subspan(4), wm::DetectOptions{});
        auto& c = counts[t];
        c[0] += d->watermarked;
        if (!d->account) {
          c[3] += 1;
        } else if (*d->account == account) {
          c[1] += 1;
        } else {
          c[2] += 1;
        }
      });
      std::array<int, 4> c{};
      for (auto& x : counts)
        for (int k = 0; k < 4; ++k) c[k] += x[k];
      std::printf("| %s | %d | %.4f | %.4f | %d | %.4f |\n", spec, len, c[0] / double(o.trials),
                  c[1] / double(o.trials), c[2], c[3] / double(o.trials));
      std::fflush(stdout);
    }
  }
  std::printf("\n");
}

// Token-level attacks on 400-token watermarked outputs (T = 1.0): TPR at p < 1e-6 and the share
// attributed to the right account. Word-level edits are approximated by token edits (a deleted
// or substituted word touches one or more tokens; here exactly one).
void Robustness(const Options& o) {
  struct Attack {
    const char* name;
    int kind;  // 0 none, 1 mask, 2 truncate, 3 delete, 4 substitute, 5 mix
    double rate;
  };
  const Attack attacks[] = {{"none", 0, 0},        {"PII mask 10% (3-token spans)", 1, 0.10},
                            {"truncate to 50%", 2, 0.5}, {"delete 10%", 3, 0.10},
                            {"delete 20%", 3, 0.20}, {"delete 30%", 3, 0.30},
                            {"substitute 10%", 4, 0.10}, {"substitute 20%", 4, 0.20},
                            {"substitute 30%", 4, 0.30}, {"mixed: 10% of a 4000-token doc", 5, 0.10}};
  std::printf("## Robustness: 400-token outputs, T=1.0, %d per cell; TPR at p < 1e-6 (attributed)\n\n", o.trials);
  std::printf("| attack |");
  for (const char* spec : kSchemes) std::printf(" %s |", spec);
  std::printf("\n|---|");
  for (size_t i = 0; i < std::size(kSchemes); ++i) std::printf("---|");
  std::printf("\n");
  // Generate once per scheme, attack many ways.
  std::vector<std::vector<std::vector<int32_t>>> outputs(std::size(kSchemes));
  std::vector<std::vector<uint64_t>> accounts(std::size(kSchemes));
  std::vector<wm::Keyring> rings;
  for (size_t si = 0; si < std::size(kSchemes); ++si) rings.push_back(MakeKeyring(kSchemes[si], 5));
  for (size_t si = 0; si < std::size(kSchemes); ++si) {
    outputs[si].resize(o.trials);
    accounts[si].resize(o.trials);
    ParallelFor(o.trials, o.threads, [&](int i, int) {
      tmk::watermark::sim::SyntheticLmOptions lo;
      lo.vocab_size = kVocab;
      tmk::watermark::sim::SyntheticLm lm(lo, 5000 + i);
      const uint64_t account = (0x9E3779B97F4A7C15ull * (i + 7)) % 1000000;
      auto hook = wm::MakeWatermarkHook(rings[si], account);
      std::vector<int32_t> tokens{21, 22, 23, 24};
      lm.Generate(tokens, 400, hook->get(), 99 + i);
      outputs[si][i].assign(tokens.begin() + 4, tokens.end());
      accounts[si][i] = account;
    });
  }
  for (const Attack& a : attacks) {
    std::printf("| %s |", a.name);
    for (size_t si = 0; si < std::size(kSchemes); ++si) {
      std::vector<int> hit(o.threads, 0), attributed(o.threads, 0);
      ParallelFor(o.trials, o.threads, [&](int i, int t) {
        tmk::Rng rng(777 + i);
        const auto& src = outputs[si][i];
        std::vector<int32_t> doc;
        std::vector<uint8_t> mask;
        switch (a.kind) {
          case 0: doc = src; break;
          case 1:
            doc = src;
            mask.assign(doc.size(), 0);
            for (size_t k = 0; k + 3 <= doc.size(); k += 3) {
              if (rng.Uniform() < a.rate) {
                for (size_t q = 0; q < 3; ++q) {
                  doc[k + q] = 49000;  // the placeholder's token, masked
                  mask[k + q] = 1;
                }
              }
            }
            break;
          case 2: doc.assign(src.begin(), src.begin() + static_cast<ptrdiff_t>(src.size() * a.rate)); break;
          case 3:
            for (int32_t v : src) {
              if (rng.Uniform() >= a.rate) doc.push_back(v);
            }
            break;
          case 4:
            for (int32_t v : src) doc.push_back(rng.Uniform() < a.rate ? static_cast<int32_t>(rng.Next() % kVocab) : v);
            break;
          case 5: {
            tmk::watermark::sim::ZipfTokens(doc, 1800, 30000, 1.05, rng);
            doc.insert(doc.end(), src.begin(), src.end());
            tmk::watermark::sim::ZipfTokens(doc, 1800, 30000, 1.05, rng);
            break;
          }
        }
        auto det = wm::Detector::Create(rings[si]);
        wm::DetectOptions opt;
        opt.skip_mask = mask;
        auto d = det->Detect(doc, opt);
        hit[t] += d->watermarked;
        attributed[t] += d->account && *d->account == accounts[si][i];
      });
      int h = 0, at = 0;
      for (int t = 0; t < o.threads; ++t) {
        h += hit[t];
        at += attributed[t];
      }
      std::printf(" %.2f (%.2f) |", h / double(o.trials), at / double(o.trials));
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  std::printf("\n");
}

// Synthetic perplexity: mean NLL per token of the sampled tokens under the unwatermarked
// distribution, watermarked vs plain (same LM streams), T = 1.0 and 0.7, 200 tokens.
void Quality(const Options& o) {
  std::printf("## Quality: mean NLL (nats/token) of sampled tokens under the unwatermarked distribution, %d x 200 tokens\n\n", o.trials);
  std::printf("| scheme | T | plain | watermarked | difference (+- 2 s.e.) |\n|---|---|---|---|---|\n");
  for (const char* spec : kSchemes) {
    const wm::Keyring ring = MakeKeyring(spec, 6);
    for (float temp : {0.7f, 1.0f}) {
      std::vector<double> plain(o.trials), marked(o.trials);
      ParallelFor(o.trials, o.threads, [&](int i, int) {
        tmk::watermark::sim::SyntheticLmOptions lo;
        lo.vocab_size = kVocab;
        lo.temperature = temp;
        std::vector<int32_t> a{31, 32, 33, 34}, b{31, 32, 33, 34};
        tmk::watermark::sim::SyntheticLm la(lo, 9000 + i), lb(lo, 9000 + i);
        la.Generate(a, 200, nullptr, 5 + i, &plain[i]);
        auto hook = wm::MakeWatermarkHook(ring, 42);
        lb.Generate(b, 200, hook->get(), 5 + i, &marked[i]);
      });
      double mp = 0, mm = 0, md = 0, vd = 0;
      for (int i = 0; i < o.trials; ++i) {
        mp += plain[i];
        mm += marked[i];
        md += marked[i] - plain[i];
      }
      mp /= o.trials;
      mm /= o.trials;
      md /= o.trials;
      for (int i = 0; i < o.trials; ++i) vd += (marked[i] - plain[i] - md) * (marked[i] - plain[i] - md);
      const double se = std::sqrt(vd / (o.trials - 1) / o.trials);
      std::printf("| %s | %.1f | %.4f | %.4f | %+.4f +- %.4f |\n", spec, temp, mp, mm, md, 2 * se);
      std::fflush(stdout);
    }
  }
  std::printf("\n");
}

// Thread CPU time: the numbers stay meaningful on a shared, oversubscribed machine.
double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

void Speed(const Options&) {
  std::printf("## Speed (one thread, thread CPU time)\n\n| scheme | detect M tokens/s | hook us/token (full vocab %d) | hook us/token (top-k 40) |\n|---|---|---|---|\n", kVocab);
  // synthid-hf (transformers-compatible SynthID-Text) is timed here only: it has no account lanes.
  const char* const speed_schemes[] = {"gumbel", "kgw-lefthash", "kgw-selfhash", "synthid", "synthid-hf"};
  for (const char* spec : speed_schemes) {
    const wm::Keyring ring = MakeKeyring(spec, 4);
    auto det = wm::Detector::Create(ring);
    tmk::Rng rng(5);
    std::vector<int32_t> tokens;
    // 1024 documents of 1000 tokens (a corpus scan: the tuple set stays in cache).
    constexpr size_t kDocTokens = 1000;
    tmk::watermark::sim::ZipfTokens(tokens, 1024 * kDocTokens, 49152, 1.0, rng);
    const double t0 = CpuSeconds();
    int64_t done = 0;
    double elapsed = 0;
    do {
      for (size_t off = 0; off < tokens.size(); off += kDocTokens) {
        auto d = det->Detect(std::span<const int32_t>(tokens).subspan(off, kDocTokens), wm::DetectOptions{});
        if (!d.ok()) std::exit(1);
        done += kDocTokens;
      }
      elapsed = CpuSeconds() - t0;
    } while (elapsed < 2.0);
    const double mtps = static_cast<double>(done) / elapsed / 1e6;

    // Hook cost per step: full vocabulary (no truncation) and top-k 40 candidates.
    std::vector<float> logits(kVocab), probs(kVocab), work(kVocab);
    std::vector<int32_t> ids(kVocab);
    for (int32_t v = 0; v < kVocab; ++v) {
      ids[v] = v;
      logits[v] = static_cast<float>(-std::log(1.0 + v) * 1.5);
    }
    double z = 0;
    for (float l : logits) z += std::exp(l);
    for (int32_t v = 0; v < kVocab; ++v) probs[v] = static_cast<float>(std::exp(logits[v]) / z);
    std::vector<int32_t> context{1, 2, 3, 4};
    tmk::Rng srng(9);
    double us[2];
    for (int variant = 0; variant < 2; ++variant) {
      auto hook = wm::MakeWatermarkHook(ring, 12345);  // fresh per variant: no repeated contexts
      const size_t n = variant == 0 ? kVocab : 40;
      tmk::TokenCandidates c{std::span<const int32_t>(ids).first(n), std::span<const float>(logits).first(n),
                            std::span<const float>(probs).first(n)};
      const int steps = 400;
      const double s0 = CpuSeconds();
      for (int s = 0; s < steps; ++s) {
        context.push_back(variant * 100000 + s * 7 + 1);  // a new context every step
        std::copy(logits.begin(), logits.end(), work.begin());
        (*hook)->ProcessLogits(work, context);
        const int32_t tok = (*hook)->Choose(c, context, srng);
        (*hook)->Accept(tok < 0 ? 0 : tok);
      }
      us[variant] = (CpuSeconds() - s0) / steps * 1e6;
    }
    std::printf("| %s | %.1f | %.1f | %.1f |\n", spec, mtps, us[0], us[1]);
    std::fflush(stdout);
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: watermark_bench {power|calibration|attribution|speed|robustness|quality} [--trials N] [--threads N] [--docs N] [--accounts N]\n");
    return 2;
  }
  Options o;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const long long v = std::atoll(argv[i + 1]);
    if (k == "--trials") o.trials = static_cast<int>(v);
    else if (k == "--threads") o.threads = static_cast<int>(v);
    else if (k == "--docs") o.docs = static_cast<int>(v);
    else if (k == "--accounts") o.accounts = v;
    else if (k == "--scheme") o.scheme = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  const std::string mode = argv[1];
  if (mode == "power") Power(o);
  else if (mode == "calibration") Calibration(o);
  else if (mode == "attribution") Attribution(o);
  else if (mode == "speed") Speed(o);
  else if (mode == "robustness") Robustness(o);
  else if (mode == "quality") Quality(o);
  else {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  return 0;
}
