// Plain, zstd and gzip streaming behind ByteSource (see byte_source.h).
#include "tracemark/scan/byte_source.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/stat.h>
#include <vector>

#include "fmt/format.h"

namespace tracemark::scan {
namespace {

constexpr unsigned char kZstdMagic[4] = {0x28, 0xB5, 0x2F, 0xFD};
constexpr unsigned char kGzipMagic[2] = {0x1F, 0x8B};

// The undecoded input: a file descriptor or a span of memory.
class RawInput {
 public:
  virtual ~RawInput() = default;
  virtual Result<size_t> Read(char* buf, size_t n) = 0;
  virtual uint64_t size() const = 0;
};

class FdInput final : public RawInput {
 public:
  FdInput(int fd, std::string path, uint64_t size) : fd_(fd), path_(std::move(path)), size_(size) {}
  ~FdInput() override { ::close(fd_); }
  Result<size_t> Read(char* buf, size_t n) override {
    for (;;) {
      const ssize_t r = ::read(fd_, buf, n);
      if (r >= 0) return static_cast<size_t>(r);
      if (errno == EINTR) continue;
      return IoError(fmt::format("read {}: {}", path_, std::strerror(errno)));
    }
  }
  uint64_t size() const override { return size_; }

 private:
  int fd_;
  std::string path_;
  uint64_t size_;
};

class MemoryInput final : public RawInput {
 public:
  explicit MemoryInput(std::string_view data) : data_(data) {}
  Result<size_t> Read(char* buf, size_t n) override {
    const size_t k = std::min(n, data_.size() - pos_);
    std::memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return k;
  }
  uint64_t size() const override { return data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

// One class for the three encodings: the input buffer and the limits are shared.
class StreamSource final : public ByteSource {
 public:
  StreamSource(std::unique_ptr<RawInput> raw, const ReaderLimits& limits)
      : raw_(std::move(raw)), limits_(limits), in_(std::max<size_t>(limits.read_chunk_bytes, 16)) {}
  ~StreamSource() override {
    if (zstd_ != nullptr) ZSTD_freeDStream(zstd_);
    if (zlib_ready_) inflateEnd(&zlib_);
  }

  Status Init() {
    // Fill enough of the input to see the magic bytes.
    while (in_len_ < 4 && !raw_eof_) TM_RETURN_IF_ERROR(Refill());
    compression_ = DetectCompression(std::string_view(in_.data(), in_len_));
    if (compression_ == Compression::kZstd) {
      zstd_ = ZSTD_createDStream();
      if (zstd_ == nullptr) return Internal("zstd: cannot create a decompression stream");
      ZSTD_initDStream(zstd_);
    } else if (compression_ == Compression::kGzip) {
      std::memset(&zlib_, 0, sizeof(zlib_));
      if (inflateInit2(&zlib_, 16 + MAX_WBITS) != Z_OK) return Internal("zlib: inflateInit2 failed");
      zlib_ready_ = true;
    }
    return Status::Ok();
  }

  Result<size_t> Read(char* buf, size_t n) override {
    if (n == 0 || done_) return size_t{0};
    Result<size_t> r = size_t{0};
    switch (compression_) {
      case Compression::kNone: r = ReadPlain(buf, n); break;
      case Compression::kZstd: r = ReadZstd(buf, n); break;
      case Compression::kGzip: r = ReadGzip(buf, n); break;
    }
    if (!r.ok()) {
      done_ = true;
      return r;
    }
    if (*r == 0) {
      done_ = true;
      return r;
    }
    out_total_ += *r;
    if (compression_ != Compression::kNone) {
      if (out_total_ > limits_.max_decompressed_bytes) {
        done_ = true;
        return ResourceExhausted(fmt::format(
            "{}: more than {} decompressed bytes (limit max_decompressed_bytes)",
            CompressionName(compression_), limits_.max_decompressed_bytes));
      }
      if (out_total_ > limits_.ratio_guard_min_bytes &&
          out_total_ / std::max<uint64_t>(raw_offset(), 1) > limits_.max_compression_ratio) {
        done_ = true;
        return ResourceExhausted(fmt::format(
            "{}: decompressed {} bytes from {} compressed bytes, over the ratio limit {} "
            "(decompression bomb?)",
            CompressionName(compression_), out_total_, raw_offset(), limits_.max_compression_ratio));
      }
    }
    return r;
  }

  uint64_t raw_offset() const override { return raw_total_ - (in_len_ - in_pos_); }
  uint64_t raw_size() const override { return raw_->size(); }
  Compression compression() const override { return compression_; }

 private:
  // Appends raw bytes to the input buffer (compacting it first).
  Status Refill() {
    if (in_pos_ > 0) {
      std::memmove(in_.data(), in_.data() + in_pos_, in_len_ - in_pos_);
      in_len_ -= in_pos_;
      in_pos_ = 0;
    }
    if (in_len_ == in_.size()) return Status::Ok();
    TM_ASSIGN_OR_RETURN(size_t got, raw_->Read(in_.data() + in_len_, in_.size() - in_len_));
    if (got == 0) raw_eof_ = true;
    in_len_ += got;
    raw_total_ += got;
    return Status::Ok();
  }

  Result<size_t> ReadPlain(char* buf, size_t n) {
    if (in_pos_ < in_len_) {
      const size_t k = std::min(n, in_len_ - in_pos_);
      std::memcpy(buf, in_.data() + in_pos_, k);
      in_pos_ += k;
      return k;
    }
    if (raw_eof_) return size_t{0};
    TM_ASSIGN_OR_RETURN(size_t got, raw_->Read(buf, n));
    if (got == 0) raw_eof_ = true;
    raw_total_ += got;
    return got;
  }

  Result<size_t> ReadZstd(char* buf, size_t n) {
    for (;;) {
      if (in_pos_ == in_len_) {
        if (!raw_eof_) {
          TM_RETURN_IF_ERROR(Refill());
          continue;
        }
        if (!zstd_frame_done_) {
          return InvalidArgument(fmt::format("zstd: truncated frame at end of input (byte {})",
                                             raw_offset()));
        }
        return size_t{0};
      }
      const size_t pos_before = in_pos_;
      ZSTD_inBuffer in{in_.data(), in_len_, in_pos_};
      ZSTD_outBuffer out{buf, n, 0};
      const size_t ret = ZSTD_decompressStream(zstd_, &out, &in);
      in_pos_ = in.pos;
      if (ZSTD_isError(ret)) {
        return InvalidArgument(fmt::format("zstd: {} near compressed byte {}",
                                           ZSTD_getErrorName(ret), raw_offset()));
      }
      zstd_frame_done_ = (ret == 0);
      if (out.pos > 0) return out.pos;
      if (in_pos_ == pos_before) {
        // No progress with input left: the decoder wants more than the buffer holds.
        if (raw_eof_ || (in_pos_ == 0 && in_len_ == in_.size())) {
          return InvalidArgument(fmt::format("zstd: decoder stalled near compressed byte {}",
                                             raw_offset()));
        }
        TM_RETURN_IF_ERROR(Refill());
      }
    }
  }

  Result<size_t> ReadGzip(char* buf, size_t n) {
    for (;;) {
      if (gzip_member_done_) {
        // Between members: the end, or the next member's header.
        if (in_pos_ == in_len_ && !raw_eof_) TM_RETURN_IF_ERROR(Refill());
        if (in_pos_ == in_len_ && raw_eof_) return size_t{0};
        if (inflateReset(&zlib_) != Z_OK) return Internal("zlib: inflateReset failed");
        gzip_member_done_ = false;
      }
      if (in_pos_ == in_len_ && !raw_eof_) TM_RETURN_IF_ERROR(Refill());
      if (in_pos_ == in_len_ && raw_eof_) {
        return InvalidArgument(fmt::format("gzip: truncated stream at end of input (byte {})",
                                           raw_offset()));
      }
      zlib_.next_in = reinterpret_cast<Bytef*>(in_.data() + in_pos_);
      zlib_.avail_in = static_cast<uInt>(in_len_ - in_pos_);
      zlib_.next_out = reinterpret_cast<Bytef*>(buf);
      zlib_.avail_out = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
      const uInt avail_out_before = zlib_.avail_out;
      const int ret = inflate(&zlib_, Z_NO_FLUSH);
      in_pos_ = in_len_ - zlib_.avail_in;
      const size_t produced = avail_out_before - zlib_.avail_out;
      if (ret == Z_STREAM_END) {
        gzip_member_done_ = true;
      } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
        return InvalidArgument(fmt::format("gzip: {} near compressed byte {}",
                                           zlib_.msg != nullptr ? zlib_.msg : "corrupt data",
                                           raw_offset()));
      }
      if (produced > 0) return produced;
      if (!gzip_member_done_ && in_pos_ == in_len_ && !raw_eof_) TM_RETURN_IF_ERROR(Refill());
    }
  }

  std::unique_ptr<RawInput> raw_;
  ReaderLimits limits_;
  std::vector<char> in_;
  size_t in_pos_ = 0;
  size_t in_len_ = 0;
  uint64_t raw_total_ = 0;
  bool raw_eof_ = false;
  bool done_ = false;
  uint64_t out_total_ = 0;
  Compression compression_ = Compression::kNone;
  ZSTD_DStream* zstd_ = nullptr;
  bool zstd_frame_done_ = true;
  z_stream zlib_;
  bool zlib_ready_ = false;
  bool gzip_member_done_ = false;
};

Result<std::unique_ptr<ByteSource>> Finish(std::unique_ptr<RawInput> raw,
                                           const ReaderLimits& limits) {
  auto src = std::make_unique<StreamSource>(std::move(raw), limits);
  TM_RETURN_IF_ERROR(src->Init());
  return std::unique_ptr<ByteSource>(std::move(src));
}

}  // namespace

Compression DetectCompression(std::string_view head) {
  if (head.size() >= 4 && std::memcmp(head.data(), kZstdMagic, 4) == 0) return Compression::kZstd;
  if (head.size() >= 2 && std::memcmp(head.data(), kGzipMagic, 2) == 0) return Compression::kGzip;
  return Compression::kNone;
}

const char* CompressionName(Compression c) {
  switch (c) {
    case Compression::kZstd: return "zstd";
    case Compression::kGzip: return "gzip";
    case Compression::kNone: break;
  }
  return "plain";
}

Result<std::unique_ptr<ByteSource>> OpenFileSource(const std::string& path,
                                                   const ReaderLimits& limits) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string msg = fmt::format("cannot open {}: {}", path, std::strerror(err));
    return err == ENOENT ? NotFound(std::move(msg)) : IoError(std::move(msg));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(fmt::format("{} is not a regular file", path));
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return Finish(std::make_unique<FdInput>(fd, path, static_cast<uint64_t>(st.st_size)), limits);
}

Result<std::unique_ptr<ByteSource>> OpenMemorySource(std::string_view data,
                                                     const ReaderLimits& limits) {
  return Finish(std::make_unique<MemoryInput>(data), limits);
}

}  // namespace tracemark::scan
