#include "tracemark/watermark/detector.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <queue>
#include <unordered_set>

#include "tracemark/base/file.h"
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

Result<std::vector<uint64_t>> ParseSuspects(std::string_view text, bool lines) {
  std::vector<uint64_t> ids;
  std::unordered_set<uint64_t> seen;
  const char sep = lines ? '\n' : ',';
  size_t entry = 0;
  for (size_t pos = 0; pos <= text.size();) {
    size_t next = text.find(sep, pos);
    if (next == std::string_view::npos) next = text.size();
    std::string_view item = text.substr(pos, next - pos);
    pos = next + 1;
    ++entry;
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front())) != 0) {
      item.remove_prefix(1);
    }
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back())) != 0) {
      item.remove_suffix(1);
    }
    const std::string where = (lines ? "line " : "entry ") + std::to_string(entry);
    if (lines && (item.empty() || item.front() == '#')) continue;
    if (item.empty()) {
      return InvalidArgument("suspect list: " + where +
                             " is empty (give account ids separated by commas, e.g. 101,202)");
    }
    uint64_t id = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
    if (ec != std::errc() || ptr != item.data() + item.size()) {
      return InvalidArgument("suspect list: " + where + " '" + std::string(item) +
                             "' is not an account id (a decimal number below 2^64)");
    }
    if (!seen.insert(id).second) {
      return InvalidArgument("suspect list: account " + std::to_string(id) + " is listed twice (" +
                             where + ")");
    }
    if (ids.size() >= kMaxSuspects) {
      return InvalidArgument("suspect list: more than " + std::to_string(kMaxSuspects) +
                             " suspects; split the investigation into several runs");
    }
    ids.push_back(id);
  }
  if (ids.empty()) return InvalidArgument("suspect list is empty");
  return ids;
}

