// Cryptographic primitives for keys: SHA-256, HMAC-SHA256, HKDF-SHA256 (RFC 5869) through
// OpenSSL 3, a constant-time comparison, the OS CSPRNG, and a byte buffer for secrets that is
// wiped when it dies.
//
// Every function is a pure computation on its arguments (RandomBytes reads the kernel CSPRNG) and
// is safe to call from any number of threads. SecretBytes is a value type without
// synchronization; it never prints itself, and its destructor overwrites the bytes.
#pragma once

#include <openssl/types.h>

#include <array>
#include <cstddef>
#include <memory>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tracemark/base/status.h"

namespace tracemark::crypto {

inline constexpr size_t kSha256Bytes = 32;
// RFC 5869: HKDF-Expand produces at most 255 hash blocks.
inline constexpr size_t kHkdfMaxOutputBytes = 255 * kSha256Bytes;

using Digest = std::array<uint8_t, kSha256Bytes>;

// Bytes that hold key material. Copyable (a copy is another secret to wipe); the destructor and
// Clear() overwrite the storage with OPENSSL_cleanse before it is released.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(size_t n) : bytes_(n, 0) {}
  explicit SecretBytes(std::span<const uint8_t> bytes) : bytes_(bytes.begin(), bytes.end()) {}
  SecretBytes(const SecretBytes&) = default;
  SecretBytes& operator=(const SecretBytes& other);
  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  ~SecretBytes();

  void Clear();
  size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  uint8_t* data() { return bytes_.data(); }
  const uint8_t* data() const { return bytes_.data(); }
  std::span<const uint8_t> span() const { return bytes_; }
  // The first 8 bytes as a little-endian integer (key for the counter-based PRF); 0 if shorter.
  uint64_t Low64() const;

 private:
  std::vector<uint8_t> bytes_;
};

Digest Sha256(std::span<const uint8_t> data);
Digest Sha256(std::string_view data);
Digest HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data);

// HKDF-Extract(salt, ikm) -> PRK (RFC 5869 section 2.2).
Result<SecretBytes> HkdfExtract(std::span<const uint8_t> salt, std::span<const uint8_t> ikm);
// HKDF-Expand(prk, info, length) -> OKM (RFC 5869 section 2.3); length <= kHkdfMaxOutputBytes.
Result<SecretBytes> HkdfExpand(std::span<const uint8_t> prk, std::span<const uint8_t> info,
                               size_t length);

// HMAC-SHA256 under a fixed key, keyed once: each Mac() duplicates the keyed OpenSSL context
// (about a microsecond), so per-account key derivation (HKDF-Expand with L = 32 is one HMAC
// block: T(1) = HMAC(PRK, info || 0x01)) stays cheap. Mac() is const and only reads the keyed
// context, so one instance may be shared by threads.
class HmacSha256Key {
 public:
  static Result<std::unique_ptr<HmacSha256Key>> Create(std::span<const uint8_t> key);
  ~HmacSha256Key();
  HmacSha256Key(const HmacSha256Key&) = delete;
  HmacSha256Key& operator=(const HmacSha256Key&) = delete;
  // HMAC(key, a || b).
  Result<Digest> Mac(std::span<const uint8_t> a, std::span<const uint8_t> b = {}) const;

 private:
  HmacSha256Key() = default;
  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* ctx_ = nullptr;
};

// Compares in time that depends only on the lengths (CRYPTO_memcmp).
bool ConstantTimeEqual(std::span<const uint8_t> a, std::span<const uint8_t> b);

// Fills `out` from the kernel CSPRNG (getrandom(2), blocking until it is seeded).
Status RandomBytes(std::span<uint8_t> out);

// Lower-case hex; HexDecode rejects odd lengths and non-hex characters.
std::string HexEncode(std::span<const uint8_t> bytes);
Result<SecretBytes> HexDecode(std::string_view hex);

inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace tracemark::crypto
