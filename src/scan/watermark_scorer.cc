// Tokenizer + detector behind the scanner's scorer interface (see watermark_scorer.h).
#include "tracemark/scan/watermark_scorer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "fmt/format.h"
#include "tracemark/crypto/crypto.h"
#include "tracemark/model/gguf.h"
#include "tracemark/model/model.h"
#include "tracemark/model/token_prob.h"
#include "tracemark/text/tokenizer.h"
#include "tracemark/watermark/detector.h"
#include "tracemark/watermark/keyring.h"
#include "tracemark/watermark/placeholders.h"
#include "tracemark/watermark/prf.h"
#include "tracemark/watermark/scheme.h"

namespace tracemark::scan {
namespace {

constexpr double kLn10 = 2.302585092994045684;

// Byte offset where each token starts (plus the end), from the tokens' raw bytes. When the
// tokenizer added bytes the text does not have (a SentencePiece dummy-prefix space), offsets are
// shifted back by the difference and clamped, which keeps placeholder masks aligned.
void TokenOffsets(const text::Tokenizer& tok, std::span<const int32_t> ids, size_t text_size,
                  std::vector<size_t>* offsets) {
  offsets->resize(ids.size() + 1);
  size_t pos = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    (*offsets)[i] = pos;
    pos += tok.TokenBytes(ids[i], /*skip_special=*/false).size();
  }
  (*offsets)[ids.size()] = pos;
  if (pos > text_size) {
    const size_t shift = pos - text_size;
    for (size_t& o : *offsets) o = o > shift ? o - shift : 0;
  }
}

}  // namespace

// What the pool needs of one key version: its scheme and derived keys.
struct WatermarkScoring::PoolVersion {
  int version = 0;
  watermark::SchemeParams params;
  watermark::SchemeKeys keys;
};

namespace {

// Appends the document's pool tuples for one key version: the same tuples, with the same
// masking and context rule, as the detector's de-duplicating walk (watermark::CorpusDetector),
// on the provider and account lanes; the payload lane carries no per-account evidence. With the
// token-probability filter, tokens with token_prob[i] > max_token_prob are left out too (the
// detector's rule; empty token_prob = off).
void AppendPoolTuples(const WatermarkScoring::PoolVersion& v, std::span<const int32_t> tokens,
                      std::span<const uint8_t> mask, std::span<const float> token_prob,
                      double max_token_prob, std::vector<PoolTuple>* out) {
  const size_t h = static_cast<size_t>(v.params.context_width);
  const size_t end = std::min(tokens.size(), watermark::kMaxDetectTokens);
  int64_t last_masked = -1;
  for (size_t i = 0; i < end; ++i) {
    if (i < mask.size() && mask[i] != 0) last_masked = static_cast<int64_t>(i);
    if (i < h) continue;
    if (last_masked >= static_cast<int64_t>(i - h)) continue;
    if (i < token_prob.size() && token_prob[i] > max_token_prob) continue;
    const watermark::ContextInfo info =
        watermark::HashContext(v.keys.context_key, v.params, tokens, i);
    if (info.lane == watermark::Lane::kPayload) continue;
    PoolTuple t;
    t.context_hash = info.hash;
    t.token = tokens[i];
    t.key_version = static_cast<uint16_t>(v.version);
    t.lane = info.lane == watermark::Lane::kProvider ? kPoolProviderLane : kPoolAccountLane;
    out->push_back(t);
  }
}

class WatermarkScorer final : public DocumentScorer {
 public:
  WatermarkScorer(const text::Tokenizer& tok, watermark::Detector detector,
                  const std::vector<int32_t>& eos_ids, const WatermarkScoringOptions& options,
                  const std::vector<WatermarkScoring::PoolVersion>& versions,
                  std::unique_ptr<TokenProbModel> probs)
      : tok_(tok),
        detector_(std::move(detector)),
        eos_ids_(eos_ids),
        options_(options),
        versions_(versions),
        probs_(std::move(probs)) {}

