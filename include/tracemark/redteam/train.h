// Student training for the red-team harness: a small decoder-only llama-style transformer trained
// in fp32 on (desensitized) harvested text, written as a llama-architecture GGUF that our engine
// serves and `tracemark probe` tests.
//
// The student keeps the teacher's vocabulary and tokenizer metadata (copied verbatim from the
// teacher GGUF), so detection re-tokenizes its outputs exactly as the teacher's. The network is
// token embedding -> n_layer x [RMSNorm, RoPE causal multi-head attention, residual, RMSNorm,
// SwiGLU MLP, residual] -> RMSNorm -> output head tied to the embedding, the layout of the engine's
// llama path (rope on adjacent pairs, "NORM" style, so no q/k permutation is needed). Forward and
// backward passes are hand-written (docs/student.md has the equations); the loss is the full
// softmax cross-entropy over the whole vocabulary. AdamW with linear warmup and cosine decay,
// global-norm gradient clipping. Sequences of a batch are split over the ThreadPool with a static
// assignment (sequence i goes to gradient slot i mod threads, slots summed in order), so a run is
// bit-for-bit deterministic for a seed and thread count.
//
// Thread-safety: StudentModel is a plain value (safe to read concurrently, not to train
// concurrently); a Trainer owns its pool and buffers and is used by one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/base/thread_pool.h"

namespace tracemark::gguf {
class GgufFile;
}
namespace tracemark::text {
class Tokenizer;
}

namespace tracemark::redteam {

// Limits on the student's shape and the training run (a request beyond them is refused).
inline constexpr int32_t kMaxStudentDModel = 1024;
inline constexpr int32_t kMaxStudentLayers = 32;
inline constexpr int32_t kMaxStudentHeads = 64;
inline constexpr int32_t kMaxStudentFf = 8192;
inline constexpr int32_t kMaxStudentContext = 2048;
inline constexpr int32_t kMaxStudentVocab = 1 << 20;
inline constexpr int32_t kMaxTrainSteps = 1 << 22;
inline constexpr int32_t kMaxTrainBatch = 1024;
// Kernels work on 8-float AVX2 vectors: d_model, n_ff and the head size must be multiples of it.
inline constexpr int32_t kStudentDimMultiple = 8;
// Largest training input read (each of --data and --clean).
inline constexpr size_t kMaxTrainInputBytes = size_t{512} << 20;
// Standard deviation of the random initialization of embeddings and projections.
inline constexpr float kInitStd = 0.02f;

// Defaults of the test-sized student (trains in minutes on 2 cores; see docs/student.md).
inline constexpr int32_t kDefaultStudentDModel = 64;
inline constexpr int32_t kDefaultStudentLayers = 2;
inline constexpr int32_t kDefaultStudentHeads = 4;
inline constexpr int32_t kDefaultStudentContext = 64;

struct StudentConfig {
  int32_t n_vocab = 0;  // the teacher's vocabulary size
  int32_t d_model = kDefaultStudentDModel;
  int32_t n_layer = kDefaultStudentLayers;
  int32_t n_head = kDefaultStudentHeads;
  int32_t n_ff = 0;  // 0: 3 * d_model
  int32_t n_ctx = kDefaultStudentContext;
  float rms_eps = 1e-5f;
  float rope_base = 10000.0f;

  int32_t head_dim() const { return d_model / n_head; }
  int32_t ff() const { return n_ff > 0 ? n_ff : 3 * d_model; }
  // InvalidArgument naming the first field outside its limits.
  Status Validate() const;
};

// One parameter tensor inside the flat parameter vector: rows x cols, row-major, cols innermost
// (the GGUF ne[0]). Vectors have rows == 1.
struct ParamTensor {
  std::string name;  // GGUF tensor name, e.g. "blk.0.attn_q.weight"
  size_t offset = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  bool decay = false;  // weight decay applies (matrices, not norms)
  size_t size() const { return static_cast<size_t>(rows * cols); }
};

class StudentModel {
 public:
  // Random initialization (norm weights 1, matrices N(0, kInitStd), residual outputs scaled by
  // 1 / sqrt(2 n_layer)), deterministic for the seed.
  static Result<StudentModel> Create(const StudentConfig& config, uint64_t seed);

  const StudentConfig& config() const { return config_; }
  std::span<float> params() { return params_; }
  std::span<const float> params() const { return params_; }
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const ParamTensor* Find(const std::string& name) const;

