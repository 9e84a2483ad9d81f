// Training data (documents -> token windows, watermarked/clean mix) and the AdamW training loop.
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>

#include "redteam/train/rng.h"
#include "tracemark/base/file.h"
#include "tracemark/redteam/train.h"
#include "tracemark/text/tokenizer.h"

namespace tracemark::redteam {
namespace {

// Parameters per AdamW pool task.
constexpr size_t kAdamChunk = size_t{1} << 16;
// Steps averaged into TrainReport::final_loss.
constexpr int32_t kFinalLossSteps = 10;
// Share of the steps used for linear warmup when TrainOptions::warmup_steps is -1.
constexpr double kDefaultWarmupShare = 0.05;

void Cut(const std::vector<int32_t>& stream, int32_t window, std::vector<std::vector<int32_t>>* out) {
  // Consecutive windows overlap by one token, so every token after the first is a target once.
  const size_t w = static_cast<size_t>(window);
  size_t start = 0;
  while (start + 1 < stream.size()) {
    const size_t end = std::min(stream.size(), start + w);
    out->emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(start),
                      stream.begin() + static_cast<std::ptrdiff_t>(end));
    if (end == stream.size()) break;
    start = end - 1;
  }
}

std::vector<int32_t> Stream(const text::Tokenizer& tok, std::span<const std::string> docs) {
  std::vector<int32_t> s;
  for (const std::string& d : docs) {
    const std::vector<int32_t> ids = tok.Encode(d, /*add_special=*/false, /*parse_special=*/false);
    s.insert(s.end(), ids.begin(), ids.end());
    if (tok.eos_id() >= 0 && !ids.empty()) s.push_back(tok.eos_id());
  }
  return s;
}

void Shuffle(std::vector<std::vector<int32_t>>* v, SplitMix64* rng) {
  for (size_t i = v->size(); i > 1; --i) std::swap((*v)[i - 1], (*v)[rng->Below(i)]);
}

int64_t Tokens(const std::vector<std::vector<int32_t>>& w, size_t n) {
  int64_t t = 0;
  for (size_t i = 0; i < n; ++i) t += static_cast<int64_t>(w[i].size()) - 1;
  return t;
}

}  // namespace

Result<std::vector<std::string>> ReadDocuments(const std::string& path, const std::string& field) {
  TM_ASSIGN_OR_RETURN(std::string data, ReadFile(path, kMaxTrainInputBytes));
  std::vector<std::string> docs;
  const bool jsonl = path.ends_with(".jsonl") || path.ends_with(".json");
  if (jsonl) {
    simdjson::dom::parser parser;
    size_t pos = 0, line_no = 0;
    while (pos < data.size()) {
      size_t end = data.find('\n', pos);
      if (end == std::string::npos) end = data.size();
      ++line_no;
      std::string_view line(data.data() + pos, end - pos);
      pos = end + 1;
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      simdjson::dom::element doc;
      if (parser.parse(line.data(), line.size()).get(doc) != simdjson::SUCCESS) {
        return InvalidArgument(path + ":" + std::to_string(line_no) +
                               ": not a JSON object; pass one JSON object per line");
      }
      std::string_view text;
      if (doc[field].get_string().get(text) != simdjson::SUCCESS) continue;
      if (!text.empty()) docs.emplace_back(text);
    }
  } else {
    size_t pos = 0;
    while (pos < data.size()) {
      size_t end = data.find("\n\n", pos);
      if (end == std::string::npos) end = data.size();
      std::string_view para(data.data() + pos, end - pos);
      pos = end + 2;
      if (para.find_first_not_of(" \t\r\n") != std::string_view::npos) docs.emplace_back(para);
    }
  }
  if (docs.empty()) {
    return InvalidArgument(path + ": no documents" +
                           (jsonl ? " (no line has a string field '" + field + "')" : std::string()));
  }
  return docs;
}

