#include "tracemark/model/gguf.h"

#include <fmt/format.h>

#include <bit>
#include <cstring>
#include <limits>

namespace tracemark::gguf {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader assumes a little-endian host");

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint32_t kMaxValueTypeId = 12;
constexpr size_t kQuoteMaxChars = 80;  // longest name echoed into an error message
constexpr uint64_t kMaxTensorElements = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
// Smallest on-disk record sizes, used only to cap reserve() calls by the bytes that remain.
constexpr size_t kMinStringBytes = 8;
constexpr size_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;
constexpr std::string_view kCorrupt = "the file is truncated or corrupt";
constexpr std::string_view kOverLimit = "the file is corrupt or exceeds this reader's limits";

// A printable, bounded rendering of a name from the file, for error messages.
std::string Quote(std::string_view s) {
  std::string out = "'";
  size_t n = 0;
  for (unsigned char c : s) {
    if (n++ == kQuoteMaxChars) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  out += "'";
  return out;
}

// Bytes per element of a fixed-size value type; 0 for string and array.
size_t ScalarSize(ValueType t) {
  switch (t) {
    case ValueType::kU8:
    case ValueType::kI8:
    case ValueType::kBool:
      return 1;
    case ValueType::kU16:
    case ValueType::kI16:
      return 2;
    case ValueType::kU32:
    case ValueType::kI32:
    case ValueType::kF32:
      return 4;
    case ValueType::kU64:
    case ValueType::kI64:
    case ValueType::kF64:
      return 8;
    case ValueType::kString:
    case ValueType::kArray:
      return 0;
  }
  return 0;
}

bool IsUnsigned(ValueType t) {
  return t == ValueType::kU8 || t == ValueType::kU16 || t == ValueType::kU32 ||
         t == ValueType::kU64;
}
bool IsSigned(ValueType t) {
  return t == ValueType::kI8 || t == ValueType::kI16 || t == ValueType::kI32 ||
         t == ValueType::kI64;
}

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Decodes one fixed-size scalar of type t at p into the widened fields of v.
void DecodeScalar(ValueType t, const uint8_t* p, Value* v) {
  switch (t) {
    case ValueType::kU8:
      v->u = Load<uint8_t>(p);
      break;
    case ValueType::kBool:
      v->u = Load<uint8_t>(p);
      break;
    case ValueType::kU16:
      v->u = Load<uint16_t>(p);
      break;
    case ValueType::kU32:
      v->u = Load<uint32_t>(p);
      break;
    case ValueType::kU64:
      v->u = Load<uint64_t>(p);
      break;
    case ValueType::kI8:
      v->i = Load<int8_t>(p);
      break;
    case ValueType::kI16:
      v->i = Load<int16_t>(p);
      break;
    case ValueType::kI32:
      v->i = Load<int32_t>(p);
      break;
    case ValueType::kI64:
      v->i = Load<int64_t>(p);
      break;
    case ValueType::kF32:
      v->f = Load<float>(p);
      break;
    case ValueType::kF64:
      v->f = Load<double>(p);
      break;
    case ValueType::kString:
    case ValueType::kArray:
      break;
  }
}

std::string ArrayTypeName(const Value& v) {
  if (v.type != ValueType::kArray) return std::string(ValueTypeName(v.type));
  return fmt::format("array of {}", ValueTypeName(v.elem_type));
}

}  // namespace

std::string_view ValueTypeName(ValueType t) {
  switch (t) {
    case ValueType::kU8:
      return "u8";
    case ValueType::kI8:
      return "i8";
    case ValueType::kU16:
      return "u16";
    case ValueType::kI16:
      return "i16";
    case ValueType::kU32:
      return "u32";
    case ValueType::kI32:
      return "i32";
    case ValueType::kF32:
      return "f32";
    case ValueType::kBool:
      return "bool";
    case ValueType::kString:
      return "string";
    case ValueType::kArray:
      return "array";
    case ValueType::kU64:
      return "u64";
    case ValueType::kI64:
      return "i64";
    case ValueType::kF64:
      return "f64";
  }
  return "unknown";
}

uint64_t TensorInfo::RowBytes() const {
  const auto traits = TypeTraits(type);
  if (!traits) return 0;
  return ne[0] / traits->block_size * traits->type_size;
}

// Walks the header once, validating each field before it is used. Every read goes through
// Take/TryString, which check the bytes that remain.
class Parser {
 public:
  Parser(const uint8_t* data, size_t size, GgufFile* out) : base_(data), size_(size), out_(out) {}

