// GGUF v2/v3 reader over a read-only memory map.
//
// GgufFile::Open validates the whole header before returning: every string length, array count,
// value type, tensor dimension, type id, offset and size is checked against the file's bounds
// and the limits below, so later accessors never read out of bounds. A truncated, corrupt or
// hostile file gets one Status naming what is wrong and where. Tensor data is not copied: a
// TensorInfo points into the mapping, which lives as long as the GgufFile. Memory used is bounded
// by a small multiple of the file size (string arrays become string_views into the mapping).
// The format, the validation rules and these limits are written down in docs/formats/gguf.md.
// Immutable after Open; safe to read from any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tracemark/base/file.h"
#include "tracemark/base/status.h"
#include "tracemark/model/ggml_type.h"

namespace tracemark::gguf {

// Limits (documented defaults; a file beyond them is rejected, not truncated).
inline constexpr uint64_t kMaxTensors = 1u << 16;
inline constexpr uint64_t kMaxMetadataKeys = 1u << 16;
inline constexpr uint64_t kMaxKeyBytes = 65535;
inline constexpr uint64_t kMaxStringBytes = 64u << 20;     // one metadata string (chat templates)
inline constexpr uint64_t kMaxArrayElements = 1u << 24;    // vocab/merges arrays (~16M)
inline constexpr uint32_t kMaxArrayNesting = 2;
inline constexpr uint32_t kMaxDims = 4;
inline constexpr uint64_t kMaxTensorNameBytes = 64;
inline constexpr uint32_t kDefaultAlignment = 32;
// The GGUF spec requires general.alignment to be a multiple of 8; with a power of two >= 8 every
// tensor's data is 8-byte aligned in the (page-aligned) mapping, so kernels may cast it to block
// structs.
inline constexpr uint32_t kMinAlignment = 8;
inline constexpr uint32_t kMinVersion = 2;  // v1 (u32 counts) is rejected
inline constexpr uint32_t kMaxVersion = 3;

enum class ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

// "u32", "string", "array", ...; "unknown" for ids outside the enum.
std::string_view ValueTypeName(ValueType t);

// One metadata value. Scalars are widened; arrays keep their element type and raw location so
// large arrays (vocabularies) are decoded lazily without copying the whole thing up front.
struct Value {
  ValueType type = ValueType::kU8;
  uint64_t u = 0;          // unsigned scalars and bool
  int64_t i = 0;           // signed scalars
  double f = 0;            // f32/f64
  std::string_view str;    // kString (points into the mapping)
  // kArray:
  ValueType elem_type = ValueType::kU8;
  uint64_t count = 0;
  const uint8_t* array_data = nullptr;  // first element in the mapping (nullptr if count == 0)
  std::vector<std::string_view> strings;  // decoded when elem_type == kString (top level only)
};

struct TensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  uint32_t n_dims = 0;
  uint64_t ne[kMaxDims] = {1, 1, 1, 1};  // innermost first: ne[0] is the row length
  uint64_t offset = 0;                   // relative to the data section
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;         // points into the mapping

  uint64_t NumElements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  uint64_t Rows() const { return ne[1] * ne[2] * ne[3]; }
  uint64_t RowBytes() const;  // ne[0] / block_size * type_size
};

class GgufFile {
 public:
  static Result<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses an in-memory image (fuzzing, tests). The bytes must outlive the GgufFile.
  static Result<std::unique_ptr<GgufFile>> Parse(const uint8_t* data, size_t size);

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  size_t file_size() const { return size_; }
  // Byte offset of the data section (tensor offsets are relative to it).
  uint64_t data_offset() const { return data_offset_; }

  const Value* Find(std::string_view key) const;
  // Typed getters: NotFound if absent, InvalidArgument if the stored type does not convert.
  Result<std::string> GetString(std::string_view key) const;
  Result<uint64_t> GetUInt(std::string_view key) const;   // any unsigned/signed>=0 integer type
  Result<int64_t> GetInt(std::string_view key) const;
  Result<double> GetFloat(std::string_view key) const;     // f32/f64 (and integers)
  Result<bool> GetBool(std::string_view key) const;
  Result<std::vector<std::string_view>> GetStringArray(std::string_view key) const;
  // As GetStringArray without the copy; the span lives as long as the GgufFile.
  Result<std::span<const std::string_view>> GetStringArrayView(std::string_view key) const;
  Result<std::vector<float>> GetF32Array(std::string_view key) const;
  Result<std::vector<int32_t>> GetI32Array(std::string_view key) const;  // any integer elements that fit
  Result<std::vector<uint8_t>> GetBoolArray(std::string_view key) const;  // 0 or 1 each

  const std::vector<std::string>& keys() const { return keys_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(std::string_view name) const;

  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

 private:
  GgufFile() = default;
  std::unique_ptr<MappedFile> file_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::string> keys_;
  std::vector<Value> values_;
  std::vector<TensorInfo> tensors_;
  // Views into the mapping (stable for the GgufFile's lifetime) -> index in keys_ / tensors_.
  std::unordered_map<std::string_view, size_t> key_index_;
  std::unordered_map<std::string_view, size_t> tensor_index_;
  friend class Parser;
};

}  // namespace tracemark::gguf
