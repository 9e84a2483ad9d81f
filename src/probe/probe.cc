#include "tracemark/probe/probe.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "tracemark/watermark/detector.h"
#include "tracemark/watermark/prf.h"
#include "tracemark/watermark/stats.h"

namespace tracemark::probe {
namespace {

constexpr double kLn10 = 2.302585092994045684;
// Window entries of a TupleSet use this token (no real token id is negative).
constexpr int32_t kWindowToken = -1;

double Log10PFromSum(const watermark::SchemeParams& params, double sum, int64_t count) {
  watermark::ScoreSum s;
  s.sum = sum;
  s.count = count;
  return watermark::LogTail(params, s) / kLn10;
}

// The smallest positive double for p-values below it (log10 carries the exact value).
double PFromLog10(double log10_p) { return watermark::PValueFromLog(log10_p * kLn10); }

double BonferroniLog10(double log10_p, int tests) {
  return watermark::LogBonferroni(log10_p * kLn10, static_cast<double>(tests)) / kLn10;
}

}  // namespace

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kRadioactive:
      return "radioactive";
    case Verdict::kClean:
      return "clean";
    case Verdict::kInconclusive:
      return "inconclusive";
  }
  return "inconclusive";
}

Verdict Decide(double log10_p, int64_t tuples, double alpha) {
  if (tuples > 0 && log10_p < std::log10(alpha)) return Verdict::kRadioactive;
  return tuples >= kMinTuplesForClean ? Verdict::kClean : Verdict::kInconclusive;
}

Result<RadioactivityScorer> RadioactivityScorer::Create(const watermark::Keyring& keyring,
                                                        const ProbeOptions& options,
                                                        std::string mode) {
  if (!(options.alpha > 0.0 && options.alpha < 1.0)) {
    return InvalidArgument("alpha must be in (0, 1)");
  }
  RadioactivityScorer s;
  s.options_ = options;
  s.mode_ = std::move(mode);
  bool skipped_synthid_hf = false;
  for (const auto& v : keyring.versions()) {
    if (options.version != 0 && v.version != options.version) continue;
    VersionState vs;
    vs.version = v.version;
    TM_ASSIGN_OR_RETURN(vs.params, watermark::ParseSchemeSpec(v.scheme));
    // The transformers-compatible SynthID mode has its own g-function and no lanes (synthid_hf.h).
    if (vs.params.kind == watermark::SchemeKind::kSynthIdHf) {
      skipped_synthid_hf = true;
      continue;
    }
    TM_ASSIGN_OR_RETURN(vs.keys, keyring.DeriveSchemeKeys(v.version));
    if (options.account) {
      if (*options.account >= vs.params.AccountSpace()) {
        return InvalidArgument("account " + std::to_string(*options.account) +
                               " is outside the id space of key version " +
                               std::to_string(v.version) + " (" +
                               std::to_string(vs.params.AccountSpace()) + " ids)");
      }
      TM_ASSIGN_OR_RETURN(vs.account_key, keyring.DeriveAccountKey(v.version, *options.account));
    }
    s.versions_.push_back(std::move(vs));
  }
  if (s.versions_.empty() && skipped_synthid_hf) {
    return Unimplemented("the probe does not support synthid-hf key versions (no lanes, own g-function)");
  }
  if (s.versions_.empty()) {
    return NotFound("the keyring has no key version " + std::to_string(options.version));
  }
  return s;
}

void RadioactivityScorer::ExcludeWindowsOf(std::span<const int32_t> tokens) {
  for (VersionState& vs : versions_) {
    const size_t h = static_cast<size_t>(vs.params.context_width);
    for (size_t end = h; end <= tokens.size(); ++end) {
      const auto info = watermark::HashContext(vs.keys.context_key, vs.params, tokens, end);
      vs.excluded_windows.Insert(info.hash, kWindowToken);
    }
  }
}

void RadioactivityScorer::ExcludePromptWindows(std::span<const int32_t> tokens, size_t prompt_begin) {
  for (VersionState& vs : versions_) {
    const size_t h = static_cast<size_t>(vs.params.context_width);
    // The window that chose tokens[prompt_begin] ends at prompt_begin; the last one, after the
    // prompt, ends at tokens.size().
    for (size_t end = std::max(h, prompt_begin); end <= tokens.size(); ++end) {
      const auto info = watermark::HashContext(vs.keys.context_key, vs.params, tokens, end);
      vs.excluded_windows.Insert(info.hash, kWindowToken);
    }
  }
}

