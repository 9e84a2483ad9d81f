// LineReader: splits a ByteSource into '\n'-terminated lines with bounded memory.
//
// Lines up to max_line_bytes are returned as views into an internal buffer of at most
// max_line_bytes + kReadChunkBytes. A longer line is never buffered whole: the reader streams
// past it and returns it with too_long set, its length and its location, so a 100 MB line costs
// one chunk of memory. A trailing '\r' is dropped (CRLF files); a last line without '\n' counts.
// After a stream error Next() returns false and status() holds the error; the partial line
// before it is dropped. One LineReader belongs to one thread; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/scan/byte_source.h"

namespace tracemark::scan {

struct Line {
  std::string_view text;  // empty when too_long; valid until the next call to Next()
  uint64_t number = 0;    // 1-based line number
  uint64_t offset = 0;    // offset of the line's first byte in the decompressed stream
  uint64_t length = 0;    // bytes in the line, without its terminator
  bool too_long = false;  // longer than max_line_bytes: skipped, text is empty
};

class LineReader {
 public:
  LineReader(ByteSource* source, size_t max_line_bytes, size_t chunk_bytes = kReadChunkBytes);
  // Fills *line and returns true, or returns false at the end of the stream or on error.
  bool Next(Line* line);
  const Status& status() const { return status_; }
  // Lines returned so far.
  uint64_t lines() const { return next_number_ - 1; }
  // Bytes held by the line buffer (bounded by max_line_bytes + chunk_bytes).
  size_t buffer_bytes() const { return buf_.capacity(); }

 private:
  // Reads more bytes after end_; returns false at end of stream or error (sets eof_/status_).
  bool Fill();

  ByteSource* source_;
  size_t max_line_bytes_;
  size_t chunk_bytes_;
  std::vector<char> buf_;
  size_t begin_ = 0;     // first unconsumed byte
  size_t end_ = 0;       // end of valid bytes
  size_t scan_pos_ = 0;  // bytes in [begin_, scan_pos_) hold no '\n'
  uint64_t stream_offset_ = 0;  // stream offset of buf_[begin_]
  uint64_t next_number_ = 1;
  bool eof_ = false;
  Status status_;
};

}  // namespace tracemark::scan