  Status Run() {
    TM_RETURN_IF_ERROR(ReadHeader());
    TM_RETURN_IF_ERROR(ReadMetadata());
    TM_RETURN_IF_ERROR(ReadAlignment());
    TM_RETURN_IF_ERROR(ReadTensorInfos());
    return PlaceTensorData();
  }

 private:
  enum class StrErr { kOk, kLengthTruncated, kTooLong, kBodyTruncated };

  size_t Remaining() const { return size_ - pos_; }

  // Copies sizeof(T) bytes at the cursor into *v and advances; false if they are not there.
  template <typename T>
  bool Take(T* v) {
    if (sizeof(T) > Remaining()) return false;
    std::memcpy(v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }

  // The fast path for strings; messages are built only on failure (StringStatus).
  StrErr TryString(uint64_t max_len, std::string_view* out, uint64_t* len) {
    if (!Take(len)) return StrErr::kLengthTruncated;
    if (*len > max_len) return StrErr::kTooLong;
    if (*len > Remaining()) return StrErr::kBodyTruncated;
    *out = std::string_view(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(*len));
    pos_ += static_cast<size_t>(*len);
    return StrErr::kOk;
  }

  Status StringStatus(StrErr e, size_t at, uint64_t len, uint64_t max_len,
                      std::string_view what) const {
    switch (e) {
      case StrErr::kOk:
        return Status::Ok();
      case StrErr::kLengthTruncated:
        return Truncated(at, fmt::format("the length of {}", what));
      case StrErr::kTooLong:
        return ResourceExhausted(fmt::format(
            "gguf: {} at byte offset {} is {} bytes long, over the limit of {} bytes; {}", what, at,
            len, max_len, kOverLimit));
      case StrErr::kBodyTruncated:
        return Truncated(at, fmt::format("{} ({} bytes)", what, len));
    }
    return Status::Ok();
  }

  Status Truncated(size_t at, std::string_view what) const {
    return InvalidArgument(
        fmt::format("gguf: {} at byte offset {} runs past the end of the file ({} bytes); {}", what,
                    at, size_, kCorrupt));
  }
  static Status Corrupt(size_t at, std::string_view what) {
    return InvalidArgument(fmt::format("gguf: {} (at byte offset {}); {}", what, at, kCorrupt));
  }
  static Status OverLimit(size_t at, std::string_view what) {
    return ResourceExhausted(fmt::format("gguf: {} (at byte offset {}); {}", what, at, kOverLimit));
  }

  Status ReadHeader() {
    if (size_ < 4 || std::memcmp(base_, kMagic, 4) != 0) {
      const std::string_view got(reinterpret_cast<const char*>(base_), size_ < 4 ? size_ : 4);
      return InvalidArgument(
          fmt::format("gguf: not a GGUF file: it starts with {} instead of 'GGUF' (file size {} "
                      "bytes); check the path "
                      "and that the file is a GGUF model",
                      Quote(got), size_));
    }
    pos_ = 4;
    uint32_t version = 0;
    if (!Take(&version)) return Truncated(4, "the version field");
    if ((version & 0xFFFFu) == 0 && version != 0) {
      return Unimplemented(
          fmt::format("gguf: version field 0x{:08x} at byte offset 4 looks byte-swapped: the file "
                      "is big-endian, which this "
                      "reader does not support; convert it to a little-endian GGUF",
                      version));
    }
    if (version == 1) {
      return Unimplemented(
          "gguf: GGUF version 1 (at byte offset 4) is not supported (only 2 and 3); re-convert the "
          "model with a "
          "current gguf/llama.cpp tool");
    }
    if (version < kMinVersion || version > kMaxVersion) {
      return Unimplemented(
          fmt::format("gguf: unsupported GGUF version {} at byte offset 4 (this reader handles {} "
                      "and {}); the file is corrupt "
                      "or newer than this build",
                      version, kMinVersion, kMaxVersion));
    }
    out_->version_ = version;
    if (!Take(&tensor_count_)) return Truncated(8, "the tensor count");
    if (!Take(&kv_count_)) return Truncated(16, "the metadata key count");
    if (tensor_count_ > kMaxTensors) {
      return OverLimit(
          8, fmt::format("tensor count {} is over the limit of {}", tensor_count_, kMaxTensors));
    }
    if (kv_count_ > kMaxMetadataKeys) {
      return OverLimit(16, fmt::format("metadata key count {} is over the limit of {}", kv_count_,
                                       kMaxMetadataKeys));
    }
    return Status::Ok();
  }

  Status ReadMetadata() {
    for (uint64_t i = 0; i < kv_count_; ++i) {
      const size_t at = pos_;
      std::string_view key;
      uint64_t len = 0;
      const StrErr e = TryString(kMaxKeyBytes, &key, &len);
      if (e != StrErr::kOk) {
        return StringStatus(e, at, len, kMaxKeyBytes,
                            fmt::format("the key of metadata entry #{}", i));
      }
      if (key.empty()) return Corrupt(at, fmt::format("metadata entry #{} has an empty key", i));
      if (auto it = out_->key_index_.find(key); it != out_->key_index_.end()) {
        return Corrupt(at, fmt::format("duplicate metadata key {} (entries #{} and #{})",
                                       Quote(key), it->second, i));
      }
      const size_t type_at = pos_;
      uint32_t type_id = 0;
      if (!Take(&type_id))
        return Truncated(type_at, fmt::format("the value type of key {}", Quote(key)));
      if (type_id > kMaxValueTypeId) {
        return Corrupt(type_at, fmt::format("key {} has unknown value type {} (valid: 0..{})",
                                            Quote(key), type_id, kMaxValueTypeId));
      }
      Value v;
      v.type = static_cast<ValueType>(type_id);
      TM_RETURN_IF_ERROR(ReadValue(key, &v));
      out_->key_index_.emplace(key, out_->keys_.size());
      out_->keys_.emplace_back(key);
      out_->values_.push_back(std::move(v));
      key_offsets_.push_back(at);
    }
    return Status::Ok();
  }

  Status ReadValue(std::string_view key, Value* v) {
    const size_t at = pos_;
    if (v->type == ValueType::kArray) return ReadArray(key, /*depth=*/0, v);
    if (v->type == ValueType::kString) {
      uint64_t len = 0;
      const StrErr e = TryString(kMaxStringBytes, &v->str, &len);
      return StringStatus(e, at, len, kMaxStringBytes,
                          fmt::format("the string value of key {}", Quote(key)));
    }
    const size_t n = ScalarSize(v->type);
    if (n > Remaining()) {
      return Truncated(at,
                       fmt::format("the {} value of key {}", ValueTypeName(v->type), Quote(key)));
    }
    DecodeScalar(v->type, base_ + pos_, v);
    pos_ += n;
    if (v->type == ValueType::kBool && v->u > 1) {
      return Corrupt(at,
                     fmt::format("bool value of key {} is {} (must be 0 or 1)", Quote(key), v->u));
    }
    return Status::Ok();
  }

  // depth: how many arrays enclose this one (0 for a key's own array).
  Status ReadArray(std::string_view key, uint32_t depth, Value* v) {
    const size_t at = pos_;
    uint32_t elem_id = 0;
    if (!Take(&elem_id))
      return Truncated(at, fmt::format("the array element type of key {}", Quote(key)));
    if (elem_id > kMaxValueTypeId) {
      return Corrupt(at, fmt::format("array of key {} has unknown element type {} (valid: 0..{})",
                                     Quote(key), elem_id, kMaxValueTypeId));
    }
    const auto elem = static_cast<ValueType>(elem_id);
    if (elem == ValueType::kArray && depth + 2 > kMaxArrayNesting) {
      return OverLimit(at, fmt::format("arrays in key {} are nested more than {} deep", Quote(key),
                                       kMaxArrayNesting));
    }
    uint64_t count = 0;
    if (!Take(&count))
      return Truncated(at + 4, fmt::format("the array length of key {}", Quote(key)));
    if (count > kMaxArrayElements) {
      return OverLimit(at + 4, fmt::format("array of key {} has {} elements, over the limit of {}",
                                           Quote(key), count, kMaxArrayElements));
    }
    v->elem_type = elem;
    v->count = count;
    v->array_data = count > 0 ? base_ + pos_ : nullptr;
    const size_t data_at = pos_;
    const size_t scalar = ScalarSize(elem);
    if (scalar > 0) {
      // count <= 2^24 and scalar <= 8: no overflow.
      const uint64_t bytes = count * scalar;
      if (bytes > Remaining()) {
        return Truncated(data_at, fmt::format("the array of key {} ({} elements of {})", Quote(key),
                                              count, ValueTypeName(elem)));
      }
      if (elem == ValueType::kBool) {
        for (uint64_t j = 0; j < count; ++j) {
          const uint8_t b = base_[pos_ + j];
          if (b > 1) {
            return Corrupt(pos_ + j,
                           fmt::format("element {} of bool array key {} is {} (must be 0 or 1)", j,
                                       Quote(key), b));
          }
        }
      }
      pos_ += static_cast<size_t>(bytes);
      return Status::Ok();
    }
    if (elem == ValueType::kString) {
      const bool keep = depth == 0;
      if (keep)
        v->strings.reserve(
            static_cast<size_t>(std::min<uint64_t>(count, Remaining() / kMinStringBytes)));
      for (uint64_t j = 0; j < count; ++j) {
        const size_t s_at = pos_;
        std::string_view s;
        uint64_t len = 0;
        const StrErr e = TryString(kMaxStringBytes, &s, &len);
        if (e != StrErr::kOk) {
          return StringStatus(e, s_at, len, kMaxStringBytes,
                              fmt::format("element {} of string array key {}", j, Quote(key)));
        }
        if (keep) v->strings.push_back(s);
      }
      return Status::Ok();
    }
    // Array of arrays: validate each inner array; they are reachable only through array_data.
    for (uint64_t j = 0; j < count; ++j) {
      Value inner;
      TM_RETURN_IF_ERROR(ReadArray(key, depth + 1, &inner));
    }
    return Status::Ok();
  }

  Status ReadAlignment() {
    const auto it = out_->key_index_.find("general.alignment");
    if (it == out_->key_index_.end()) return Status::Ok();
    const Value& v = out_->values_[it->second];
    const size_t at = key_offsets_[it->second];
    if (v.type != ValueType::kU32) {
      return Corrupt(
          at, fmt::format("key 'general.alignment' has type {}, expected u32", ArrayTypeName(v)));
    }
    if (v.u < kMinAlignment || !std::has_single_bit(v.u)) {
      return Corrupt(at, fmt::format("general.alignment is {}, which is not a power of two >= {}",
                                     v.u, kMinAlignment));
    }
    out_->alignment_ = static_cast<uint32_t>(v.u);
    return Status::Ok();
  }

  Status ReadTensorInfos() {
    auto& tensors = out_->tensors_;
    tensors.reserve(
        static_cast<size_t>(std::min<uint64_t>(tensor_count_, Remaining() / kMinTensorInfoBytes)));
    tensor_offsets_.reserve(tensors.capacity());
    for (uint64_t i = 0; i < tensor_count_; ++i) {
      const size_t at = pos_;
      std::string_view name;
      uint64_t len = 0;
      const StrErr e = TryString(kMaxTensorNameBytes, &name, &len);
      if (e != StrErr::kOk) {
        return StringStatus(e, at, len, kMaxTensorNameBytes,
                            fmt::format("the name of tensor #{}", i));
      }
      if (name.empty()) return Corrupt(at, fmt::format("tensor #{} has an empty name", i));
      if (auto it = out_->tensor_index_.find(name); it != out_->tensor_index_.end()) {
        return Corrupt(at, fmt::format("duplicate tensor name {} (tensors #{} and #{})",
                                       Quote(name), it->second, i));
      }
      const std::string q = Quote(name);
      TensorInfo t;
      t.name = std::string(name);
      const size_t dims_at = pos_;
      if (!Take(&t.n_dims))
        return Truncated(dims_at, fmt::format("the dimension count of tensor {}", q));
      if (t.n_dims > kMaxDims) {
        return Corrupt(dims_at, fmt::format("tensor {} has {} dimensions (at most {})", q, t.n_dims,
                                            kMaxDims));
      }
      uint64_t elements = 1;
      for (uint32_t d = 0; d < t.n_dims; ++d) {
        const size_t ne_at = pos_;
        if (!Take(&t.ne[d]))
          return Truncated(ne_at, fmt::format("dimension {} of tensor {}", d, q));
        if (t.ne[d] == 0)
          return Corrupt(ne_at, fmt::format("tensor {} has dimension {} equal to 0", q, d));
        if (__builtin_mul_overflow(elements, t.ne[d], &elements) || elements > kMaxTensorElements) {
          return Corrupt(
              ne_at, fmt::format("tensor {} has too many elements: the product of its dimensions "
                                 "overflows 2^63 at dimension {} ({})",
                                 q, d, t.ne[d]));
        }
      }
      const size_t type_at = pos_;
      uint32_t type_id = 0;
      if (!Take(&type_id)) return Truncated(type_at, fmt::format("the type of tensor {}", q));
      const auto traits = TypeTraits(type_id);
      if (!traits) {
        return Corrupt(type_at, fmt::format("tensor {} has unknown ggml type id {}", q, type_id));
      }
      t.type = static_cast<GgmlType>(type_id);
      if (t.ne[0] % traits->block_size != 0) {
        return Corrupt(
            type_at,
            fmt::format("tensor {} row length {} is not a multiple of the {} block size {}", q,
                        t.ne[0], traits->name, traits->block_size));
      }
      uint64_t nbytes = t.ne[0] / traits->block_size * traits->type_size;
      for (uint32_t d = 1; d < kMaxDims; ++d) {
        if (__builtin_mul_overflow(nbytes, t.ne[d], &nbytes)) {
          return Corrupt(type_at, fmt::format("the byte size of tensor {} overflows 64 bits", q));
        }
      }
      t.nbytes = nbytes;
      const size_t off_at = pos_;
      if (!Take(&t.offset))
        return Truncated(off_at, fmt::format("the data offset of tensor {}", q));
      if (t.offset % out_->alignment_ != 0) {
        return Corrupt(
            off_at, fmt::format("tensor {} data offset {} is not a multiple of the alignment {}", q,
                                t.offset, out_->alignment_));
      }
      out_->tensor_index_.emplace(name, tensors.size());
      tensors.push_back(std::move(t));
      tensor_offsets_.push_back(at);
    }
    return Status::Ok();
  }

  Status PlaceTensorData() {
    const uint64_t align = out_->alignment_;
    // pos_ <= size_ < 2^63 and align <= 2^31: no overflow.
    const uint64_t data_offset = (static_cast<uint64_t>(pos_) + align - 1) / align * align;
    out_->data_offset_ = data_offset;
    auto& tensors = out_->tensors_;
    if (tensors.empty()) return Status::Ok();
    if (data_offset > size_) {
      return InvalidArgument(
          fmt::format("gguf: the data section would start at byte offset {}, past the end of the "
                      "file ({} bytes); {}",
                      data_offset, size_, kCorrupt));
    }
    const uint64_t data_bytes = size_ - data_offset;
    for (size_t i = 0; i < tensors.size(); ++i) {
      TensorInfo& t = tensors[i];
      if (t.offset > data_bytes || t.nbytes > data_bytes - t.offset) {
        return InvalidArgument(fmt::format(
            "gguf: tensor {} data [offset {}, {} bytes] runs past the end of the file ({} bytes, "
            "data section at "
            "{}; tensor info at byte offset {}); {}",
            Quote(t.name), t.offset, t.nbytes, size_, data_offset, tensor_offsets_[i], kCorrupt));
      }
      t.data = base_ + data_offset + t.offset;
    }
    return Status::Ok();
  }

  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
  GgufFile* out_;
  uint64_t tensor_count_ = 0;
  uint64_t kv_count_ = 0;
  std::vector<size_t> key_offsets_;     // byte offset of each key, for error messages
  std::vector<size_t> tensor_offsets_;  // byte offset of each tensor info
};

GgufFile::~GgufFile() = default;

Result<std::unique_ptr<GgufFile>> GgufFile::Parse(const uint8_t* data, size_t size) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->base_ = data;
  f->size_ = size;
  Parser parser(data, size, f.get());
  TM_RETURN_IF_ERROR(parser.Run());
  return f;
}

Result<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  auto mapped = MappedFile::Open(path);
  if (!mapped.ok()) return mapped.status();
  auto parsed = Parse((*mapped)->data(), (*mapped)->size());
  if (!parsed.ok()) return parsed.status().WithContext(path);
  std::unique_ptr<GgufFile> f = std::move(parsed).value();
  f->file_ = std::move(mapped).value();
  return f;
}

