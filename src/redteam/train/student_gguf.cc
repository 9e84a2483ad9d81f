// WriteStudentGguf: the student as a GGUF v3 file (layout in docs/formats/gguf.md), llama
// architecture, F32 tensors, the teacher's tokenizer.* metadata copied value for value.
#include <cstring>
#include <string>

#include "tracemark/base/file.h"
#include "tracemark/model/gguf.h"
#include "tracemark/redteam/train.h"

namespace tracemark::redteam {
namespace {

constexpr uint32_t kGgufVersion = 3;
constexpr uint32_t kAlignment = 32;  // the GGUF default; general.alignment is not written
constexpr uint32_t kGgmlTypeF32 = 0;
constexpr uint32_t kFileTypeAllF32 = 0;
constexpr std::string_view kCopiedPrefix = "tokenizer.";

class Writer {
 public:
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void F32(float v) { Raw(&v, 4); }
  void Str(std::string_view s) {
    U64(s.size());
    out_.append(s.data(), s.size());
  }
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  void Pad() { out_.append((kAlignment - out_.size() % kAlignment) % kAlignment, '\0'); }
  size_t size() const { return out_.size(); }
  std::string& out() { return out_; }

  void KvU32(std::string_view key, uint32_t v) {
    Str(key);
    U32(static_cast<uint32_t>(gguf::ValueType::kU32));
    U32(v);
  }
  void KvF32(std::string_view key, float v) {
    Str(key);
    U32(static_cast<uint32_t>(gguf::ValueType::kF32));
    F32(v);
  }
  void KvStr(std::string_view key, std::string_view v) {
    Str(key);
    U32(static_cast<uint32_t>(gguf::ValueType::kString));
    Str(v);
  }

 private:
  std::string out_;
};

size_t ScalarBytes(gguf::ValueType t) {
  switch (t) {
    case gguf::ValueType::kU8: case gguf::ValueType::kI8: case gguf::ValueType::kBool: return 1;
    case gguf::ValueType::kU16: case gguf::ValueType::kI16: return 2;
    case gguf::ValueType::kU32: case gguf::ValueType::kI32: case gguf::ValueType::kF32: return 4;
    case gguf::ValueType::kU64: case gguf::ValueType::kI64: case gguf::ValueType::kF64: return 8;
    default: return 0;
  }
}

// Re-encodes one metadata value of the teacher as it was stored.
Status CopyValue(Writer& w, std::string_view key, const gguf::Value& v) {
  w.Str(key);
  w.U32(static_cast<uint32_t>(v.type));
  switch (v.type) {
    case gguf::ValueType::kString:
      w.Str(v.str);
      return Status::Ok();
    case gguf::ValueType::kArray: {
      w.U32(static_cast<uint32_t>(v.elem_type));
      w.U64(v.count);
      if (v.elem_type == gguf::ValueType::kString) {
        if (v.strings.size() != v.count) return Internal("gguf write: string array '" + std::string(key) + "' not decoded");
        for (std::string_view s : v.strings) w.Str(s);
        return Status::Ok();
      }
      const size_t elem = ScalarBytes(v.elem_type);
      if (elem == 0) {
        return Unimplemented("gguf write: metadata '" + std::string(key) + "' is a nested array; not copied");
      }
      if (v.count > 0) w.Raw(v.array_data, elem * v.count);
      return Status::Ok();
    }
    case gguf::ValueType::kF32: w.F32(static_cast<float>(v.f)); return Status::Ok();
    case gguf::ValueType::kF64: { double d = v.f; w.Raw(&d, 8); return Status::Ok(); }
    case gguf::ValueType::kI8: case gguf::ValueType::kI16: case gguf::ValueType::kI32: case gguf::ValueType::kI64: {
      int64_t i = v.i;
      w.Raw(&i, ScalarBytes(v.type));  // little-endian: the low bytes
      return Status::Ok();
    }
    default: {
      uint64_t u = v.u;
      w.Raw(&u, ScalarBytes(v.type));
      return Status::Ok();
    }
  }
}

}  // namespace

Status WriteStudentGguf(const StudentModel& model, const gguf::GgufFile& teacher, const std::string& path) {
  const StudentConfig& c = model.config();
  std::vector<std::string_view> copied;
  for (const std::string& k : teacher.keys()) {
    if (std::string_view(k).starts_with(kCopiedPrefix)) copied.push_back(k);
  }
  auto vocab = teacher.GetStringArrayView("tokenizer.ggml.tokens");
  if (!vocab.ok() || static_cast<int64_t>(vocab->size()) != c.n_vocab) {
    return InvalidArgument("gguf write: the teacher's tokenizer.ggml.tokens does not have the student's " +
                           std::to_string(c.n_vocab) + " entries");
  }
  constexpr uint64_t kOwnKeys = 13;
  Writer w;
  w.Raw("GGUF", 4);
  w.U32(kGgufVersion);
  w.U64(model.tensors().size());
  w.U64(kOwnKeys + copied.size());
  w.KvStr("general.architecture", "llama");
  w.KvStr("general.name", "tracemark-student");
  w.KvU32("general.file_type", kFileTypeAllF32);
  w.KvU32("llama.context_length", static_cast<uint32_t>(c.n_ctx));
  w.KvU32("llama.embedding_length", static_cast<uint32_t>(c.d_model));
  w.KvU32("llama.block_count", static_cast<uint32_t>(c.n_layer));
  w.KvU32("llama.feed_forward_length", static_cast<uint32_t>(c.ff()));
  w.KvU32("llama.attention.head_count", static_cast<uint32_t>(c.n_head));
  w.KvU32("llama.attention.head_count_kv", static_cast<uint32_t>(c.n_head));
  w.KvF32("llama.attention.layer_norm_rms_epsilon", c.rms_eps);
  w.KvU32("llama.rope.dimension_count", static_cast<uint32_t>(c.head_dim()));
  w.KvF32("llama.rope.freq_base", c.rope_base);
  w.KvU32("llama.vocab_size", static_cast<uint32_t>(c.n_vocab));
  for (std::string_view k : copied) TM_RETURN_IF_ERROR(CopyValue(w, k, *teacher.Find(k)));
  uint64_t offset = 0;
  for (const ParamTensor& t : model.tensors()) {
    w.Str(t.name);
    const bool vec = t.rows == 1;
    w.U32(vec ? 1 : 2);
    w.U64(static_cast<uint64_t>(t.cols));
    if (!vec) w.U64(static_cast<uint64_t>(t.rows));
    w.U32(kGgmlTypeF32);
    w.U64(offset);
    offset += (t.size() * 4 + kAlignment - 1) / kAlignment * kAlignment;
  }
  w.Pad();
  std::span<const float> p = model.params();
  for (const ParamTensor& t : model.tensors()) {
    w.Raw(p.data() + t.offset, t.size() * 4);
    w.Pad();
  }
  return WriteFileAtomic(path, w.out());
}

}  // namespace tracemark::redteam
