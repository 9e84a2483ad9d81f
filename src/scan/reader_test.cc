// Readers: byte sources (plain/zstd/gzip), line splitting, plain-text and JSONL records,
// malformed input of every kind, limits, input expansion.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "scan/scan_test_util.h"
#include "tracemark/scan/byte_source.h"
#include "tracemark/scan/inputs.h"
#include "tracemark/scan/line_reader.h"
#include "tracemark/scan/record_reader.h"

namespace tracemark::scan {
namespace {

using testing::GzipCompress;
using testing::TempDir;
using testing::WriteBytes;
using testing::ZstdCompress;

struct ReadAll {
  std::vector<Record> records;
  std::vector<ReadError> errors;
};

ReadAll Read(std::string_view data, const std::string& name, RecordOptions options = {},
             const RecordReader::Filter& wanted = nullptr) {
  ReadAll out;
  auto reader = RecordReader::OpenMemory(data, name, options);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  if (!reader.ok()) return out;
  Record rec;
  ReadError err;
  for (;;) {
    auto o = (*reader)->Next(wanted, &rec, &err);
    if (o == RecordReader::Outcome::kEnd) break;
    if (o == RecordReader::Outcome::kRecord) out.records.push_back(rec);
    if (o == RecordReader::Outcome::kError) out.errors.push_back(err);
  }
  return out;
}

std::string Drain(std::string_view data, Status* status, ReaderLimits limits = {}) {
  auto src = OpenMemorySource(data, limits);
  EXPECT_TRUE(src.ok());
  std::string out;
  std::vector<char> buf(1000);
  for (;;) {
    auto r = (*src)->Read(buf.data(), buf.size());
    if (!r.ok()) {
      *status = r.status();
      return out;
    }
    if (*r == 0) break;
    out.append(buf.data(), *r);
  }
  *status = Status::Ok();
  return out;
}

// Pseudo-random lowercase text (compresses like text, not like a run of one byte).
std::string NoiseText(size_t n, uint32_t seed = 1) {
  std::string s(n, 'a');
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    s[i] = static_cast<char>('a' + (seed >> 24) % 26);
  }
  return s;
}

TEST(ByteSourceTest, DetectsCompressionByMagic) {
  EXPECT_EQ(DetectCompression(ZstdCompress("hi")), Compression::kZstd);
  EXPECT_EQ(DetectCompression(GzipCompress("hi")), Compression::kGzip);
  EXPECT_EQ(DetectCompression("{\"text\":1}"), Compression::kNone);
  EXPECT_EQ(DetectCompression(""), Compression::kNone);
}

TEST(ByteSourceTest, RoundTripsAllEncodings) {
  const std::string text = NoiseText(3'000'000);
  Status st;
  EXPECT_EQ(Drain(text, &st), text);
  EXPECT_TRUE(st.ok());
  EXPECT_EQ(Drain(ZstdCompress(text), &st), text);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Drain(GzipCompress(text), &st), text);
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST(ByteSourceTest, ConcatenatedFramesAndMembers) {
  Status st;
  EXPECT_EQ(Drain(ZstdCompress("abc\n") + ZstdCompress("def\n"), &st), "abc\ndef\n");
  EXPECT_TRUE(st.ok());
  EXPECT_EQ(Drain(GzipCompress("abc\n") + GzipCompress("def\n"), &st), "abc\ndef\n");
  EXPECT_TRUE(st.ok());
}

TEST(ByteSourceTest, TruncatedZstdFrameIsAnError) {
  const std::string z = ZstdCompress(NoiseText(100000));
  Status st;
  Drain(std::string_view(z).substr(0, z.size() / 2), &st);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("zstd"), std::string::npos) << st.message();
}

TEST(ByteSourceTest, CorruptZstdIsAnError) {
  std::string z = ZstdCompress(NoiseText(100000));
  for (size_t i = 20; i < z.size(); i += 97) z[i] = static_cast<char>(z[i] ^ 0x5A);
  Status st;
  Drain(z, &st);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
}

TEST(ByteSourceTest, TruncatedAndCorruptGzipAreErrors) {
  const std::string g = GzipCompress(NoiseText(100000));
  Status st;
  Drain(std::string_view(g).substr(0, g.size() - 100), &st);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  std::string bad = g;
  for (size_t i = 30; i < bad.size(); i += 50) bad[i] = static_cast<char>(bad[i] ^ 0xFF);
  Drain(bad, &st);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  // Garbage after a complete member.
  Drain(g + "garbage!", &st);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
}

