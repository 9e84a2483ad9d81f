// Tokenizer + detector behind the scanner's scorer interface (see watermark_scorer.h).
#include "tracemark/scan/watermark_scorer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "fmt/format.h"
#include "tracemark/model/gguf.h"
#include "tracemark/text/tokenizer.h"
#include "tracemark/watermark/detector.h"
#include "tracemark/watermark/keyring.h"
#include "tracemark/watermark/placeholders.h"

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

class WatermarkScorer final : public DocumentScorer {
 public:
  WatermarkScorer(const text::Tokenizer& tok, watermark::Detector detector,
                  const std::vector<int32_t>& eos_ids, const WatermarkScoringOptions& options)
      : tok_(tok), detector_(std::move(detector)), eos_ids_(eos_ids), options_(options) {}

  Result<DocScore> Score(std::string_view text) override {
    DocScore s;
    s.tokens = tok_.Encode(text, /*add_special=*/false, /*parse_special=*/false);
    // Stop at the first end-of-generation token (cannot come from plain text, but be exact).
    const auto eos = std::find_if(s.tokens.begin(), s.tokens.end(), [&](int32_t id) {
      return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
    });
    s.tokens.erase(eos, s.tokens.end());
    TokenOffsets(tok_, s.tokens, text.size(), &offsets_);
    if (options_.mask_placeholders) {
      const auto ranges = watermark::FindPlaceholders(text);
      if (!ranges.empty()) s.skip_mask = watermark::MaskTokens(offsets_, ranges);
    }
    watermark::DetectOptions opts;
    opts.threshold = options_.threshold;
    opts.account_threshold = options_.threshold;
    opts.skip_mask = s.skip_mask;
    opts.eos_ids = eos_ids_;
    TM_ASSIGN_OR_RETURN(watermark::Detection d, detector_.Detect(s.tokens, opts));
    s.tokens_scored = d.tokens_scored;
    s.p_value = d.p_value;
    s.log10_p_value = d.log10_p_value;
    s.scheme = d.scheme;
    s.key_version = d.key_version;
    s.account = d.account;
    s.account_p_value = d.account_p_value;
    for (const watermark::MarkedSpan& m : d.spans) {
      ScoredSpan sp;
      sp.token_begin = m.begin;
      sp.token_end = m.end;
      sp.byte_begin = offsets_[std::min(m.begin, s.tokens.size())];
      sp.byte_end = std::min(offsets_[std::min(m.end, s.tokens.size())], text.size());
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
  std::vector<size_t> offsets_;
};

class WatermarkPool final : public CorpusPool {
 public:
  explicit WatermarkPool(watermark::CorpusDetector det) : det_(std::move(det)) {}
  void AddDocument(std::span<const int32_t> tokens, std::span<const uint8_t> skip_mask) override {
    det_.AddDocument(tokens, skip_mask);
  }
  int64_t tuples() const override { return det_.tuples(); }
  double log10_p_value() const override { return det_.LogPValue() / kLn10; }

 private:
  watermark::CorpusDetector det_;
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
    versions.push_back({{"version", v.version}, {"scheme", v.scheme}, {"fingerprint", fp}});
  }
  id["keys"] = std::move(versions);
  id["model"] = std::filesystem::path(options.model_path).filename().string();
  id["model_bytes"] = s->gguf_->file_size();
  id["mask_placeholders"] = options.mask_placeholders;
  s->identity_ = id.dump();
  return s;
}

Result<std::unique_ptr<DocumentScorer>> WatermarkScoring::NewScorer() {
  TM_ASSIGN_OR_RETURN(watermark::Detector det, watermark::Detector::Create(*keyring_));
  return std::unique_ptr<DocumentScorer>(
      std::make_unique<WatermarkScorer>(*tokenizer_, std::move(det), eos_ids_, options_));
}

Result<std::unique_ptr<CorpusPool>> WatermarkScoring::NewPool(uint64_t account, int key_version) {
  TM_ASSIGN_OR_RETURN(watermark::CorpusDetector det,
                      watermark::CorpusDetector::Create(*keyring_, key_version, account));
  return std::unique_ptr<CorpusPool>(std::make_unique<WatermarkPool>(std::move(det)));
}

}  // namespace tracemark::scan
