#include "tracemark/model/gguf.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "model/gguf_test_util.h"
#include "tracemark/model/quant.h"

namespace tracemark::gguf {
namespace {

using testing::GgufBuilder;
using testing::kTArray;
using testing::kTBool;
using testing::kTF32;
using testing::kTI32;
using testing::kTString;
using testing::kTU32;
using testing::kTU8;

constexpr uint32_t kF32 = 0, kQ4_0 = 2, kQ8_0 = 8, kQ4_K = 12;

std::vector<uint8_t> Bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
  return b;
}

// Q8_0 blocks with a finite scale (1.0) so they dequantize to finite values.
std::vector<uint8_t> Q8Blocks(size_t n_blocks) {
  std::vector<uint8_t> b = Bytes(n_blocks * 34, 3);
  for (size_t i = 0; i < n_blocks; ++i) {
    b[i * 34] = 0x00;
    b[i * 34 + 1] = 0x3c;  // fp16 1.0
  }
  return b;
}

// A small valid file covering every value type, arrays, and three tensors.
GgufBuilder ValidBuilder() {
  GgufBuilder b;
  b.String("general.architecture", "llama");
  b.U32("llama.block_count", 2);
  b.Key("k.u8", testing::kTU8).Put<uint8_t>(200);
  b.Key("k.i8", testing::kTI8).Put<int8_t>(-5);
  b.Key("k.u16", testing::kTU16).Put<uint16_t>(60000);
  b.Key("k.i16", testing::kTI16).Put<int16_t>(-30000);
  b.I32("k.i32", -7);
  b.F32("k.f32", 1.5f);
  b.Bool("k.bool", true);
  b.U64("k.u64", 1ull << 40);
  b.Key("k.i64", testing::kTI64).Put<int64_t>(-(1ll << 40));
  b.Key("k.f64", testing::kTF64).Put<double>(0.25);
  b.StringArray("tokenizer.ggml.tokens", {"<s>", "a", "", "bc"});
  b.ScalarArray<float>("tokenizer.ggml.scores", kTF32, {0.f, -1.f, 2.5f, 3.f});
  b.ScalarArray<int32_t>("tokenizer.ggml.token_type", kTI32, {3, 1, 1, 6});
  b.ScalarArray<uint8_t>("k.bools", kTBool, {1, 0, 1});
  // Array of two arrays of u32 (depth 2, allowed).
  b.Key("k.nested", kTArray)
      .Put<uint32_t>(kTArray)
      .Put<uint64_t>(2)
      .Put<uint32_t>(kTU32)
      .Put<uint64_t>(1)
      .Put<uint32_t>(9)
      .Put<uint32_t>(kTU32)
      .Put<uint64_t>(0);
  b.Tensor("norm.weight", kF32, {8}, Bytes(32, 1));
  b.Tensor("blk.0.q", kQ4_0, {64, 3}, Bytes(3 * 2 * 18, 2));
  b.Tensor("token_embd.weight", kQ8_0, {32, 2}, Q8Blocks(2));
  return b;
}

Result<std::unique_ptr<GgufFile>> ParseBytes(const std::vector<uint8_t>& b) {
  return GgufFile::Parse(b.data(), b.size());
}

// Parses and expects an error whose message contains every one of `needles`.
void ExpectError(const std::vector<uint8_t>& b, StatusCode code, std::vector<std::string> needles) {
  auto r = ParseBytes(b);
  ASSERT_FALSE(r.ok()) << "parsed a malformed file";
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  const std::string& msg = r.status().message();
  for (const auto& n : needles)
    EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "error must be one line: " << msg;
}

TEST(GgufParse, ValidFileKeysAndValues) {
  const auto bytes = ValidBuilder().Build();
  auto r = ParseBytes(bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const GgufFile& f = **r;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.file_size(), bytes.size());
  EXPECT_EQ(f.keys().size(), 17u);
  EXPECT_EQ(f.keys()[0], "general.architecture");
  EXPECT_EQ(*f.GetString("general.architecture"), "llama");
  EXPECT_EQ(*f.GetUInt("llama.block_count"), 2u);
  EXPECT_EQ(*f.GetInt("llama.block_count"), 2);
  EXPECT_EQ(*f.GetUInt("k.u8"), 200u);
  EXPECT_EQ(*f.GetInt("k.i8"), -5);
  EXPECT_EQ(*f.GetUInt("k.u16"), 60000u);
  EXPECT_EQ(*f.GetInt("k.i16"), -30000);
  EXPECT_EQ(*f.GetInt("k.i32"), -7);
  EXPECT_EQ(*f.GetFloat("k.f32"), 1.5);
  EXPECT_EQ(*f.GetFloat("k.i32"), -7.0);
  EXPECT_TRUE(*f.GetBool("k.bool"));
  EXPECT_EQ(*f.GetUInt("k.u64"), 1ull << 40);
  EXPECT_EQ(*f.GetInt("k.i64"), -(1ll << 40));
  EXPECT_EQ(*f.GetFloat("k.f64"), 0.25);
  const auto tokens = f.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  EXPECT_EQ(*tokens, (std::vector<std::string_view>{"<s>", "a", "", "bc"}));
  EXPECT_EQ(f.GetStringArrayView("tokenizer.ggml.tokens")->size(), 4u);
  EXPECT_EQ(*f.GetF32Array("tokenizer.ggml.scores"), (std::vector<float>{0.f, -1.f, 2.5f, 3.f}));
  EXPECT_EQ(*f.GetI32Array("tokenizer.ggml.token_type"), (std::vector<int32_t>{3, 1, 1, 6}));
  EXPECT_EQ(*f.GetBoolArray("k.bools"), (std::vector<uint8_t>{1, 0, 1}));
  const Value* nested = f.Find("k.nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->type, ValueType::kArray);
  EXPECT_EQ(nested->elem_type, ValueType::kArray);
  EXPECT_EQ(nested->count, 2u);
  EXPECT_EQ(f.Find("missing"), nullptr);
}

TEST(GgufParse, ValidFileTensors) {
  const auto bytes = ValidBuilder().Build();
  auto r = ParseBytes(bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const GgufFile& f = **r;
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  for (const TensorInfo& t : f.tensors()) {
    EXPECT_EQ(t.offset % 32, 0u) << t.name;
    EXPECT_EQ(t.data, bytes.data() + f.data_offset() + t.offset) << t.name;
    EXPECT_EQ(f.FindTensor(t.name), &t);
  }
  const TensorInfo* q = f.FindTensor("blk.0.q");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, GgmlType::kQ4_0);
  EXPECT_EQ(q->n_dims, 2u);
  EXPECT_EQ(q->ne[0], 64u);
  EXPECT_EQ(q->ne[1], 3u);
  EXPECT_EQ(q->NumElements(), 192u);
  EXPECT_EQ(q->Rows(), 3u);
  EXPECT_EQ(q->RowBytes(), 36u);
  EXPECT_EQ(q->nbytes, 108u);
  EXPECT_EQ(q->data[0], Bytes(1, 2)[0]);
  const TensorInfo* n = f.FindTensor("norm.weight");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->nbytes, 32u);
  EXPECT_EQ(n->offset, 0u);
  const TensorInfo* e = f.FindTensor("token_embd.weight");
  ASSERT_NE(e, nullptr);
  float row[32];
  DequantizeRow(e->type, e->data + e->RowBytes(), row, 32);
  EXPECT_EQ(row[0], static_cast<float>(static_cast<int8_t>(Q8Blocks(2)[34 + 2])));
  EXPECT_EQ(f.FindTensor("nope"), nullptr);
}

TEST(GgufParse, Version2Parses) {
  GgufBuilder b = ValidBuilder();
  b.version = 2;
  const auto bytes = b.Build();
  auto r = ParseBytes(bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->version(), 2u);
}

TEST(GgufParse, HeaderOnlyFileParses) {
  const auto bytes = GgufBuilder().Build();
  auto r = ParseBytes(bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((*r)->keys().empty());
  EXPECT_TRUE((*r)->tensors().empty());
}

TEST(GgufParse, CustomAlignment) {
  GgufBuilder b;
  b.alignment = 64;
  b.U32("general.alignment", 64);
  b.Tensor("a", kF32, {4}, Bytes(16, 0));
  b.Tensor("b", kF32, {4}, Bytes(16, 1));
  const auto bytes = b.Build();
  auto r = ParseBytes(bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->alignment(), 64u);
  EXPECT_EQ((*r)->data_offset() % 64, 0u);
  EXPECT_EQ((*r)->FindTensor("b")->offset, 64u);
}

TEST(GgufGetters, TypeMismatchAndMissing) {
  const auto bytes = ValidBuilder().Build();
  auto r = ParseBytes(bytes);
  ASSERT_TRUE(r.ok());
  const GgufFile& f = **r;
  EXPECT_EQ(f.GetString("absent").status().code(), StatusCode::kNotFound);
  EXPECT_NE(f.GetString("absent").status().message().find("'absent'"), std::string::npos);
  EXPECT_EQ(f.GetString("llama.block_count").status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(
      f.GetString("llama.block_count").status().message().find("has type u32, expected string"),
      std::string::npos);
  EXPECT_EQ(f.GetUInt("k.i8").status().code(), StatusCode::kInvalidArgument);  // negative
  EXPECT_EQ(f.GetUInt("k.f32").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetBool("k.u8").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetFloat("general.architecture").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetStringArray("tokenizer.ggml.scores").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_NE(f.GetStringArray("tokenizer.ggml.scores").status().message().find("array of f32"),
            std::string::npos);
  EXPECT_EQ(f.GetF32Array("tokenizer.ggml.tokens").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetF32Array("k.u8").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetI32Array("tokenizer.ggml.scores").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetBoolArray("tokenizer.ggml.token_type").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetI32Array("k.nested").status().code(), StatusCode::kInvalidArgument);
}

TEST(GgufGetters, IntegerRanges) {
  GgufBuilder b;
  b.U64("big", ~0ull);
  b.ScalarArray<uint32_t>("u32s", kTU32, {1, 0xffffffffu});
  b.ScalarArray<uint8_t>("u8s", kTU8, {1, 255});
  const auto bytes = b.Build();  // must outlive the GgufFile
  auto r = ParseBytes(bytes);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*(*r)->GetUInt("big"), ~0ull);
  EXPECT_EQ((*r)->GetInt("big").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*r)->GetI32Array("u32s").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*(*r)->GetI32Array("u8s"), (std::vector<int32_t>{1, 255}));
}

// Every strict prefix of a valid file is an error (the last tensor's data ends at EOF), never a
// crash or an out-of-bounds read (each prefix is copied into an exactly sized buffer, so ASan
// builds catch any overread).
TEST(GgufMalformed, TruncatedAtEveryByteOffset) {
  const auto full = ValidBuilder().Build();
  ASSERT_TRUE(ParseBytes(full).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    auto r = GgufFile::Parse(prefix.empty() ? nullptr : prefix.data(), prefix.size());
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes parsed";
    EXPECT_FALSE(r.status().message().empty());
  }
}

// Each byte of a valid file replaced by 0x00, 0xFF and 0x80 in turn: the parser must return a
// value or an error, never crash; any tensor it accepts lies inside the buffer.
TEST(GgufMalformed, EveryByteCorruptedNeverCrashes) {
  const auto full = ValidBuilder().Build();
  size_t rejected = 0;
  for (size_t i = 0; i < full.size(); ++i) {
    for (uint8_t x : {uint8_t{0x00}, uint8_t{0xff}, uint8_t{0x80}}) {
      std::vector<uint8_t> b = full;
      b[i] = x;
      auto r = ParseBytes(b);
      if (!r.ok()) {
        ++rejected;
        ASSERT_FALSE(r.status().message().empty());
        continue;
      }
      for (const TensorInfo& t : (*r)->tensors()) {
        ASSERT_GE(t.data, b.data());
        ASSERT_LE(t.data + t.nbytes, b.data() + b.size());
      }
    }
  }
  EXPECT_GT(rejected, full.size());  // most header bytes matter
}

TEST(GgufMalformed, TruncationMessageNamesWhatAndWhere) {
  const auto full = ValidBuilder().Build();
  auto r = ParseBytes(full);
  ASSERT_TRUE(r.ok());
  std::vector<uint8_t> cut(full.begin(), full.end() - 1);
  ExpectError(
      cut, StatusCode::kInvalidArgument,
      {"tensor 'token_embd.weight'", "runs past the end of the file", "truncated or corrupt"});
}

TEST(GgufMalformed, EmptyFile) {
  auto r = GgufFile::Parse(nullptr, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a GGUF file"), std::string::npos);
}

TEST(GgufMalformed, BadMagic) {
  GgufBuilder b = ValidBuilder();
  b.magic[0] = 'X';
  ExpectError(b.Build(), StatusCode::kInvalidArgument, {"not a GGUF file", "'XGUF'"});
}

TEST(GgufMalformed, Version1Rejected) {
  GgufBuilder b = ValidBuilder();
  b.version = 1;
  ExpectError(b.Build(), StatusCode::kUnimplemented, {"version 1", "not supported"});
}

TEST(GgufMalformed, FutureVersionRejected) {
  GgufBuilder b = ValidBuilder();
  b.version = 4;
  ExpectError(b.Build(), StatusCode::kUnimplemented, {"unsupported GGUF version 4"});
}

TEST(GgufMalformed, BigEndianDetected) {
  GgufBuilder b = ValidBuilder();
  b.version = 0x03000000;  // version 3 written big-endian
  ExpectError(b.Build(), StatusCode::kUnimplemented, {"byte-swapped", "big-endian"});
}

TEST(GgufMalformed, HugeStringLength) {
  GgufBuilder b;
  b.Key("general.name", kTString).Put<uint64_t>(1ull << 62);
  ExpectError(b.Build(), StatusCode::kResourceExhausted, {"'general.name'", "over the limit"});
}

TEST(GgufMalformed, StringPastEnd) {
  GgufBuilder b;
  b.Key("general.name", kTString).Put<uint64_t>(100).Put<uint32_t>(0);
  ExpectError(b.Build(), StatusCode::kInvalidArgument,
              {"string value of key 'general.name'", "runs past the end", "byte offset 48"});
}

TEST(GgufMalformed, KeyTooLong) {
  GgufBuilder b;
  b.U32(std::string(kMaxKeyBytes + 1, 'k'), 1);
  ExpectError(b.Build(), StatusCode::kResourceExhausted,
              {"key of metadata entry #0", "over the limit of 65535"});
}

TEST(GgufMalformed, EmptyKey) {
  GgufBuilder b;
  b.U32("", 1);
  ExpectError(b.Build(), StatusCode::kInvalidArgument, {"empty key"});
}

TEST(GgufMalformed, HugeArrayCount) {
  GgufBuilder b;
  b.Key("tokenizer.ggml.tokens", kTArray).Put<uint32_t>(kTString).Put<uint64_t>(1ull << 40);
  ExpectError(b.Build(), StatusCode::kResourceExhausted,
              {"'tokenizer.ggml.tokens'", "1099511627776 elements"});
}

TEST(GgufMalformed, ArrayCountPastEnd) {
  GgufBuilder b;
  b.Key("scores", kTArray).Put<uint32_t>(kTF32).Put<uint64_t>(1000).Put<float>(1.f);
  ExpectError(b.Build(), StatusCode::kInvalidArgument,
              {"array of key 'scores'", "1000 elements of f32"});
  GgufBuilder s;  // string array whose count promises more strings than the file holds
  s.Key("tokens", kTArray).Put<uint32_t>(kTString).Put<uint64_t>(1000).Str("a");
  ExpectError(s.Build(), StatusCode::kInvalidArgument, {"element 1 of string array key 'tokens'"});
}

TEST(GgufMalformed, NestedArraysTooDeep) {
  GgufBuilder b;
  b.Key("deep", kTArray)
      .Put<uint32_t>(kTArray)
      .Put<uint64_t>(1)
      .Put<uint32_t>(kTArray)
      .Put<uint64_t>(1)
      .Put<uint32_t>(kTU32)
      .Put<uint64_t>(1)
      .Put<uint32_t>(1);
  ExpectError(b.Build(), StatusCode::kResourceExhausted, {"'deep'", "nested more than 2 deep"});
}

TEST(GgufMalformed, UnknownValueType) {
  GgufBuilder b;
  b.Key("weird", 13).Put<uint32_t>(0);
  ExpectError(b.Build(), StatusCode::kInvalidArgument, {"'weird'", "unknown value type 13"});
  GgufBuilder a;
  a.Key("weird_array", kTArray).Put<uint32_t>(0xffffffffu).Put<uint64_t>(0);
  ExpectError(a.Build(), StatusCode::kInvalidArgument,
              {"'weird_array'", "unknown element type 4294967295"});
}

TEST(GgufMalformed, BoolNotZeroOrOne) {
  GgufBuilder b;
  b.Key("flag", kTBool).Put<uint8_t>(2);
  ExpectError(b.Build(), StatusCode::kInvalidArgument, {"'flag'", "must be 0 or 1"});
  GgufBuilder a;
  a.ScalarArray<uint8_t>("flags", kTBool, {0, 1, 7});
  ExpectError(a.Build(), StatusCode::kInvalidArgument, {"element 2 of bool array key 'flags'"});
}

TEST(GgufMalformed, DuplicateKey) {
  GgufBuilder b;
  b.U32("llama.block_count", 1).String("x", "y").U32("llama.block_count", 2);
  ExpectError(b.Build(), StatusCode::kInvalidArgument,
              {"duplicate metadata key 'llama.block_count'", "#0 and #2"});
}

TEST(GgufMalformed, TooManyKeysOrTensors) {
  GgufBuilder b;
  b.kv_count_override = kMaxMetadataKeys + 1;
  ExpectError(b.Build(), StatusCode::kResourceExhausted, {"metadata key count 65537"});
  GgufBuilder t;
  t.tensor_count_override = kMaxTensors + 1;
  ExpectError(t.Build(), StatusCode::kResourceExhausted, {"tensor count 65537"});
  // At the limit but absent from the file: a truncation error, found without a big allocation.
  GgufBuilder u;
  u.tensor_count_override = kMaxTensors;
  ExpectError(u.Build(), StatusCode::kInvalidArgument, {"name of tensor #0", "runs past the end"});
}

TEST(GgufMalformed, FiveDims) {
  GgufBuilder b;
  b.TensorRaw("t5", 5, {1, 1, 1, 1, 1}, kF32, 0);
  b.data().resize(64);
  ExpectError(b.Build(), StatusCode::kInvalidArgument,
              {"tensor 't5' has 5 dimensions (at most 4)"});
}

TEST(GgufMalformed, ZeroDim) {
  GgufBuilder b;
  b.TensorRaw("t", 2, {4, 0}, kF32, 0);
  b.data().resize(64);
  ExpectError(b.Build(), StatusCode::kInvalidArgument, {"tensor 't' has dimension 1 equal to 0"});
}

TEST(GgufMalformed, ElementCountOverflow) {
  GgufBuilder b;
  b.TensorRaw("big", 3, {1ull << 32, 1ull << 32, 2}, kF32, 0);
  ExpectError(b.Build(), StatusCode::kInvalidArgument, {"tensor 'big'", "overflows"});
  GgufBuilder s;  // 2^62 elements fit in int64, but 2^62 * 4 bytes does not fit in 64 bits
  s.TensorRaw("wide", 2, {1ull << 31, 1ull << 31}, kF32, 0);
  ExpectError(s.Build(), StatusCode::kInvalidArgument, {"byte size of tensor 'wide' overflows"});
}

TEST(GgufMalformed, UnknownTensorType) {
  GgufBuilder b;
  b.TensorRaw("t", 1, {32}, 99, 0);
  ExpectError(b.Build(), StatusCode::kInvalidArgument, {"tensor 't' has unknown ggml type id 99"});
  GgufBuilder r;  // a retired id (Q4_2)
  r.TensorRaw("t", 1, {32}, 4, 0);
  ExpectError(r.Build(), StatusCode::kInvalidArgument, {"unknown ggml type id 4"});
}

TEST(GgufMalformed, RowNotMultipleOfBlock) {
  GgufBuilder b;
  b.TensorRaw("blk.0.w", 2, {100, 2}, kQ4_K, 0);
  ExpectError(b.Build(), StatusCode::kInvalidArgument,
              {"'blk.0.w' row length 100", "Q4_K block size 256"});
}

TEST(GgufMalformed, MisalignedOffset) {
  GgufBuilder b;
  b.TensorRaw("t", 1, {4}, kF32, 4);
  b.data().resize(64);
  ExpectError(b.Build(), StatusCode::kInvalidArgument,
              {"tensor 't' data offset 4", "alignment 32"});
}

TEST(GgufMalformed, DataPastEof) {
  GgufBuilder b;
  b.Tensor("a", kF32, {4}, Bytes(16, 0));
  b.TensorRaw("b", 2, {8, 8}, kF32, 32);
  ExpectError(b.Build(), StatusCode::kInvalidArgument,
              {"tensor 'b' data [offset 32, 256 bytes]", "runs past"});
  GgufBuilder h;  // an offset near 2^64 must not wrap around
  h.TensorRaw("h", 1, {8}, kF32, ~0ull - 31);
  h.data().resize(64);
  ExpectError(h.Build(), StatusCode::kInvalidArgument, {"tensor 'h' data", "runs past"});
}

TEST(GgufMalformed, DuplicateTensor) {
  GgufBuilder b;
  b.Tensor("w", kF32, {4}, Bytes(16, 0));
  b.Tensor("w", kF32, {4}, Bytes(16, 0));
  ExpectError(b.Build(), StatusCode::kInvalidArgument, {"duplicate tensor name 'w'", "#0 and #1"});
}

TEST(GgufMalformed, TensorNameLimits) {
  GgufBuilder e;
  e.Tensor("", kF32, {4}, Bytes(16, 0));
  ExpectError(e.Build(), StatusCode::kInvalidArgument, {"tensor #0 has an empty name"});
  GgufBuilder l;
  l.Tensor(std::string(kMaxTensorNameBytes + 1, 'n'), kF32, {4}, Bytes(16, 0));
  ExpectError(l.Build(), StatusCode::kResourceExhausted,
              {"name of tensor #0", "over the limit of 64"});
}

TEST(GgufMalformed, BadAlignmentValue) {
  for (uint32_t a : {0u, 1u, 3u, 4u, 48u}) {
    GgufBuilder b;
    b.U32("general.alignment", a);
    ExpectError(b.Build(), StatusCode::kInvalidArgument,
                {"general.alignment is " + std::to_string(a)});
  }
  GgufBuilder s;
  s.String("general.alignment", "32");
  ExpectError(s.Build(), StatusCode::kInvalidArgument,
              {"'general.alignment' has type string, expected u32"});
}

TEST(GgufMalformed, NamesWithControlBytesAreEscaped) {
  GgufBuilder b;
  b.Key(std::string("bad\n\x01key", 8), 13);
  ExpectError(b.Build(), StatusCode::kInvalidArgument, {"'bad\\x0a\\x01key'"});
}

TEST(GgufOpen, MissingFileIsNotFound) {
  auto r = GgufFile::Open("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST(GgufOpen, OpensFileAndPrefixesPathOnError) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string good =
      (dir / ("tm_gguf_test_good_" + std::to_string(::getpid()) + ".gguf")).string();
  const std::string bad =
      (dir / ("tm_gguf_test_bad_" + std::to_string(::getpid()) + ".gguf")).string();
  const auto bytes = ValidBuilder().Build();
  for (const auto& [path, n] : {std::pair{good, bytes.size()}, std::pair{bad, bytes.size() - 3}}) {
    FILE* fp = std::fopen(path.c_str(), "wb");
    ASSERT_NE(fp, nullptr);
    ASSERT_EQ(std::fwrite(bytes.data(), 1, n, fp), n);
    std::fclose(fp);
  }
  auto r = GgufFile::Open(good);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*(*r)->GetString("general.architecture"), "llama");
  EXPECT_EQ((*r)->FindTensor("norm.weight")->data[0], 1);
  auto e = GgufFile::Open(bad);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().message().rfind(bad + ": gguf:", 0), 0u) << e.status().message();
  std::remove(good.c_str());
  std::remove(bad.c_str());
}

std::string ModelPath(const char* name) { return std::string(TM_SOURCE_DIR) + "/models/" + name; }

// Prints the tensor types of a real file and returns {type name -> count}.
std::map<std::string, int> TypeCounts(const GgufFile& f) {
  std::map<std::string, int> counts;
  for (const TensorInfo& t : f.tensors()) ++counts[std::string(TypeName(t.type))];
  std::string line;
  for (const auto& [name, n] : counts) line += " " + name + "=" + std::to_string(n);
  std::printf("tensor types:%s\n", line.c_str());
  return counts;
}

// Dequantizes the first row of every tensor and checks the values are finite.
void ExpectFirstRowsFinite(const GgufFile& f) {
  std::vector<float> row;
  for (const TensorInfo& t : f.tensors()) {
    ASSERT_TRUE(CanDequantize(t.type)) << t.name << " " << TypeName(t.type);
    row.resize(t.ne[0]);
    DequantizeRow(t.type, t.data, row.data(), static_cast<int64_t>(t.ne[0]));
    for (float v : row) ASSERT_TRUE(std::isfinite(v)) << t.name;
  }
}

TEST(GgufRealModel, SmolLM2) {
  const std::string path = ModelPath("SmolLM2-135M-Instruct.Q4_1.gguf");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent";
  auto r = GgufFile::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const GgufFile& f = **r;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(*f.GetString("general.architecture"), "llama");
  EXPECT_EQ(*f.GetUInt("llama.block_count"), 30u);
  EXPECT_EQ(*f.GetUInt("llama.embedding_length"), 576u);
  EXPECT_EQ(*f.GetUInt("llama.attention.head_count"), 9u);
  EXPECT_EQ(*f.GetUInt("llama.attention.head_count_kv"), 3u);
  EXPECT_FLOAT_EQ(static_cast<float>(*f.GetFloat("llama.rope.freq_base")), 100000.f);
  EXPECT_EQ(*f.GetString("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(*f.GetString("tokenizer.ggml.pre"), "smollm");
  EXPECT_EQ(f.GetStringArrayView("tokenizer.ggml.tokens")->size(), 49152u);
  EXPECT_EQ(f.GetI32Array("tokenizer.ggml.token_type")->size(), 49152u);
  EXPECT_EQ(f.GetStringArrayView("tokenizer.ggml.merges")->size(), 48900u);
  EXPECT_EQ(*f.GetUInt("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_FALSE(*f.GetBool("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(f.tensors().size(), 272u);
  const auto counts = TypeCounts(f);
  EXPECT_EQ(counts, (std::map<std::string, int>{{"F32", 61}, {"Q4_1", 210}, {"Q8_0", 1}}));
  const TensorInfo* embd = f.FindTensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->ne[0], 576u);
  EXPECT_EQ(embd->ne[1], 49152u);
  ExpectFirstRowsFinite(f);
}

TEST(GgufRealModel, Gemma3) {
  const std::string path = ModelPath("gemma-3-270m-q4_k_m.gguf");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent";
  auto r = GgufFile::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const GgufFile& f = **r;
  EXPECT_EQ(*f.GetString("general.architecture"), "gemma3");
  EXPECT_EQ(*f.GetUInt("gemma3.block_count"), 18u);
  EXPECT_EQ(*f.GetUInt("gemma3.embedding_length"), 640u);
  EXPECT_EQ(*f.GetUInt("gemma3.attention.key_length"), 256u);
  EXPECT_EQ(*f.GetUInt("gemma3.attention.sliding_window"), 512u);
  EXPECT_EQ(f.GetStringArrayView("tokenizer.ggml.tokens")->size(), 262144u);
  EXPECT_EQ(f.GetF32Array("tokenizer.ggml.scores")->size(), 262144u);
  EXPECT_EQ(f.tensors().size(), 236u);
  const auto counts = TypeCounts(f);
  EXPECT_EQ(counts, (std::map<std::string, int>{
                        {"F32", 109}, {"Q4_K", 27}, {"Q5_0", 81}, {"Q6_K", 9}, {"Q8_0", 10}}));
  ExpectFirstRowsFinite(f);
}

}  // namespace
}  // namespace tracemark::gguf