TEST(ByteSourceTest, DecompressionBombIsStoppedByTheRatioGuard) {
  const std::string zeros(200u << 20, '\0');
  const std::string bomb = ZstdCompress(zeros, 1);
  ASSERT_LT(bomb.size(), 100000u);
  Status st;
  const std::string out = Drain(bomb, &st);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  EXPECT_LE(out.size(), kRatioGuardMinBytes + kReadChunkBytes);
}

TEST(ByteSourceTest, AbsoluteDecompressedCap) {
  ReaderLimits limits;
  limits.max_decompressed_bytes = 10000;
  Status st;
  Drain(GzipCompress(NoiseText(50000)), &st, limits);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
}

TEST(ByteSourceTest, MissingFileIsNotFound) {
  auto src = OpenFileSource("/nonexistent/tm_scan_x", ReaderLimits{});
  EXPECT_EQ(src.status().code(), StatusCode::kNotFound);
}

// A ByteSource that produces a long run of one byte, then a tail, without holding it.
class GeneratedSource : public ByteSource {
 public:
  GeneratedSource(uint64_t run, std::string tail) : run_(run), tail_(std::move(tail)) {}
  Result<size_t> Read(char* buf, size_t n) override {
    if (pos_ < run_) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(n, run_ - pos_));
      std::memset(buf, 'x', k);
      pos_ += k;
      return k;
    }
    const uint64_t t = pos_ - run_;
    const size_t k = std::min<size_t>(n, tail_.size() - t);
    std::memcpy(buf, tail_.data() + t, k);
    pos_ += k;
    return k;
  }
  uint64_t raw_offset() const override { return pos_; }
  uint64_t raw_size() const override { return run_ + tail_.size(); }
  Compression compression() const override { return Compression::kNone; }

 private:
  uint64_t run_;
  std::string tail_;
  uint64_t pos_ = 0;
};

TEST(LineReaderTest, HundredMegabyteLineIsSkippedWithBoundedMemory) {
  constexpr uint64_t kLong = 100ull << 20;
  GeneratedSource src(kLong, "\nnext line\r\nlast");
  LineReader lines(&src, kDefaultMaxLineBytes);
  Line line;
  ASSERT_TRUE(lines.Next(&line));
  EXPECT_TRUE(line.too_long);
  EXPECT_EQ(line.length, kLong);
  EXPECT_EQ(line.number, 1u);
  EXPECT_EQ(line.offset, 0u);
  ASSERT_TRUE(lines.Next(&line));
  EXPECT_FALSE(line.too_long);
  EXPECT_EQ(line.text, "next line");
  EXPECT_EQ(line.number, 2u);
  EXPECT_EQ(line.offset, kLong + 1);
  ASSERT_TRUE(lines.Next(&line));
  EXPECT_EQ(line.text, "last");
  EXPECT_EQ(line.offset, kLong + 12);
  EXPECT_FALSE(lines.Next(&line));
  EXPECT_TRUE(lines.status().ok());
  EXPECT_LE(lines.buffer_bytes(), kDefaultMaxLineBytes + kReadChunkBytes);
}

TEST(LineReaderTest, LineExactlyAtTheLimitIsKept) {
  const std::string data = std::string(100, 'a') + "\n" + std::string(101, 'b') + "\nc";
  auto src = OpenMemorySource(data, ReaderLimits{});
  LineReader lines(src->get(), 100);
  Line line;
  ASSERT_TRUE(lines.Next(&line));
  EXPECT_FALSE(line.too_long);
  EXPECT_EQ(line.text.size(), 100u);
  ASSERT_TRUE(lines.Next(&line));
  EXPECT_TRUE(line.too_long);
  EXPECT_EQ(line.length, 101u);
  ASSERT_TRUE(lines.Next(&line));
  EXPECT_EQ(line.text, "c");
  EXPECT_EQ(line.offset, 203u);
}

TEST(RecordReaderTest, PlainTextOneDocumentPerLine) {
  const ReadAll r = Read("first doc\r\n\n   \nsecond doc\nthird", "a.txt");
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.records[0].text, "first doc");
  EXPECT_EQ(r.records[0].doc_id, "a.txt:1");
  EXPECT_EQ(r.records[1].text, "second doc");
  EXPECT_EQ(r.records[1].index, 3u);
  EXPECT_EQ(r.records[1].line, 4u);
  EXPECT_EQ(r.records[1].offset, 16u);
  EXPECT_EQ(r.records[2].doc_id, "a.txt:5");
}

TEST(RecordReaderTest, InvalidUtf8LineIsReportedAndSkipped) {
  const ReadAll r = Read("good\nbad \xC0\xAF here\nalso good\n", "u.txt");
  ASSERT_EQ(r.records.size(), 2u);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].kind, kErrInvalidUtf8);
  EXPECT_EQ(r.errors[0].line, 2u);
  EXPECT_EQ(r.errors[0].offset, 5u);
}

