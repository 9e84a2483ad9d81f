// The keyring: versioned 256-bit master secrets and the HKDF-SHA256 derivation of every key the
// watermark uses (docs/formats/keyring.md is the normative description of file and labels).
//
// One version = one master secret + the scheme spec it watermarks with. Rotation appends a
// version and makes it active; old versions stay in the file so their outputs stay detectable.
// Derived keys (per version and scheme: a context key and a provider detection key; per account:
// an account key) are computed on demand and never stored. Secrets never appear in messages or
// ToString(); only 64-bit fingerprints (one HKDF output, not invertible) are printable.
// A Keyring is immutable after Load/Parse; const methods are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/crypto/crypto.h"

namespace tracemark::watermark {

inline constexpr size_t kMasterSecretBytes = 32;
inline constexpr int kMaxKeyVersions = 1024;
inline constexpr int kKeyringFormatVersion = 1;

struct KeyVersion {
  int version = 0;                 // 1, 2, ...
  std::string created;             // UTC, ISO 8601
  std::string scheme;              // canonical scheme spec (scheme.h), e.g. "gumbel:h=4,..."
  crypto::SecretBytes master;      // 32 bytes
  crypto::SecretBytes prk;         // HKDF-Extract(salt, master), cached
  std::shared_ptr<const crypto::HmacSha256Key> prk_mac;  // HMAC keyed with prk (fast Expand)
};

// The keys one (version, scheme) needs, as 64-bit PRF keys (low 8 bytes of 32-byte HKDF outputs).
struct SchemeKeys {
  uint64_t context_key = 0;    // context hashing and lane selection
  uint64_t provider_key = 0;   // provider lane and payload digits (shared by all accounts)
};

class Keyring {
 public:
  // Loads a keyring file (refused if group/other-accessible, see crypto/key_file.h).
  static Result<Keyring> Load(const std::string& path);
  static Result<Keyring> Parse(std::string_view text);
  // Creates `path` (must not exist) with one fresh version from the OS CSPRNG.
  static Result<Keyring> Create(const std::string& path, std::string_view scheme_spec);
  // Adds a fresh version with `scheme_spec` (empty: the active version's), makes it active and
  // rewrites `path` atomically.
  Status Rotate(const std::string& path, std::string_view scheme_spec);
  // Builds a keyring in memory from a given secret (tests, simulations).
  static Result<Keyring> FromSecret(std::span<const uint8_t> master, std::string_view scheme_spec);

  std::string Serialize() const;  // the file content (contains secrets: write it to 0600 files only)
  // One line per version: version, created, scheme, fingerprint, active flag. No secrets.
  std::string Describe() const;

  int active_version() const { return active_; }
  const std::vector<KeyVersion>& versions() const { return versions_; }
  const KeyVersion* Find(int version) const;

  Result<SchemeKeys> DeriveSchemeKeys(int version) const;
  Result<uint64_t> DeriveAccountKey(int version, uint64_t account_id) const;
  // A public 16-hex-digit identifier of a version's secret.
  Result<std::string> Fingerprint(int version) const;

 private:
  Result<crypto::SecretBytes> Expand(const KeyVersion& v, const std::string& label) const;
  std::vector<KeyVersion> versions_;
  int active_ = 0;
};

}  // namespace tracemark::watermark
