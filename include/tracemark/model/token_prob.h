// Per-token probabilities of a text under a model: p[i] = P(ids[i] | ids[0, i)) at temperature 1
// over the full vocabulary, from the text alone (no BOS, no prompt). The watermark detector's
// token-probability filter (watermark::DetectOptions::token_prob, docs/watermark.md "Detection")
// scores only tokens with p <= max_token_prob; `tracemark detect` and `tracemark scan` both get
// their p from here, so the same tokens give the same bits in both.
//
// A TokenProbModel owns one engine Context on a shared, read-only Model: build one per thread
// (it is used by one thread at a time; several may share a Model, which must outlive them). Long
// texts are decoded in chunks of kTokenProbChunkTokens predicted tokens, each preceded by up to
// kTokenProbOverlapTokens tokens of the previous text as context; each chunk is fed in decode
// calls of at most kTokenProbRowsPerDecode rows, which bounds the logits buffer (rows x vocab
// floats) without changing any result bit (token_prob_test.cc pins this). The result is a pure
// function of (model file, ids): it does not depend on the thread count or on other texts.
// All buffers are allocated in Create; Compute allocates only when `out` must grow.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/model/context.h"
#include "tracemark/model/model.h"

namespace tracemark {

// Tokens predicted per chunk, and tokens of the preceding text re-fed as context so that a
// chunk's first predictions are not made from nothing.
inline constexpr int32_t kTokenProbChunkTokens = 1024;
inline constexpr int32_t kTokenProbOverlapTokens = 256;
// Rows per Decode call within a chunk (logits buffer: this many rows of n_vocab floats; 48 MiB
// for SmolLM2's 49,152 tokens, 256 MiB for Gemma 3's 262,144).
inline constexpr int32_t kTokenProbRowsPerDecode = 256;

struct TokenProbOptions {
  int n_threads = 1;  // the Context's kernel threads (1 when callers run one model per core)
  // Rows per Decode call, in [1, kTokenProbChunkTokens + kTokenProbOverlapTokens]; any value
  // gives the same bits (tested), only memory and speed change.
  int32_t rows_per_decode = kTokenProbRowsPerDecode;
};

class TokenProbModel {
 public:
  static Result<std::unique_ptr<TokenProbModel>> Create(const Model& model,
                                                        const TokenProbOptions& options = {});

  // Sets *out to p (same length as ids); p[0] = 1 (never scored: it has no context). Errors: a
  // token id outside the model's vocabulary (InvalidArgument), engine failures.
  Status Compute(std::span<const int32_t> ids, std::vector<float>* out);
  Result<std::vector<float>> Probabilities(std::span<const int32_t> ids);

 private:
  explicit TokenProbModel(std::unique_ptr<Context> ctx) : ctx_(std::move(ctx)) {}
  std::unique_ptr<Context> ctx_;
  Batch batch_;
};

}  // namespace tracemark
