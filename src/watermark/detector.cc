#include "tracemark/watermark/detector.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <queue>

#include "tracemark/watermark/prf.h"
#include "tracemark/watermark/stats.h"
#include "tracemark/watermark/synthid_hf.h"

namespace tracemark::watermark {
namespace {

constexpr double kLn10 = 2.302585092994045684;
constexpr int kDecodeTableBits = 12;

uint32_t GreenThreshold(double gamma) {
  return static_cast<uint32_t>(std::floor(gamma * 4294967296.0));
}

// -log(1 - u) on 4096 buckets of u: the payload decoder only ranks digits, so an approximate
// score is enough there (verification uses exact scores on independent tuples).
const std::array<double, 1 << kDecodeTableBits>& DecodeTable() {
  static const auto table = [] {
    std::array<double, 1 << kDecodeTableBits> t{};
    for (size_t b = 0; b < t.size(); ++b) {
      const double u = (static_cast<double>(b) + 0.5) / static_cast<double>(t.size());
      t[b] = -std::log1p(-u);
    }
    return t;
  }();
  return table;
}

double DecodeScore(const SchemeParams& p, uint32_t w) {
  if (p.kind == SchemeKind::kGumbel) {
    const uint32_t bucket = w >> (32 - kDecodeTableBits);
    if (bucket + 1 == (1u << kDecodeTableBits)) return WordScore(p, w);
    return DecodeTable()[bucket];
  }
  return WordScore(p, w);
}

// Calls f(i, info) for every scorable, first-occurrence (context, token) tuple of tokens[0, end).
template <typename F>
void ForEachTuple(const SchemeParams& p, uint64_t context_key, std::span<const int32_t> tokens,
                  size_t end, std::span<const uint8_t> mask, TupleSet& seen, F&& f) {
  const size_t h = static_cast<size_t>(p.context_width);
  int64_t last_masked = -1;
  for (size_t i = 0; i < end; ++i) {
    if (i < mask.size() && mask[i] != 0) last_masked = static_cast<int64_t>(i);
    if (i < h) continue;
    if (last_masked >= static_cast<int64_t>(i - h)) continue;
    const ContextInfo info = HashContext(context_key, p, tokens, i);
    if (!seen.Insert(info.hash, tokens[i])) continue;
    f(i, info);
  }
}

size_t ScoringEnd(std::span<const int32_t> tokens, std::span<const int32_t> eos_ids) {
  size_t end = std::min(tokens.size(), kMaxDetectTokens);
  if (!eos_ids.empty()) {
    for (size_t i = 0; i < end; ++i) {
      if (std::find(eos_ids.begin(), eos_ids.end(), tokens[i]) != eos_ids.end()) {
        end = i;
        break;
      }
    }
  }
  return end;
}

struct DecodeState {
  double cost;
  std::array<uint8_t, kMaxPayloadDigits> ranks;
  int last;
  bool operator>(const DecodeState& o) const { return cost > o.cost; }
};

// The `k` account ids with the highest summed digit scores (best-first over sorted digit lists;
// each combination is reached once by incrementing ranks at positions >= the last one changed).
std::vector<uint64_t> ListDecode(const std::vector<ScoreSum>& sums, int digits, int k) {
  std::array<std::array<uint8_t, kPayloadRadix>, kMaxPayloadDigits> order{};
  std::array<std::array<double, kPayloadRadix>, kMaxPayloadDigits> gap{};
  for (int j = 0; j < digits; ++j) {
    auto& o = order[j];
    for (int d = 0; d < kPayloadRadix; ++d) o[d] = static_cast<uint8_t>(d);
    const ScoreSum* s = &sums[static_cast<size_t>(j) * kPayloadRadix];
    std::stable_sort(o.begin(), o.end(), [&](uint8_t a, uint8_t b) { return s[a].sum > s[b].sum; });
    for (int r = 0; r < kPayloadRadix; ++r) gap[j][r] = s[o[0]].sum - s[o[r]].sum;
  }
  std::vector<uint64_t> out;
  std::priority_queue<DecodeState, std::vector<DecodeState>, std::greater<>> heap;
  heap.push(DecodeState{0.0, {}, 0});
  while (!heap.empty() && static_cast<int>(out.size()) < k) {
    const DecodeState st = heap.top();
    heap.pop();
    uint64_t id = 0;
    for (int j = 0; j < digits; ++j) id |= static_cast<uint64_t>(order[j][st.ranks[j]]) << (4 * j);
    out.push_back(id);
    for (int j = st.last; j < digits; ++j) {
      if (st.ranks[j] + 1 >= kPayloadRadix) continue;
      DecodeState child = st;
      child.cost += gap[j][st.ranks[j] + 1] - gap[j][st.ranks[j]];
      ++child.ranks[j];
      child.last = j;
      heap.push(child);
    }
  }
  return out;
}

}  // namespace

double WordScore(const SchemeParams& p, uint32_t w) {
  switch (p.kind) {
    case SchemeKind::kGumbel:
      // -log(1 - u) with 1 - u = (2^32 - w - 1/2) / 2^32, exact in double.
      return -std::log((4294967296.0 - static_cast<double>(w) - 0.5) * 0x1.0p-32);
    case SchemeKind::kKgw:
      return w < GreenThreshold(p.gamma) ? 1.0 : 0.0;
    case SchemeKind::kSynthId: {
      const uint32_t mask = p.layers >= 32 ? 0xFFFFFFFFu : ((1u << p.layers) - 1u);
      return static_cast<double>(std::popcount(w & mask));
    }
    case SchemeKind::kSynthIdHf:  // scored by synthid_hf.cc, not through PRF words
      return 0.0;
  }
  return 0.0;
}

double LogTail(const SchemeParams& p, const ScoreSum& s) {
  if (s.count == 0) return 0.0;
  switch (p.kind) {
    case SchemeKind::kGumbel:
      return LogGammaUpperTail(s.count, s.sum);
    case SchemeKind::kKgw:
      return LogBinomialUpperTail(std::llround(s.sum), s.count,
                                  static_cast<double>(GreenThreshold(p.gamma)) * 0x1.0p-32);
    case SchemeKind::kSynthId:
      return LogBinomialUpperTail(std::llround(s.sum), s.count * p.layers, 0.5);
    case SchemeKind::kSynthIdHf:  // scored by synthid_hf.cc
      return 0.0;
  }
  return 0.0;
}

Result<Detector> Detector::Create(const Keyring& keyring) {
  Detector d(std::make_shared<const Keyring>(keyring));
  for (const auto& v : keyring.versions()) {
    VersionState vs;
    vs.version = v.version;
    TM_ASSIGN_OR_RETURN(vs.params, ParseSchemeSpec(v.scheme));
    TM_ASSIGN_OR_RETURN(vs.keys, keyring.DeriveSchemeKeys(v.version));
    d.versions_.push_back(vs);
  }
  return d;
}

Result<Detection> Detector::DetectVersion(const VersionState& vs, std::span<const int32_t> tokens,
                                          const DetectOptions& options, size_t end) {
  if (vs.params.kind == SchemeKind::kSynthIdHf) {
    return DetectSynthIdHfVersion(*keyring_, vs.version, vs.params, tokens, options, end);
  }
  const SchemeParams& p = vs.params;
  const int digits = p.payload_digits;
  const size_t h = static_cast<size_t>(p.context_width);
  tuples_.Clear();
  account_tuples_.clear();
  payload_tuples_.clear();
  provider_points_.clear();
  ScoreSum provider;
  const uint64_t prov_key = vs.keys.provider_key;
  const size_t n_ctx = end > h ? end - h : 0;  // positions h .. end-1

  // Phase 1: every context block, batched (vectorized Philox) for h <= 4.
  for (auto* v : {&blk0_, &blk1_, &blk2_, &blk3_}) v->resize(n_ctx);
  if (h <= 4 && p.context_mode == ContextMode::kHash) {
    if (zeros_.size() < n_ctx) zeros_.assign(n_ctx, 0u);
    const uint32_t* t = reinterpret_cast<const uint32_t*>(tokens.data());
    Philox4x32Batch(vs.keys.context_key, n_ctx, t + h - 1, h >= 2 ? t + h - 2 : zeros_.data(),
                    h >= 3 ? t + h - 3 : zeros_.data(), h >= 4 ? t + h - 4 : zeros_.data(),
                    blk0_.data(), blk1_.data(), blk2_.data(), blk3_.data());
  } else {
    for (size_t j = 0; j < n_ctx; ++j) {
      const ContextInfo info = HashContext(vs.keys.context_key, p, tokens, h + j);
      // Re-encode as a block so phase 2 is uniform.
      blk0_[j] = static_cast<uint32_t>(info.hash);
      blk1_[j] = static_cast<uint32_t>(info.hash >> 32);
      blk2_[j] = info.lane == Lane::kProvider ? 0u
                 : info.lane == Lane::kPayload ? p.provider_sixteenths << 28
                                               : (p.provider_sixteenths + p.payload_sixteenths) << 28;
      blk3_[j] = static_cast<uint32_t>(info.position);
    }
  }

  // Phase 2: masks, de-duplication, lanes.
  p_lo_.clear();
  p_hi_.clear();
  p_tok_.clear();
  int64_t last_masked = -1;
  const std::span<const uint8_t> mask = options.skip_mask;
  for (size_t i = 0; i < end; ++i) {
    if (i < mask.size() && mask[i] != 0) last_masked = static_cast<int64_t>(i);
    if (i < h || last_masked >= static_cast<int64_t>(i - h)) continue;
    if (i < options.token_entropy.size() && options.token_entropy[i] < options.min_entropy) continue;
    if (i < options.token_prob.size() && options.token_prob[i] > options.max_token_prob) continue;
    const size_t j = i - h;
    const ContextInfo info = ContextFromBlock({blk0_[j], blk1_[j], blk2_[j], blk3_[j]}, p);
    if (!tuples_.Insert(info.hash, tokens[i])) continue;
    if (options.corpus_tuples != nullptr && !options.corpus_tuples->Insert(info.hash, tokens[i])) continue;
    switch (info.lane) {
      case Lane::kProvider:
        p_lo_.push_back(blk0_[j]);
        p_hi_.push_back(blk1_[j]);
        p_tok_.push_back(static_cast<uint32_t>(tokens[i]));
        provider_points_.push_back({i, 0.0});
        break;
      case Lane::kPayload:
        payload_tuples_.push_back({info.hash, tokens[i], info.position, i});
        break;
      case Lane::kAccount:
        account_tuples_.push_back({info.hash, tokens[i], i});
        break;
    }
  }

  // Phase 3: provider-lane scores, batched.
  const size_t np = p_lo_.size();
  if (zeros_.size() < np) zeros_.assign(np, 0u);
  for (auto* v : {&w0_, &w1_, &w2_, &w3_}) v->resize(np);
  Philox4x32Batch(prov_key, np, p_lo_.data(), p_hi_.data(), p_tok_.data(), zeros_.data(), w0_.data(),
                  w1_.data(), w2_.data(), w3_.data());
  for (size_t k = 0; k < np; ++k) {
    const double sc = WordScore(p, w0_[k]);
    provider.Add(sc);
    provider_points_[k].score = sc;
  }
  const int64_t payload_tuples = static_cast<int64_t>(payload_tuples_.size());

  Detection det;
  det.scheme = p.ToSpec();
  det.key_version = vs.version;
  det.provider_tuples = provider.count;
  det.payload_tuples = payload_tuples;
  det.account_tuples = static_cast<int64_t>(account_tuples_.size());
  det.tokens_scored = provider.count + payload_tuples + det.account_tuples;

  const double log_provider = LogTail(p, provider);

  // Localized detection over provider-lane tuples.
  double log_window = 0.0;
  const size_t w = options.window_tuples > 0 ? static_cast<size_t>(options.window_tuples) : 0;
  const size_t n = provider_points_.size();
  if (w > 0 && n >= w) {
    const size_t stride = std::max<size_t>(1, w / 2);
    std::vector<size_t> starts;
    for (size_t s = 0; s + w <= n; s += stride) starts.push_back(s);
    if (starts.back() + w < n) starts.push_back(n - w);
    const double windows = static_cast<double>(starts.size());
    std::vector<double> prefix(n + 1, 0.0);
    for (size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + provider_points_[i].score;
    double best = 0.0;
    const double log_threshold = std::log(options.threshold);
    for (size_t s : starts) {
      ScoreSum ws{prefix[s + w] - prefix[s], static_cast<int64_t>(w)};
      const double lp = LogBonferroni(LogTail(p, ws), windows);
      best = std::min(best, lp);
      if (lp < log_threshold) {
        const size_t b = provider_points_[s].index - static_cast<size_t>(p.context_width);
        const size_t e = provider_points_[s + w - 1].index + 1;
        if (!det.spans.empty() && b <= det.spans.back().end) {
          det.spans.back().end = std::max(det.spans.back().end, e);
          det.spans.back().log10_p = std::min(det.spans.back().log10_p, lp / kLn10);
        } else {
          det.spans.push_back({b, e, lp / kLn10});
        }
      }
    }
    log_window = best;
  }

  // Attribution: list-decode the payload, verify each candidate on the account lane.
  double log_combined = 0.0, log_account = 0.0;
  // Gate: attribution runs only when the provider lane (global or windowed) shows evidence at
  // kAttributionGate. Reporting needs both, so the account test stays valid (it only gets
  // rarer) and null documents cost no key derivations.
  const bool gate = std::min(log_provider, log_window) < std::log(kAttributionGate);
  // Mixed documents: when a window beats the whole text, decode and verify only inside the
  // marked spans. The choice depends on provider-lane words only, which are independent of any
  // wrong account's account-lane words, so the verification stays exact.
  if (!det.spans.empty() && log_window < log_provider) {
    auto in_spans = [&](size_t index) {
      for (const MarkedSpan& sp : det.spans) {
        if (index >= sp.begin && index < sp.end) return true;
      }
      return false;
    };
    std::erase_if(payload_tuples_, [&](const PayloadTuple& t) { return !in_spans(t.index); });
    std::erase_if(account_tuples_, [&](const AccountTuple& t) { return !in_spans(t.index); });
    det.attribution_in_spans = true;
  }
  if (gate && !account_tuples_.empty() && !payload_tuples_.empty()) {
    digit_sums_.assign(static_cast<size_t>(digits) * kPayloadRadix, ScoreSum{});
    for (const auto& t : payload_tuples_) {
      ScoreSum* sums = &digit_sums_[static_cast<size_t>(t.position) * kPayloadRadix];
      const uint32_t first_block = PayloadSlot(t.position, 0) >> 2;
      const uint32_t lo = static_cast<uint32_t>(t.hash), hi = static_cast<uint32_t>(t.hash >> 32);
      for (uint32_t b = 0; b < kPayloadRadix / 4; ++b) {
        const PhiloxBlock w = Philox4x32(prov_key, {lo, hi, static_cast<uint32_t>(t.token), first_block + b});
        for (uint32_t q = 0; q < 4; ++q) sums[4 * b + q].Add(DecodeScore(p, w[q]));
      }
    }
    const int k = std::clamp(options.max_candidates, 1, kMaxCandidatesLimit);
    const std::vector<uint64_t> candidates = ListDecode(digit_sums_, digits, k);
    double best_log = 1.0;
    ScoreSum best_sum;
    for (uint64_t id : candidates) {
      TM_ASSIGN_OR_RETURN(uint64_t akey, keyring_->DeriveAccountKey(vs.version, id));
      ScoreSum s;
      for (const auto& t : account_tuples_) {
        s.Add(WordScore(p, TokenWord(akey, t.hash, t.token, 0)));
      }
      const double lp = LogTail(p, s);
      if (lp < best_log) {
        best_log = lp;
        best_sum = s;
        det.decoded_account = id;
      }
    }
    det.candidates_verified = static_cast<int>(candidates.size());
    const double m = static_cast<double>(candidates.size());
    log_account = LogBonferroni(best_log, m);
    ScoreSum combined = provider;
    combined.sum += best_sum.sum;
    combined.count += best_sum.count;
    log_combined = LogBonferroni(LogTail(p, combined), m);
  } else {
    log_combined = log_provider;
  }

  det.provider_log10_p = log_provider / kLn10;
  det.combined_log10_p = log_combined / kLn10;
  det.window_log10_p = log_window / kLn10;
  det.log10_p_value = LogBonferroni(std::min({log_provider, log_combined, log_window}), 3.0) / kLn10;
  det.account_log10_p_value = log_account / kLn10;
  return det;
}

Result<Detection> Detector::Detect(std::span<const int32_t> tokens, const DetectOptions& options) {
  const size_t end = ScoringEnd(tokens, options.eos_ids);
  std::optional<Detection> best;
  int tested = 0;
  for (const auto& vs : versions_) {
    if (options.version != 0 && vs.version != options.version) continue;
    TM_ASSIGN_OR_RETURN(Detection d, DetectVersion(vs, tokens, options, end));
    ++tested;
    if (!best || d.log10_p_value < best->log10_p_value) best = std::move(d);
  }
  if (!best) return NotFound("keyring has no key version " + std::to_string(options.version));
  Detection det = std::move(*best);
  det.versions_tested = tested;
  const double versions = static_cast<double>(tested);
  det.log10_p_value = LogBonferroni(det.log10_p_value * kLn10, versions) / kLn10;
  det.account_log10_p_value = LogBonferroni(det.account_log10_p_value * kLn10, versions) / kLn10;
  det.p_value = PValueFromLog(det.log10_p_value * kLn10);
  det.account_p_value = PValueFromLog(det.account_log10_p_value * kLn10);
  det.watermarked = det.log10_p_value * kLn10 < std::log(options.threshold);
  if (det.decoded_account && det.account_log10_p_value * kLn10 < std::log(options.account_threshold)) {
    det.account = det.decoded_account;
  }
  return det;
}

Result<CorpusDetector> CorpusDetector::Create(const Keyring& keyring, int version,
                                              std::optional<uint64_t> account) {
  CorpusDetector c;
  const int v = version == 0 ? keyring.active_version() : version;
  const KeyVersion* kv = keyring.Find(v);
  if (kv == nullptr) return NotFound("keyring has no key version " + std::to_string(v));
  TM_ASSIGN_OR_RETURN(c.params_, ParseSchemeSpec(kv->scheme));
  if (c.params_.kind == SchemeKind::kSynthIdHf) {
    return Unimplemented("corpus pooling is not implemented for scheme synthid-hf (key version " +
                         std::to_string(v) + "); detect documents one by one");
  }
  TM_ASSIGN_OR_RETURN(c.keys_, keyring.DeriveSchemeKeys(v));
  c.account_ = account;
  if (account) {
    TM_ASSIGN_OR_RETURN(c.account_key_, keyring.DeriveAccountKey(v, *account));
  }
  return c;
}

void CorpusDetector::AddDocument(std::span<const int32_t> tokens, std::span<const uint8_t> skip_mask,
                                 std::span<const int32_t> eos_ids) {
  ++documents_;
  const size_t end = ScoringEnd(tokens, eos_ids);
  ForEachTuple(params_, keys_.context_key, tokens, end, skip_mask, tuples_,
               [&](size_t i, const ContextInfo& info) {
                 if (info.lane == Lane::kProvider) {
                   sum_.Add(WordScore(params_, TokenWord(keys_.provider_key, info.hash, tokens[i], 0)));
                 } else if (info.lane == Lane::kAccount && account_) {
                   sum_.Add(WordScore(params_, TokenWord(account_key_, info.hash, tokens[i], 0)));
                 }
               });
}

}  // namespace tracemark::watermark