const Value* GgufFile::Find(std::string_view key) const {
  const auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &values_[it->second];
}

const TensorInfo* GgufFile::FindTensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

Result<const Value*> Lookup(const GgufFile& f, std::string_view key) {
  const Value* v = f.Find(key);
  if (v == nullptr)
    return NotFound(fmt::format("gguf: key {} not found in the model file", Quote(key)));
  return v;
}

Status WrongType(std::string_view key, const Value& v, std::string_view expected) {
  return InvalidArgument(
      fmt::format("gguf: key {} has type {}, expected {}; the model file does not match what this "
                  "architecture needs",
                  Quote(key), ArrayTypeName(v), expected));
}

Result<const Value*> LookupArray(const GgufFile& f, std::string_view key,
                                 std::string_view expected) {
  TM_ASSIGN_OR_RETURN(const Value* v, Lookup(f, key));
  if (v->type != ValueType::kArray) return WrongType(key, *v, expected);
  return v;
}

}  // namespace

Result<std::string> GgufFile::GetString(std::string_view key) const {
  TM_ASSIGN_OR_RETURN(const Value* v, Lookup(*this, key));
  if (v->type != ValueType::kString) return WrongType(key, *v, "string");
  return std::string(v->str);
}

Result<uint64_t> GgufFile::GetUInt(std::string_view key) const {
  TM_ASSIGN_OR_RETURN(const Value* v, Lookup(*this, key));
  if (IsUnsigned(v->type)) return v->u;
  if (IsSigned(v->type)) {
    if (v->i < 0) {
      return InvalidArgument(
          fmt::format("gguf: key {} is {}, expected a non-negative integer", Quote(key), v->i));
    }
    return static_cast<uint64_t>(v->i);
  }
  return WrongType(key, *v, "an unsigned integer");
}

