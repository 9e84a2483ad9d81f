// libFuzzer harness for the tokenizers (src/text/): every input is encoded by each available
// vocabulary (the committed Qwen2 vocabulary always; SmolLM2 and Gemma 3 when their model files
// are present) with parse_special off and on. Every id must lie in [0, vocab); for byte-level
// BPE, Decode(Encode(x)) must give back x (NFC(x) for Qwen2) whenever x is valid UTF-8; and
// StreamDecoder fed the ids one by one must yield exactly Decode's text when that text is valid
// UTF-8. Any violation aborts so that the fuzzer reports it. The seed corpus
// (fuzz/corpus/tokenizer) replays through this entry point in tm_tokenizer_corpus_test.
// Files are looked up relative to the working directory, then to TM_SOURCE_DIR.
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "text/normalize.h"
#include "text/unicode.h"
#include "tracemark/base/file.h"
#include "tracemark/model/gguf.h"
#include "tracemark/text/tokenizer.h"

namespace {

namespace tt = tracemark::text;

// Longer inputs add little coverage and make single runs slow (BPE merges are superlinear).
constexpr size_t kMaxInputBytes = 4096;
constexpr size_t kMaxVocabImageBytes = 64u << 20;
constexpr char kQwenPath[] = "tests/data/tokenizer/qwen2-vocab.gguf.zst";
constexpr char kSmollmPath[] = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
constexpr char kGemmaPath[] = "models/gemma-3-270m-q4_k_m.gguf";

struct Vocab {
  const char* name;
  bool byte_level;  // byte-level BPE: Decode(Encode(x)) == x for valid UTF-8
  bool nfc;         // the text is NFC-normalized before encoding (Qwen2)
  std::string image;  // decompressed GGUF bytes, for the compressed vocabulary
  std::unique_ptr<tracemark::gguf::GgufFile> file;
  std::unique_ptr<tt::Tokenizer> tok;
  // has_byte[b]: the vocabulary can represent byte b. SmolLM2's has no token for 21 bytes
  // (0x04 0x06 0x13 0x14 0x16 0x1D 0xC0 0xC1 0xF1 0xF2 0xF5-0xFF); Hugging Face drops such
  // bytes silently and so does Encode, so texts containing one are exempt from the round trip.
  bool has_byte[256] = {};
};

[[noreturn]] void Fail(const Vocab& v, const char* what) {
  std::fprintf(stderr, "tokenizer_fuzz: %s: %s\n", v.name, what);
  std::abort();
}

void FindBytes(Vocab* v) {
  for (int b = 0; b < 256; ++b) {
    const std::string one(1, static_cast<char>(b));
    v->has_byte[b] = v->tok->Decode(v->tok->Encode(one, false, false)) == one;
  }
}

std::string Resolve(const char* rel) {
  if (std::filesystem::exists(rel)) return rel;
#ifdef TM_SOURCE_DIR
  const std::filesystem::path p = std::filesystem::path(TM_SOURCE_DIR) / rel;
  if (std::filesystem::exists(p)) return p.string();
#endif
  return std::string();
}

std::unique_ptr<Vocab> LoadModel(const char* name, const char* rel, bool byte_level) {
  const std::string path = Resolve(rel);
  if (path.empty()) return nullptr;
  auto v = std::make_unique<Vocab>(Vocab{name, byte_level, false, {}, nullptr, nullptr});
  auto f = tracemark::gguf::GgufFile::Open(path);
  if (!f.ok()) Fail(*v, "model file does not parse");
  v->file = std::move(*f);
  auto t = tt::Tokenizer::FromGguf(*v->file);
  if (!t.ok()) Fail(*v, "tokenizer does not load");
  v->tok = std::move(*t);
  FindBytes(v.get());
  return v;
}

// The committed Qwen2 vocabulary must always load: the replay test relies on it.
std::unique_ptr<Vocab> LoadQwen() {
  auto v = std::make_unique<Vocab>(Vocab{"qwen2", true, true, {}, nullptr, nullptr});
  const std::string path = Resolve(kQwenPath);
  if (path.empty()) Fail(*v, "tests/data/tokenizer/qwen2-vocab.gguf.zst not found");
  auto raw = tracemark::ReadFile(path, kMaxVocabImageBytes);
  if (!raw.ok()) Fail(*v, "vocabulary not readable");
  const unsigned long long n = ZSTD_getFrameContentSize(raw->data(), raw->size());
  if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN || n > kMaxVocabImageBytes) {
    Fail(*v, "vocabulary is not a sized zstd frame");
  }
  v->image.resize(static_cast<size_t>(n));
  const size_t got = ZSTD_decompress(v->image.data(), v->image.size(), raw->data(), raw->size());
  if (ZSTD_isError(got) || got != n) Fail(*v, "vocabulary does not decompress");
  auto f = tracemark::gguf::GgufFile::Parse(reinterpret_cast<const uint8_t*>(v->image.data()),
                                            v->image.size());
  if (!f.ok()) Fail(*v, "vocabulary does not parse");
  v->file = std::move(*f);
  auto t = tt::Tokenizer::FromGguf(*v->file);
  if (!t.ok()) Fail(*v, "tokenizer does not load");
  v->tok = std::move(*t);
  FindBytes(v.get());
  return v;
}

const std::vector<std::unique_ptr<Vocab>>& Vocabs() {
  static const std::vector<std::unique_ptr<Vocab>>* vocabs = [] {
    auto* all = new std::vector<std::unique_ptr<Vocab>>();
    all->push_back(LoadQwen());
    if (auto v = LoadModel("smollm2", kSmollmPath, true)) all->push_back(std::move(v));
    if (auto v = LoadModel("gemma3", kGemmaPath, false)) all->push_back(std::move(v));
    return all;
  }();
  return *vocabs;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t len = 0;
    if (tt::DecodeUtf8(s, i, &len) == tt::kInvalidCodepoint) return false;
    i += len;
  }
  return true;
}

void Check(const Vocab& v, std::string_view text, bool valid, bool parse_special) {
  const tt::Tokenizer& tok = *v.tok;
  const std::vector<int32_t> ids = tok.Encode(text, /*add_special=*/false, parse_special);
  const int32_t vocab = tok.vocab_size();
  for (const int32_t id : ids) {
    if (id < 0 || id >= vocab) Fail(v, "id out of range");
  }
  bool representable = true;
  for (const char c : text) representable = representable && v.has_byte[static_cast<uint8_t>(c)];
  if (representable && !text.empty() && ids.empty()) Fail(v, "non-empty text encodes to no ids");
  const std::string decoded = tok.Decode(ids, /*skip_special=*/false);
  if (valid && representable && v.byte_level) {
    std::string want;
    if (v.nfc) {
      tt::NormalizeNfc(text, &want);
    } else {
      want.assign(text);
    }
    if (decoded != want) Fail(v, parse_special ? "round trip (parse_special)" : "round trip");
  }
  tt::StreamDecoder stream(tok, /*skip_special=*/false);
  std::string streamed;
  for (const int32_t id : ids) streamed += stream.Push(id);
  streamed += stream.Flush();
  if (IsValidUtf8(decoded) && streamed != decoded) Fail(v, "StreamDecoder differs from Decode");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInputBytes) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool valid = IsValidUtf8(text);
  for (const auto& v : Vocabs()) {
    Check(*v, text, valid, /*parse_special=*/false);
    Check(*v, text, valid, /*parse_special=*/true);
  }
  return 0;
}