Result<TrainData> BuildTrainData(const text::Tokenizer& tokenizer, std::span<const std::string> watermarked,
                                 std::span<const std::string> clean, double fraction,
                                 int32_t window_tokens, uint64_t seed) {
  const bool natural = fraction < 0.0;  // use everything given
  if (!natural && !(fraction <= 1.0)) {
    return InvalidArgument("train data: fraction must be in [0, 1] (or negative: use all data)");
  }
  if (window_tokens < 2) return InvalidArgument("train data: windows need at least 2 tokens");
  std::vector<std::vector<int32_t>> wm, cl;
  if (natural || fraction > 0.0) Cut(Stream(tokenizer, watermarked), window_tokens, &wm);
  if (natural || fraction < 1.0) Cut(Stream(tokenizer, clean), window_tokens, &cl);
  if (natural) {
    if (wm.empty() && cl.empty()) return InvalidArgument("train data: no tokens in the documents");
  } else if (fraction > 0.0 && wm.empty()) {
    return InvalidArgument("train data: the watermarked data has no tokens (fraction " +
                           std::to_string(fraction) + " needs some)");
  }
  if (!natural && fraction < 1.0 && cl.empty()) {
    return InvalidArgument("train data: fraction " + std::to_string(fraction) +
                           " needs clean text (--clean), and none was given");
  }
  SplitMix64 rng(seed ^ 0xda7a5eedull);
  Shuffle(&wm, &rng);
  Shuffle(&cl, &rng);
  size_t n_wm = wm.size(), n_cl = cl.size();
  if (fraction > 0.0 && fraction < 1.0) {
    const double want_cl = static_cast<double>(n_wm) * (1.0 - fraction) / fraction;
    if (want_cl <= static_cast<double>(n_cl)) {
      n_cl = static_cast<size_t>(std::llround(want_cl));
    } else {
      n_wm = static_cast<size_t>(std::llround(static_cast<double>(n_cl) * fraction / (1.0 - fraction)));
    }
    if (n_wm == 0) {
      return InvalidArgument("train data: fraction " + std::to_string(fraction) +
                             " of watermarked windows rounds to none; give more clean text");
    }
  }
  TrainData out;
  out.watermarked_windows = static_cast<int64_t>(n_wm);
  out.clean_windows = static_cast<int64_t>(n_cl);
  out.watermarked_tokens = Tokens(wm, n_wm);
  out.clean_tokens = Tokens(cl, n_cl);
  out.windows.reserve(n_wm + n_cl);
  for (size_t i = 0; i < n_wm; ++i) out.windows.push_back(std::move(wm[i]));
  for (size_t i = 0; i < n_cl; ++i) out.windows.push_back(std::move(cl[i]));
  Shuffle(&out.windows, &rng);
  return out;
}

