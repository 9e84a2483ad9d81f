#include "scan/scan_test_util.h"

#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>

namespace tracemark::scan::testing {

std::string ZstdCompress(std::string_view data, int level) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  if (ZSTD_isError(n)) throw std::runtime_error("zstd compress failed");
  out.resize(n);
  return out;
}

std::string GzipCompress(std::string_view data) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) throw std::runtime_error("deflate failed");
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

void WriteBytes(const std::string& path, std::string_view data) {
  std::ofstream f(path, std::ios::binary);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string ReadBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/tm_scan_test_XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {

class FakeScorer : public DocumentScorer {
 public:
  Result<DocScore> Score(std::string_view text) override {
    if (text.find("SCOREFAIL") != std::string_view::npos) return Internal("fake scorer failure");
    DocScore s;
    s.tokens_scored = static_cast<int64_t>(text.size());
    s.scheme = "fake";
    s.key_version = 1;
    AddTuples(text, {}, &s);
    const size_t at = text.find("WATERMARK:");
    if (at == std::string_view::npos) {
      s.p_value = 0.5;
      s.log10_p_value = -0.30102999566398120;
      return s;
    }
    s.p_value = 1e-12;
    s.log10_p_value = -12;
    const size_t digits = at + 10;
    size_t end = digits;
    while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
    if (end > digits) {
      s.account = std::stoull(std::string(text.substr(digits, end - digits)));
      s.account_p_value = 1e-9;
    }
    s.spans.push_back(ScoredSpan{at, end, at, end, -12});
    // Mask the marker's digits, as a placeholder mask would.
    s.skip_mask.assign(text.size(), 0);
    for (size_t i = digits; i < end; ++i) s.skip_mask[i] = 1;
    s.pool_tuples.clear();
    AddTuples(text, s.skip_mask, &s);
    return s;
  }
};

class FakeLaneScorer : public LaneScorer {
 public:
  explicit FakeLaneScorer(uint64_t salt) : salt_(salt) {}
  double Score(uint64_t context_hash, int32_t token) const override {
    return FakeTupleScore(context_hash, token, salt_);
  }
  double Log10Tail(double sum, int64_t count) const override {
    return -(sum - 0.25 * static_cast<double>(count)) / 100;
  }

 private:
  uint64_t salt_;
};

}  // namespace

Result<std::unique_ptr<DocumentScorer>> FakeScorerFactory::NewScorer() {
  return std::unique_ptr<DocumentScorer>(std::make_unique<FakeScorer>());
}

void AddTuples(std::string_view text, std::span<const uint8_t> skip_mask, DocScore* s) {
  for (size_t i = 1; i < text.size(); ++i) {
    if (!skip_mask.empty() && (skip_mask[i - 1] != 0 || skip_mask[i] != 0)) continue;
    PoolTuple t;
    t.context_hash = static_cast<uint8_t>(text[i - 1]);
    t.token = static_cast<uint8_t>(text[i]);
    t.key_version = 1;
    t.lane = (t.context_hash + static_cast<uint64_t>(t.token)) % 2 == 0 ? kPoolProviderLane
                                                                          : kPoolAccountLane;
    s->pool_tuples.push_back(t);
  }
}

double FakeTupleScore(uint64_t context_hash, int32_t token, uint64_t salt) {
  const uint64_t x = (context_hash * 1000003u + static_cast<uint64_t>(token) * 7919u + salt) % 1009u;
  return static_cast<double>(x) / 1009.0;
}

Result<std::unique_ptr<LaneScorer>> FakePoolFactory::NewLaneScorer(
    int, std::optional<uint64_t> account) {
  return std::unique_ptr<LaneScorer>(
      std::make_unique<FakeLaneScorer>(account ? *account * 31 + 1 : 0));
}

}  // namespace tracemark::scan::testing
