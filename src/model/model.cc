// Model::Load: binds the weight tensors of a GGUF file to the architecture's layout.
#include "tracemark/model/model.h"

#include "tracemark/model/matmul.h"

#include <string>

namespace tracemark {
namespace {

constexpr uint64_t kPageBytes = 4096;

std::string Shape(const gguf::TensorInfo& t) {
  std::string s = "[";
  for (uint32_t i = 0; i < t.n_dims; ++i) {
    if (i) s += ", ";
    s += std::to_string(t.ne[i]);
  }
  return s + "]";
}

class Binder {
 public:
  explicit Binder(const gguf::GgufFile& f) : f_(f) {}

  // A matrix with rows of `cols` elements and `rows` rows, any supported type.
  Result<const gguf::TensorInfo*> Matrix(const std::string& name, int64_t cols, int64_t rows) {
    const gguf::TensorInfo* t = f_.FindTensor(name);
    if (t == nullptr) return NotFound("model: tensor '" + name + "' is missing from the file");
    if (t->n_dims > 2 || static_cast<int64_t>(t->ne[0]) != cols || static_cast<int64_t>(t->ne[1]) != rows) {
      return InvalidArgument("model: tensor '" + name + "' has shape " + Shape(*t) + ", expected [" +
                             std::to_string(cols) + ", " + std::to_string(rows) + "]");
    }
    if (Status s = CheckMatMulWeight(*t); !s.ok()) return s.WithContext("model: tensor '" + name + "'");
    return t;
  }

  // An fp32 vector of n elements, read in place.
  Result<const float*> Vector(const std::string& name, int64_t n) {
    const gguf::TensorInfo* t = f_.FindTensor(name);
    if (t == nullptr) return NotFound("model: tensor '" + name + "' is missing from the file");
    return CheckVector(*t, n);
  }

  Result<const float*> OptionalVector(const std::string& name, int64_t n) {
    const gguf::TensorInfo* t = f_.FindTensor(name);
    if (t == nullptr) return static_cast<const float*>(nullptr);
    return CheckVector(*t, n);
  }

 private:
  Result<const float*> CheckVector(const gguf::TensorInfo& t, int64_t n) {
    if (t.type != GgmlType::kF32) {
      return Unimplemented("model: tensor '" + t.name + "' must be F32 (norms and biases are read in place)");
    }
    if (static_cast<int64_t>(t.NumElements()) != n || t.ne[1] != 1) {
      return InvalidArgument("model: tensor '" + t.name + "' has shape " + Shape(t) + ", expected [" +
                             std::to_string(n) + "]");
    }
    if (reinterpret_cast<uintptr_t>(t.data) % alignof(float) != 0) {
      return InvalidArgument("model: tensor '" + t.name + "' is not 4-byte aligned in the file");
    }
    return reinterpret_cast<const float*>(t.data);
  }

