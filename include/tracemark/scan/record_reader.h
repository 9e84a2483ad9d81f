// RecordReader: documents out of one corpus file (plain text or JSONL, any compression).
//
// Formats: plain text gives one document per line (or the whole file with whole_file set);
// JSONL gives one document per line from a string field (`field`, default "text") or from a chat
// array of {"role","content"} objects (assistant contents only unless all_roles), contents
// joined with '\n'. A record's doc id is its top-level "id" (string or number) when present,
// else "FILE:LINE". Every line counts as a record index (0-based line index), empty lines
// included, so the index of a record never depends on what the reader skipped; whole-file
// documents have index 0. Bad records (invalid JSON, invalid UTF-8, missing field, over-long
// line) come back as ReadError with their location and the reader goes on; a stream error
// (corrupt frame, decompression limit, I/O) is the file's last ReadError.
// One RecordReader belongs to one thread; not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "tracemark/base/status.h"
#include "tracemark/scan/limits.h"

namespace tracemark::scan {

enum class InputFormat {
  kAuto,   // JSONL when the name ends in .jsonl/.ndjson/.json (before any .zst/.gz), else text
  kText,
  kJsonl,
};

struct RecordOptions {
  InputFormat format = InputFormat::kAuto;
  bool whole_file = false;        // plain text: one document per file instead of per line
  std::string field = "text";     // JSONL: the field holding the text or the chat messages
  bool all_roles = false;         // chat arrays: every message, not only the assistant's
  ReaderLimits limits;
};

struct Record {
  uint64_t index = 0;   // 0-based line index in the decompressed file (0 for whole files)
  uint64_t line = 0;    // 1-based line number
  uint64_t offset = 0;  // byte offset of the line in the decompressed stream
  std::string doc_id;
  std::string text;
};

// Error kinds, as written in scan outputs.
inline constexpr const char* kErrOpen = "open_failed";
inline constexpr const char* kErrLineTooLong = "line_too_long";
inline constexpr const char* kErrDocumentTooLong = "document_too_long";
inline constexpr const char* kErrInvalidUtf8 = "invalid_utf8";
inline constexpr const char* kErrInvalidJson = "invalid_json";
inline constexpr const char* kErrMissingField = "missing_field";
inline constexpr const char* kErrCorruptStream = "corrupt_stream";
inline constexpr const char* kErrDecompressionLimit = "decompression_limit";
inline constexpr const char* kErrIo = "io_error";

struct ReadError {
  std::string kind;
  uint64_t index = 0;   // record index the error belongs to (shard ownership)
  uint64_t line = 0;    // 1-based line number (the line being read for stream errors)
  uint64_t offset = 0;  // decompressed offset of the line; compressed offset for stream errors
  bool offset_is_compressed = false;
  std::string message;
};

class RecordReader {
 public:
  enum class Outcome { kRecord, kError, kEnd };
  // wanted(index) says which records to parse; others are passed over without JSON or UTF-8
  // work (their errors are not reported). nullptr means all.
  using Filter = std::function<bool(uint64_t)>;

  static Result<std::unique_ptr<RecordReader>> OpenFile(const std::string& path,
                                                        const RecordOptions& options);
  // `name` is used for doc ids and format detection; data must outlive the reader.
  static Result<std::unique_ptr<RecordReader>> OpenMemory(std::string_view data,
                                                          const std::string& name,
                                                          const RecordOptions& options);
  virtual ~RecordReader() = default;

  // Returns kRecord (fills *record), kError (fills *error; call again to go on) or kEnd.
  virtual Outcome Next(const Filter& wanted, Record* record, ReadError* error) = 0;
  // Input bytes consumed so far (compressed bytes for compressed files), for progress.
  virtual uint64_t raw_offset() const = 0;
  virtual uint64_t raw_size() const = 0;
};

// True if `name` selects JSONL under InputFormat::kAuto.
bool LooksLikeJsonl(std::string_view name);
// True if text is well-formed UTF-8.
bool IsValidUtf8(std::string_view text);

}  // namespace tracemark::scan