Result<TrainReport> Train(StudentModel* model, const TrainData& data, const TrainOptions& o) {
  if (data.windows.empty()) return InvalidArgument("train: no training windows");
  if (o.steps < 1 || o.steps > kMaxTrainSteps) {
    return InvalidArgument("train: steps must be in [1, " + std::to_string(kMaxTrainSteps) + "]");
  }
  if (o.batch < 1 || o.batch > kMaxTrainBatch) {
    return InvalidArgument("train: batch must be in [1, " + std::to_string(kMaxTrainBatch) + "]");
  }
  if (!(o.lr > 0.0f) || !(o.min_lr_ratio >= 0.0f && o.min_lr_ratio <= 1.0f) || !(o.beta1 >= 0.0f && o.beta1 < 1.0f) ||
      !(o.beta2 >= 0.0f && o.beta2 < 1.0f) || !(o.weight_decay >= 0.0f)) {
    return InvalidArgument("train: lr must be > 0, min_lr_ratio in [0, 1], betas in [0, 1), weight_decay >= 0");
  }
  const size_t max_len = static_cast<size_t>(model->config().n_ctx) + 1;
  for (const auto& w : data.windows) {
    if (w.size() > max_len) {
      return InvalidArgument("train: a window has " + std::to_string(w.size()) + " tokens; the student takes " +
                             std::to_string(max_len));
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  TrainReport report;
  Trainer trainer(model, o.threads);
  if (o.restrict_vocabulary) {
    std::vector<uint8_t> seen(static_cast<size_t>(model->config().n_vocab), 0);
    for (const auto& w : data.windows) {
      for (int32_t t : w) {
        if (t >= 0 && t < model->config().n_vocab) seen[static_cast<size_t>(t)] = 1;
      }
    }
    std::vector<int32_t> ids;
    for (size_t i = 0; i < seen.size(); ++i) {
      if (seen[i]) ids.push_back(static_cast<int32_t>(i));
    }
    TM_RETURN_IF_ERROR(trainer.SetActiveVocabulary(ids));
  }
  report.active_vocabulary = trainer.active_vocabulary();
  ThreadPool& pool = trainer.pool();
  std::span<float> p = model->params();
  const size_t n = p.size();
  std::vector<float> m(n, 0.0f), v(n, 0.0f);
  std::vector<uint8_t> decay(n, 0);
  for (const ParamTensor& t : model->tensors()) {
    if (t.decay) std::fill(decay.begin() + static_cast<std::ptrdiff_t>(t.offset),
                           decay.begin() + static_cast<std::ptrdiff_t>(t.offset + t.size()), 1);
  }
  const int32_t warmup = o.warmup_steps >= 0
                             ? o.warmup_steps
                             : std::max(1, static_cast<int32_t>(kDefaultWarmupShare * o.steps));
  SplitMix64 rng(o.seed ^ 0xba7c4e5ull);
  std::vector<std::vector<int32_t>> batch(static_cast<size_t>(o.batch));
  const int64_t n_chunks = static_cast<int64_t>((n + kAdamChunk - 1) / kAdamChunk);
  std::vector<double> chunk_sq(static_cast<size_t>(n_chunks));
  double tail_loss = 0;
  int32_t tail_n = 0;
  for (int32_t step = 0; step < o.steps; ++step) {
    for (auto& b : batch) b = data.windows[rng.Below(data.windows.size())];
    TM_ASSIGN_OR_RETURN(double loss, trainer.LossAndGrad(batch));
    for (const auto& b : batch) report.tokens_seen += static_cast<int64_t>(b.size()) - 1;
    if (step == 0) report.initial_loss = loss;
    if (step >= o.steps - kFinalLossSteps) {
      tail_loss += loss;
      ++tail_n;
    }
    std::span<const float> g = trainer.grad();
    // Global gradient norm: per-chunk sums in double, added in chunk order (deterministic).
    pool.Run(n_chunks, [&](int64_t c, int) {
      const size_t i0 = static_cast<size_t>(c) * kAdamChunk, i1 = std::min(n, i0 + kAdamChunk);
      double s = 0;
      for (size_t i = i0; i < i1; ++i) s += static_cast<double>(g[i]) * g[i];
      chunk_sq[static_cast<size_t>(c)] = s;
    });
    double sq = 0;
    for (double s : chunk_sq) sq += s;
    const double norm = std::sqrt(sq);
    if (!std::isfinite(norm) || !std::isfinite(loss)) {
      return Internal("train: the loss diverged at step " + std::to_string(step) + "; lower --lr");
    }
    const float clip = (o.clip_norm > 0.0f && norm > o.clip_norm) ? static_cast<float>(o.clip_norm / norm) : 1.0f;
    float lr;
    if (step < warmup) {
      lr = o.lr * static_cast<float>(step + 1) / static_cast<float>(warmup);
    } else {
      const double progress = o.steps > warmup ? static_cast<double>(step - warmup) / (o.steps - warmup) : 1.0;
      lr = o.lr * static_cast<float>(o.min_lr_ratio + (1.0 - o.min_lr_ratio) * 0.5 *
                                                          (1.0 + std::cos(std::numbers::pi * progress)));
    }
    const float bc1 = 1.0f - std::pow(o.beta1, static_cast<float>(step + 1));
    const float bc2 = 1.0f - std::pow(o.beta2, static_cast<float>(step + 1));
    pool.Run(n_chunks, [&](int64_t c, int) {
      const size_t i0 = static_cast<size_t>(c) * kAdamChunk, i1 = std::min(n, i0 + kAdamChunk);
      for (size_t i = i0; i < i1; ++i) {
        const float gi = g[i] * clip;
        m[i] = o.beta1 * m[i] + (1.0f - o.beta1) * gi;
        v[i] = o.beta2 * v[i] + (1.0f - o.beta2) * gi * gi;
        const float upd = (m[i] / bc1) / (std::sqrt(v[i] / bc2) + o.adam_eps);
        p[i] -= lr * (upd + (decay[i] ? o.weight_decay * p[i] : 0.0f));
      }
    });
    if (o.on_step) o.on_step(step, loss, norm, lr);
  }
  report.steps = o.steps;
  report.final_loss = tail_n > 0 ? tail_loss / tail_n : report.initial_loss;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report.tokens_per_second = report.seconds > 0 ? static_cast<double>(report.tokens_seen) / report.seconds : 0;
  return report;
}

}  // namespace tracemark::redteam
