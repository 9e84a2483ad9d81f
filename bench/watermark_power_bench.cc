// Detection power of every watermark scheme on the real default model (SmolLM2-135M-Instruct):
// true-positive rate at p < 1e-6 vs length (25/50/100/200/400 tokens) at T = 0.7 and 1.0, with
// where the evidence goes (entropy per step, keyed / unkeyed / repeated-context steps, tuples per
// lane, the test components).
//
//   watermark_power_bench MODEL [--prompts N] [--tokens N] [--threads N] [--cache FILE]
//                         [--schemes a,b,..] [--temperatures 0.7,1.0] [--secret-fill B]
//                         [--analyze 1] [--dump-text FILE] [--stats 1] [--dump-tuples FILE]
//                         [--filter 1] [--per-answer 1] [--suspects N] [--candidates P]
//                         [--probe-prefix 1] [--quality 1] [--robustness 1]
//
// Default schemes: gumbel (the default, 4/2/2 lanes), gumbel:lanes=6/1/1, kgw-lefthash,
// kgw-selfhash, synthid; "none" generates without a watermark. --analyze 1 adds,
// for Gumbel cells, hypothetical tests with oracle keys (lane split, score function, unkeyed
// steps, entropy) and, for every cell, the shipped detector with the entropy filter fed by the
// model's entropies over the text alone. --dump-text writes the decoded answers (one per line).
// --stats 1 (instead of the main tables) runs the model over every answer (text alone) and
// compares "is it ours?" statistics on Gumbel cells: lanes (provider; provider + account and all
// lanes with oracle keys), key-independent filters (token probability p1 at T = 1 or after the
// sampler's transform, model entropy, sampling entropy) and score functions with exact tails
// (Gamma upper -log(1-u), Gamma lower -log u, binomial counts of u > d, the likelihood-weighted
// lower tail of sum (1/p1 - 1)(-log u); --dump-tuples FILE appends every scored tuple), then the shipped
// Detector with the token-probability filter at several thresholds. --filter 1: the main tables,
// then only that last table (filter thresholds, accounts named at 200 and --tokens) per cell;
// --per-answer 1 adds one line per answer at 200 tokens with the 0.5 filter (log10 p, tuples);
// --suspects N runs that table as targeted detection (the writer and N - 1 other accounts).
// --candidates P (instead of
// the main tables): rank of the true account among all ids by the payload lane (tokens with
// p1 <= P) and "provider + account lane of ranked candidates" under several weighted Bonferroni
// corrections. --probe-prefix 1: the model sees the chat template's opening of an assistant turn
// (empty user message) before each answer when it computes the token probabilities.
// --quality 1 (instead of the main tables; include "none" in --schemes): per cell, the length of
// the served answer (first end-of-turn/EOS token, capped at --tokens) and the mean NLL per answer
// token of chat prompt + answer under the unwatermarked model at temperature 1 and under the
// sampling transform (T, top-k, top-p), each against "none" with 2 Welch s.e.
// --robustness 1 (instead of the main tables): token-level attacks on each cell's answers (PII
// masking, truncation, deletion, substitution by the model's most likely other token given the
// edited prefix, mixing into KJV text), TPR and accounts named by the shipped Detector; with
// --filter 1 also with the token-probability filter at 0.5 computed on the attacked text.
//
// Each (scheme, T) cell generates N chat answers (one account per prompt) ONCE at --tokens tokens
// (top-k 40, top-p 0.95, continued past end-of-turn) and detects prefixes. All sequences of one
// temperature run as one batched decode (one forward pass per step for every sequence), so 8
// cells x 36 prompts x 400 tokens take a few minutes on 2 cores. --cache FILE stores the generated
// ids (TSV, one line per sequence, keyed by the canonical scheme spec, T, prompt and length) and
// reuses them on the next run, so detection changes can be re-measured without generating again.
// Output: Markdown tables on stdout (docs/watermark.md).
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "tracemark/model/context.h"
#include "watermark_prompts.h"
#include "tracemark/model/model.h"
#include "tracemark/model/sampler.h"
#include "tracemark/text/chat_template.h"
#include "tracemark/text/tokenizer.h"
#include "tracemark/watermark/detector.h"
#include "tracemark/watermark/hook.h"
#include "tracemark/watermark/keyring.h"
#include "tracemark/watermark/stats.h"
#include "tracemark/watermark/tuple_set.h"

namespace tmk = tracemark;
namespace wm = tracemark::watermark;

namespace {

constexpr int kLengths[] = {25, 50, 100, 200, 400};
constexpr int kNumLengths = static_cast<int>(std::size(kLengths));
constexpr int32_t kTopK = 40;
constexpr float kTopP = 0.95f;
constexpr int32_t kPromptContext = 128;  // prompt tokens kept room for in the KV cache
// Scheme name of unwatermarked generations (input for watermark_fpr_bench; their TPR is an FPR).
constexpr char kNoWatermark[] = "none";

const auto& kPrompts = tracemark::bench::kWatermarkPrompts;
constexpr size_t kMaxBatchSequences = 192;  // below the engine's 256-sequence limit

struct Options {
  std::string model;
  int prompts = 36;
  int tokens = 400;
  int threads = 2;
  int secret_fill = 0x42;
  std::string cache;
  // Writes the decoded sequences of every cell here, one per line (input for
  // watermark_fpr_bench: "none" cells, or distortion-free schemes under another secret).
  std::string dump_text;
  bool analyze = false;
  bool stats = false;  // --stats 1: AnalyzeStatistics on every Gumbel cell
  std::string dump_tuples;  // --dump-tuples FILE (with --stats 1): every scored tuple, TSV
  bool filter = false;  // --filter 1: the main tables, then ProbFilterRows on every cell
  bool per_answer = false;  // --per-answer 1: ProbFilterRows also prints each answer at 200 tokens
  // --suspects N: ProbFilterRows runs targeted detection with N suspects: the writer and the
  // accounts of N - 1 other prompts (which wrote other answers of the cell).
  int suspects = 0;
  double candidates = 0;  // --candidates P: AnalyzeCandidates with p(token) <= P, then exit
  bool probe_prefix = false;
  bool quality = false;     // --quality 1: QualityReport instead of the main tables
  bool robustness = false;  // --robustness 1: RobustnessReport instead of the main tables
  std::vector<std::string> schemes = {"gumbel", "gumbel:lanes=6/1/1", "kgw-lefthash", "kgw-selfhash",
                                      "synthid"};
  std::vector<float> temperatures = {0.7f, 1.0f};
};

// One generated sequence with per-step diagnostics.
struct Sequence {
  std::string spec;  // canonical scheme spec
  float temperature = 0;
  int prompt = 0;
  uint64_t account = 0;
  std::vector<int32_t> tokens;
  std::vector<float> entropy;  // nats, over the final candidates (after the hook's logit bias)
  std::string flags;           // per step: K keyed, U unkeyed draw, R repeated context (skipped)
};

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string CacheKey(const std::string& spec, float t, int prompt, int tokens, int fill) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "\t%.2f\t%d\t%d\t%d", t, prompt, tokens, fill);
  return spec + buf;
}

// Records entropy and the kind of step around the watermark hook.
class RecordingHook : public tmk::SamplerHook {
 public:
  // `inner` may be null: plain sampling (the unwatermarked "none" cells).
  RecordingHook(std::unique_ptr<tmk::SamplerHook> inner, Sequence* seq)
      : inner_(std::move(inner)), wm_(dynamic_cast<wm::WatermarkHook*>(inner_.get())), seq_(seq) {}
  void ProcessLogits(std::span<float> l, std::span<const int32_t> c) override {
    Snapshot();
    if (inner_) inner_->ProcessLogits(l, c);
  }
  int32_t Choose(const tmk::TokenCandidates& cand, std::span<const int32_t> c, tmk::Rng& r) override {
    double h = 0;
    for (float p : cand.probs) {
      if (p > 0) h -= static_cast<double>(p) * std::log(static_cast<double>(p));
    }
    entropy_ = static_cast<float>(h);
    if (wm_ != nullptr && wm_->params().kind != wm::SchemeKind::kKgw) Snapshot();
    return inner_ ? inner_->Choose(cand, c, r) : -1;
  }
  void Accept(int32_t tok) override {
    if (inner_) inner_->Accept(tok);
    char flag = 'U';
    if (wm_ != nullptr) {
      if (wm_->watermarked_steps() > keyed_before_) flag = 'K';
      else if (wm_->skipped_repeats() > skipped_before_) flag = 'R';
    }
    seq_->entropy.push_back(entropy_);
    seq_->flags.push_back(flag);
  }

 private:
  void Snapshot() {
    if (wm_ == nullptr) return;
    keyed_before_ = wm_->watermarked_steps();
    skipped_before_ = wm_->skipped_repeats();
  }
  std::unique_ptr<tmk::SamplerHook> inner_;
  wm::WatermarkHook* wm_;
  Sequence* seq_;
  float entropy_ = 0;
  int64_t keyed_before_ = 0, skipped_before_ = 0;
};