TEST(RecordReaderTest, WholeFileMode) {
  RecordOptions o;
  o.whole_file = true;
  ReadAll r = Read("line one\nline two\n", "doc.txt", o);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].text, "line one\nline two\n");
  EXPECT_EQ(r.records[0].doc_id, "doc.txt");
  o.limits.max_document_bytes = 5;
  r = Read("line one\nline two\n", "doc.txt", o);
  EXPECT_TRUE(r.records.empty());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].kind, kErrDocumentTooLong);
}

TEST(RecordReaderTest, JsonlTextFieldAndIds) {
  const std::string data =
      "{\"id\":\"doc-a\",\"text\":\"hello \\u00e9\"}\n"
      "{\"text\":\"no id\",\"meta\":{\"x\":[1,2,{\"y\":null}]}}\n"
      "{\"id\": 12345 ,\"text\":\"numeric id\"}\n";
  const ReadAll r = Read(data, "c.jsonl");
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.records[0].doc_id, "doc-a");
  EXPECT_EQ(r.records[0].text, "hello \xC3\xA9");
  EXPECT_EQ(r.records[1].doc_id, "c.jsonl:2");
  EXPECT_EQ(r.records[2].doc_id, "12345");
}

TEST(RecordReaderTest, JsonlCustomField) {
  RecordOptions o;
  o.field = "body";
  const ReadAll r = Read("{\"text\":\"no\",\"body\":\"yes\"}\n", "c.jsonl", o);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].text, "yes");
}

TEST(RecordReaderTest, MalformedJsonlLinesAreCountedWithLocations) {
  const std::string data =
      "{\"text\":\"ok 1\"}\n"
      "{\"text\":\"unterminated\n"
      "[\"not an object\"]\n"
      "{\"other\":\"missing field\"}\n"
      "{\"text\":42}\n"
      "{\"text\":\"trailing\"} garbage\n"
      "{\"text\":\"bad utf8 \xFF\"}\n"
      "{\"text\":\"ok 2\",\"x\":[1,2}\n"
      "{\"text\":\"ok 3\"}\n";
  const ReadAll r = Read(data, "m.jsonl");
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[0].text, "ok 1");
  EXPECT_EQ(r.records[1].text, "ok 3");
  ASSERT_EQ(r.errors.size(), 7u);
  const char* kinds[] = {kErrInvalidJson, kErrInvalidJson, kErrMissingField, kErrMissingField,
                         kErrInvalidJson, kErrInvalidUtf8, kErrInvalidJson};
  for (size_t i = 0; i < r.errors.size(); ++i) {
    EXPECT_EQ(r.errors[i].kind, kinds[i]) << i << ": " << r.errors[i].message;
    EXPECT_EQ(r.errors[i].line, i + 2);
    EXPECT_FALSE(r.errors[i].message.empty());
  }
}

TEST(RecordReaderTest, JsonDepthLimit) {
  std::string deep = "{\"a\":";
  for (int i = 0; i < 100; ++i) deep += "[";
  for (int i = 0; i < 100; ++i) deep += "]";
  deep += ",\"text\":\"x\"}\n";
  const ReadAll r = Read(deep, "d.jsonl");
  EXPECT_TRUE(r.records.empty());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].kind, kErrInvalidJson);
}

TEST(RecordReaderTest, ChatMessagesAssistantOnlyOrAllRoles) {
  const std::string data =
      "{\"id\":\"c1\",\"messages\":[{\"role\":\"user\",\"content\":\"Q?\"},"
      "{\"content\":\"A1\",\"role\":\"assistant\"},{\"role\":\"user\",\"content\":\"Q2\"},"
      "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"A2a\"},"
      "{\"type\":\"text\",\"text\":\"A2b\"}]}]}\n"
      "{\"messages\":[{\"role\":\"user\",\"content\":\"only user\"}]}\n";
  RecordOptions o;
  o.field = "messages";
  ReadAll r = Read(data, "chat.jsonl", o);
  ASSERT_EQ(r.records.size(), 1u);  // the second has no assistant text
  EXPECT_EQ(r.records[0].text, "A1\nA2a\nA2b");
  EXPECT_TRUE(r.errors.empty());
  o.all_roles = true;
  r = Read(data, "chat.jsonl", o);
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[0].text, "Q?\nA1\nQ2\nA2a\nA2b");
  EXPECT_EQ(r.records[1].text, "only user");
}

