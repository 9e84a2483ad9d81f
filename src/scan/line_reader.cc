// Bounded line splitting (see line_reader.h).
#include "tracemark/scan/line_reader.h"

#include <algorithm>
#include <cstring>

namespace tracemark::scan {

LineReader::LineReader(ByteSource* source, size_t max_line_bytes, size_t chunk_bytes)
    : source_(source), max_line_bytes_(max_line_bytes), chunk_bytes_(std::max<size_t>(chunk_bytes, 16)) {}

bool LineReader::Fill() {
  if (eof_) return false;
  if (begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    scan_pos_ -= begin_;
    begin_ = 0;
  }
  // end_ <= max_line_bytes_ here, so this bounds the buffer at max_line + one chunk.
  if (buf_.size() - end_ < chunk_bytes_) {
    const size_t need = end_ + chunk_bytes_;
    if (buf_.capacity() < need) {
      // Grow geometrically but never past the documented bound.
      buf_.reserve(std::min(std::max(need, 2 * buf_.capacity()), max_line_bytes_ + chunk_bytes_));
    }
    buf_.resize(need);
  }
  Result<size_t> got = source_->Read(buf_.data() + end_, chunk_bytes_);
  if (!got.ok()) {
    status_ = got.status();
    eof_ = true;
    return false;
  }
  if (*got == 0) {
    eof_ = true;
    return false;
  }
  end_ += *got;
  return true;
}

bool LineReader::Next(Line* line) {
  for (;;) {
    const char* nl = nullptr;
    if (scan_pos_ < end_) {
      nl = static_cast<const char*>(std::memchr(buf_.data() + scan_pos_, '\n', end_ - scan_pos_));
    }
    if (nl != nullptr) {
      const size_t len = static_cast<size_t>(nl - (buf_.data() + begin_));
      if (len > max_line_bytes_) {
        // The whole over-long line happens to be buffered: skip it all the same.
        *line = Line{{}, next_number_++, stream_offset_, len, true};
      } else {
        size_t text_len = len;
        if (text_len > 0 && buf_[begin_ + text_len - 1] == '\r') --text_len;
        *line = Line{std::string_view(buf_.data() + begin_, text_len), next_number_++,
                     stream_offset_, len, false};
      }
      begin_ += len + 1;
      stream_offset_ += len + 1;
      scan_pos_ = begin_;
      return true;
    }
    scan_pos_ = end_;
    if (eof_) {
      if (begin_ < end_ && status_.ok()) {
        const size_t len = end_ - begin_;
        *line = Line{std::string_view(buf_.data() + begin_, len), next_number_++, stream_offset_,
                     len, false};
        stream_offset_ += len;
        begin_ = end_ = scan_pos_ = 0;
        return true;
      }
      return false;
    }
    if (end_ - begin_ > max_line_bytes_) {
      // Stream past the rest of the line one chunk at a time.
      const uint64_t line_offset = stream_offset_;
      uint64_t length = end_ - begin_;
      begin_ = end_ = scan_pos_ = 0;
      bool found = false;
      while (!found) {
        if (buf_.size() < chunk_bytes_) buf_.resize(chunk_bytes_);
        Result<size_t> got = source_->Read(buf_.data(), chunk_bytes_);
        if (!got.ok()) {
          status_ = got.status();
          eof_ = true;
          break;
        }
        if (*got == 0) {
          eof_ = true;
          break;
        }
        const char* p = static_cast<const char*>(std::memchr(buf_.data(), '\n', *got));
        if (p != nullptr) {
          const size_t k = static_cast<size_t>(p - buf_.data());
          length += k;
          begin_ = scan_pos_ = k + 1;
          end_ = *got;
          found = true;
        } else {
          length += *got;
        }
      }
      *line = Line{{}, next_number_++, line_offset, length, true};
      stream_offset_ = line_offset + length + (found ? 1 : 0);
      return true;
    }
    Fill();
  }
}

}  // namespace tracemark::scan