wm::Keyring MakeKeyring(const std::string& spec, int fill) {
  std::vector<uint8_t> secret(32, static_cast<uint8_t>(fill));
  auto r = wm::Keyring::FromSecret(secret, spec);
  if (!r.ok()) {
    std::fprintf(stderr, "watermark_power_bench: %s\n", r.status().message().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

void Die(const tmk::Status& s) {
  std::fprintf(stderr, "watermark_power_bench: %s\n", s.message().c_str());
  std::exit(1);
}

std::map<std::string, Sequence> LoadCache(const std::string& path) {
  std::map<std::string, Sequence> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string item; std::getline(ss, item, '\t');) f.push_back(item);
    if (f.size() != 9) continue;
    Sequence s;
    s.spec = f[0];
    s.temperature = std::stof(f[1]);
    s.prompt = std::stoi(f[2]);
    const int tokens = std::stoi(f[3]);
    const int fill = std::stoi(f[4]);
    s.account = std::stoull(f[5]);
    for (const auto& t : SplitComma(f[6])) s.tokens.push_back(std::stoi(t));
    for (const auto& e : SplitComma(f[7])) s.entropy.push_back(std::stof(e));
    s.flags = f[8];
    if (s.tokens.size() != s.entropy.size() || s.tokens.size() != s.flags.size()) continue;
    out[CacheKey(s.spec, s.temperature, s.prompt, tokens, fill)] = std::move(s);
  }
  return out;
}

void AppendCache(const std::string& path, const Sequence& s, int tokens, int fill) {
  std::ofstream out(path, std::ios::app);
  out << CacheKey(s.spec, s.temperature, s.prompt, tokens, fill).substr(0) << '\t' << s.account << '\t';
  for (size_t i = 0; i < s.tokens.size(); ++i) out << (i ? "," : "") << s.tokens[i];
  out << '\t';
  char buf[16];
  for (size_t i = 0; i < s.entropy.size(); ++i) {
    std::snprintf(buf, sizeof(buf), "%.3f", s.entropy[i]);
    out << (i ? "," : "") << buf;
  }
  out << '\t' << s.flags << '\n';
}

// Generates every missing (scheme, prompt) sequence of one temperature as one batched decode.
void GenerateBatch(const Options& opt, tmk::Model& model, const tmk::text::Tokenizer& tok,
                   const std::vector<std::vector<int32_t>>& prompts, float temperature,
                   std::vector<Sequence*>& todo) {
  if (todo.empty()) return;
  tmk::ContextOptions copt;
  copt.n_ctx = kPromptContext + opt.tokens + 8;
  copt.n_seq = static_cast<int32_t>(todo.size());
  copt.n_threads = opt.threads;
  auto ctx = tmk::Context::Create(model, copt);
  if (!ctx.ok()) Die(ctx.status());
  const int32_t vocab = static_cast<int32_t>((*ctx)->Logits(0).size());
  std::vector<std::unique_ptr<RecordingHook>> hooks;
  std::vector<std::unique_ptr<tmk::Sampler>> samplers;
  std::vector<std::vector<int32_t>> contexts;
  std::vector<wm::Keyring> rings;
  rings.reserve(todo.size());
  for (size_t s = 0; s < todo.size(); ++s) {
    Sequence* q = todo[s];
    if (q->spec == kNoWatermark) {
      hooks.push_back(std::make_unique<RecordingHook>(nullptr, q));
    } else {
      rings.push_back(MakeKeyring(q->spec, opt.secret_fill));
      auto hook = wm::MakeWatermarkHook(rings.back(), q->account);
      if (!hook.ok()) Die(hook.status());
      hooks.push_back(std::make_unique<RecordingHook>(std::move(hook).value(), q));
    }
    tmk::SamplingParams sp;
    sp.temperature = temperature;
    sp.top_k = kTopK;
    sp.top_p = kTopP;
    sp.seed = 100 + static_cast<uint64_t>(q->prompt);
    samplers.push_back(std::make_unique<tmk::Sampler>(sp, vocab, hooks.back().get()));
    contexts.push_back(prompts[static_cast<size_t>(q->prompt)]);
  }
  // Prefill one sequence at a time, sampling its first token.
  tmk::Batch batch;
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (size_t s = 0; s < todo.size(); ++s) {
    batch.Clear();
    const auto& p = contexts[s];
    for (size_t i = 0; i < p.size(); ++i) {
      batch.Add(p[i], static_cast<int32_t>(i), static_cast<int32_t>(s), i + 1 == p.size());
    }
    if (auto st = (*ctx)->Decode(batch); !st.ok()) Die(st);
    auto l = (*ctx)->Logits(0);
    std::copy(l.begin(), l.end(), logits.begin());
    const int32_t t = samplers[s]->Sample(logits, contexts[s]);
    contexts[s].push_back(t);
    todo[s]->tokens.push_back(t);
  }
  const auto start = std::chrono::steady_clock::now();
  for (int step = 1; step < opt.tokens; ++step) {
    batch.Clear();
    for (size_t s = 0; s < todo.size(); ++s) {
      batch.Add(contexts[s].back(), static_cast<int32_t>(contexts[s].size() - 1), static_cast<int32_t>(s), true);
    }
    if (auto st = (*ctx)->Decode(batch); !st.ok()) Die(st);
    for (size_t s = 0; s < todo.size(); ++s) {
      auto l = (*ctx)->Logits((*ctx)->OutputOf(static_cast<int32_t>(s)));
      std::copy(l.begin(), l.end(), logits.begin());
      const int32_t t = samplers[s]->Sample(logits, contexts[s]);
      contexts[s].push_back(t);
      todo[s]->tokens.push_back(t);
    }
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "generated %zu sequences x %d tokens at T=%.1f in %.1f s (%.0f tokens/s)\n",
               todo.size(), opt.tokens, temperature, sec, todo.size() * (opt.tokens - 1) / sec);
}

struct Cell {
  std::string scheme;
  float temperature;
  std::vector<const Sequence*> seqs;
};

void Report(const Options& opt, const std::vector<Cell>& cells) {
  std::printf("\nTPR at p < 1e-6 (detected / prompts), real model, top-k %d, top-p %.2f\n\n", kTopK, kTopP);
  std::printf("| scheme | T | mean entropy (nats/step) | 25 | 50 | 100 | 200 | 400 | attributed@%d (wrong) |\n",
              opt.tokens);
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  struct Diag {
    double keyed = 0, unkeyed = 0, repeated = 0, zero_entropy = 0, steps = 0;
    double prov = 0, pay = 0, acc = 0, scored = 0, median_prov = 0, median_final = 0;
  };
  std::vector<Diag> diags;
  for (const Cell& c : cells) {
    int detected[kNumLengths] = {}, counted[kNumLengths] = {};
    int attributed = 0, wrong = 0;
    double entropy_sum = 0, steps = 0;
    Diag dg;
    std::vector<double> prov200, final200;
    for (const Sequence* s : c.seqs) {
      // Unwatermarked text is detected with the default scheme's key (a false-positive check).
      wm::Keyring ring = MakeKeyring(s->spec == kNoWatermark ? std::string(wm::kDefaultSchemeSpec) : s->spec,
                                     opt.secret_fill);
      auto det = wm::Detector::Create(ring);
      if (!det.ok()) Die(det.status());
      for (size_t i = 0; i < s->tokens.size(); ++i) {
        entropy_sum += s->entropy[i];
        steps += 1;
        if (i < 200) {
          dg.steps += 1;
          dg.keyed += s->flags[i] == 'K';
          dg.unkeyed += s->flags[i] == 'U';
          dg.repeated += s->flags[i] == 'R';
          dg.zero_entropy += s->entropy[i] < 0.01f;
        }
      }
      for (int li = 0; li < kNumLengths; ++li) {
        if (static_cast<int>(s->tokens.size()) < kLengths[li]) continue;
        auto d = det->Detect(std::span<const int32_t>(s->tokens).first(static_cast<size_t>(kLengths[li])),
                             wm::DetectOptions{});
        if (!d.ok()) Die(d.status());
        ++counted[li];
        detected[li] += d->watermarked;
        if (kLengths[li] == 200) {
          dg.prov += static_cast<double>(d->provider_tuples);
          dg.pay += static_cast<double>(d->payload_tuples);
          dg.acc += static_cast<double>(d->account_tuples);
          dg.scored += static_cast<double>(d->tokens_scored);
          prov200.push_back(d->provider_log10_p);
          final200.push_back(d->log10_p_value);
        }
        if (kLengths[li] == opt.tokens && d->account) (*d->account == s->account ? attributed : wrong) += 1;
      }
    }
    auto median = [](std::vector<double> v) {
      if (v.empty()) return 0.0;
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    dg.median_prov = median(prov200);
    dg.median_final = median(final200);
    diags.push_back(dg);
    std::printf("| %s | %.1f | %.2f |", c.scheme.c_str(), c.temperature, steps > 0 ? entropy_sum / steps : 0.0);
    for (int li = 0; li < kNumLengths; ++li) {
      if (counted[li] == 0) std::printf(" - |");
      else std::printf(" %d/%d |", detected[li], counted[li]);
    }
    std::printf(" %d/%zu (%d) |\n", attributed, c.seqs.size(), wrong);
  }
  std::printf("\nWhere the evidence goes, first 200 tokens (per sequence means; tuples = unique (context, token) "
              "tuples after de-duplication)\n\n");
  std::printf("| scheme | T | keyed steps | unkeyed draws | repeated-context skips | steps with entropy < 0.01 | "
              "provider / payload / account tuples | median log10 p provider | median log10 p reported |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (size_t k = 0; k < cells.size(); ++k) {
    const Diag& d = diags[k];
    const double n = static_cast<double>(cells[k].seqs.size());
    std::printf("| %s | %.1f | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.0f / %.0f / %.0f | %.2f | %.2f |\n",
                cells[k].scheme.c_str(), cells[k].temperature, 100 * d.keyed / d.steps, 100 * d.unkeyed / d.steps,
                100 * d.repeated / d.steps, 100 * d.zero_entropy / d.steps, d.prov / n, d.pay / n, d.acc / n,
                d.median_prov, d.median_final);
  }
}


// What the oracle analyses know about an answer: its scheme, the keys of the bench keyring's
// version 1 and the generating account's lane key.
struct OracleKeys {
  wm::SchemeParams params;
  wm::SchemeKeys keys;
  uint64_t account_key = 0;
};

OracleKeys OracleKeysOf(const Options& opt, const Sequence& s) {
  const wm::Keyring ring = MakeKeyring(s.spec, opt.secret_fill);
  auto params = wm::ParseSchemeSpec(s.spec);
  auto keys = ring.DeriveSchemeKeys(1);
  auto akey = ring.DeriveAccountKey(1, s.account);
  if (!params.ok() || !keys.ok() || !akey.ok()) Die(tmk::InvalidArgument("analysis: bad keyring"));
  return {*params, *keys, *akey};
}

// Where the evidence of a Gumbel cell goes: tests computed with oracle knowledge of every tuple's
// key (the generating account), so lane splits, score functions, the unkeyed share and an
// entropy filter can be compared on the same generations. Raw p-values (no correction for the
// number of tests); a row is a hypothetical detector, not the shipped one.
// The PRF word of token `token` at a context as the sampler keyed it: provider key on the provider
// lane, the account's payload digit slot on the payload lane, the account's own key on its lane.
uint32_t LaneWord(const wm::SchemeKeys& keys, uint64_t account_key, const wm::ContextInfo& info, int32_t token,
                  uint64_t account) {
  switch (info.lane) {
    case wm::Lane::kProvider:
      return wm::TokenWord(keys.provider_key, info.hash, token, 0);
    case wm::Lane::kPayload:
      return wm::TokenWord(keys.provider_key, info.hash, token,
                           wm::PayloadSlot(info.position, wm::PayloadDigit(account, info.position)));
    case wm::Lane::kAccount:
      return wm::TokenWord(account_key, info.hash, token, 0);
  }
  return 0;
}

void AnalyzeGumbel(const Options& opt, const Cell& c) {
  struct Variant {
    const char* name;
    int detected[kNumLengths] = {};
    double excess = 0, tuples = 0;
  };
  Variant v[] = {{"provider lane, -log(1-u) (shipped component)"},
                 {"provider lane, -log(u) lower tail"},
                 {"provider lane, min of both x2"},
                 {"all lanes, -log(1-u)"},
                 {"all lanes, -log(u) lower tail"},
                 {"all lanes, min of both x2"},
                 {"all lanes, keyed steps only, min of both x2"},
                 {"all lanes, generation entropy >= 0.3, min of both x2"},
                 {"3/4 of tuples (lane 6/8), min of both x2"}};
  constexpr int kVariants = static_cast<int>(std::size(v));
  const double log_threshold = std::log(1e-6);
  for (const Sequence* s : c.seqs) {
    const OracleKeys ok = OracleKeysOf(opt, *s);
    const auto params = &ok.params;
    const auto keys = &ok.keys;
    const auto akey = &ok.account_key;
    const size_t h = static_cast<size_t>(params->context_width);
    wm::TupleSet seen;
    // Per variant: running (count, sum -log(1-u), sum -log u).
    double n[kVariants] = {}, sa[kVariants] = {}, sl[kVariants] = {};
    size_t li = 0;
    for (size_t i = 0; i <= s->tokens.size(); ++i) {
      if (li < kNumLengths && i == static_cast<size_t>(kLengths[li])) {
        for (int k = 0; k < kVariants; ++k) {
          const auto cnt = static_cast<int64_t>(n[k]);
          const double la = wm::LogGammaUpperTail(cnt, sa[k]);
          const double ll = wm::LogGammaLowerTail(cnt, sl[k]);
          double lp = 0;
          if (k == 0 || k == 3) lp = la;
          else if (k == 1 || k == 4) lp = ll;
          else lp = wm::LogBonferroni(std::min(la, ll), 2.0);
          v[k].detected[li] += cnt > 0 && lp < log_threshold;
          if (kLengths[li] == 200) {
            v[k].excess += sa[k] - n[k];
            v[k].tuples += n[k];
          }
        }
        ++li;
      }
      if (i == s->tokens.size()) break;
      if (i < h) continue;
      const wm::ContextInfo info = wm::HashContext(keys->context_key, *params, s->tokens, i);
      if (!seen.Insert(info.hash, s->tokens[i])) continue;
      const uint32_t w = LaneWord(*keys, *akey, info, s->tokens[i], s->account);
      const double u = wm::WordToUniform(w);
      const double a = -std::log1p(-u), l = -std::log(u);
      auto add = [&](int k) {
        n[k] += 1;
        sa[k] += a;
        sl[k] += l;
      };
      const bool provider = info.lane == wm::Lane::kProvider;
      if (provider) {
        add(0);
        add(1);
        add(2);
      }
      add(3);
      add(4);
      add(5);
      if (s->flags[i] == 'K') add(6);
      if (s->entropy[i] >= 0.3f) add(7);
      if (provider || (info.hash >> 40) % 2 == 0) add(8);
    }
  }
  std::printf("\nAnalysis, %s T=%.1f: TPR at raw p < 1e-6 of hypothetical tests (oracle keys)\n\n",
              c.scheme.c_str(), c.temperature);
  std::printf("| test | 25 | 50 | 100 | 200 | 400 | tuples@200 | mean -log(1-u) excess per tuple@200 |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const Variant& x : v) {
    std::printf("| %s |", x.name);
    for (int li = 0; li < kNumLengths; ++li) std::printf(" %d/%zu |", x.detected[li], c.seqs.size());
    std::printf(" %.0f | %.3f |\n", x.tuples / static_cast<double>(c.seqs.size()),
                x.tuples > 0 ? x.excess / x.tuples : 0.0);
  }
}

// Softmax facts of one logits row: its maximum, partition sum z = sum exp(x - max), and entropy
// (nats) of the distribution.
struct RowSoftmax {
  float max = 0;
  double z = 0;
  double entropy = 0;
};

RowSoftmax SoftmaxOf(std::span<const float> l) {
  RowSoftmax r;
  r.max = -INFINITY;
  for (float x : l) r.max = std::max(r.max, x);
  double zl = 0;
  for (float x : l) {
    const double e = std::exp(static_cast<double>(x - r.max));
    r.z += e;
    zl += e * static_cast<double>(x - r.max);
  }
  r.entropy = std::log(r.z) - zl / r.z;
  return r;
}

// Detection-time entropies: the model run over the generated text alone (no prompt, temperature
// 1, full vocabulary), entropy[i] of the distribution that predicts token i (0 for i = 0).
std::vector<float> ModelEntropies(tmk::Context& ctx, std::span<const int32_t> tokens) {
  std::vector<float> out(tokens.size(), 0.0f);
  tmk::Batch batch;
  ctx.ClearSeq(0);
  for (size_t i = 0; i < tokens.size(); ++i) batch.Add(tokens[i], static_cast<int32_t>(i), 0, true);
  if (auto st = ctx.Decode(batch); !st.ok()) Die(st);
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    out[i + 1] = static_cast<float>(SoftmaxOf(ctx.Logits(ctx.OutputOf(static_cast<int32_t>(i)))).entropy);
  }
  return out;
}

// The shipped Detector with the entropy filter (DetectOptions::token_entropy from the model over
// the text alone) at several thresholds: TPR at the reported p < 1e-6.
void EntropyFilterRows(const Options& opt, tmk::Model& model, const Cell& c) {
  constexpr double kThresholds[] = {0.0, 0.3, 0.6, 1.0};
  tmk::ContextOptions copt;
  copt.n_ctx = opt.tokens + 8;
  copt.max_batch = opt.tokens + 8;
  copt.max_outputs = opt.tokens + 8;
  copt.n_threads = opt.threads;
  auto ctx = tmk::Context::Create(model, copt);
  if (!ctx.ok()) Die(ctx.status());
  int detected[std::size(kThresholds)][kNumLengths] = {};
  double scored200[std::size(kThresholds)] = {};
  for (const Sequence* s : c.seqs) {
    const std::vector<float> ent = ModelEntropies(**ctx, s->tokens);
    wm::Keyring ring = MakeKeyring(s->spec, opt.secret_fill);
    auto det = wm::Detector::Create(ring);
    if (!det.ok()) Die(det.status());
    for (size_t t = 0; t < std::size(kThresholds); ++t) {
      for (int li = 0; li < kNumLengths; ++li) {
        if (static_cast<int>(s->tokens.size()) < kLengths[li]) continue;
        const size_t len = static_cast<size_t>(kLengths[li]);
        wm::DetectOptions o;
        if (kThresholds[t] > 0) o.token_entropy = std::span<const float>(ent).first(len);
        o.min_entropy = kThresholds[t];
        auto d = det->Detect(std::span<const int32_t>(s->tokens).first(len), o);
        if (!d.ok()) Die(d.status());
        detected[t][li] += d->watermarked;
        if (kLengths[li] == 200) scored200[t] += static_cast<double>(d->tokens_scored);
      }
    }
  }
  std::printf("\nEntropy filter, %s T=%.1f (%s): shipped Detector, TPR at reported p < 1e-6; token entropy from the\n"
              "model over the text alone (temperature 1), tuples below the threshold not scored\n\n",
              c.scheme.c_str(), c.temperature, c.seqs.front()->spec.c_str());
  std::printf("| min entropy (nats) | 25 | 50 | 100 | 200 | 400 | tuples scored@200 |\n|---|---|---|---|---|---|---|\n");
  for (size_t t = 0; t < std::size(kThresholds); ++t) {
    std::printf("| %s |", kThresholds[t] > 0 ? std::to_string(kThresholds[t]).substr(0, 3).c_str() : "off");
    for (int li = 0; li < kNumLengths; ++li) std::printf(" %d/%zu |", detected[t][li], c.seqs.size());
    std::printf(" %.0f |\n", scored200[t] / static_cast<double>(c.seqs.size()));
  }
}

// Per-token quantities a detector can compute from the text alone with the model (no key):
// for every position i, the probability of tokens[i] under the model's distribution over the
// text so far (temperature 1, full vocabulary, and the sampler's own transform: temperature
// kProbeTemperature, top-k kTopK, top-p kTopP; 0 when outside the nucleus) and its entropy.
struct TokenProbe {
  std::vector<float> p1, p_sampled, entropy;
};
constexpr double kProbeTemperature = 0.7;
// --probe-prefix 1: the chat template's opening of an assistant turn (empty user message).
std::vector<int32_t> g_probe_prefix;
const TokenProbe& CachedProbe(const Options& opt, tmk::Model& model, const Sequence* s);

// `prefix` (may be empty) is fed before the text: e.g. the chat template's opening of an
// assistant turn, so that the first tokens are predicted as the start of an answer.
TokenProbe ProbeTokens(tmk::Context& ctx, std::span<const int32_t> tokens, std::span<const int32_t> prefix) {
  TokenProbe out;
  out.p1.assign(tokens.size(), 1.0f);
  out.p_sampled.assign(tokens.size(), 1.0f);
  out.entropy.assign(tokens.size(), 0.0f);
  tmk::Batch batch;
  ctx.ClearSeq(0);
  const size_t np = prefix.size();
  for (size_t i = 0; i < np; ++i) batch.Add(prefix[i], static_cast<int32_t>(i), 0, i + 1 == np);
  for (size_t i = 0; i < tokens.size(); ++i) batch.Add(tokens[i], static_cast<int32_t>(np + i), 0, true);
  if (auto st = ctx.Decode(batch); !st.ok()) Die(st);
  std::vector<std::pair<float, int32_t>> sorted;
  // Row r of the batch predicts batch token r + 1; text token k is predicted by row np + k - 1.
  for (size_t i = (np > 0 ? 0 : 1) + np - 1; i + 1 < np + tokens.size(); ++i) {
    const auto l = ctx.Logits(ctx.OutputOf(static_cast<int32_t>(i)));
    const size_t k = i + 1 - np;  // the text token predicted here
    const RowSoftmax sm = SoftmaxOf(l);
    const float mx = sm.max;
    const double z = sm.z;
    const int32_t next = tokens[k];
    out.entropy[k] = static_cast<float>(sm.entropy);
    out.p1[k] = static_cast<float>(std::exp(static_cast<double>(l[static_cast<size_t>(next)] - mx)) / z);
    sorted.clear();
    for (size_t v = 0; v < l.size(); ++v) sorted.push_back({l[v], static_cast<int32_t>(v)});
    std::partial_sort(sorted.begin(), sorted.begin() + kTopK, sorted.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    double zt = 0;
    std::vector<double> pk(kTopK);
    for (int k = 0; k < kTopK; ++k) {
      pk[static_cast<size_t>(k)] = std::exp((sorted[static_cast<size_t>(k)].first - mx) / kProbeTemperature);
      zt += pk[static_cast<size_t>(k)];
    }
    double cum = 0, kept = 0;
    int keep = 0;
    for (int k = 0; k < kTopK; ++k) {
      cum += pk[static_cast<size_t>(k)] / zt;
      ++keep;
      if (cum >= kTopP) break;
    }
    for (int k = 0; k < keep; ++k) kept += pk[static_cast<size_t>(k)];
    double pn = 0;
    for (int k = 0; k < keep; ++k) {
      if (sorted[static_cast<size_t>(k)].second == next) pn = pk[static_cast<size_t>(k)] / kept;
    }
    out.p_sampled[k] = static_cast<float>(pn);
  }
  return out;
}

// Candidate statistics for the Gumbel "is it ours?" test, on the same answers: which tuples are
// scored (lane set, a key-independent filter from the model's view of the text) and how
// (score function with an exact null tail). Raw p < 1e-6, no correction.
void AnalyzeStatistics(const Options& opt, tmk::Model& model, const Cell& c) {
  struct Tup {
    size_t i;
    wm::Lane lane;
    double u;
    float p1, ps, ent, gen_ent;
  };
  enum Score { kArs, kLog, kInd, kWlr };
  struct Variant {
    std::string name;
    int lanes;  // 1 provider, 2 payload (oracle digit), 4 account (oracle key)
    std::function<bool(const Tup&)> keep;
    Score score = kArs;
    double ind = 0.5;
    // kWlr: likelihood-weighted -log u. A Gumbel-max choice of probability p has u = U^p, so the
    // likelihood ratio against u ~ U(0,1) is (1/p) u^(1/p - 1): the optimal statistic for known p
    // is sum (1/p - 1)(-log u), small under H1. Weight (1 - p1) / p1, capped at wlr_max and
    // rounded down to a 2^(1/2) grid (weights below 2^-3 dropped); exact lower tail of the
    // weighted sum (LogWeightedGammaLowerTail).
    double wlr_max = 8;
    int detected[kNumLengths] = {};
    double tuples200 = 0, lp200 = 0;
    std::vector<double> lps200;
  };
  std::vector<Variant> v;
  auto add = [&v](std::string name, int lanes, std::function<bool(const Tup&)> keep, Score score = kArs,
                  double ind = 0.5) {
    Variant x;
    x.name = std::move(name);
    x.lanes = lanes;
    x.keep = std::move(keep);
    x.score = score;
    x.ind = ind;
    v.push_back(std::move(x));
  };
  auto all = [](const Tup&) { return true; };
  for (int lanes : {1, 5, 7}) {
    const std::string ln = lanes == 1 ? "P" : lanes == 5 ? "P+A(oracle)" : "all(oracle)";
    add(ln + " ars", lanes, all);
    add(ln + " ars ent1>=0.3", lanes, [](const Tup& t) { return t.ent >= 0.3f; });
    for (double th : {0.2, 0.3, 0.4, 0.5, 0.7, 0.9}) {
      add(ln + " ars p1<=" + std::to_string(th).substr(0, 4), lanes,
                   [th](const Tup& t) { return t.p1 <= th; });
    }
    for (double th : {0.9, 0.99}) {
      add(ln + " ars ps<=" + std::to_string(th).substr(0, 4), lanes,
                   [th](const Tup& t) { return t.ps <= th; });
    }
    add(ln + " ars genent>=0.3 (oracle)", lanes, [](const Tup& t) { return t.gen_ent >= 0.3f; });
  }
  add("P log p1<=0.9", 1, [](const Tup& t) { return t.p1 <= 0.9; }, kLog);
  for (int lanes : {1, 7}) {
    const std::string ln = lanes == 1 ? "P" : "all(oracle)";
    for (double pmax : {0.5, 0.7, 0.9}) {
      for (double wmax : {1.0, 2.0, 4.0, 8.0}) {
        add(ln + " wlr p1<=" + std::to_string(pmax).substr(0, 4) + " w<=" + std::to_string(static_cast<int>(wmax)),
            lanes, [pmax](const Tup& t) { return t.p1 <= pmax; }, kWlr);
        v.back().wlr_max = wmax;
      }
    }
  }
  for (double d : {0.5, 0.8, 0.9, 0.95}) {
    add("P ind u>" + std::to_string(d).substr(0, 4) + " p1<=0.9", 1,
                 [](const Tup& t) { return t.p1 <= 0.9; }, kInd, d);
  }
  const double log_threshold = std::log(1e-6);
  constexpr int kGrid = 18;  // kWlr weights 2^((j - 6) / 2), j = 0..17: 1/8 .. 2^5.5
  std::array<double, kGrid> grid{};
  for (int j = 0; j < kGrid; ++j) grid[static_cast<size_t>(j)] = std::exp2((j - 6) / 2.0);
  FILE* dump = opt.dump_tuples.empty() ? nullptr : std::fopen(opt.dump_tuples.c_str(), "a");
  for (const Sequence* s : c.seqs) {
    const TokenProbe& probe = CachedProbe(opt, model, s);
    const OracleKeys ok = OracleKeysOf(opt, *s);
    const auto params = &ok.params;
    const auto keys = &ok.keys;
    const auto akey = &ok.account_key;
    const size_t h = static_cast<size_t>(params->context_width);
    wm::TupleSet seen;
    std::vector<Tup> tups;
    for (size_t i = h; i < s->tokens.size(); ++i) {
      const wm::ContextInfo info = wm::HashContext(keys->context_key, *params, s->tokens, i);
      if (!seen.Insert(info.hash, s->tokens[i])) continue;
      const uint32_t w = LaneWord(*keys, *akey, info, s->tokens[i], s->account);
      tups.push_back({i, info.lane, wm::WordToUniform(w), probe.p1[i], probe.p_sampled[i], probe.entropy[i],
                      s->entropy[i]});
      if (dump != nullptr) {
        std::fprintf(dump, "%s\t%.1f\t%d\t%zu\t%d\t%.17g\t%.9g\t%.9g\t%.9g\t%.9g\t%c\n", s->spec.c_str(),
                     static_cast<double>(s->temperature), s->prompt, i, static_cast<int>(info.lane), tups.back().u,
                     static_cast<double>(probe.p1[i]), static_cast<double>(probe.p_sampled[i]),
                     static_cast<double>(probe.entropy[i]), static_cast<double>(s->entropy[i]),
                     i < s->flags.size() ? s->flags[i] : '?');
      }
    }
    for (Variant& x : v) {
      size_t li = 0;
      double n = 0, sum = 0;
      std::array<int64_t, kGrid> level_counts{};
      auto finish = [&](int l) {
        double lp = 0;
        const auto cnt = static_cast<int64_t>(n);
        if (x.score == kWlr) lp = wm::LogWeightedGammaLowerTail(grid, level_counts, sum);
        else if (x.score == kArs) lp = wm::LogGammaUpperTail(cnt, sum);
        else if (x.score == kLog) lp = wm::LogGammaLowerTail(cnt, sum);
        else lp = wm::LogBinomialUpperTail(std::llround(sum), cnt, 1.0 - x.ind);
        x.detected[l] += cnt > 0 && lp < log_threshold;
        if (kLengths[l] == 200) {
          x.tuples200 += n;
          x.lps200.push_back(lp / std::log(10.0));
        }
      };
      for (const Tup& t : tups) {
        while (li < kNumLengths && t.i >= static_cast<size_t>(kLengths[li])) finish(static_cast<int>(li++));
        const int bit = t.lane == wm::Lane::kProvider ? 1 : t.lane == wm::Lane::kPayload ? 2 : 4;
        if ((x.lanes & bit) == 0 || !x.keep(t)) continue;
        if (x.score == kWlr) {
          const double p = std::max(1e-6, static_cast<double>(t.p1));
          const double w = std::min((1.0 - p) / p, x.wlr_max);
          if (w < grid[0]) continue;
          const auto j = static_cast<size_t>(std::min<double>(kGrid - 1, std::floor(2.0 * std::log2(w)) + 6));
          ++level_counts[j];
          sum += grid[j] * -std::log(t.u);
          n += 1;
          continue;
        }
        n += 1;
        if (x.score == kArs) sum += -std::log1p(-t.u);
        else if (x.score == kLog) sum += -std::log(t.u);
        else sum += t.u > x.ind ? 1.0 : 0.0;
      }
      while (li < kNumLengths && static_cast<size_t>(kLengths[li]) <= s->tokens.size()) finish(static_cast<int>(li++));
    }
  }
  if (dump != nullptr) std::fclose(dump);
  std::printf("\nStatistics, %s T=%.1f: TPR at raw p < 1e-6 (p1: model prob of the token over the text alone at T=1;\n"
              "ps: same after T=%.1f, top-k %d, top-p %.2f; ent1: model entropy at T=1; genent: sampling entropy)\n\n",
              c.scheme.c_str(), c.temperature, kProbeTemperature, kTopK, kTopP);
  std::printf("| test | 25 | 50 | 100 | 200 | 400 | tuples@200 | median log10 p@200 |\n|---|---|---|---|---|---|---|---|\n");
  for (Variant& x : v) {
    std::printf("| %s |", x.name.c_str());
    for (int li = 0; li < kNumLengths; ++li) std::printf(" %d/%zu |", x.detected[li], c.seqs.size());
    std::sort(x.lps200.begin(), x.lps200.end());
    std::printf(" %.0f | %.2f |\n", x.tuples200 / static_cast<double>(c.seqs.size()),
                x.lps200.empty() ? 0.0 : x.lps200[x.lps200.size() / 2]);
  }
  std::fflush(stdout);
}

// Attribution-aided detection at T = 0.7: rank of the true account among all 16^digits ids by
// the payload-lane digit sums (filtered tuples), and TPR of "provider + account lane of the
// candidate" under several candidate weightings (weighted Bonferroni; ranks from the payload
// lane, independent of the provider and account lanes under H0), x3 for the other components.
void AnalyzeCandidates(const Options& opt, tmk::Model& model, const Cell& c, double max_prob) {
  constexpr int kLens[] = {100, 200, 400};
  struct Weighting {
    const char* name;
    std::function<double(double)> cost;  // Bonferroni factor at rank k (inf = not verified)
  };
  const double inf = INFINITY;
  std::vector<Weighting> ws = {
      {"flat 16 (shipped)", [inf](double k) { return k <= 16 ? 16.0 : inf; }},
      {"flat 4", [inf](double k) { return k <= 4 ? 4.0 : inf; }},
      {"flat 256", [inf](double k) { return k <= 256 ? 256.0 : inf; }},
      {"1.645 k^2", [](double k) { return 1.6449 * k * k; }},
      {"k H_K (K=2^20)", [](double k) { return k * 14.43; }},
      {"2 k log^2", [](double k) { return 2.0 * k * (1 + std::log(k)) * (1 + std::log(k)); }},
  };
  std::vector<std::array<int, 3>> det(ws.size()), det_prov_only(1);
  std::vector<double> ranks[3];
  for (const Sequence* s : c.seqs) {
    const TokenProbe& probe = CachedProbe(opt, model, s);
    const OracleKeys ok = OracleKeysOf(opt, *s);
    const auto params = &ok.params;
    const auto keys = &ok.keys;
    const auto akey = &ok.account_key;
    const int digits = params->payload_digits;
    const size_t h = static_cast<size_t>(params->context_width);
    for (int li = 0; li < 3; ++li) {
      const size_t len = static_cast<size_t>(kLens[li]);
      wm::TupleSet seen;
      wm::ScoreSum prov, acc;
      std::vector<double> dsum(static_cast<size_t>(digits) * 16, 0.0);
      for (size_t i = h; i < len && i < s->tokens.size(); ++i) {
        if (probe.p1[i] > max_prob) continue;
        const wm::ContextInfo info = wm::HashContext(keys->context_key, *params, s->tokens, i);
        if (!seen.Insert(info.hash, s->tokens[i])) continue;
        auto score = [](uint32_t w) { return -std::log1p(-wm::WordToUniform(w)); };
        if (info.lane == wm::Lane::kProvider) {
          prov.Add(score(wm::TokenWord(keys->provider_key, info.hash, s->tokens[i], 0)));
        } else if (info.lane == wm::Lane::kAccount) {
          acc.Add(score(wm::TokenWord(*akey, info.hash, s->tokens[i], 0)));
        } else {
          for (int d = 0; d < 16; ++d) {
            dsum[static_cast<size_t>(info.position) * 16 + static_cast<size_t>(d)] +=
                score(wm::TokenWord(keys->provider_key, info.hash, s->tokens[i], wm::PayloadSlot(info.position, d)));
          }
        }
      }
      // Rank of the true id: 1 + #ids with a larger total (enumerated).
      double truth = 0;
      for (int j = 0; j < digits; ++j) truth += dsum[static_cast<size_t>(j) * 16 + static_cast<size_t>(wm::PayloadDigit(s->account, j))];
      std::vector<double> totals{0.0};
      for (int j = 0; j < digits; ++j) {
        std::vector<double> next;
        next.reserve(totals.size() * 16);
        for (double t : totals) {
          for (int d = 0; d < 16; ++d) next.push_back(t + dsum[static_cast<size_t>(j) * 16 + static_cast<size_t>(d)]);
        }
        totals.swap(next);
      }
      double rank = 1;
      for (double t : totals) rank += t > truth + 1e-12;
      ranks[li].push_back(rank);
      wm::ScoreSum comb = prov;
      comb.sum += acc.sum;
      comb.count += acc.count;
      const double lc = wm::LogGammaUpperTail(comb.count, comb.sum);
      const double lp = wm::LogGammaUpperTail(prov.count, prov.sum);
      const double thr = std::log(1e-6);
      det_prov_only[0][static_cast<size_t>(li)] += lp + std::log(3.0) < thr;
      for (size_t w = 0; w < ws.size(); ++w) {
        const double f = ws[w].cost(rank);
        const double best = std::min(lp, std::isinf(f) ? 0.0 : lc + std::log(f));
        det[w][static_cast<size_t>(li)] += best + std::log(3.0) < thr;
      }
    }
  }
  std::printf("\nCandidates, %s T=%.1f, p(token) <= %.2f: true account's rank among all ids by payload digit sums\n\n",
              c.scheme.c_str(), c.temperature, max_prob);
  for (int li = 0; li < 3; ++li) {
    auto& r = ranks[li];
    std::sort(r.begin(), r.end());
    const auto le = [&](double k) { return std::count_if(r.begin(), r.end(), [k](double x) { return x <= k; }); };
    std::printf("- %d tokens: median rank %.0f; rank 1: %ld, <=4: %ld, <=16: %ld, <=256: %ld, <=4096: %ld of %zu\n",
                kLens[li], r[r.size() / 2], le(1), le(4), le(16), le(256), le(4096), r.size());
  }
  std::printf("\n| min(provider, provider+account of candidate x weight) x 3 | 100 | 200 | 400 |\n|---|---|---|---|\n");
  std::printf("| provider only x3 | %d | %d | %d |\n", det_prov_only[0][0], det_prov_only[0][1], det_prov_only[0][2]);
  for (size_t w = 0; w < ws.size(); ++w) {
    std::printf("| %s | %d | %d | %d |\n", ws[w].name, det[w][0], det[w][1], det[w][2]);
  }
  std::fflush(stdout);
}

// Probes of every sequence, computed once per run (a model pass over 400 tokens each).
const TokenProbe& CachedProbe(const Options& opt, tmk::Model& model, const Sequence* s) {
  static std::map<const Sequence*, TokenProbe> cache;
  static std::unique_ptr<tmk::Context> ctx;
  if (auto it = cache.find(s); it != cache.end()) return it->second;
  if (!ctx) {
    tmk::ContextOptions copt;
    copt.n_ctx = opt.tokens + 8 + static_cast<int32_t>(g_probe_prefix.size());
    copt.max_batch = copt.n_ctx;
    copt.max_outputs = copt.n_ctx;
    copt.n_threads = opt.threads;
    auto c = tmk::Context::Create(model, copt);
    if (!c.ok()) Die(c.status());
    ctx = std::move(c).value();
  }
  return cache[s] = ProbeTokens(*ctx, s->tokens, g_probe_prefix);
}

// The shipped Detector with the token-probability filter (DetectOptions::token_prob from the
// model over the text alone, temperature 1) at several thresholds: TPR at the reported p < 1e-6,
// accounts named at the longest length (wrong ones in parentheses).
void ProbFilterRows(const Options& opt, tmk::Model& model, const Cell& c) {
  constexpr double kThresholds[] = {1.0, 0.3, 0.4, 0.5, 0.6, 0.7};
  constexpr double kDefaultFilter = 0.5;
  constexpr size_t kRows = std::size(kThresholds);
  int detected[kRows][kNumLengths] = {};
  int attributed[kRows] = {}, wrong[kRows] = {}, attributed200[kRows] = {}, wrong200[kRows] = {};
  std::vector<double> lp200[kRows];
  double scored200[kRows] = {};
  const bool null_cell = c.scheme == kNoWatermark;
  int below2[kRows][kNumLengths] = {}, below3[kRows][kNumLengths] = {};  // null cells: p < 1e-2, 1e-3
  for (const Sequence* s : c.seqs) {
    const TokenProbe& probe = CachedProbe(opt, model, s);
    // Unwatermarked answers ("none") are tested against the default scheme's keyring: a
    // false-positive check on real answers of the same model.
    wm::Keyring ring = MakeKeyring(null_cell ? std::string(wm::kDefaultSchemeSpec) : s->spec, opt.secret_fill);
    auto det = wm::Detector::Create(ring);
    if (!det.ok()) Die(det.status());
    std::vector<uint64_t> suspects;
    for (int q = 0; static_cast<int>(suspects.size()) < opt.suspects; ++q) {
      const auto& other = c.seqs[static_cast<size_t>((s->prompt + q) % static_cast<int>(c.seqs.size()))];
      suspects.push_back(other->account);
    }
    for (size_t t = 0; t < kRows; ++t) {
      for (int li = 0; li < kNumLengths; ++li) {
        if (static_cast<int>(s->tokens.size()) < kLengths[li]) continue;
        const size_t len = static_cast<size_t>(kLengths[li]);
        wm::DetectOptions o;
        if (kThresholds[t] < 1.0) o.token_prob = std::span<const float>(probe.p1).first(len);
        o.max_token_prob = kThresholds[t];
        o.suspects = suspects;
        auto d = det->Detect(std::span<const int32_t>(s->tokens).first(len), o);
        if (!d.ok()) Die(d.status());
        detected[t][li] += d->watermarked;
        below2[t][li] += d->log10_p_value < -2.0;
        below3[t][li] += d->log10_p_value < -3.0;
        if (kLengths[li] == 200 && opt.per_answer && kThresholds[t] == kDefaultFilter) {
          std::set<std::pair<int32_t, int32_t>> distinct;  // distinct 2-grams: a loop has few
          for (size_t i = 1; i < len; ++i) distinct.insert({s->tokens[i - 1], s->tokens[i]});
          std::printf("answer %s T=%.1f prompt %d: log10 p %.2f (provider %.2f), tuples %lld, distinct 2-grams %zu\n",
                      c.scheme.c_str(), c.temperature, s->prompt, d->log10_p_value, d->provider_log10_p,
                      static_cast<long long>(d->tokens_scored), distinct.size());
        }
        if (kLengths[li] == 200) {
          scored200[t] += static_cast<double>(d->tokens_scored);
          lp200[t].push_back(d->log10_p_value);
          if (d->account) (*d->account == s->account && !null_cell ? attributed200[t] : wrong200[t]) += 1;
        }
        if (kLengths[li] == opt.tokens && d->account) {
          (*d->account == s->account && !null_cell ? attributed[t] : wrong[t]) += 1;
        }
      }
    }
  }
  if (null_cell) {
    std::printf("\nUnwatermarked answers, T=%.1f, against the default scheme's keyring%s: shipped Detector,\n"
                "answers with reported p < 1e-2 / p < 1e-3 (expected at most %.1f / %.2f of %zu), accounts named\n\n",
                c.temperature, opt.suspects > 0 ? (" (targeted, " + std::to_string(opt.suspects) + " suspects)").c_str() : "",
                0.01 * static_cast<double>(c.seqs.size()),
                0.001 * static_cast<double>(c.seqs.size()), c.seqs.size());
    std::printf("| max token prob | 25 | 50 | 100 | 200 | 400 | named@200 | named@%d |\n|---|---|---|---|---|---|---|---|\n",
                opt.tokens);
    for (size_t t = 0; t < kRows; ++t) {
      std::printf("| %s |", kThresholds[t] < 1.0 ? std::to_string(kThresholds[t]).substr(0, 3).c_str() : "off");
      for (int li = 0; li < kNumLengths; ++li) std::printf(" %d / %d |", below2[t][li], below3[t][li]);
      std::printf(" %d | %d |\n", wrong200[t], wrong[t]);
    }
    std::fflush(stdout);
    return;
  }
  std::printf("\nToken-probability filter, %s T=%.1f (%s): shipped Detector, TPR at reported p < 1e-6;\n"
              "p(token) from the model over the text alone (temperature 1), tuples above the threshold not scored",
              c.scheme.c_str(), c.temperature, c.seqs.front()->spec.c_str());
  if (opt.suspects > 0) std::printf("; targeted: the writer among %d suspects", opt.suspects);
  std::printf("\n\n");
  std::printf("| max token prob | 25 | 50 | 100 | 200 | 400 | tuples scored@200 | median log10 p@200 | attributed@200 (wrong) |"
              " attributed@%d (wrong) |\n|---|---|---|---|---|---|---|---|---|---|\n", opt.tokens);
  for (size_t t = 0; t < kRows; ++t) {
    std::printf("| %s |", kThresholds[t] < 1.0 ? std::to_string(kThresholds[t]).substr(0, 3).c_str() : "off");
    for (int li = 0; li < kNumLengths; ++li) std::printf(" %d/%zu |", detected[t][li], c.seqs.size());
    std::sort(lp200[t].begin(), lp200[t].end());
    std::printf(" %.0f | %.2f | %d/%zu (%d) | %d/%zu (%d) |\n", scored200[t] / static_cast<double>(c.seqs.size()),
                lp200[t].empty() ? 0.0 : lp200[t][lp200[t].size() / 2], attributed200[t], c.seqs.size(),
                wrong200[t], attributed[t], c.seqs.size(), wrong[t]);
  }
  std::fflush(stdout);
}

// ---- --quality 1: length and perplexity of served answers, watermarked vs unwatermarked ----

// Where a served answer would have stopped: the index of the first end-of-generation token
// (end-of-turn or EOS), or the cached length when the answer never stopped (capped).
size_t StopIndex(const tmk::text::Tokenizer& tok, std::span<const int32_t> tokens) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tok.IsEog(tokens[i])) return i;
  }
  return tokens.size();
}