void RadioactivityScorer::ExcludeTuplesOf(std::span<const int32_t> tokens) {
  for (VersionState& vs : versions_) {
    const size_t h = static_cast<size_t>(vs.params.context_width);
    for (size_t end = h; end < tokens.size(); ++end) {
      const auto info = watermark::HashContext(vs.keys.context_key, vs.params, tokens, end);
      vs.excluded_tuples.Insert(info.hash, tokens[end]);
    }
  }
}

void RadioactivityScorer::AddFilterWindowsOf(std::span<const int32_t> tokens) {
  filtering_ = true;
  for (VersionState& vs : versions_) {
    const size_t h = static_cast<size_t>(vs.params.context_width);
    for (size_t end = h; end <= tokens.size(); ++end) {
      const auto info = watermark::HashContext(vs.keys.context_key, vs.params, tokens, end);
      vs.filter_windows.Insert(info.hash, kWindowToken);
    }
  }
}

void RadioactivityScorer::Score(std::span<const int32_t> tokens, size_t end, int32_t token) {
  using watermark::Lane;
  for (VersionState& vs : versions_) {
    if (end < static_cast<size_t>(vs.params.context_width) || end > tokens.size()) continue;
    const auto info = watermark::HashContext(vs.keys.context_key, vs.params, tokens, end);
    if (options_.exclude_seen && (vs.excluded_windows.Contains(info.hash, kWindowToken) ||
                                  vs.excluded_tuples.Contains(info.hash, token))) {
      ++vs.excluded;
      continue;
    }
    if (filtering_ && !vs.filter_windows.Contains(info.hash, kWindowToken)) {
      ++vs.filtered;
      continue;
    }
    if (options_.dedup && !vs.seen.Insert(info.hash, token)) {
      ++vs.duplicate;
      continue;
    }
    switch (info.lane) {
      case Lane::kProvider:
        vs.provider_sum += watermark::WordScore(
            vs.params, watermark::TokenWord(vs.keys.provider_key, info.hash, token, 0));
        ++vs.provider_count;
        break;
      case Lane::kPayload:
        if (options_.account) {
          const uint32_t slot = watermark::PayloadSlot(
              info.position, watermark::PayloadDigit(*options_.account, info.position));
          vs.account_sum += watermark::WordScore(
              vs.params, watermark::TokenWord(vs.keys.provider_key, info.hash, token, slot));
          ++vs.account_count;
        }
        break;
      case Lane::kAccount:
        if (options_.account) {
          vs.account_sum += watermark::WordScore(
              vs.params, watermark::TokenWord(vs.account_key, info.hash, token, 0));
          ++vs.account_count;
        }
        break;
    }
  }
}

double RadioactivityScorer::ProviderLog10P() const {
  double best = 0.0;
  for (const VersionState& vs : versions_) {
    best = std::min(best, Log10PFromSum(vs.params, vs.provider_sum, vs.provider_count));
  }
  return BonferroniLog10(best, static_cast<int>(versions_.size()));
}

void RadioactivityScorer::EndText(int64_t tokens) {
  tokens_examined_ += tokens;
  ++texts_;
  curve_.push_back(CurvePoint{tokens_examined_, ProviderLog10P()});
}

ProbeResult RadioactivityScorer::Finish() const {
  ProbeResult r;
  r.mode = mode_;
  r.alpha = options_.alpha;
  r.versions_tested = static_cast<int>(versions_.size());
  r.tokens_examined = tokens_examined_;
  r.texts = texts_;
  size_t best = 0;
  double best_log10 = 1.0;
  for (size_t i = 0; i < versions_.size(); ++i) {
    const VersionState& vs = versions_[i];
    const double l = Log10PFromSum(vs.params, vs.provider_sum, vs.provider_count);
    if (l < best_log10) {
      best_log10 = l;
      best = i;
    }
  }
  const VersionState& b = versions_[best];
  r.log10_p_value = BonferroniLog10(best_log10, r.versions_tested);
  r.p_value = PFromLog10(r.log10_p_value);
  r.tuples_scored = b.provider_count;
  r.tuples_excluded = b.excluded;
  r.tuples_duplicate = b.duplicate;
  r.tuples_filtered = b.filtered;
  r.scheme = b.params.ToSpec();
  r.key_version = b.version;
  r.verdict = Decide(r.log10_p_value, r.tuples_scored, r.alpha);
  if (options_.account) {
    double acc_best = 0.0;
    int64_t acc_tuples = 0;
    bool first = true;
    for (const VersionState& vs : versions_) {
      const double l = Log10PFromSum(vs.params, vs.account_sum, vs.account_count);
      if (first || l < acc_best) {
        acc_best = l;
        acc_tuples = vs.account_count;
        first = false;
      }
    }
    AccountFinding a;
    a.id = *options_.account;
    a.log10_p_value = BonferroniLog10(acc_best, r.versions_tested);
    a.p_value = PFromLog10(a.log10_p_value);
    a.tuples_scored = acc_tuples;
    a.verdict = Decide(a.log10_p_value, a.tuples_scored, r.alpha);
    r.account = a;
  }
  // Thin the curve to at most kMaxCurvePoints, keeping the last point.
  if (curve_.size() <= kMaxCurvePoints) {
    r.curve = curve_;
  } else {
    const double step = static_cast<double>(curve_.size() - 1) / static_cast<double>(kMaxCurvePoints - 1);
    for (size_t k = 0; k < kMaxCurvePoints; ++k) {
      const size_t idx = std::min(curve_.size() - 1, static_cast<size_t>(std::llround(k * step)));
      r.curve.push_back(curve_[idx]);
    }
  }
  return r;
}