  Result<DocScore> Score(std::string_view text) override {
    DocScore s;
    std::vector<int32_t>& tokens = tokens_;
    tokens = tok_.Encode(text, /*add_special=*/false, /*parse_special=*/false);
    // Stop at the first end-of-generation token (cannot come from plain text, but be exact).
    const auto eos = std::find_if(tokens.begin(), tokens.end(), [&](int32_t id) {
      return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
    });
    tokens.erase(eos, tokens.end());
    TokenOffsets(tok_, tokens, text.size(), &offsets_);
    if (options_.mask_placeholders) {
      const auto ranges = watermark::FindPlaceholders(text);
      if (!ranges.empty()) s.skip_mask = watermark::MaskTokens(offsets_, ranges);
    }
    watermark::DetectOptions opts;
    opts.threshold = options_.threshold;
    opts.account_threshold = options_.threshold;
    opts.skip_mask = s.skip_mask;
    opts.eos_ids = eos_ids_;
    opts.suspects = options_.suspects;
    std::span<const float> token_prob;
    if (probs_ != nullptr) {  // the token-probability filter (scan --max-token-prob)
      TM_RETURN_IF_ERROR(probs_->Compute(tokens, &token_prob_));
      token_prob = token_prob_;
      opts.token_prob = token_prob;
      opts.max_token_prob = options_.max_token_prob;
    }
    TM_ASSIGN_OR_RETURN(watermark::Detection d, detector_.Detect(tokens, opts));
    for (const WatermarkScoring::PoolVersion& v : versions_) {
      AppendPoolTuples(v, tokens, s.skip_mask, token_prob, options_.max_token_prob, &s.pool_tuples);
    }
    s.tokens_scored = d.tokens_scored;
    s.p_value = d.p_value;
    s.log10_p_value = d.log10_p_value;
    s.scheme = d.scheme;
    s.key_version = d.key_version;
    s.account = d.account;
    s.account_p_value = d.account_p_value;
    s.suspects_tested = d.suspects_tested;
    s.targeted_log10_p = d.targeted_log10_p;
    s.targeted_suspect = d.targeted_suspect;
    for (const watermark::MarkedSpan& m : d.spans) {
      ScoredSpan sp;
      sp.token_begin = m.begin;
      sp.token_end = m.end;
      sp.byte_begin = offsets_[std::min(m.begin, tokens.size())];
      sp.byte_end = std::min(offsets_[std::min(m.end, tokens.size())], text.size());
      sp.log10_p = m.log10_p;
      s.spans.push_back(sp);
    }
    return s;
  }

 private:
  const text::Tokenizer& tok_;
  watermark::Detector detector_;
  const std::vector<int32_t>& eos_ids_;
  const WatermarkScoringOptions& options_;
  const std::vector<WatermarkScoring::PoolVersion>& versions_;
  std::unique_ptr<TokenProbModel> probs_;  // null: filter off
  std::vector<int32_t> tokens_;
  std::vector<size_t> offsets_;
  std::vector<float> token_prob_;
};

// Scores a tuple with one lane key exactly as the detector does (slot 0 word, WordScore).
class WatermarkLaneScorer final : public LaneScorer {
 public:
  WatermarkLaneScorer(const watermark::SchemeParams& params, uint64_t key)
      : params_(params), key_(key) {}
  double Score(uint64_t context_hash, int32_t token) const override {
    return watermark::WordScore(params_, watermark::TokenWord(key_, context_hash, token, 0));
  }
  double Log10Tail(double sum, int64_t count) const override {
    return watermark::LogTail(params_, watermark::ScoreSum{sum, count}) / kLn10;
  }

 private:
  watermark::SchemeParams params_;
  uint64_t key_;
};

}  // namespace

WatermarkScoring::~WatermarkScoring() = default;

