// An inference context: KV cache for up to n_seq sequences (slots), activation buffers sized for
// the largest batch, a thread pool, and Decode(batch).
//
// A Batch holds tokens of one or more sequences, each with its position: a prefill is many
// tokens of one sequence, a batched decode step one token of each of several sequences. Decode
// runs them all through ONE forward pass (every weight matrix is multiplied with all batch rows
// at once), writes their keys/values into the cache and attends with causal and (Gemma 3)
// sliding-window masks per sequence. Within a batch the tokens of one sequence must be in order
// and continue the sequence: positions seq_length(s), seq_length(s)+1, ...
//
// KV layout (see docs/engine.md): per layer one K and one V array, [seq][kv_head][cell][dim],
// fp16 by default; a sliding-window layer keeps only window + max_batch cells per sequence as a
// ring (cell = pos % cells). Logits are computed only for the rows that ask for them (by default
// the last row of each sequence in the batch). All buffers are allocated in Create: Decode does
// not allocate. A Context is used by one thread at a time (its own pool runs the kernels);
// several Contexts may share a Model.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/base/thread_pool.h"
#include "tracemark/model/matmul.h"
#include "tracemark/model/model.h"

namespace tracemark {

enum class KvType { kF32, kF16 };

inline constexpr int32_t kDefaultContextLength = 4096;
inline constexpr int32_t kDefaultMaxBatch = 512;
inline constexpr int32_t kMaxSequences = 256;

struct ContextOptions {
  int32_t n_ctx = kDefaultContextLength;  // per sequence; clamped to the model's context_length
  int32_t n_seq = 1;                      // sequence slots
  int32_t max_batch = kDefaultMaxBatch;   // tokens per Decode
  int32_t max_outputs = 0;                // rows with logits per Decode; 0: n_seq
  int32_t n_threads = 2;
  KvType kv_type = KvType::kF16;
  bool profile = false;  // accumulate per-phase wall time (Context::profile())
};

// Wall time per phase of Decode, accumulated while ContextOptions::profile is set.
struct DecodeProfile {
  double matmul_ms = 0;     // weight matmuls incl. the output layer
  double attention_ms = 0;  // scores, softmax, weighted sum
  double other_ms = 0;      // embeddings, norms, rope, cache writes, activations
  int64_t decodes = 0;
};

// Tokens of one forward pass. want_logits may be left empty: then the last token of each
// sequence present in the batch gets logits.
struct Batch {
  std::vector<int32_t> token;
  std::vector<int32_t> pos;
  std::vector<int32_t> seq;
  std::vector<uint8_t> want_logits;

  void Clear() { token.clear(); pos.clear(); seq.clear(); want_logits.clear(); }
  void Add(int32_t tok, int32_t p, int32_t s, bool logits) {
    token.push_back(tok); pos.push_back(p); seq.push_back(s); want_logits.push_back(logits ? 1 : 0);
  }
  int32_t size() const { return static_cast<int32_t>(token.size()); }
};

class Context {
 public:
  static Result<std::unique_ptr<Context>> Create(const Model& model, const ContextOptions& options);
  ~Context();

  // Runs the batch. On error nothing was written to the cache.
  Status Decode(const Batch& batch);

  // Logits of the last Decode: output i belongs to batch row output_row(i), in batch order.
  int32_t n_outputs() const { return n_outputs_; }
  int32_t output_row(int32_t i) const { return output_rows_[i]; }
  // Index of the output for batch row `row`, or -1 if that row had no logits.
  int32_t OutputOf(int32_t row) const;
  std::span<float> Logits(int32_t i) {
    return {logits_.data() + static_cast<size_t>(i) * n_vocab_, static_cast<size_t>(n_vocab_)};
  }

  int32_t seq_length(int32_t seq) const { return seq_len_[seq]; }
  // Forgets a sequence (slot reuse). TruncateSeq keeps the first n positions.
  void ClearSeq(int32_t seq) { seq_len_[seq] = 0; }
  Status TruncateSeq(int32_t seq, int32_t n);

  const Model& model() const { return model_; }
  const ContextOptions& options() const { return options_; }
  int32_t n_ctx() const { return options_.n_ctx; }
  ThreadPool& pool() { return *pool_; }
  // Bytes held by the KV cache.
  size_t kv_bytes() const;
  const DecodeProfile& profile() const { return profile_; }
  void ResetProfile() { profile_ = DecodeProfile(); }

 private:
  Context(const Model& model, const ContextOptions& options);
  struct Impl;
  const Model& model_;
  ContextOptions options_;
  int32_t n_vocab_ = 0;
  int32_t n_outputs_ = 0;
  std::vector<int32_t> output_rows_;
  std::vector<float> logits_;
  std::vector<int32_t> seq_len_;
  DecodeProfile profile_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tracemark
