// Test helper: serializes small GGUF images in memory (header, metadata, tensor infos, data).
//
// Writes exactly what it is told, including malformed fields (wrong counts, bad offsets, raw type
// ids), so tests can build both valid files and each kind of corruption. Test-only; not
// thread-safe.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tracemark::gguf::testing {

class ByteWriter {
 public:
  template <typename T>
  ByteWriter& Put(T v) {
    const size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &v, sizeof(T));
    return *this;
  }
  ByteWriter& Str(std::string_view s) {
    Put<uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
  ByteWriter& Raw(const std::vector<uint8_t>& b) {
    bytes.insert(bytes.end(), b.begin(), b.end());
    return *this;
  }
  std::vector<uint8_t> bytes;
};

// Value type ids (GGUF spec).
enum : uint32_t {
  kTU8 = 0,
  kTI8 = 1,
  kTU16 = 2,
  kTI16 = 3,
  kTU32 = 4,
  kTI32 = 5,
  kTF32 = 6,
  kTBool = 7,
  kTString = 8,
  kTArray = 9,
  kTU64 = 10,
  kTI64 = 11,
  kTF64 = 12,
};

class GgufBuilder {
 public:
  // Header fields; the counts default to what was added.
  char magic[4] = {'G', 'G', 'U', 'F'};
  uint32_t version = 3;
  std::optional<uint64_t> tensor_count_override;
  std::optional<uint64_t> kv_count_override;
  uint32_t alignment =
      32;  // used for padding and automatic offsets only; add general.alignment yourself

  // Starts a metadata entry: key and value type; write the value with kv().
  ByteWriter& Key(std::string_view key, uint32_t type) {
    ++kv_count_;
    kv_.Str(key).Put<uint32_t>(type);
    return kv_;
  }
  GgufBuilder& U32(std::string_view key, uint32_t v) {
    Key(key, kTU32).Put(v);
    return *this;
  }
  GgufBuilder& U64(std::string_view key, uint64_t v) {
    Key(key, kTU64).Put(v);
    return *this;
  }
  GgufBuilder& I32(std::string_view key, int32_t v) {
    Key(key, kTI32).Put(v);
    return *this;
  }
  GgufBuilder& F32(std::string_view key, float v) {
    Key(key, kTF32).Put(v);
    return *this;
  }
  GgufBuilder& Bool(std::string_view key, bool v) {
    Key(key, kTBool).Put<uint8_t>(v ? 1 : 0);
    return *this;
  }
  GgufBuilder& String(std::string_view key, std::string_view v) {
    Key(key, kTString).Str(v);
    return *this;
  }
  GgufBuilder& StringArray(std::string_view key, const std::vector<std::string>& v) {
    ByteWriter& w = Key(key, kTArray).Put<uint32_t>(kTString).Put<uint64_t>(v.size());
    for (const auto& s : v) w.Str(s);
    return *this;
  }
  template <typename T>
  GgufBuilder& ScalarArray(std::string_view key, uint32_t elem_type, const std::vector<T>& v) {
    ByteWriter& w = Key(key, kTArray).Put<uint32_t>(elem_type).Put<uint64_t>(v.size());
    for (const T& e : v) w.Put(e);
    return *this;
  }

  // A tensor whose data is appended to the data section at the next aligned offset.
  GgufBuilder& Tensor(std::string_view name, uint32_t type, std::vector<uint64_t> ne,
                      const std::vector<uint8_t>& data) {
    const size_t off = (data_.size() + alignment - 1) / alignment * alignment;
    data_.resize(off);
    data_.insert(data_.end(), data.begin(), data.end());
    const auto n_dims = static_cast<uint32_t>(ne.size());
    return TensorRaw(name, n_dims, std::move(ne), type, off);
  }
  // A tensor info written verbatim (n_dims may disagree with ne.size() on purpose); no data.
  GgufBuilder& TensorRaw(std::string_view name, uint32_t n_dims, std::vector<uint64_t> ne,
                         uint32_t type, uint64_t offset) {
    ByteWriter& w = infos_;
    w.Str(name).Put<uint32_t>(n_dims);
    for (uint64_t d : ne) w.Put(d);
    w.Put<uint32_t>(type).Put<uint64_t>(offset);
    ++tensor_count_;
    return *this;
  }
  // Bytes appended to the data section as is.
  std::vector<uint8_t>& data() { return data_; }

  std::vector<uint8_t> Build() const {
    ByteWriter w;
    for (char c : magic) w.Put<char>(c);
    w.Put<uint32_t>(version);
    w.Put<uint64_t>(tensor_count_override.value_or(tensor_count_));
    w.Put<uint64_t>(kv_count_override.value_or(kv_count_));
    w.Raw(kv_.bytes).Raw(infos_.bytes);
    if (tensor_count_ > 0 || !data_.empty()) {
      w.bytes.resize((w.bytes.size() + alignment - 1) / alignment * alignment);
      w.Raw(data_);
    }
    return w.bytes;
  }

 private:
  uint64_t kv_count_ = 0;
  uint64_t tensor_count_ = 0;
  ByteWriter kv_;
  ByteWriter infos_;
  std::vector<uint8_t> data_;
};

}  // namespace tracemark::gguf::testing
