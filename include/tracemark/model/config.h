// Model hyperparameters read from GGUF metadata, for the architectures the engine runs.
//
// ModelConfig::FromGguf reads `general.architecture` and the `{arch}.*` keys (context_length,
// embedding_length, block_count, feed_forward_length, attention.head_count[_kv],
// attention.key_length / value_length, attention.layer_norm_rms_epsilon, rope.freq_base,
// rope.dimension_count; Gemma 3 also attention.sliding_window, attention.sliding_window_pattern,
// rope.freq_base_swa, final_logit_softcapping) and derives the per-architecture conventions
// (rope style, attention scale, embedding scale) documented in docs/engine.md. A plain value:
// immutable after construction and safe to share between threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tracemark/base/status.h"

namespace tracemark::gguf {
class GgufFile;
}

namespace tracemark {

enum class Arch { kLlama, kQwen2, kGemma3 };

// kNorm rotates adjacent pairs (2i, 2i+1): llama-arch GGUFs, whose converter permuted q/k rows.
// kNeox rotates (i, i + rope_dim/2): qwen2, gemma3.
enum class RopeStyle { kNorm, kNeox };

// Limits on what a file may declare (a file beyond them is rejected with a message).
inline constexpr int64_t kMaxLayers = 1024;
inline constexpr int64_t kMaxEmbedding = 1 << 16;
inline constexpr int64_t kMaxHeads = 1024;
inline constexpr int64_t kMaxHeadDim = 1024;
// Gemma 3: every 6th layer is global unless the file says otherwise (llama.cpp set_swa_pattern(6)).
inline constexpr uint32_t kGemma3DefaultSwaPattern = 6;
inline constexpr float kGemma3DefaultRopeBaseSwa = 10000.0f;

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string arch_name;         // as in general.architecture
  std::string name;              // general.name (may be empty)
  int32_t n_vocab = 0;           // rows of token_embd
  int32_t n_embd = 0;
  int32_t n_layer = 0;
  int32_t n_ff = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t head_dim_k = 0;        // attention.key_length, default n_embd / n_head
  int32_t head_dim_v = 0;        // attention.value_length, default n_embd / n_head
  int32_t n_ctx_train = 0;
  float rms_eps = 1e-5f;

  RopeStyle rope_style = RopeStyle::kNorm;
  int32_t rope_dim = 0;          // leading dimensions of each head that are rotated
  float rope_base = 10000.0f;
  float rope_base_swa = 10000.0f;  // sliding-window layers (Gemma 3)

  int32_t sliding_window = 0;    // 0: no sliding-window layers
  std::vector<uint8_t> layer_is_swa;  // n_layer entries, 1 = sliding-window layer

  float attn_scale = 1.0f;       // multiplies q.k
  float embed_scale = 1.0f;      // multiplies the input embedding (sqrt(n_embd) for Gemma)
  float final_logit_softcap = 0.0f;  // 0: off
  bool has_qkv_bias = false;     // qwen2
  bool has_qk_norm = false;      // gemma3 (also implies post-attention / post-FFN norms)
  bool gelu_ffn = false;         // GeGLU with tanh GELU (gemma3) instead of SwiGLU

  static Result<ModelConfig> FromGguf(const gguf::GgufFile& file);
};

const char* ArchName(Arch arch);

}  // namespace tracemark
