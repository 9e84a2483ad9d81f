// Per-token probabilities of a text under a model (see token_prob.h).
#include "tracemark/model/token_prob.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace tracemark {

Result<std::unique_ptr<TokenProbModel>> TokenProbModel::Create(const Model& model,
                                                               const TokenProbOptions& options) {
  constexpr int32_t kRows = kTokenProbChunkTokens + kTokenProbOverlapTokens;
  if (options.rows_per_decode < 1 || options.rows_per_decode > kRows) {
    return InvalidArgument("token probabilities: rows_per_decode must be in [1, " +
                           std::to_string(kRows) + "]");
  }
  if (options.n_threads < 1) return InvalidArgument("token probabilities: n_threads must be >= 1");
  ContextOptions copt;
  copt.n_ctx = kRows;
  copt.max_batch = options.rows_per_decode;
  copt.max_outputs = options.rows_per_decode;
  copt.n_threads = options.n_threads;
  TM_ASSIGN_OR_RETURN(std::unique_ptr<Context> ctx, Context::Create(model, copt));
  if (ctx->n_ctx() < kRows) {
    return InvalidArgument("token probabilities: the model's context length " +
                           std::to_string(ctx->n_ctx()) + " is below the " + std::to_string(kRows) +
                           " tokens of a chunk");
  }
  return std::unique_ptr<TokenProbModel>(new TokenProbModel(std::move(ctx)));
}

Status TokenProbModel::Compute(std::span<const int32_t> ids, std::vector<float>* out) {
  std::vector<float>& p = *out;
  p.assign(ids.size(), 1.0f);
  if (ids.size() < 2) return Status::Ok();
  const size_t rows_per_decode = static_cast<size_t>(ctx_->options().max_batch);
  for (size_t start = 1; start < ids.size(); start += kTokenProbChunkTokens) {
    // Predict ids[start, stop) from rows [begin, stop - 1): row i gives the logits of ids[i + 1].
    const size_t stop = std::min(ids.size(), start + kTokenProbChunkTokens);
    constexpr size_t kOverlap = kTokenProbOverlapTokens;
    const size_t begin = start > kOverlap + 1 ? start - 1 - kOverlap : 0;
    ctx_->ClearSeq(0);
    for (size_t first = begin; first + 1 < stop; first += rows_per_decode) {
      const size_t last = std::min(stop - 1, first + rows_per_decode);  // rows [first, last)
      batch_.Clear();
      for (size_t i = first; i < last; ++i) {
        batch_.Add(ids[i], static_cast<int32_t>(i - begin), 0, i + 1 >= start);
      }
      TM_RETURN_IF_ERROR(ctx_->Decode(batch_));
      for (size_t i = std::max(first, start - 1); i < last; ++i) {
        const std::span<const float> l =
            ctx_->Logits(ctx_->OutputOf(static_cast<int32_t>(i - first)));
        const size_t next = static_cast<size_t>(ids[i + 1]);
        if (next >= l.size()) {
          return InvalidArgument("token id " + std::to_string(ids[i + 1]) +
                                 " is outside the model's vocabulary");
        }
        float mx = l[0];
        for (float x : l) mx = std::max(mx, x);
        double z = 0;
        for (float x : l) z += std::exp(static_cast<double>(x - mx));
        p[i + 1] = static_cast<float>(std::exp(static_cast<double>(l[next] - mx)) / z);
      }
    }
  }
  return Status::Ok();
}

Result<std::vector<float>> TokenProbModel::Probabilities(std::span<const int32_t> ids) {
  std::vector<float> p;
  TM_RETURN_IF_ERROR(Compute(ids, &p));
  return p;
}

}  // namespace tracemark
