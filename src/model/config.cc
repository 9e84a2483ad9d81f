// ModelConfig::FromGguf: hyperparameters and per-architecture conventions.
#include "tracemark/model/config.h"

#include <cmath>
#include <string>

#include "tracemark/model/gguf.h"

namespace tracemark {
namespace {

Result<int64_t> RequiredInt(const gguf::GgufFile& f, const std::string& key, int64_t lo, int64_t hi) {
  auto v = f.GetInt(key);
  if (!v.ok()) {
    return InvalidArgument("model: metadata key '" + key + "' " +
                           (f.Find(key) ? "has the wrong type" : "is missing") +
                           "; the file is not a complete GGUF model");
  }
  if (*v < lo || *v > hi) {
    return InvalidArgument("model: metadata '" + key + "' = " + std::to_string(*v) +
                           " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return *v;
}

Result<int64_t> OptionalInt(const gguf::GgufFile& f, const std::string& key, int64_t def, int64_t lo,
                            int64_t hi) {
  if (f.Find(key) == nullptr) return def;
  return RequiredInt(f, key, lo, hi);
}

Result<float> OptionalFloat(const gguf::GgufFile& f, const std::string& key, float def) {
  if (f.Find(key) == nullptr) return def;
  auto v = f.GetFloat(key);
  if (!v.ok()) return InvalidArgument("model: metadata key '" + key + "' is not a number");
  if (!std::isfinite(*v)) return InvalidArgument("model: metadata '" + key + "' is not finite");
  return static_cast<float>(*v);
}

}  // namespace

const char* ArchName(Arch arch) {
  switch (arch) {
    case Arch::kLlama: return "llama";
    case Arch::kQwen2: return "qwen2";
    case Arch::kGemma3: return "gemma3";
  }
  return "?";
}

Result<ModelConfig> ModelConfig::FromGguf(const gguf::GgufFile& f) {
  ModelConfig c;
  auto arch = f.GetString("general.architecture");
  if (!arch.ok()) {
    return InvalidArgument("model: metadata key 'general.architecture' is missing; not a GGUF model");
  }
  c.arch_name = *arch;
  if (c.arch_name == "llama") {
    c.arch = Arch::kLlama;
  } else if (c.arch_name == "qwen2") {
    c.arch = Arch::kQwen2;
  } else if (c.arch_name == "gemma3") {
    c.arch = Arch::kGemma3;
  } else {
    return Unimplemented("model: architecture '" + c.arch_name +
                         "' is not supported (supported: llama, qwen2, gemma3)");
  }
  if (auto name = f.GetString("general.name"); name.ok()) c.name = *name;
  const std::string p = c.arch_name + ".";

  TM_ASSIGN_OR_RETURN(int64_t n_embd, RequiredInt(f, p + "embedding_length", 1, kMaxEmbedding));
  TM_ASSIGN_OR_RETURN(int64_t n_layer, RequiredInt(f, p + "block_count", 1, kMaxLayers));
  TM_ASSIGN_OR_RETURN(int64_t n_ff, RequiredInt(f, p + "feed_forward_length", 1, 16 * kMaxEmbedding));
  TM_ASSIGN_OR_RETURN(int64_t n_head, RequiredInt(f, p + "attention.head_count", 1, kMaxHeads));
  TM_ASSIGN_OR_RETURN(int64_t n_head_kv,
                      OptionalInt(f, p + "attention.head_count_kv", n_head, 1, kMaxHeads));
  TM_ASSIGN_OR_RETURN(int64_t n_ctx, RequiredInt(f, p + "context_length", 1, int64_t{1} << 24));
  if (n_head % n_head_kv != 0) {
    return InvalidArgument("model: head_count " + std::to_string(n_head) +
                           " is not a multiple of head_count_kv " + std::to_string(n_head_kv));
  }
  const int64_t def_head_dim = n_embd / n_head;
  TM_ASSIGN_OR_RETURN(int64_t dk, OptionalInt(f, p + "attention.key_length", def_head_dim, 1, kMaxHeadDim));
  TM_ASSIGN_OR_RETURN(int64_t dv, OptionalInt(f, p + "attention.value_length", def_head_dim, 1, kMaxHeadDim));
  TM_ASSIGN_OR_RETURN(int64_t rope_dim, OptionalInt(f, p + "rope.dimension_count", dk, 2, dk));
  if (rope_dim % 2 != 0) return InvalidArgument("model: rope.dimension_count must be even");
  c.n_embd = static_cast<int32_t>(n_embd);
  c.n_layer = static_cast<int32_t>(n_layer);
  c.n_ff = static_cast<int32_t>(n_ff);
  c.n_head = static_cast<int32_t>(n_head);
  c.n_head_kv = static_cast<int32_t>(n_head_kv);
  c.head_dim_k = static_cast<int32_t>(dk);
  c.head_dim_v = static_cast<int32_t>(dv);
  c.rope_dim = static_cast<int32_t>(rope_dim);
  c.n_ctx_train = static_cast<int32_t>(n_ctx);

  const float def_eps = c.arch == Arch::kLlama ? 1e-5f : 1e-6f;
  TM_ASSIGN_OR_RETURN(c.rms_eps, OptionalFloat(f, p + "attention.layer_norm_rms_epsilon", def_eps));
  const float def_base = c.arch == Arch::kLlama ? 10000.0f : 1000000.0f;
  TM_ASSIGN_OR_RETURN(c.rope_base, OptionalFloat(f, p + "rope.freq_base", def_base));
  c.rope_base_swa = c.rope_base;
  TM_ASSIGN_OR_RETURN(c.final_logit_softcap, OptionalFloat(f, p + "final_logit_softcapping", 0.0f));
  if (f.Find(p + "rope.scaling.type") != nullptr) {
    // Llama 3.1-style scaling arrives as the rope_freqs tensor, without this key; linear and
    // yarn scaling are not implemented, so refuse rather than produce wrong positions.
    auto type = f.GetString(p + "rope.scaling.type");
    auto factor = f.GetFloat(p + "rope.scaling.factor");
    if (type.ok() && *type != "none" && (!factor.ok() || *factor != 1.0)) {
      return Unimplemented("model: rope scaling type '" + *type + "' is not supported");
    }
  }

  c.layer_is_swa.assign(c.n_layer, 0);
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim_k));
  switch (c.arch) {
    case Arch::kLlama:
      c.rope_style = RopeStyle::kNorm;
      break;
    case Arch::kQwen2:
      c.rope_style = RopeStyle::kNeox;
      c.has_qkv_bias = true;
      break;
    case Arch::kGemma3: {
      c.rope_style = RopeStyle::kNeox;
      c.has_qk_norm = true;
      c.gelu_ffn = true;
      c.embed_scale = std::sqrt(static_cast<float>(c.n_embd));
      TM_ASSIGN_OR_RETURN(c.rope_base_swa,
                          OptionalFloat(f, p + "rope.freq_base_swa", kGemma3DefaultRopeBaseSwa));
      TM_ASSIGN_OR_RETURN(int64_t window, OptionalInt(f, p + "attention.sliding_window", 0, 0, int64_t{1} << 24));
      c.sliding_window = static_cast<int32_t>(window);
      const std::string pat_key = p + "attention.sliding_window_pattern";
      const gguf::Value* pat = f.Find(pat_key);
      if (pat != nullptr && pat->type == gguf::ValueType::kArray) {
        auto arr = f.GetBoolArray(pat_key);
        if (!arr.ok() || static_cast<int64_t>(arr->size()) != n_layer) {
          return InvalidArgument("model: '" + pat_key + "' must be a bool array with one entry per layer");
        }
        for (int32_t il = 0; il < c.n_layer; ++il) c.layer_is_swa[il] = (*arr)[il] ? 1 : 0;
      } else {
        TM_ASSIGN_OR_RETURN(int64_t period, OptionalInt(f, pat_key, kGemma3DefaultSwaPattern, 0, kMaxLayers));
        // period n: layer il is sliding iff il % n < n - 1; 0 or 1 means no sliding layers.
        for (int32_t il = 0; il < c.n_layer; ++il) {
          c.layer_is_swa[il] = period > 1 && (il % period) < period - 1 ? 1 : 0;
        }
      }
      if (c.sliding_window == 0) c.layer_is_swa.assign(c.n_layer, 0);
      break;
    }
  }
  return c;
}

}  // namespace tracemark
