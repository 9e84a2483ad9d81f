#include "tracemark/crypto/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace tracemark::crypto {

SecretBytes& SecretBytes::operator=(const SecretBytes& other) {
  if (this != &other) {
    Clear();
    bytes_ = other.bytes_;
  }
  return *this;
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept : bytes_(std::move(other.bytes_)) {
  other.bytes_.clear();
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Clear();
    bytes_ = std::move(other.bytes_);
    other.bytes_.clear();
  }
  return *this;
}

SecretBytes::~SecretBytes() { Clear(); }

void SecretBytes::Clear() {
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
  bytes_.clear();
}

uint64_t SecretBytes::Low64() const {
  if (bytes_.size() < 8) return 0;
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | bytes_[static_cast<size_t>(i)];
  return v;
}

Digest Sha256(std::span<const uint8_t> data) {
  Digest out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

Digest Sha256(std::string_view data) { return Sha256(AsBytes(data)); }

Digest HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data) {
  Digest out{};
  unsigned int len = 0;
  static const uint8_t kEmpty = 0;
  HMAC(EVP_sha256(), key.empty() ? &kEmpty : key.data(), static_cast<int>(key.size()),
       data.empty() ? &kEmpty : data.data(), data.size(), out.data(), &len);
  return out;
}

namespace {
struct KdfDeleter {
  void operator()(EVP_KDF* k) const { EVP_KDF_free(k); }
};
struct KdfCtxDeleter {
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};

// One EVP_KDF "HKDF" call in the given mode (extract only or expand only).
Result<SecretBytes> RunHkdf(int mode, std::span<const uint8_t> key, std::span<const uint8_t> salt,
                            std::span<const uint8_t> info, size_t length) {
  std::unique_ptr<EVP_KDF, KdfDeleter> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  if (!kdf) return Internal("crypto: OpenSSL has no HKDF implementation");
  std::unique_ptr<EVP_KDF_CTX, KdfCtxDeleter> ctx(EVP_KDF_CTX_new(kdf.get()));
  if (!ctx) return Internal("crypto: cannot allocate an HKDF context");
  static uint8_t kEmpty = 0;
  char digest[] = "SHA256";
  OSSL_PARAM params[6];
  int n = 0;
  int mode_value = mode;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode_value);
  params[n++] = OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_KEY, key.empty() ? &kEmpty : const_cast<uint8_t*>(key.data()), key.size());
  if (mode == EVP_KDF_HKDF_MODE_EXTRACT_ONLY) {
    params[n++] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, salt.empty() ? &kEmpty : const_cast<uint8_t*>(salt.data()),
        salt.size());
  } else {
    params[n++] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_INFO, info.empty() ? &kEmpty : const_cast<uint8_t*>(info.data()),
        info.size());
  }
  params[n] = OSSL_PARAM_construct_end();
  SecretBytes out(length);
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) {
    return Internal("crypto: HKDF derivation failed in OpenSSL");
  }
  return out;
}
}  // namespace

Result<SecretBytes> HkdfExtract(std::span<const uint8_t> salt, std::span<const uint8_t> ikm) {
  return RunHkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, ikm, salt, {}, kSha256Bytes);
}

Result<SecretBytes> HkdfExpand(std::span<const uint8_t> prk, std::span<const uint8_t> info,
                               size_t length) {
  if (length == 0 || length > kHkdfMaxOutputBytes) {
    return InvalidArgument("crypto: HKDF-Expand length " + std::to_string(length) +
                           " outside [1, " + std::to_string(kHkdfMaxOutputBytes) + "]");
  }
  if (prk.size() < kSha256Bytes) {
    return InvalidArgument("crypto: HKDF-Expand needs a PRK of at least 32 bytes");
  }
  return RunHkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, {}, info, length);
}

Result<std::unique_ptr<HmacSha256Key>> HmacSha256Key::Create(std::span<const uint8_t> key) {
  std::unique_ptr<HmacSha256Key> k(new HmacSha256Key());
  k->mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (k->mac_ == nullptr) return Internal("crypto: OpenSSL has no HMAC implementation");
  k->ctx_ = EVP_MAC_CTX_new(k->mac_);
  if (k->ctx_ == nullptr) return Internal("crypto: cannot allocate an HMAC context");
  char digest[] = "SHA256";
  OSSL_PARAM params[2] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                          OSSL_PARAM_construct_end()};
  static const uint8_t kEmpty = 0;
  if (EVP_MAC_init(k->ctx_, key.empty() ? &kEmpty : key.data(), key.size(), params) != 1) {
    return Internal("crypto: HMAC key setup failed in OpenSSL");
  }
  return k;
}

HmacSha256Key::~HmacSha256Key() {
  EVP_MAC_CTX_free(ctx_);
  EVP_MAC_free(mac_);
}

Result<Digest> HmacSha256Key::Mac(std::span<const uint8_t> a, std::span<const uint8_t> b) const {
  EVP_MAC_CTX* c = EVP_MAC_CTX_dup(ctx_);
  if (c == nullptr) return Internal("crypto: cannot duplicate an HMAC context");
  Digest out{};
  size_t len = 0;
  const bool ok = EVP_MAC_update(c, a.data(), a.size()) == 1 &&
                  EVP_MAC_update(c, b.data(), b.size()) == 1 &&
                  EVP_MAC_final(c, out.data(), &len, out.size()) == 1 && len == out.size();
  EVP_MAC_CTX_free(c);
  if (!ok) return Internal("crypto: HMAC computation failed in OpenSSL");
  return out;
}

bool ConstantTimeEqual(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Status RandomBytes(std::span<uint8_t> out) {
  size_t off = 0;
  while (off < out.size()) {
    const ssize_t n = ::getrandom(out.data() + off, out.size() - off, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError(std::string("crypto: getrandom failed: ") + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  return Status::Ok();
}

std::string HexEncode(std::span<const uint8_t> bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

Result<SecretBytes> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return InvalidArgument("hex string has an odd number of digits");
  SecretBytes out(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); ++i) {
    const char c = hex[i];
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    } else {
      return InvalidArgument("hex string contains a non-hex character at offset " +
                             std::to_string(i));
    }
    uint8_t& b = out.data()[i / 2];
    b = static_cast<uint8_t>(i % 2 == 0 ? v << 4 : (b | v));
  }
  return out;
}

}  // namespace tracemark::crypto
