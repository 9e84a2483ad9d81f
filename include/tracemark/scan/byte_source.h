// ByteSource: the decompressed bytes of one corpus file, streamed in bounded chunks.
//
// OpenFileSource / OpenMemorySource look at the first bytes: the zstd frame magic
// (28 B5 2F FD) selects libzstd streaming, the gzip magic (1F 8B) selects zlib streaming
// (multi-member files included), anything else is read as is. Decompressed output is capped by
// ReaderLimits (an absolute cap per file and a compression-ratio guard against bombs). A broken
// or truncated frame ends the stream with a Status; raw_offset() then says how far into the
// compressed file the decoder got. One ByteSource belongs to one thread; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "tracemark/base/status.h"
#include "tracemark/scan/limits.h"

namespace tracemark::scan {

enum class Compression { kNone, kZstd, kGzip };

// Detects the compression from a file's first bytes (at least 4 when available).
Compression DetectCompression(std::string_view head);
const char* CompressionName(Compression c);

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to n decompressed bytes into buf. Returns 0 at the end of the stream. A non-OK
  // result is final: kInvalidArgument for corrupt or truncated compressed data,
  // kResourceExhausted when a decompression limit was hit, kIoError when the OS failed.
  virtual Result<size_t> Read(char* buf, size_t n) = 0;
  // Bytes of the underlying (possibly compressed) input consumed so far.
  virtual uint64_t raw_offset() const = 0;
  // Size of the underlying input in bytes (for progress), 0 if unknown.
  virtual uint64_t raw_size() const = 0;
  virtual Compression compression() const = 0;
};

Result<std::unique_ptr<ByteSource>> OpenFileSource(const std::string& path,
                                                   const ReaderLimits& limits);
// Reads from memory that must outlive the source (tests, fuzzing).
Result<std::unique_ptr<ByteSource>> OpenMemorySource(std::string_view data,
                                                     const ReaderLimits& limits);

}  // namespace tracemark::scan