std::string ProbeResultToJson(const ProbeResult& r) {
  nlohmann::json j;
  j["mode"] = r.mode;
  j["p_value"] = r.p_value;
  j["log10_p_value"] = r.log10_p_value;
  j["tokens_scored"] = r.tokens_examined;
  j["tuples_scored"] = r.tuples_scored;
  j["verdict"] = VerdictName(r.verdict);
  j["alpha"] = r.alpha;
  nlohmann::json curve = nlohmann::json::array();
  nlohmann::json curve_log10 = nlohmann::json::array();
  for (const CurvePoint& c : r.curve) {
    curve.push_back({c.tokens, PFromLog10(c.log10_p)});
    curve_log10.push_back({c.tokens, c.log10_p});
  }
  j["curve"] = curve;
  j["curve_log10"] = curve_log10;
  if (r.account) {
    j["account"] = {{"id", r.account->id},
                    {"p_value", r.account->p_value},
                    {"log10_p_value", r.account->log10_p_value},
                    {"tuples_scored", r.account->tuples_scored},
                    {"verdict", VerdictName(r.account->verdict)}};
  } else {
    j["account"] = nullptr;
  }
  j["scheme"] = r.scheme;
  j["key_version"] = r.key_version;
  j["versions_tested"] = r.versions_tested;
  j["texts"] = r.texts;
  j["tuples_excluded"] = r.tuples_excluded;
  j["tuples_duplicate"] = r.tuples_duplicate;
  j["tuples_filtered"] = r.tuples_filtered;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<ProbeResult> ProbeResultFromJson(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("probe result is not a JSON object");
  try {
    ProbeResult r;
    r.mode = j.at("mode").get<std::string>();
    r.log10_p_value = j.at("log10_p_value").get<double>();
    r.p_value = j.at("p_value").get<double>();
    r.tokens_examined = j.at("tokens_scored").get<int64_t>();
    r.tuples_scored = j.at("tuples_scored").get<int64_t>();
    r.alpha = j.at("alpha").get<double>();
    r.verdict = Decide(r.log10_p_value, r.tuples_scored, r.alpha);
    r.scheme = j.value("scheme", std::string());
    r.key_version = j.value("key_version", 0);
    r.versions_tested = j.value("versions_tested", 1);
    r.texts = j.value("texts", int64_t{0});
    r.tuples_excluded = j.value("tuples_excluded", int64_t{0});
    r.tuples_duplicate = j.value("tuples_duplicate", int64_t{0});
    r.tuples_filtered = j.value("tuples_filtered", int64_t{0});
    if (j.contains("curve_log10")) {
      for (const auto& p : j.at("curve_log10")) {
        r.curve.push_back(CurvePoint{p.at(0).get<int64_t>(), p.at(1).get<double>()});
      }
    } else if (j.contains("curve")) {
      for (const auto& p : j.at("curve")) {
        const double pv = std::max(p.at(1).get<double>(), std::numeric_limits<double>::min());
        r.curve.push_back(CurvePoint{p.at(0).get<int64_t>(), std::log10(pv)});
      }
    }
    if (j.contains("account") && j.at("account").is_object()) {
      const auto& a = j.at("account");
      AccountFinding f;
      f.id = a.at("id").get<uint64_t>();
      f.log10_p_value = a.at("log10_p_value").get<double>();
      f.p_value = a.at("p_value").get<double>();
      f.tuples_scored = a.at("tuples_scored").get<int64_t>();
      f.verdict = Decide(f.log10_p_value, f.tuples_scored, r.alpha);
      r.account = f;
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(std::string("probe result JSON: ") + e.what());
  }
}

Result<ProbeResult> ScoreReading(std::span<const ReadText> data, const watermark::Keyring& keyring,
                                 const ProbeOptions& options) {
  TM_ASSIGN_OR_RETURN(RadioactivityScorer scorer, RadioactivityScorer::Create(keyring, options, "open"));
  for (const ReadText& t : data) scorer.ExcludeTuplesOf(t.tokens);
  for (const ReadText& t : data) {
    if (t.top1.size() != t.tokens.size()) return InvalidArgument("reading data: one prediction per token");
    int64_t examined = 0;
    for (size_t i = 0; i < t.tokens.size(); ++i) {
      if (t.top1[i] < 0) continue;
      ++examined;
      scorer.Score(t.tokens, i, t.top1[i]);
    }
    scorer.EndText(examined);
  }
  return scorer.Finish();
}

std::string BuildContinuationPrompt(const text::Tokenizer& our_tok, std::string_view text,
                                    int32_t prompt_tokens) {
  std::vector<int32_t> ids = our_tok.Encode(text, /*add_special=*/false, /*parse_special=*/false);
  if (ids.size() > static_cast<size_t>(std::max(prompt_tokens, 0))) ids.resize(static_cast<size_t>(prompt_tokens));
  return "Continue the following text:\n\n" + our_tok.Decode(ids, /*skip_special=*/true);
}

Result<std::vector<ClosedExchange>> CollectClosed(CompletionClient& client,
                                                  const text::Tokenizer& our_tok,
                                                  std::span<const std::string> texts,
                                                  int32_t prompt_tokens, int32_t max_tokens) {
  if (max_tokens < 1 || max_tokens > kMaxMaxTokens) {
    return InvalidArgument("max tokens must be in [1, " + std::to_string(kMaxMaxTokens) + "]");
  }
  std::vector<ClosedExchange> out;
  out.reserve(texts.size());
  for (const std::string& t : texts) {
    ClosedExchange ex;
    ex.prompt = BuildContinuationPrompt(our_tok, t, prompt_tokens);
    TM_ASSIGN_OR_RETURN(ex.completion, client.Complete(ex.prompt, max_tokens));
    out.push_back(std::move(ex));
  }
  return out;
}

Result<ProbeResult> ScoreClosed(std::span<const ClosedExchange> exchanges,
                                const text::Tokenizer& our_tok, const watermark::Keyring& keyring,
                                std::span<const std::string> filter_texts,
                                const ProbeOptions& options) {
  TM_ASSIGN_OR_RETURN(RadioactivityScorer scorer, RadioactivityScorer::Create(keyring, options, "closed"));
  for (const ClosedExchange& ex : exchanges) {
    scorer.ExcludeWindowsOf(our_tok.Encode(ex.prompt, false, false));
    if (!ex.prompt_context.empty()) scorer.ExcludePromptWindows(ex.prompt_context, ex.prompt_begin);
  }
  for (const std::string& f : filter_texts) scorer.AddFilterWindowsOf(our_tok.Encode(f, false, false));
  for (const ClosedExchange& ex : exchanges) {
    if (ex.raw) {
      // Score the continuation in the context of its prompt; the tokens shared with the encoded
      // prompt (its common prefix, robust to a token merging across the boundary) are not
      // suspect output.
      const std::vector<int32_t> prompt = our_tok.Encode(ex.prompt, false, false);
      const std::vector<int32_t> all = our_tok.Encode(ex.prompt + ex.completion, false, false);
      size_t start = 0;
      while (start < prompt.size() && start < all.size() && prompt[start] == all[start]) ++start;
      for (size_t i = start; i < all.size(); ++i) scorer.Score(all, i, all[i]);
      scorer.EndText(static_cast<int64_t>(all.size() - start));
      continue;
    }
    const std::vector<int32_t> out = our_tok.Encode(ex.completion, false, false);
    for (size_t i = 0; i < out.size(); ++i) scorer.Score(out, i, out[i]);
    scorer.EndText(static_cast<int64_t>(out.size()));
  }
  return scorer.Finish();
}

}  // namespace tracemark::probe