 private:
  StudentConfig config_;
  std::vector<float> params_;
  std::vector<ParamTensor> tensors_;
};

// Computes the loss (mean cross-entropy of every next-token target of every sequence) and its
// gradient. Each sequence has length <= n_ctx + 1: positions 0..n-2 are inputs, 1..n-1 targets.
class Trainer {
 public:
  Trainer(StudentModel* model, int32_t threads);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Loss and gradient (gradient readable through grad() until the next call).
  Result<double> LossAndGrad(std::span<const std::vector<int32_t>> seqs);
  // Loss only (no gradient).
  Result<double> Loss(std::span<const std::vector<int32_t>> seqs);
  // Logits [n, n_vocab] of one sequence of n tokens (the student's forward, for tests and
  // comparisons with the engine).
  Result<std::vector<float>> Logits(std::span<const int32_t> tokens);
  std::span<const float> grad() const;
  ThreadPool& pool();

  // Restricts the output head to `ids` and sets every other token's embedding row to zero. With
  // the tied head those tokens' logits are then exactly 0 (in this trainer and in the engine), so
  // the loss stays the exact full-vocabulary cross-entropy, computed as the head over the active
  // rows plus (n_vocab - A) * exp(0) in the normalizer; the zero rows get no gradient and stay
  // zero. Sequences may then contain only active tokens. Cost of the head scales with A.
  Status SetActiveVocabulary(std::span<const int32_t> ids);
  int32_t active_vocabulary() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct TrainOptions {
  int32_t steps = 300;
  int32_t batch = 8;            // sequences per step
  float lr = 3e-3f;             // peak learning rate
  float min_lr_ratio = 0.1f;    // cosine decays to lr * min_lr_ratio
  int32_t warmup_steps = -1;    // -1: 5% of steps (at least 1)
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float adam_eps = 1e-8f;
  float weight_decay = 0.01f;   // decoupled, matrices only
  float clip_norm = 1.0f;       // global gradient norm; <= 0: off
  // Constrain tokens absent from the training windows to zero embeddings and train the head on
  // the tokens present (Trainer::SetActiveVocabulary: exact, and several times faster with a
  // 49,152-token vocabulary of which a corpus uses a few thousand).
  bool restrict_vocabulary = true;
  uint64_t seed = 1;
  int32_t threads = 2;
  // Called after every step (progress output); may be empty.
  std::function<void(int32_t step, double loss, double grad_norm, float lr)> on_step;
};

// Training windows: each is n_ctx + 1 tokens cut from the token streams of the documents.
struct TrainData {
  std::vector<std::vector<int32_t>> windows;
  int64_t watermarked_tokens = 0;  // in the windows taken from --data
  int64_t clean_tokens = 0;        // in the windows taken from --clean
  int64_t watermarked_windows = 0;
  int64_t clean_windows = 0;
};

// Tokenizes documents (each followed by the EOS token when the tokenizer has one), cuts both
// token streams into windows of window_tokens and mixes them so that watermarked windows make up
// `fraction` of the result (all of the scarcer side is used; fraction 1 uses no clean text,
// fraction 0 no watermarked text; a negative fraction uses all of both). InvalidArgument if a
// needed side has no tokens.
Result<TrainData> BuildTrainData(const text::Tokenizer& tokenizer, std::span<const std::string> watermarked,
                                 std::span<const std::string> clean, double fraction,
                                 int32_t window_tokens, uint64_t seed);

// Reads documents: JSONL (one object per line, the string field `field`; lines without it are
// skipped) when the file name ends in .jsonl/.json, else plain text with one document per
// blank-line-separated paragraph.
Result<std::vector<std::string>> ReadDocuments(const std::string& path, const std::string& field);

struct TrainReport {
  double initial_loss = 0;  // of the first batch
  double final_loss = 0;    // mean of the last min(10, steps) batches
  int64_t tokens_seen = 0;  // target tokens over all steps
  int32_t active_vocabulary = 0;  // tokens the head trained on (n_vocab without restriction)
  int32_t steps = 0;
  double seconds = 0;
  double tokens_per_second = 0;
};

// Trains in place: `steps` AdamW steps on batches drawn (seeded) from data.windows.
Result<TrainReport> Train(StudentModel* model, const TrainData& data, const TrainOptions& options);

// Writes a llama-architecture GGUF (v3, F32 tensors, tied output) with the teacher's
// `tokenizer.*` metadata, atomically.
Status WriteStudentGguf(const StudentModel& model, const gguf::GgufFile& teacher,
                        const std::string& path);

}  // namespace tracemark::redteam
