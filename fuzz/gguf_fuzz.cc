// libFuzzer harness for the GGUF reader: parses arbitrary bytes, then touches every accessor so
// that any pointer the parser hands out (strings, arrays, tensor data) is read end to end under
// ASan. The same entry point replays the seed corpus in tm_gguf_corpus_test on every build.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "tracemark/model/gguf.h"
#include "tracemark/model/quant.h"

namespace {

// Folds bytes into a value the optimizer cannot drop.
volatile uint64_t g_sink = 0;

void Touch(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  uint64_t h = 0;
  for (size_t i = 0; i < n; ++i) h = h * 31 + b[i];
  g_sink = g_sink + h;
}

void TouchKey(const tracemark::gguf::GgufFile& f, const std::string& key) {
  using tracemark::gguf::ValueType;
  const tracemark::gguf::Value* v = f.Find(key);
  if (v == nullptr) __builtin_trap();  // every listed key must be found
  Touch(v->str.data(), v->str.size());
  // Every getter must return a value or a Status, whatever the stored type.
  (void)f.GetString(key);
  (void)f.GetUInt(key);
  (void)f.GetInt(key);
  (void)f.GetFloat(key);
  (void)f.GetBool(key);
  if (auto s = f.GetStringArray(key); s.ok()) {
    for (std::string_view e : *s) Touch(e.data(), e.size());
  }
  if (auto a = f.GetF32Array(key); a.ok()) Touch(a->data(), a->size() * sizeof(float));
  if (auto a = f.GetI32Array(key); a.ok()) Touch(a->data(), a->size() * sizeof(int32_t));
  if (auto a = f.GetBoolArray(key); a.ok()) Touch(a->data(), a->size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = tracemark::gguf::GgufFile::Parse(data, size);
  if (!parsed.ok()) {
    if (parsed.status().message().empty()) __builtin_trap();  // every error must say something
    return 0;
  }
  const tracemark::gguf::GgufFile& f = **parsed;
  for (const std::string& key : f.keys()) TouchKey(f, key);
  float row[1024];
  for (const tracemark::gguf::TensorInfo& t : f.tensors()) {
    if (f.FindTensor(t.name) != &t) __builtin_trap();
    if (t.data < data || t.nbytes > size || t.data + t.nbytes > data + size) __builtin_trap();
    Touch(t.data, t.nbytes);
    // Dequantize the first row when it is small enough for the stack buffer.
    if (tracemark::CanDequantize(t.type) && t.ne[0] <= 1024 && t.RowBytes() <= t.nbytes &&
        reinterpret_cast<uintptr_t>(t.data) % 2 == 0) {
      tracemark::DequantizeRow(t.type, t.data, row, static_cast<int64_t>(t.ne[0]));
      Touch(row, static_cast<size_t>(t.ne[0]) * sizeof(float));
    }
  }
  return 0;
}
