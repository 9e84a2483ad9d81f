// Files: read-only memory maps and bounded whole-file reads and atomic writes.
//
// MappedFile keeps a read-only, private mapping alive for its lifetime; the bytes may be read
// from any number of threads. Model weights are used in place from the mapping (never copied),
// so a model's resident memory is what the kernels touch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "tracemark/base/status.h"

namespace tracemark {

class MappedFile {
 public:
  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole file, refusing files larger than max_bytes.
Result<std::string> ReadFile(const std::string& path, size_t max_bytes);

// Writes through a temporary file in the same directory, fsyncs it, renames it over path and
// fsyncs the directory: readers see the old or the new content, never a torn file.
Status WriteFileAtomic(const std::string& path, std::string_view content, int mode = 0644);

}  // namespace tracemark
