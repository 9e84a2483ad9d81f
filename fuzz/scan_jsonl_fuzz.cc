// libFuzzer harness: JSONL and plain-text record readers over arbitrary (possibly compressed)
// bytes. The first byte picks the options: format, field, chat roles, whole-file mode.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tracemark/scan/record_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  tracemark::scan::RecordOptions options;
  options.format = (mode & 1) ? tracemark::scan::InputFormat::kText
                              : tracemark::scan::InputFormat::kJsonl;
  options.whole_file = (mode & 2) != 0;
  options.field = (mode & 4) ? "messages" : "text";
  options.all_roles = (mode & 8) != 0;
  options.limits.max_line_bytes = 4096;
  options.limits.max_document_bytes = 8192;
  options.limits.max_json_depth = 16;
  options.limits.max_decompressed_bytes = 1u << 20;
  options.limits.ratio_guard_min_bytes = 256u << 10;
  options.limits.read_chunk_bytes = 4096;
  options.limits.max_compression_ratio = 200;
  const bool filter_odd = (mode & 16) != 0;
  auto reader = tracemark::scan::RecordReader::OpenMemory(
      std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1), "fuzz.jsonl", options);
  if (!reader.ok()) return 0;
  tracemark::scan::RecordReader::Filter wanted;
  if (filter_odd) wanted = [](uint64_t index) { return index % 2 == 1; };
  tracemark::scan::Record record;
  tracemark::scan::ReadError error;
  for (;;) {
    const auto outcome = (*reader)->Next(wanted, &record, &error);
    if (outcome == tracemark::scan::RecordReader::Outcome::kEnd) break;
    if (outcome == tracemark::scan::RecordReader::Outcome::kRecord) {
      if (record.text.empty() || record.doc_id.empty()) std::abort();
      if (!tracemark::scan::IsValidUtf8(record.text)) std::abort();
      if (filter_odd && record.index % 2 != 1) std::abort();
    } else if (error.kind.empty()) {
      std::abort();
    }
  }
  return 0;
}