Result<int64_t> GgufFile::GetInt(std::string_view key) const {
  TM_ASSIGN_OR_RETURN(const Value* v, Lookup(*this, key));
  if (IsSigned(v->type)) return v->i;
  if (IsUnsigned(v->type)) {
    if (v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidArgument(
          fmt::format("gguf: key {} is {}, which does not fit in int64", Quote(key), v->u));
    }
    return static_cast<int64_t>(v->u);
  }
  return WrongType(key, *v, "an integer");
}

Result<double> GgufFile::GetFloat(std::string_view key) const {
  TM_ASSIGN_OR_RETURN(const Value* v, Lookup(*this, key));
  if (v->type == ValueType::kF32 || v->type == ValueType::kF64) return v->f;
  if (IsUnsigned(v->type)) return static_cast<double>(v->u);
  if (IsSigned(v->type)) return static_cast<double>(v->i);
  return WrongType(key, *v, "a number");
}

Result<bool> GgufFile::GetBool(std::string_view key) const {
  TM_ASSIGN_OR_RETURN(const Value* v, Lookup(*this, key));
  if (v->type != ValueType::kBool) return WrongType(key, *v, "bool");
  return v->u != 0;
}

Result<std::span<const std::string_view>> GgufFile::GetStringArrayView(std::string_view key) const {
  TM_ASSIGN_OR_RETURN(const Value* v, LookupArray(*this, key, "array of string"));
  if (v->elem_type != ValueType::kString) return WrongType(key, *v, "array of string");
  return std::span<const std::string_view>(v->strings);
}

