// libFuzzer harness: decompression (plain / zstd / gzip by magic) + bounded line splitting.
// Checks the LineReader contract: no line over the limit, offsets and numbers consistent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tracemark/scan/byte_source.h"
#include "tracemark/scan/line_reader.h"

namespace {
constexpr size_t kFuzzMaxLine = 4096;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tracemark::scan::ReaderLimits limits;
  limits.max_line_bytes = kFuzzMaxLine;
  limits.max_decompressed_bytes = 1u << 20;
  limits.ratio_guard_min_bytes = 256u << 10;
  limits.read_chunk_bytes = 4096;
  limits.max_compression_ratio = 200;
  auto source = tracemark::scan::OpenMemorySource(
      std::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (!source.ok()) return 0;
  tracemark::scan::LineReader lines(source->get(), limits.max_line_bytes, limits.read_chunk_bytes);
  tracemark::scan::Line line;
  uint64_t expect_number = 1;
  uint64_t next_offset = 0;
  while (lines.Next(&line)) {
    if (line.number != expect_number++) std::abort();
    if (line.offset != next_offset) std::abort();
    if (line.too_long != (line.length > kFuzzMaxLine)) std::abort();
    if (line.text.size() > kFuzzMaxLine) std::abort();
    if (!line.too_long && line.text.size() + 1 < line.length) std::abort();
    next_offset = line.offset + line.length + 1;
  }
  return 0;
}
