// Hard limits of the corpus readers, as named constants with their documented defaults.
//
// Every reader in scan/ is bounded by a ReaderLimits value: no line, record, JSON nesting or
// decompressed stream grows past these, whatever the input says. Input that hits a limit is
// counted as an error with its location and skipped; the scan goes on. docs/formats/scan.md
// lists the same values. A plain value type; safe to copy and share between threads.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tracemark::scan {

// Longest line (one JSONL record or one plain-text document) kept in memory. Longer lines are
// skipped by streaming past them, never buffered whole.
inline constexpr size_t kDefaultMaxLineBytes = 8u << 20;  // 8 MiB
// Largest whole-file document (plain text with --whole-file).
inline constexpr size_t kDefaultMaxDocumentBytes = 8u << 20;  // 8 MiB
// Most decompressed bytes taken from one compressed file.
inline constexpr uint64_t kDefaultMaxDecompressedBytesPerFile = 64ull << 30;  // 64 GiB
// Decompression-bomb guard: once kRatioGuardMinBytes are out, decompressed bytes may be at most
// kDefaultMaxCompressionRatio times the compressed bytes consumed so far.
inline constexpr uint64_t kDefaultMaxCompressionRatio = 1000;
inline constexpr uint64_t kRatioGuardMinBytes = 64ull << 20;  // 64 MiB
// Deepest JSON nesting accepted in a JSONL record (simdjson's own default is 1024).
inline constexpr size_t kDefaultMaxJsonDepth = 64;
// Most chat messages read from one record's `messages` array.
inline constexpr size_t kMaxChatMessages = 4096;
// Size of one read from disk or from a decompressor.
inline constexpr size_t kReadChunkBytes = 1u << 20;  // 1 MiB
// Longest manifest file (one path per line) and longest doc id kept.
inline constexpr size_t kMaxManifestBytes = 256u << 20;  // 256 MiB
inline constexpr size_t kMaxDocIdBytes = 1024;
// Most error locations kept per shard (all errors are still counted, by kind).
inline constexpr size_t kMaxErrorsRecorded = 10000;

struct ReaderLimits {
  size_t max_line_bytes = kDefaultMaxLineBytes;
  size_t max_document_bytes = kDefaultMaxDocumentBytes;
  uint64_t max_decompressed_bytes = kDefaultMaxDecompressedBytesPerFile;
  uint64_t max_compression_ratio = kDefaultMaxCompressionRatio;
  uint64_t ratio_guard_min_bytes = kRatioGuardMinBytes;
  size_t max_json_depth = kDefaultMaxJsonDepth;
  size_t read_chunk_bytes = kReadChunkBytes;  // smaller in fuzzing, where each input is tiny
};

}  // namespace tracemark::scan