TEST(RecordReaderTest, CompressedJsonlWithTruncatedFrameKeepsEarlierRecords) {
  std::string data;
  for (int i = 0; i < 2000; ++i) data += "{\"text\":\"" + NoiseText(200, i + 1) + "\"}\n";
  const std::string z = ZstdCompress(data);
  const std::string truncated = z.substr(0, z.size() * 3 / 4);
  const ReadAll r = Read(truncated, "t.jsonl.zst");
  EXPECT_GT(r.records.size(), 1000u);
  EXPECT_LT(r.records.size(), 2000u);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].kind, kErrCorruptStream);
  EXPECT_TRUE(r.errors[0].offset_is_compressed);
  EXPECT_EQ(r.errors[0].index, r.records.size());
  EXPECT_LE(r.errors[0].offset, truncated.size());
}

TEST(RecordReaderTest, GzipJsonlAndBrokenGzip) {
  std::string data;
  for (int i = 0; i < 500; ++i) data += "{\"text\":\"row " + std::to_string(i) + "\"}\n";
  ReadAll r = Read(GzipCompress(data), "g.jsonl.gz");
  EXPECT_EQ(r.records.size(), 500u);
  EXPECT_TRUE(r.errors.empty());
  std::string bad = GzipCompress(data);
  bad[bad.size() / 2] = static_cast<char>(bad[bad.size() / 2] ^ 0x55);
  bad[bad.size() / 2 + 1] = static_cast<char>(bad[bad.size() / 2 + 1] ^ 0x55);
  r = Read(bad, "g.jsonl.gz");
  ASSERT_FALSE(r.errors.empty());
  EXPECT_EQ(r.errors.back().kind, kErrCorruptStream);
}

TEST(RecordReaderTest, HundredMegabyteJsonlLineInZstdIsSkipped) {
  const std::string big = "{\"text\":\"" + NoiseText(100u << 20) + "\"}\n";
  const std::string z = ZstdCompress(big + "{\"text\":\"after\"}\n", 1);
  const ReadAll r = Read(z, "big.jsonl.zst");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].kind, kErrLineTooLong);
  EXPECT_EQ(r.errors[0].line, 1u);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].text, "after");
  EXPECT_EQ(r.records[0].offset, big.size());
}

TEST(RecordReaderTest, FilterSkipsParsingOfUnwantedRecords) {
  const std::string data = "{\"text\":\"a\"}\nnot json\n{\"text\":\"c\"}\n";
  const ReadAll r = Read(data, "f.jsonl", {}, [](uint64_t i) { return i != 1; });
  EXPECT_EQ(r.records.size(), 2u);
  EXPECT_TRUE(r.errors.empty());
}

TEST(RecordReaderTest, FormatByName) {
  EXPECT_TRUE(LooksLikeJsonl("a/b.jsonl"));
  EXPECT_TRUE(LooksLikeJsonl("b.jsonl.zst"));
  EXPECT_TRUE(LooksLikeJsonl("b.ndjson.gz"));
  EXPECT_FALSE(LooksLikeJsonl("b.txt.zst"));
  EXPECT_FALSE(LooksLikeJsonl("jsonl"));
  RecordOptions o;
  o.format = InputFormat::kText;
  const ReadAll r = Read("{\"text\":\"x\"}\n", "x.jsonl", o);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].text, "{\"text\":\"x\"}");
}

TEST(InputsTest, GlobsDirectoriesManifestsSortedAndDeduplicated) {
  TempDir dir;
  std::filesystem::create_directories(dir.Join("sub/deeper"));
  for (const char* name : {"b.jsonl", "a.jsonl", "c.txt", "sub/x.txt", "sub/deeper/y.txt"}) {
    WriteBytes(dir.Join(name), "x\n");
  }
  WriteBytes(dir.Join("list.manifest"), "# comment\n\nc.txt\n" + dir.Join("a.jsonl") + "\n");
  auto files = ExpandInputs({dir.Join("*.jsonl"), dir.Join("sub"), dir.Join("b.jsonl")},
                            {dir.Join("list.manifest")});
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  const std::vector<std::string> want = {dir.Join("a.jsonl"), dir.Join("b.jsonl"), dir.Join("c.txt"),
                                         dir.Join("sub/deeper/y.txt"), dir.Join("sub/x.txt")};
  EXPECT_EQ(*files, want);
  EXPECT_EQ(ExpandInputs({dir.Join("nope.txt")}, {}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ExpandInputs({dir.Join("*.none")}, {}).status().code(), StatusCode::kNotFound);
  WriteBytes(dir.Join("bad.manifest"), "missing.txt\n");
  auto bad = ExpandInputs({}, {dir.Join("bad.manifest")});
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 1"), std::string::npos);
}

}  // namespace
}  // namespace tracemark::scan