Result<std::unique_ptr<WatermarkScoring>> WatermarkScoring::Create(
    const WatermarkScoringOptions& options) {
  std::unique_ptr<WatermarkScoring> s(new WatermarkScoring());
  s->options_ = options;
  TM_ASSIGN_OR_RETURN(watermark::Keyring keyring, watermark::Keyring::Load(options.keyring_path));
  s->keyring_ = std::make_unique<watermark::Keyring>(std::move(keyring));
  TM_ASSIGN_OR_RETURN(s->gguf_, gguf::GgufFile::Open(options.model_path));
  TM_ASSIGN_OR_RETURN(s->tokenizer_, text::Tokenizer::FromGguf(*s->gguf_));
  for (int32_t id = 0; id < s->tokenizer_->vocab_size(); ++id) {
    if (s->tokenizer_->IsEog(id)) s->eos_ids_.push_back(id);
  }
  // Public identity only: key fingerprints, never secrets.
  nlohmann::ordered_json id;
  id["detector"] = "tracemark-detector/1";
  nlohmann::ordered_json versions = nlohmann::ordered_json::array();
  for (const watermark::KeyVersion& v : s->keyring_->versions()) {
    TM_ASSIGN_OR_RETURN(std::string fp, s->keyring_->Fingerprint(v.version));
    versions.push_back({{"version", v.version}, {"scheme", watermark::PublicSchemeSpec(v.scheme)}, {"fingerprint", fp}});
  }
  id["keys"] = std::move(versions);
  id["model"] = std::filesystem::path(options.model_path).filename().string();
  id["model_bytes"] = s->gguf_->file_size();
  id["mask_placeholders"] = options.mask_placeholders;
  if (options.max_token_prob != 0.0) {
    if (!(options.max_token_prob > 0.0 && options.max_token_prob < 1.0)) {
      return InvalidArgument(
          "--max-token-prob must be in (0, 1) (0.5 recommended), or absent for no filter");
    }
    // Written only when on, so the identity of a scan without the filter is what it always was.
    id["max_token_prob"] = options.max_token_prob;
    TM_ASSIGN_OR_RETURN(s->model_, Model::Load(options.model_path));
  }
  if (!options.suspects.empty()) {
    // Fail before any document on a bad list (size, duplicates, payload space).
    TM_ASSIGN_OR_RETURN(watermark::Detector check, watermark::Detector::Create(*s->keyring_));
    TM_RETURN_IF_ERROR(check.PrepareSuspects(options.suspects));
    std::vector<uint64_t> sorted = options.suspects;
    std::sort(sorted.begin(), sorted.end());
    std::string list;
    for (uint64_t v : sorted) list += std::to_string(v) + "\n";
    id["suspects"] = {{"count", sorted.size()},
                      {"sha256", crypto::HexEncode(crypto::Sha256(list))}};
  }
  for (const watermark::KeyVersion& v : s->keyring_->versions()) {
    PoolVersion pv;
    pv.version = v.version;
    if (v.version <= 0 || v.version > UINT16_MAX) {
      return InvalidArgument(fmt::format("key version {} is out of range for scanning", v.version));
    }
    TM_ASSIGN_OR_RETURN(pv.params, watermark::ParseSchemeSpec(v.scheme));
    TM_ASSIGN_OR_RETURN(pv.keys, s->keyring_->DeriveSchemeKeys(v.version));
    s->versions_.push_back(std::move(pv));
  }
  s->identity_ = id.dump();
  return s;
}

Result<std::unique_ptr<DocumentScorer>> WatermarkScoring::NewScorer() {
  TM_ASSIGN_OR_RETURN(watermark::Detector det, watermark::Detector::Create(*keyring_));
  if (!options_.suspects.empty()) TM_RETURN_IF_ERROR(det.PrepareSuspects(options_.suspects));
  std::unique_ptr<TokenProbModel> probs;
  if (model_ != nullptr) {
    TokenProbOptions po;
    po.n_threads = 1;  // one scorer per worker thread already
    TM_ASSIGN_OR_RETURN(probs, TokenProbModel::Create(*model_, po));
  }
  return std::unique_ptr<DocumentScorer>(std::make_unique<WatermarkScorer>(
      *tokenizer_, std::move(det), eos_ids_, options_, versions_, std::move(probs)));
}

std::vector<uint64_t> WatermarkScoring::PooledSuspects() const {
  std::vector<uint64_t> sorted = options_.suspects;
  std::sort(sorted.begin(), sorted.end());
  return sorted;
}

Result<std::unique_ptr<LaneScorer>> WatermarkScoring::NewLaneScorer(
    int key_version, std::optional<uint64_t> account) {
  for (const PoolVersion& v : versions_) {
    if (v.version != key_version) continue;
    uint64_t key = v.keys.provider_key;
    if (account) {
      TM_ASSIGN_OR_RETURN(key, keyring_->DeriveAccountKey(key_version, *account));
    }
    return std::unique_ptr<LaneScorer>(std::make_unique<WatermarkLaneScorer>(v.params, key));
  }
  return NotFound(fmt::format("the keyring has no key version {}", key_version));
}

}  // namespace tracemark::scan