Result<std::vector<std::string_view>> GgufFile::GetStringArray(std::string_view key) const {
  TM_ASSIGN_OR_RETURN(auto view, GetStringArrayView(key));
  return std::vector<std::string_view>(view.begin(), view.end());
}

Result<std::vector<float>> GgufFile::GetF32Array(std::string_view key) const {
  TM_ASSIGN_OR_RETURN(const Value* v, LookupArray(*this, key, "array of f32"));
  if (v->elem_type != ValueType::kF32) return WrongType(key, *v, "array of f32");
  std::vector<float> out(static_cast<size_t>(v->count));
  if (v->count > 0) std::memcpy(out.data(), v->array_data, out.size() * sizeof(float));
  return out;
}

Result<std::vector<int32_t>> GgufFile::GetI32Array(std::string_view key) const {
  TM_ASSIGN_OR_RETURN(const Value* v, LookupArray(*this, key, "array of i32"));
  const ValueType et = v->elem_type;
  if (!IsSigned(et) && !IsUnsigned(et)) return WrongType(key, *v, "array of i32");
  const size_t n = static_cast<size_t>(v->count);
  const size_t width = ScalarSize(et);
  std::vector<int32_t> out(n);
  for (size_t j = 0; j < n; ++j) {
    Value e;
    DecodeScalar(et, v->array_data + j * width, &e);
    const bool fits = IsSigned(et)
                          ? (e.i >= std::numeric_limits<int32_t>::min() &&
                             e.i <= std::numeric_limits<int32_t>::max())
                          : e.u <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max());
    if (!fits) {
      return InvalidArgument(
          fmt::format("gguf: element {} of array key {} does not fit in int32", j, Quote(key)));
    }
    out[j] = IsSigned(et) ? static_cast<int32_t>(e.i) : static_cast<int32_t>(e.u);
  }
  return out;
}

Result<std::vector<uint8_t>> GgufFile::GetBoolArray(std::string_view key) const {
  TM_ASSIGN_OR_RETURN(const Value* v, LookupArray(*this, key, "array of bool"));
  if (v->elem_type != ValueType::kBool) return WrongType(key, *v, "array of bool");
  std::vector<uint8_t> out(static_cast<size_t>(v->count));
  if (v->count > 0) std::memcpy(out.data(), v->array_data, out.size());
  return out;
}

}  // namespace tracemark::gguf