// Negative log-likelihood of one answer token under the sampler's own transform (temperature t,
// top-k kTopK, top-p kTopP, as Sampler::BuildCandidates ranks: descending logit, ties by id).
// Returns false when the token lies outside the recomputed nucleus: seen only on answers cached
// by an earlier engine build whose logits round differently (the current build's batched decode
// and this single-sequence pass agreed on all 152k answer tokens measured).
bool SampledNll(std::span<const float> l, int32_t token, float t, std::vector<std::pair<float, int32_t>>& sorted,
                double& nll) {
  sorted.clear();
  for (size_t v = 0; v < l.size(); ++v) sorted.push_back({l[v], static_cast<int32_t>(v)});
  std::partial_sort(sorted.begin(), sorted.begin() + kTopK, sorted.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  std::array<double, kTopK> w{};
  double z = 0;
  for (int k = 0; k < kTopK; ++k) {
    w[static_cast<size_t>(k)] = std::exp(static_cast<double>(sorted[static_cast<size_t>(k)].first - sorted[0].first) / t);
    z += w[static_cast<size_t>(k)];
  }
  double cum = 0;
  int keep = kTopK;
  for (int k = 0; k < kTopK; ++k) {
    cum += w[static_cast<size_t>(k)];
    if (cum >= static_cast<double>(kTopP) * z) {
      keep = k + 1;
      break;
    }
  }
  double kept = 0;
  for (int k = 0; k < keep; ++k) kept += w[static_cast<size_t>(k)];
  for (int k = 0; k < keep; ++k) {
    if (sorted[static_cast<size_t>(k)].second == token) {
      nll = -std::log(w[static_cast<size_t>(k)] / kept);
      return true;
    }
  }
  return false;
}

// Per-answer quality numbers.
struct AnswerQuality {
  size_t length = 0;        // tokens before the stop (the served answer's length)
  bool capped = false;      // no end-of-generation token within the cached tokens
  double nll1 = 0;          // mean NLL per scored token at temperature 1, full vocabulary
  double nll_sampled = 0;   // mean NLL per scored token under the sampling transform
  int64_t outside = 0;      // scored tokens outside the recomputed nucleus (left out of nll_sampled)
};

// Runs the model over chat prompt + answer (up to and including the stop token, at most
// --tokens) and scores every answer token.
AnswerQuality MeasureAnswer(tmk::Context& ctx, const tmk::text::Tokenizer& tok, std::span<const int32_t> prompt,
                            const Sequence& s, std::vector<std::pair<float, int32_t>>& sorted) {
  AnswerQuality q;
  const size_t stop = StopIndex(tok, s.tokens);
  q.length = stop;
  q.capped = stop == s.tokens.size();
  const size_t scored = std::min(s.tokens.size(), stop + 1);  // the stop token is scored too
  tmk::Batch batch;
  ctx.ClearSeq(0);
  const size_t np = prompt.size();
  for (size_t i = 0; i < np; ++i) batch.Add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == np);
  for (size_t k = 0; k + 1 < scored; ++k) batch.Add(s.tokens[k], static_cast<int32_t>(np + k), 0, true);
  if (auto st = ctx.Decode(batch); !st.ok()) Die(st);
  double sum1 = 0, sums = 0;
  int64_t ns = 0;
  for (size_t k = 0; k < scored; ++k) {
    const auto l = ctx.Logits(ctx.OutputOf(static_cast<int32_t>(np + k - 1)));
    const int32_t t = s.tokens[k];
    const RowSoftmax sm = SoftmaxOf(l);
    sum1 += -static_cast<double>(l[static_cast<size_t>(t)] - sm.max) + std::log(sm.z);
    double nll = 0;
    if (SampledNll(l, t, s.temperature, sorted, nll)) {
      sums += nll;
      ++ns;
    } else {
      ++q.outside;
    }
  }
  q.nll1 = sum1 / static_cast<double>(scored);
  q.nll_sampled = ns > 0 ? sums / static_cast<double>(ns) : 0.0;
  return q;
}