  const gguf::GgufFile& f_;
};

}  // namespace

size_t Model::file_size() const { return file_->file_size(); }

Result<std::unique_ptr<Model>> Model::Load(const std::string& path, const ModelLoadOptions& options) {
  std::unique_ptr<Model> m(new Model());
  TM_ASSIGN_OR_RETURN(m->file_, gguf::GgufFile::Open(path));
  auto cfg = ModelConfig::FromGguf(*m->file_);
  if (!cfg.ok()) return cfg.status().WithContext(path);
  m->config_ = std::move(cfg).value();
  ModelConfig& c = m->config_;
  ModelWeights& w = m->weights_;
  Binder b(*m->file_);

  const gguf::TensorInfo* embd = m->file_->FindTensor("token_embd.weight");
  if (embd == nullptr) return NotFound(path + ": model: tensor 'token_embd.weight' is missing");
  if (embd->ne[1] < 1 || embd->ne[1] > (uint64_t{1} << 24)) {
    return InvalidArgument(path + ": model: token_embd.weight has an implausible vocabulary size");
  }
  c.n_vocab = static_cast<int32_t>(embd->ne[1]);

  auto bind = [&]() -> Status {
    const int64_t E = c.n_embd;
    const int64_t q_dim = int64_t{c.n_head} * c.head_dim_k;
    const int64_t k_dim = int64_t{c.n_head_kv} * c.head_dim_k;
    const int64_t v_dim = int64_t{c.n_head_kv} * c.head_dim_v;
    const int64_t o_dim = int64_t{c.n_head} * c.head_dim_v;
    TM_ASSIGN_OR_RETURN(w.token_embd, b.Matrix("token_embd.weight", E, c.n_vocab));
    TM_ASSIGN_OR_RETURN(w.output_norm, b.Vector("output_norm.weight", E));
    if (m->file_->FindTensor("output.weight") != nullptr) {
      TM_ASSIGN_OR_RETURN(w.output, b.Matrix("output.weight", E, c.n_vocab));
    } else {
      w.output = w.token_embd;  // tied embeddings
    }
    TM_ASSIGN_OR_RETURN(w.rope_freqs, b.OptionalVector("rope_freqs.weight", c.rope_dim / 2));
    w.layers.resize(c.n_layer);
    for (int32_t il = 0; il < c.n_layer; ++il) {
      LayerWeights& l = w.layers[il];
      const std::string p = "blk." + std::to_string(il) + ".";
      TM_ASSIGN_OR_RETURN(l.attn_norm, b.Vector(p + "attn_norm.weight", E));
      TM_ASSIGN_OR_RETURN(l.wq, b.Matrix(p + "attn_q.weight", E, q_dim));
      TM_ASSIGN_OR_RETURN(l.wk, b.Matrix(p + "attn_k.weight", E, k_dim));
      TM_ASSIGN_OR_RETURN(l.wv, b.Matrix(p + "attn_v.weight", E, v_dim));
      TM_ASSIGN_OR_RETURN(l.wo, b.Matrix(p + "attn_output.weight", o_dim, E));
      if (c.has_qkv_bias) {
        TM_ASSIGN_OR_RETURN(l.bq, b.Vector(p + "attn_q.bias", q_dim));
        TM_ASSIGN_OR_RETURN(l.bk, b.Vector(p + "attn_k.bias", k_dim));
        TM_ASSIGN_OR_RETURN(l.bv, b.Vector(p + "attn_v.bias", v_dim));
      }
      if (c.has_qk_norm) {
        TM_ASSIGN_OR_RETURN(l.q_norm, b.Vector(p + "attn_q_norm.weight", c.head_dim_k));
        TM_ASSIGN_OR_RETURN(l.k_norm, b.Vector(p + "attn_k_norm.weight", c.head_dim_k));
        TM_ASSIGN_OR_RETURN(l.post_attn_norm, b.Vector(p + "post_attention_norm.weight", E));
        TM_ASSIGN_OR_RETURN(l.post_ffw_norm, b.Vector(p + "post_ffw_norm.weight", E));
      }
      TM_ASSIGN_OR_RETURN(l.ffn_norm, b.Vector(p + "ffn_norm.weight", E));
      TM_ASSIGN_OR_RETURN(l.gate, b.Matrix(p + "ffn_gate.weight", E, c.n_ff));
      TM_ASSIGN_OR_RETURN(l.up, b.Matrix(p + "ffn_up.weight", E, c.n_ff));
      TM_ASSIGN_OR_RETURN(l.down, b.Matrix(p + "ffn_down.weight", c.n_ff, E));
    }
    return Status::Ok();
  };
  if (Status s = bind(); !s.ok()) return s.WithContext(path);

  if (options.prefault) {
    uint8_t acc = 0;
    for (const gguf::TensorInfo& t : m->file_->tensors()) {
      for (uint64_t off = 0; off < t.nbytes; off += kPageBytes) acc ^= t.data[off];
    }
    volatile uint8_t sink = acc;
    (void)sink;
  }
  return m;
}

}  // namespace tracemark
