#include "tracemark/crypto/key_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <openssl/crypto.h>

#include "tracemark/base/file.h"

namespace tracemark::crypto {
namespace {

std::string ModeString(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Status WriteAll(int fd, std::string_view content, const std::string& path) {
  size_t off = 0;
  while (off < content.size()) {
    const ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot write '" + path + "': " + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return IoError("cannot fsync '" + path + "': " + std::strerror(errno));
  return Status::Ok();
}

}  // namespace

Result<std::string> ReadSecretFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) {
    if (errno == ENOENT) {
      return NotFound("keyring '" + path + "' does not exist; create one with: tracemark keyring init " + path);
    }
    return IoError("cannot open keyring '" + path + "': " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return IoError("cannot stat keyring '" + path + "': " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return InvalidArgument("keyring '" + path + "' is not a regular file");
  if (st.st_uid != ::geteuid()) {
    return PermissionDenied("keyring '" + path + "' belongs to uid " + std::to_string(st.st_uid) +
                            ", not to the user running tracemark (uid " +
                            std::to_string(::geteuid()) + "); copy it into a file you own with mode 0600");
  }
  if ((st.st_mode & 077) != 0) {
    return PermissionDenied("keyring '" + path + "' has mode " + ModeString(st.st_mode) +
                            " and is accessible by group or others; the secret may have leaked. "
                            "Fix: chmod 600 " + path + " (and rotate the key if others could read it)");
  }
  if (static_cast<size_t>(st.st_size) > kMaxSecretFileBytes) {
    return ResourceExhausted("keyring '" + path + "' is larger than " +
                             std::to_string(kMaxSecretFileBytes) + " bytes; it is not a keyring");
  }
  // Read through the descriptor that was checked (no second open: no symlink or swap race).
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot read keyring '" + path + "': " + std::strerror(errno));
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > kMaxSecretFileBytes) {
      return ResourceExhausted("keyring '" + path + "' is larger than " +
                               std::to_string(kMaxSecretFileBytes) + " bytes; it is not a keyring");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  OPENSSL_cleanse(buf, sizeof(buf));
  return out;
}

Status CreateSecretFile(const std::string& path, std::string_view content) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) {
    if (errno == EEXIST) {
      return InvalidArgument("'" + path + "' already exists; refusing to overwrite a keyring "
                             "(use `tracemark keyring rotate` to add a key version)");
    }
    return IoError("cannot create '" + path + "': " + std::strerror(errno));
  }
  // The umask may have cleared bits but never adds any; make the mode exact anyway.
  if (::fchmod(fd.get(), 0600) != 0) {
    return IoError("cannot chmod '" + path + "': " + std::strerror(errno));
  }
  Status s = WriteAll(fd.get(), content, path);
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

Status ReplaceSecretFile(const std::string& path, std::string_view content) {
  return WriteFileAtomic(path, content, 0600);
}

}  // namespace tracemark::crypto