Result<std::vector<uint64_t>> ParseSuspectsArg(std::string_view arg) {
  if (arg.empty() || arg.front() != '@') return ParseSuspects(arg, /*lines=*/false);
  const std::string path(arg.substr(1));
  if (path.empty()) return InvalidArgument("suspect list: '@' must be followed by a file name");
  Result<std::string> text = ReadFile(path, kMaxSuspectFileBytes);
  if (!text.ok()) {
    return Status(text.status().code(), "suspect list " + path + ": " + text.status().message());
  }
  Result<std::vector<uint64_t>> ids = ParseSuspects(*text, /*lines=*/true);
  if (!ids.ok()) return Status(ids.status().code(), path + ": " + ids.status().message());
  return ids;
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

Status Detector::PrepareSuspects(std::span<const uint64_t> suspects) {
  if (std::ranges::equal(suspects, suspect_ids_)) return Status::Ok();
  if (suspects.size() > kMaxSuspects) {
    return InvalidArgument("suspect list: " + std::to_string(suspects.size()) +
                           " suspects, at most " + std::to_string(kMaxSuspects) +
                           "; split the investigation into several runs");
  }
  std::vector<uint64_t> sorted(suspects.begin(), suspects.end());
  std::sort(sorted.begin(), sorted.end());
  const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  if (dup != sorted.end()) {
    return InvalidArgument("suspect list: account " + std::to_string(*dup) + " is listed twice");
  }
  std::vector<std::vector<uint64_t>> keys(versions_.size());
  for (size_t vi = 0; vi < versions_.size(); ++vi) {
    const VersionState& vs = versions_[vi];
    if (vs.params.kind == SchemeKind::kSynthIdHf) continue;  // no account lanes: suspects ignored
    const uint64_t space = vs.params.AccountSpace();
    keys[vi].reserve(suspects.size());
    for (uint64_t id : suspects) {
      if (id >= space) {
        return InvalidArgument("suspect account " + std::to_string(id) +
                               " is outside the payload space [0, " + std::to_string(space) +
                               ") of key version " + std::to_string(vs.version) + " (scheme " +
                               vs.params.ToSpec() + ")");
      }
      TM_ASSIGN_OR_RETURN(uint64_t k, keyring_->DeriveAccountKey(vs.version, id));
      keys[vi].push_back(k);
    }
  }
  suspect_ids_.assign(suspects.begin(), suspects.end());
  suspect_keys_ = std::move(keys);
  return Status::Ok();
}

// digit_sums_[16 j + d] = the scores of the payload-lane tuples at position j under digit d's
// slot (provider key, slot 4 + 16 j + d), one word per tuple and digit; `score` is the per-word
// score (WordScore for exact tests, DecodeScore for list decoding).
void Detector::SumPayloadDigits(const VersionState& vs, double (*score)(const SchemeParams&, uint32_t)) {
  digit_sums_.assign(static_cast<size_t>(vs.params.payload_digits) * kPayloadRadix, ScoreSum{});
  for (const auto& t : payload_tuples_) {
    ScoreSum* sums = &digit_sums_[static_cast<size_t>(t.position) * kPayloadRadix];
    const uint32_t first_block = PayloadSlot(t.position, 0) >> 2;
    const uint32_t lo = static_cast<uint32_t>(t.hash), hi = static_cast<uint32_t>(t.hash >> 32);
    for (uint32_t b = 0; b < kPayloadRadix / 4; ++b) {
      const PhiloxBlock w = Philox4x32(vs.keys.provider_key,
                                       {lo, hi, static_cast<uint32_t>(t.token), first_block + b});
      for (uint32_t q = 0; q < 4; ++q) sums[4 * b + q].Add(score(vs.params, w[q]));
    }
  }
}

// Targeted detection over the tuples DetectVersion collected (payload_tuples_, account_tuples_
// before any span restriction). For each suspect b, exact word scores only:
//   targeted_b = tail(provider + payload words at slot 4 + 16 j + digit_b[j] + account words
//                under b's key), over every scored tuple of the document;
//   account_b  = tail(account words under b's key), inside the marked spans when in_spans_only.
// Under H0 "not our text" every word is a PRF output under a key the text does not depend on,
// one word per distinct (context, token), so targeted_b is exact for each fixed b; account_b is
// exact for each b that did not write the text (b's key is independent of the text, the spans
// are chosen from provider-lane words). Both are Bonferroni-corrected over the suspects.
void Detector::ScoreSuspects(size_t vi, const ScoreSum& provider, bool in_spans_only,
                             Detection& det, double& log_targeted, double& log_account) {
  const VersionState& vs = versions_[vi];
  const SchemeParams& p = vs.params;
  const int digits = p.payload_digits;
  // Exact per-(position, digit) payload sums: every payload tuple at position j adds one word to
  // each of the 16 digits of j, so suspect b's payload evidence is sum_j sums[j][digit_b[j]]
  // (each tuple counted once, under b's digit), whatever |S|.
  SumPayloadDigits(vs, WordScore);
  // Account-lane tuples as Philox inputs (block 0, word 0 = slot 0), batched per suspect key.
  const size_t na = account_tuples_.size();
  p_lo_.resize(na);
  p_hi_.resize(na);
  p_tok_.resize(na);
  account_in_span_.assign(na, 1);
  for (size_t k = 0; k < na; ++k) {
    const AccountTuple& t = account_tuples_[k];
    p_lo_[k] = static_cast<uint32_t>(t.hash);
    p_hi_[k] = static_cast<uint32_t>(t.hash >> 32);
    p_tok_[k] = static_cast<uint32_t>(t.token);
    if (in_spans_only) {
      bool in = false;
      for (const MarkedSpan& sp : det.spans) in = in || (t.index >= sp.begin && t.index < sp.end);
      account_in_span_[k] = in ? 1 : 0;
    }
  }
  if (zeros_.size() < na) zeros_.assign(na, 0u);
  for (auto* v : {&w0_, &w1_, &w2_, &w3_}) v->resize(na);

  const std::vector<uint64_t>& keys = suspect_keys_[vi];
  double best_targeted = 1.0, best_account = 1.0;
  for (size_t s = 0; s < suspect_ids_.size(); ++s) {
    const uint64_t id = suspect_ids_[s];
    ScoreSum all = provider;
    for (int j = 0; j < digits; ++j) {
      const ScoreSum& d = digit_sums_[static_cast<size_t>(j) * kPayloadRadix + PayloadDigit(id, j)];
      all.sum += d.sum;
      all.count += d.count;
    }
    Philox4x32Batch(keys[s], na, p_lo_.data(), p_hi_.data(), p_tok_.data(), zeros_.data(),
                    w0_.data(), w1_.data(), w2_.data(), w3_.data());
    ScoreSum acc;
    for (size_t k = 0; k < na; ++k) {
      const double sc = WordScore(p, w0_[k]);
      all.Add(sc);
      if (account_in_span_[k] != 0) acc.Add(sc);
    }
    const double lt = LogTail(p, all);
    if (lt < best_targeted) {
      best_targeted = lt;
      det.targeted_suspect = id;
    }
    const double la = LogTail(p, acc);
    if (acc.count > 0 && la < best_account) {
      best_account = la;
      det.decoded_account = id;
    }
  }
  const double m = static_cast<double>(suspect_ids_.size());
  log_targeted = LogBonferroni(std::min(best_targeted, 0.0), m);
  log_account = LogBonferroni(std::min(best_account, 0.0), m);
  det.suspects_tested = static_cast<int>(suspect_ids_.size());
  det.candidates_verified = static_cast<int>(suspect_ids_.size());
  det.attribution_in_spans = in_spans_only;
}

Result<Detection> Detector::DetectVersion(size_t vi, std::span<const int32_t> tokens,
                                          const DetectOptions& options, size_t end) {
  const VersionState& vs = versions_[vi];
  if (vs.params.kind == SchemeKind::kSynthIdHf) {
    TM_ASSIGN_OR_RETURN(Detection d, DetectSynthIdHfVersion(*keyring_, vs.version, vs.params,
                                                            tokens, options, end));
    if (!options.suspects.empty()) {
      d.account_note += std::string(d.account_note.empty() ? "" : "; ") +
                        "suspects ignored: scheme synthid-hf has no account lanes";
    }
    return d;
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
  double log_combined = 0.0, log_account = 0.0, log_targeted = 0.0;
  const bool targeted = !options.suspects.empty();
  // Gate: attribution runs only when the provider lane (global or windowed) shows evidence at
  // kAttributionGate. Reporting needs both, so the account test stays valid (it only gets
  // rarer) and null documents cost no key derivations.
  const bool gate = std::min(log_provider, log_window) < std::log(kAttributionGate);
  // Mixed documents: when a window beats the whole text, decode and verify only inside the
  // marked spans. The choice depends on provider-lane words only, which are independent of any
  // wrong account's account-lane words, so the verification stays exact.
  if (targeted) {
    // Suspects: no gate (the targeted test exists to find what the provider lane alone misses)
    // and no decoding; `combined` is replaced by the targeted test.
    ScoreSuspects(vi, provider, !det.spans.empty() && log_window < log_provider, det, log_targeted,
                  log_account);
    log_combined = log_targeted;
  } else if (!det.spans.empty() && log_window < log_provider) {
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
  if (targeted) {
    // ScoreSuspects above set log_combined (the targeted test) and the attribution; the final
    // else below must not overwrite it.
  } else if (gate && !account_tuples_.empty() && !payload_tuples_.empty()) {
    SumPayloadDigits(vs, DecodeScore);
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
  det.combined_log10_p = targeted ? 0.0 : log_combined / kLn10;
  det.targeted_log10_p = log_targeted / kLn10;
  det.window_log10_p = log_window / kLn10;
  det.log10_p_value = LogBonferroni(std::min({log_provider, log_combined, log_window}), 3.0) / kLn10;
  det.account_log10_p_value = log_account / kLn10;
  return det;
}

Result<Detection> Detector::Detect(std::span<const int32_t> tokens, const DetectOptions& options) {
  const size_t end = ScoringEnd(tokens, options.eos_ids);
  if (!options.suspects.empty()) TM_RETURN_IF_ERROR(PrepareSuspects(options.suspects));
  std::optional<Detection> best;
  int tested = 0;
  for (size_t vi = 0; vi < versions_.size(); ++vi) {
    const VersionState& vs = versions_[vi];
    if (options.version != 0 && vs.version != options.version) continue;
    TM_ASSIGN_OR_RETURN(Detection d, DetectVersion(vi, tokens, options, end));
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
