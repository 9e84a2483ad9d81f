// A loaded GGUF model: hyperparameters plus pointers to every weight tensor, used in place.
//
// Model::Load maps the file, reads the config (config.h) and binds each tensor the architecture
// needs, checking its type and shape; weights are never copied (quantized matrices are handed to
// MatMul/GetRow as they lie in the mapping, fp32 norm vectors are read directly), so resident
// memory is what the kernels touch. Missing tensors or keys, wrong shapes and unsupported
// architectures are reported as one Status naming the tensor or key. Immutable after Load: any
// number of Contexts (context.h) on any threads may share one Model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/model/config.h"
#include "tracemark/model/gguf.h"

namespace tracemark {

struct LayerWeights {
  const float* attn_norm = nullptr;        // [n_embd]
  const gguf::TensorInfo* wq = nullptr;    // [n_embd -> n_head * head_dim_k]
  const gguf::TensorInfo* wk = nullptr;    // [n_embd -> n_head_kv * head_dim_k]
  const gguf::TensorInfo* wv = nullptr;    // [n_embd -> n_head_kv * head_dim_v]
  const gguf::TensorInfo* wo = nullptr;    // [n_head * head_dim_v -> n_embd]
  const float* bq = nullptr;               // qwen2 biases (else null)
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* q_norm = nullptr;           // gemma3 QK-norm [head_dim_k]
  const float* k_norm = nullptr;
  const float* post_attn_norm = nullptr;   // gemma3 [n_embd]
  const float* ffn_norm = nullptr;         // [n_embd]
  const gguf::TensorInfo* gate = nullptr;  // [n_embd -> n_ff]
  const gguf::TensorInfo* up = nullptr;    // [n_embd -> n_ff]
  const gguf::TensorInfo* down = nullptr;  // [n_ff -> n_embd]
  const float* post_ffw_norm = nullptr;    // gemma3 [n_embd]
};

struct ModelWeights {
  const gguf::TensorInfo* token_embd = nullptr;  // [n_embd] x n_vocab rows
  const float* output_norm = nullptr;
  const gguf::TensorInfo* output = nullptr;      // token_embd when tied
  const float* rope_freqs = nullptr;             // llama3 scaling divisors [rope_dim / 2], or null
  std::vector<LayerWeights> layers;
};

struct ModelLoadOptions {
  // Touch every weight page once after mapping (first decode then does not page-fault).
  bool prefault = false;
};

class Model {
 public:
  static Result<std::unique_ptr<Model>> Load(const std::string& path,
                                             const ModelLoadOptions& options = {});

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const gguf::GgufFile& file() const { return *file_; }
  // Bytes of the mapped file (all weights).
  size_t file_size() const;

 private:
  Model() = default;
  std::unique_ptr<gguf::GgufFile> file_;
  ModelConfig config_;
  ModelWeights weights_;
};

}  // namespace tracemark