// Mean and standard error of a sample.
struct MeanSe {
  double mean = 0, se = 0;
};
MeanSe MeanAndSe(const std::vector<double>& x) {
  MeanSe r;
  if (x.empty()) return r;
  for (double v : x) r.mean += v;
  r.mean /= static_cast<double>(x.size());
  if (x.size() < 2) return r;
  double ss = 0;
  for (double v : x) ss += (v - r.mean) * (v - r.mean);
  r.se = std::sqrt(ss / static_cast<double>(x.size() - 1) / static_cast<double>(x.size()));
  return r;
}

// "a +- b": the difference of two means and twice its Welch standard error.
std::string WelchDiff(const MeanSe& a, const MeanSe& b, const char* fmt) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), fmt, a.mean - b.mean, 2 * std::sqrt(a.se * a.se + b.se * b.se));
  return buf;
}

void QualityReport(const Options& opt, tmk::Model& model, const tmk::text::Tokenizer& tok,
                   const std::vector<std::vector<int32_t>>& prompts, const std::vector<Cell>& cells) {
  tmk::ContextOptions copt;
  copt.n_ctx = kPromptContext + opt.tokens + 8;
  copt.max_batch = copt.n_ctx;
  copt.max_outputs = copt.n_ctx;
  copt.n_threads = opt.threads;
  auto ctx = tmk::Context::Create(model, copt);
  if (!ctx.ok()) Die(ctx.status());
  std::vector<std::pair<float, int32_t>> sorted;
  struct CellQuality {
    std::vector<double> length, nll1, nlls;
    int capped = 0;
    int64_t outside = 0, tokens = 0;
  };
  std::vector<CellQuality> q(cells.size());
  const auto start = std::chrono::steady_clock::now();
  for (size_t c = 0; c < cells.size(); ++c) {
    for (const Sequence* s : cells[c].seqs) {
      const AnswerQuality a = MeasureAnswer(**ctx, tok, prompts[static_cast<size_t>(s->prompt)], *s, sorted);
      q[c].length.push_back(static_cast<double>(a.length));
      q[c].nll1.push_back(a.nll1);
      q[c].nlls.push_back(a.nll_sampled);
      q[c].capped += a.capped;
      q[c].outside += a.outside;
      q[c].tokens += static_cast<int64_t>(std::min(s->tokens.size(), a.length + 1));
    }
    std::fprintf(stderr, "quality: %s T=%.1f done (%.0f s)\n", cells[c].scheme.c_str(), cells[c].temperature,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  auto none_of = [&](float t) -> const CellQuality* {
    for (size_t c = 0; c < cells.size(); ++c) {
      if (cells[c].scheme == kNoWatermark && cells[c].temperature == t) return &q[c];
    }
    return nullptr;
  };
  std::printf("\nLength of served answers: index of the first end-of-turn/EOS token (capped at %d tokens); "
              "mean +- 2 s.e.; difference watermarked - none with 2 Welch s.e.\n\n", opt.tokens);
  std::printf("| scheme | T | answers | reached the cap | mean length | difference vs none |\n|---|---|---|---|---|---|\n");
  for (size_t c = 0; c < cells.size(); ++c) {
    const MeanSe m = MeanAndSe(q[c].length);
    const CellQuality* none = none_of(cells[c].temperature);
    std::string diff = "-";
    if (none != nullptr && cells[c].scheme != kNoWatermark) diff = WelchDiff(m, MeanAndSe(none->length), "%+.1f +- %.1f");
    std::printf("| %s | %.1f | %zu | %d | %.1f +- %.1f | %s |\n", cells[c].scheme.c_str(), cells[c].temperature,
                q[c].length.size(), q[c].capped, m.mean, 2 * m.se, diff.c_str());
  }
  std::printf("\nPerplexity under the unwatermarked model: chat prompt + answer up to and including the stop "
              "token, mean NLL per answer token (nats) averaged over answers, +- 2 s.e.; ppl = exp(mean NLL).\n"
              "\"T = 1\": the model's own distribution; \"sampling\": temperature T, top-k %d, top-p %.2f as "
              "the bench samples (tokens outside the recomputed nucleus left out and counted).\n\n", kTopK, kTopP);
  std::printf("| scheme | T | scored tokens | NLL at T = 1 | ppl | difference vs none | NLL sampling | "
              "difference vs none | outside nucleus |\n|---|---|---|---|---|---|---|---|---|\n");
  for (size_t c = 0; c < cells.size(); ++c) {
    const MeanSe m1 = MeanAndSe(q[c].nll1), ms = MeanAndSe(q[c].nlls);
    const CellQuality* none = none_of(cells[c].temperature);
    std::string d1 = "-", ds = "-";
    if (none != nullptr && cells[c].scheme != kNoWatermark) {
      d1 = WelchDiff(m1, MeanAndSe(none->nll1), "%+.4f +- %.4f");
      ds = WelchDiff(ms, MeanAndSe(none->nlls), "%+.4f +- %.4f");
    }
    std::printf("| %s | %.1f | %lld | %.4f +- %.4f | %.3f | %s | %.4f +- %.4f | %s | %lld |\n", cells[c].scheme.c_str(),
                cells[c].temperature, static_cast<long long>(q[c].tokens), m1.mean, 2 * m1.se, std::exp(m1.mean),
                d1.c_str(), ms.mean, 2 * ms.se, ds.c_str(), static_cast<long long>(q[c].outside));
  }
  std::fflush(stdout);
}

// ---- --robustness 1: token-level attacks on the cached 400-token answers ----

enum class AttackKind { kNone, kMask, kTruncate, kDelete, kSubstitute, kMix };
struct AttackDef {
  const char* name;
  AttackKind kind;
  double rate;
};
constexpr AttackDef kRealAttacks[] = {
    {"none", AttackKind::kNone, 0},
    {"PII mask 10% (3-token spans)", AttackKind::kMask, 0.10},
    {"truncate to 50%", AttackKind::kTruncate, 0.5},
    {"delete 10%", AttackKind::kDelete, 0.10},
    {"delete 20%", AttackKind::kDelete, 0.20},
    {"delete 30%", AttackKind::kDelete, 0.30},
    {"substitute 10%", AttackKind::kSubstitute, 0.10},
    {"substitute 20%", AttackKind::kSubstitute, 0.20},
    {"substitute 30%", AttackKind::kSubstitute, 0.30},
    {"mixed: 10% of a 4000-token KJV doc", AttackKind::kMix, 0.10},
};
constexpr uint64_t kAttackSeed = 777;          // per answer and attack: kAttackSeed + 1009 * index
constexpr int kMaskSpan = 3;                   // tokens per PII span
constexpr char kPlaceholder[] = " [NAME]";     // what a masked span becomes (tokenized, masked)
constexpr char kKjvPath[] = "tests/data/redteam/kjv_docs.txt";
constexpr size_t kMixDocTokens = 4000;         // the mixed document's length, answer included
constexpr int32_t kProbeBatch = 512;           // tokens per forward pass of BatchedProbe
constexpr int32_t kProbeSlots = 128;           // sequences in flight in BatchedProbe
constexpr double kRobustFilter = 0.5;          // token-probability filter of the second table

// One document for BatchedProbe: the model (text alone, temperature 1) gives p1[i], the
// probability of tokens[i] after tokens[0..i); at every position in `substitute` (sorted, >= 1)
// tokens[i] is first replaced by the model's most likely token other than the original, given
// the already edited prefix (a "synonym" the model finds plausible).
struct ProbeJob {
  std::vector<int32_t> tokens;
  std::vector<size_t> substitute;
  std::vector<float> p1;
};

// Runs many ProbeJobs through one context, kProbeSlots sequences in flight, each forward pass
// packing up to kProbeBatch tokens; a sequence advances to its next substitution per pass.
void BatchedProbe(const Options& opt, tmk::Model& model, std::vector<ProbeJob>& jobs) {
  if (jobs.empty()) return;
  size_t longest = 0;
  for (const ProbeJob& j : jobs) longest = std::max(longest, j.tokens.size());
  const int32_t slots = static_cast<int32_t>(std::min<size_t>(jobs.size(), kProbeSlots));
  tmk::ContextOptions copt;
  copt.n_ctx = static_cast<int32_t>(longest) + 8;
  copt.n_seq = slots;
  copt.max_batch = kProbeBatch;
  copt.max_outputs = kProbeBatch;
  copt.n_threads = opt.threads;
  auto ctx = tmk::Context::Create(model, copt);
  if (!ctx.ok()) Die(ctx.status());
  struct Slot {
    long job = -1;
    size_t fed = 0, next_sub = 0;
  };
  std::vector<Slot> slot(static_cast<size_t>(slots));
  size_t next_job = 0;
  auto assign = [&](int32_t s) {
    Slot& sl = slot[static_cast<size_t>(s)];
    sl = Slot();
    if (next_job == jobs.size()) return;
    sl.job = static_cast<long>(next_job++);
    jobs[static_cast<size_t>(sl.job)].p1.assign(jobs[static_cast<size_t>(sl.job)].tokens.size(), 1.0f);
    (*ctx)->ClearSeq(s);
  };
  for (int32_t s = 0; s < slots; ++s) assign(s);
  struct Span {
    int32_t slot, row0;
    size_t fed, n, target;
  };
  std::vector<Span> spans;
  tmk::Batch batch;
  int32_t rr = 0;
  for (;;) {
    batch.Clear();
    spans.clear();
    for (int32_t k = 0; k < slots && batch.size() < kProbeBatch; ++k) {
      const int32_t s = (rr + k) % slots;
      Slot& sl = slot[static_cast<size_t>(s)];
      if (sl.job < 0) continue;
      ProbeJob& j = jobs[static_cast<size_t>(sl.job)];
      const size_t target = sl.next_sub < j.substitute.size() ? j.substitute[sl.next_sub] : j.tokens.size();
      const size_t n = std::min(target - sl.fed, static_cast<size_t>(kProbeBatch - batch.size()));
      spans.push_back({s, batch.size(), sl.fed, n, target});
      for (size_t q = 0; q < n; ++q) {
        batch.Add(j.tokens[sl.fed + q], static_cast<int32_t>(sl.fed + q), s, true);
      }
    }
    if (spans.empty()) break;
    rr = (rr + 1) % slots;
    if (auto st = (*ctx)->Decode(batch); !st.ok()) Die(st);
    for (const Span& sp : spans) {
      Slot& sl = slot[static_cast<size_t>(sp.slot)];
      ProbeJob& j = jobs[static_cast<size_t>(sl.job)];
      for (size_t q = 0; q < sp.n; ++q) {
        const size_t next = sp.fed + q + 1;  // the token this row predicts
        if (next >= j.tokens.size()) continue;
        const auto l = (*ctx)->Logits((*ctx)->OutputOf(sp.row0 + static_cast<int32_t>(q)));
        if (next == sp.target) {  // a substitution: the most likely other token
          const int32_t original = j.tokens[next];
          int32_t best = original == 0 ? 1 : 0;
          for (size_t v = 0; v < l.size(); ++v) {
            if (static_cast<int32_t>(v) != original && l[v] > l[static_cast<size_t>(best)]) best = static_cast<int32_t>(v);
          }
          j.tokens[next] = best;
        }
        const RowSoftmax sm = SoftmaxOf(l);
        j.p1[next] = static_cast<float>(std::exp(static_cast<double>(l[static_cast<size_t>(j.tokens[next])] - sm.max)) / sm.z);
      }
      sl.fed += sp.n;
      if (sl.fed == sp.target && sp.target < j.tokens.size()) ++sl.next_sub;
      if (sl.fed == j.tokens.size()) assign(sp.slot);
    }
  }
}

// An attacked document: tokens, skip mask (empty = none) and, when the filter is on, p1.
struct AttackedDoc {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> mask;
  std::vector<float> p1;
};

void RobustnessReport(const Options& opt, tmk::Model& model, const tmk::text::Tokenizer& tok,
                      const std::vector<Cell>& cells) {
  std::vector<int32_t> placeholder = tok.Encode(kPlaceholder, false, false);
  std::vector<int32_t> kjv;
  {
    std::ifstream in(kKjvPath, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.empty()) Die(tmk::NotFound(std::string("robustness: cannot read ") + kKjvPath + " (run from the source root)"));
    kjv = tok.Encode(text, false, false);
  }
  const size_t filler = kMixDocTokens - static_cast<size_t>(opt.tokens);
  if (kjv.size() < filler + 1) Die(tmk::InvalidArgument("robustness: KJV text too short"));
  std::printf("\nRobustness on the real model: cached %d-token answers (continued past end-of-turn), token-level "
              "attacks (seed %llu), shipped Detector with default DetectOptions (masked spans in skip_mask);\n"
              "TPR at reported p < 1e-6 and, in parentheses, accounts named correctly (wrong ones after the slash). "
              "Substitution: the model's most likely other token given the edited prefix (text alone).\n"
              "Placeholder %zu tokens; KJV %zu tokens.\n",
              opt.tokens, static_cast<unsigned long long>(kAttackSeed), placeholder.size(), kjv.size());
  for (const Cell& c : cells) {
    if (c.scheme == kNoWatermark) continue;
    const auto start = std::chrono::steady_clock::now();
    const size_t n = c.seqs.size();
    constexpr size_t kAttacks = std::size(kRealAttacks);
    std::vector<std::vector<AttackedDoc>> docs(kAttacks, std::vector<AttackedDoc>(n));
    std::vector<ProbeJob> jobs;      // substitutions (always) and filter probes (--filter 1)
    std::vector<std::pair<size_t, size_t>> job_of;  // (attack, answer) per job
    for (size_t a = 0; a < kAttacks; ++a) {
      const AttackDef& at = kRealAttacks[a];
      for (size_t i = 0; i < n; ++i) {
        const std::vector<int32_t>& src = c.seqs[i]->tokens;
        tmk::Rng rng(kAttackSeed + 1009 * a + 65537 * static_cast<uint64_t>(c.seqs[i]->prompt));
        AttackedDoc& d = docs[a][i];
        std::vector<size_t> subs;
        switch (at.kind) {
          case AttackKind::kNone: d.tokens = src; break;
          case AttackKind::kMask:
            for (size_t k = 0; k < src.size(); k += kMaskSpan) {
              const size_t end = std::min(src.size(), k + kMaskSpan);
              if (rng.Uniform() < at.rate) {
                d.tokens.insert(d.tokens.end(), placeholder.begin(), placeholder.end());
                d.mask.resize(d.tokens.size(), 1);
              } else {
                d.tokens.insert(d.tokens.end(), src.begin() + static_cast<std::ptrdiff_t>(k),
                                src.begin() + static_cast<std::ptrdiff_t>(end));
                d.mask.resize(d.tokens.size(), 0);
              }
            }
            break;
          case AttackKind::kTruncate:
            d.tokens.assign(src.begin(), src.begin() + static_cast<std::ptrdiff_t>(src.size() * at.rate));
            break;
          case AttackKind::kDelete:
            for (int32_t v : src) {
              if (rng.Uniform() >= at.rate) d.tokens.push_back(v);
            }
            break;
          case AttackKind::kSubstitute:
            d.tokens = src;
            for (size_t k = 1; k < src.size(); ++k) {
              if (rng.Uniform() < at.rate) subs.push_back(k);
            }
            break;
          case AttackKind::kMix: {
            const size_t offset = rng.Next() % (kjv.size() - filler);
            const size_t insert = rng.Next() % (filler + 1);
            const auto base = kjv.begin() + static_cast<std::ptrdiff_t>(offset);
            d.tokens.assign(base, base + static_cast<std::ptrdiff_t>(insert));
            d.tokens.insert(d.tokens.end(), src.begin(), src.end());
            d.tokens.insert(d.tokens.end(), base + static_cast<std::ptrdiff_t>(insert),
                            base + static_cast<std::ptrdiff_t>(filler));
            break;
          }
        }
        const bool probe = at.kind == AttackKind::kSubstitute ||
                           (opt.filter && (at.kind == AttackKind::kNone || at.kind == AttackKind::kMask ||
                                           at.kind == AttackKind::kDelete));
        if (probe) {
          jobs.push_back({d.tokens, std::move(subs), {}});
          job_of.push_back({a, i});
        }
      }
    }
    BatchedProbe(opt, model, jobs);
    size_t sub_positions = 0, probed = 0;
    double sub_prob = 0;  // the model's probability of the substitutes (how plausible they are)
    for (size_t k = 0; k < jobs.size(); ++k) {
      AttackedDoc& d = docs[job_of[k].first][job_of[k].second];
      for (size_t p : jobs[k].substitute) sub_prob += static_cast<double>(jobs[k].p1[p]);
      sub_positions += jobs[k].substitute.size();
      probed += jobs[k].tokens.size();
      d.tokens = std::move(jobs[k].tokens);
      d.p1 = std::move(jobs[k].p1);
    }
    // Truncation keeps a prefix: its p1 is the untouched answer's (the model is causal).
    for (size_t a = 0; a < kAttacks && opt.filter; ++a) {
      if (kRealAttacks[a].kind != AttackKind::kTruncate) continue;
      for (size_t i = 0; i < n; ++i) {
        docs[a][i].p1.assign(docs[0][i].p1.begin(), docs[0][i].p1.begin() + static_cast<std::ptrdiff_t>(docs[a][i].tokens.size()));
      }
    }
    const double probe_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("\n%s T=%.1f (%s), %zu answers; model passes over %zu tokens in %.0f s (%.0f tokens/s); "
                "%zu substitutions, mean model probability of the substitute %.3f\n\n",
                c.scheme.c_str(), c.temperature, c.seqs.front()->spec.c_str(), n, probed, probe_s,
                probe_s > 0 ? static_cast<double>(probed) / probe_s : 0.0, sub_positions,
                sub_positions > 0 ? sub_prob / static_cast<double>(sub_positions) : 0.0);
    std::printf("| attack | mean tokens | TPR | attributed (wrong) |%s\n|---|---|---|---|%s\n",
                opt.filter ? " TPR, filter p <= 0.5 | attributed (wrong), filter |" : "", opt.filter ? "---|---|" : "");
    for (size_t a = 0; a < kAttacks; ++a) {
      const bool has_filter = opt.filter && kRealAttacks[a].kind != AttackKind::kMix;
      int hit = 0, named = 0, wrong = 0, fhit = 0, fnamed = 0, fwrong = 0;
      double tokens = 0;
      for (size_t i = 0; i < n; ++i) {
        const Sequence* s = c.seqs[i];
        const AttackedDoc& d = docs[a][i];
        tokens += static_cast<double>(d.tokens.size());
        wm::Keyring ring = MakeKeyring(s->spec, opt.secret_fill);
        auto det = wm::Detector::Create(ring);
        if (!det.ok()) Die(det.status());
        wm::DetectOptions o;
        o.skip_mask = d.mask;
        auto r = det->Detect(d.tokens, o);
        if (!r.ok()) Die(r.status());
        hit += r->watermarked;
        if (r->account) (*r->account == s->account ? named : wrong) += 1;
        if (has_filter) {
          o.token_prob = d.p1;
          o.max_token_prob = kRobustFilter;
          auto f = det->Detect(d.tokens, o);
          if (!f.ok()) Die(f.status());
          fhit += f->watermarked;
          if (f->account) (*f->account == s->account ? fnamed : fwrong) += 1;
        }
      }
      std::printf("| %s | %.0f | %d/%zu | %d/%zu (%d) |", kRealAttacks[a].name, tokens / static_cast<double>(n), hit, n,
                  named, n, wrong);
      if (has_filter) std::printf(" %d/%zu | %d/%zu (%d) |", fhit, n, fnamed, n, fwrong);
      else if (opt.filter) std::printf(" - | - |");
      std::printf("\n");
    }
    std::fflush(stdout);
  }
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    std::fprintf(stderr,
                 "usage: watermark_power_bench MODEL [--prompts N] [--tokens N] [--threads N] [--cache FILE]\n"
                 "       [--schemes a,b,..] [--temperatures 0.7,1.0] [--secret-fill B] [--analyze 1]\n"
                 "       [--dump-text FILE] [--stats 1] [--dump-tuples FILE] [--filter 1] [--per-answer 1] [--suspects N]\n"
                 "       [--candidates P] [--probe-prefix 1] [--quality 1] [--robustness 1]\n");
    return 2;
  }
  Options opt;
  opt.model = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--prompts") opt.prompts = std::atoi(v.c_str());
    else if (k == "--tokens") opt.tokens = std::atoi(v.c_str());
    else if (k == "--threads") opt.threads = std::atoi(v.c_str());
    else if (k == "--cache") opt.cache = v;
    else if (k == "--dump-text") opt.dump_text = v;
    else if (k == "--analyze") opt.analyze = v == "1";
    else if (k == "--stats") opt.stats = v == "1";
    else if (k == "--dump-tuples") opt.dump_tuples = v;
    else if (k == "--filter") opt.filter = v == "1";
    else if (k == "--per-answer") opt.per_answer = v == "1";
    else if (k == "--suspects") opt.suspects = std::atoi(v.c_str());
    else if (k == "--candidates") opt.candidates = std::atof(v.c_str());
    else if (k == "--probe-prefix") opt.probe_prefix = v == "1";
    else if (k == "--quality") opt.quality = v == "1";
    else if (k == "--robustness") opt.robustness = v == "1";
    else if (k == "--secret-fill") opt.secret_fill = std::atoi(v.c_str());
    else if (k == "--schemes") opt.schemes = SplitComma(v);
    else if (k == "--temperatures") {
      opt.temperatures.clear();
      for (const auto& t : SplitComma(v)) opt.temperatures.push_back(std::stof(t));
    } else {
      std::fprintf(stderr, "watermark_power_bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (opt.suspects < 0 || opt.suspects > opt.prompts) {
    std::fprintf(stderr, "watermark_power_bench: --suspects must be in [0, --prompts]\n");
    return 2;
  }
  if (opt.prompts < 1 || opt.prompts > static_cast<int>(std::size(kPrompts)) || opt.tokens < 1 ||
      opt.tokens > 4096) {
    std::fprintf(stderr, "watermark_power_bench: --prompts must be in [1, %zu], --tokens in [1, 4096]\n",
                 std::size(kPrompts));
    return 2;
  }
  auto model = tmk::Model::Load(opt.model);
  if (!model.ok()) Die(model.status());
  auto tok = tmk::text::Tokenizer::FromGguf((*model)->file());
  if (!tok.ok()) Die(tok.status());
  auto tmpl = tmk::ChatTemplate::FromGguf((*model)->file());
  if (!tmpl.ok()) Die(tmpl.status());
  std::vector<std::vector<int32_t>> prompts;
  for (int p = 0; p < opt.prompts; ++p) {
    const tmk::ChatMessage message{"user", kPrompts[p]};
    auto rendered = tmpl->Render(std::span<const tmk::ChatMessage>(&message, 1), true);
    if (!rendered.ok()) Die(rendered.status());
    auto ids = (*tok)->Encode(*rendered, true, true);
    if (ids.size() >= 2 && ids[0] == (*tok)->bos_id() && ids[1] == (*tok)->bos_id()) ids.erase(ids.begin());
    if (static_cast<int32_t>(ids.size()) > kPromptContext) ids.resize(static_cast<size_t>(kPromptContext));
    prompts.push_back(std::move(ids));
  }
  if (opt.probe_prefix) {
    const tmk::ChatMessage message{"user", ""};
    auto rendered = tmpl->Render(std::span<const tmk::ChatMessage>(&message, 1), true);
    if (!rendered.ok()) Die(rendered.status());
    g_probe_prefix = (*tok)->Encode(*rendered, true, true);
    if (g_probe_prefix.size() >= 2 && g_probe_prefix[0] == (*tok)->bos_id() && g_probe_prefix[1] == (*tok)->bos_id()) {
      g_probe_prefix.erase(g_probe_prefix.begin());
    }
    std::printf("probe prefix: %zu tokens\n", g_probe_prefix.size());
  }
  std::map<std::string, Sequence> cache;
  if (!opt.cache.empty()) cache = LoadCache(opt.cache);
  std::vector<std::string> specs;
  for (const auto& name : opt.schemes) {
    if (name == kNoWatermark) {
      specs.push_back(name);
      continue;
    }
    auto params = wm::ParseSchemeSpec(name);
    if (!params.ok()) Die(params.status());
    specs.push_back(params->ToSpec());
  }
  for (float t : opt.temperatures) {
    std::vector<Sequence*> todo;
    for (const auto& spec : specs) {
      for (int p = 0; p < opt.prompts; ++p) {
        const std::string key = CacheKey(spec, t, p, opt.tokens, opt.secret_fill);
        if (cache.count(key) != 0) continue;
        Sequence& s = cache[key];
        s.spec = spec;
        s.temperature = t;
        s.prompt = p;
        s.account = 1000 + static_cast<uint64_t>(p) * 7919;
        todo.push_back(&s);
      }
    }
    // One batched decode per chunk (the engine's contexts hold at most kMaxBatchSequences).
    for (size_t at = 0; at < todo.size(); at += kMaxBatchSequences) {
      std::vector<Sequence*> chunk(todo.begin() + static_cast<std::ptrdiff_t>(at),
                                   todo.begin() + static_cast<std::ptrdiff_t>(std::min(todo.size(), at + kMaxBatchSequences)));
      GenerateBatch(opt, **model, **tok, prompts, t, chunk);
    }
    if (!opt.cache.empty()) {
      for (const Sequence* s : todo) AppendCache(opt.cache, *s, opt.tokens, opt.secret_fill);
    }
  }
  std::vector<Cell> cells;
  for (size_t k = 0; k < specs.size(); ++k) {
    for (float t : opt.temperatures) {
      Cell c{opt.schemes[k], t, {}};
      for (int p = 0; p < opt.prompts; ++p) {
        c.seqs.push_back(&cache.at(CacheKey(specs[k], t, p, opt.tokens, opt.secret_fill)));
      }
      cells.push_back(std::move(c));
    }
  }
  std::printf("model %s, %d prompts x %d tokens, secret fill 0x%02x\n", opt.model.c_str(), opt.prompts,
              opt.tokens, opt.secret_fill);
  for (const auto& s : specs) std::printf("  scheme %s\n", s.c_str());
  if (!opt.dump_text.empty()) {
    std::ofstream out(opt.dump_text);
    for (const Cell& c : cells) {
      for (const Sequence* s : c.seqs) {
        std::string text = (*tok)->Decode(s->tokens, true);
        std::replace(text.begin(), text.end(), '\n', ' ');
        out << text << '\n';
      }
    }
  }
  if (opt.quality) {
    QualityReport(opt, **model, **tok, prompts, cells);
    return 0;
  }
  if (opt.robustness) {
    RobustnessReport(opt, **model, **tok, cells);
    return 0;
  }
  if (opt.candidates > 0) {
    for (const Cell& c : cells) {
      if (c.seqs.front()->spec.rfind("gumbel", 0) == 0) AnalyzeCandidates(opt, **model, c, opt.candidates);
    }
    return 0;
  }
  if (opt.stats) {
    for (const Cell& c : cells) {
      if (c.seqs.front()->spec.rfind("gumbel", 0) == 0) AnalyzeStatistics(opt, **model, c);
      if (c.scheme != kNoWatermark) ProbFilterRows(opt, **model, c);
    }
    return 0;
  }
  Report(opt, cells);
  if (opt.filter) {
    for (const Cell& c : cells) ProbFilterRows(opt, **model, c);
  }
  if (opt.analyze) {
    for (const Cell& c : cells) {
      if (c.seqs.front()->spec.rfind("gumbel", 0) == 0) AnalyzeGumbel(opt, c);
      if (c.scheme != kNoWatermark) EntropyFilterRows(opt, **model, c);
    }
  }
  return 0;
}
