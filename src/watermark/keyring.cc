#include "tracemark/watermark/keyring.h"

#include <openssl/crypto.h>

#include <ctime>
#include <string>

#include "tracemark/crypto/key_file.h"
#include "tracemark/watermark/scheme.h"

namespace tracemark::watermark {
namespace {

constexpr std::string_view kMagic = "tracemark-keyring";
constexpr std::string_view kExtractSalt = "tracemark/keyring/v1";
constexpr std::string_view kHeaderComment =
    "# tracemark keyring (format: docs/formats/keyring.md). SECRET: keep this file mode 0600.\n";

std::string NowUtc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<KeyVersion> MakeVersion(int version, std::string created, std::string scheme,
                               crypto::SecretBytes master) {
  if (master.size() != kMasterSecretBytes) {
    return InvalidArgument("keyring: version " + std::to_string(version) + " secret has " +
                           std::to_string(master.size()) + " bytes, expected " +
                           std::to_string(kMasterSecretBytes));
  }
  TM_ASSIGN_OR_RETURN(auto params, ParseSchemeSpec(scheme));
  KeyVersion v;
  v.version = version;
  v.created = std::move(created);
  v.scheme = params.ToSpec();
  TM_ASSIGN_OR_RETURN(v.prk, crypto::HkdfExtract(crypto::AsBytes(kExtractSalt), master.span()));
  TM_ASSIGN_OR_RETURN(auto mac, crypto::HmacSha256Key::Create(v.prk.span()));
  v.prk_mac = std::move(mac);
  v.master = std::move(master);
  return v;
}

std::vector<std::string_view> SplitSpaces(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

Result<int> ParsePositive(std::string_view s, std::string_view what) {
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9' || v > 1'000'000) {
      return InvalidArgument("keyring: " + std::string(what) + " '" + std::string(s) +
                             "' is not a positive integer");
    }
    v = v * 10 + (c - '0');
  }
  if (s.empty() || v <= 0) return InvalidArgument("keyring: " + std::string(what) + " must be positive");
  return v;
}

}  // namespace

Result<Keyring> Keyring::Parse(std::string_view text) {
  Keyring ring;
  bool have_magic = false;
  int line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    const auto f = SplitSpaces(line);
    const std::string where = "keyring line " + std::to_string(line_no);
    if (!have_magic) {
      if (f.size() != 2 || f[0] != kMagic) {
        return InvalidArgument(where + ": expected '" + std::string(kMagic) + " 1'; not a tracemark keyring");
      }
      if (f[1] != std::to_string(kKeyringFormatVersion)) {
        return Unimplemented(where + ": keyring format " + std::string(f[1]) +
                             " is not supported by this build (expects " +
                             std::to_string(kKeyringFormatVersion) + ")");
      }
      have_magic = true;
    } else if (f[0] == "active" && f.size() == 2) {
      TM_ASSIGN_OR_RETURN(ring.active_, ParsePositive(f[1], "active version"));
    } else if (f[0] == "key" && f.size() == 5) {
      TM_ASSIGN_OR_RETURN(int version, ParsePositive(f[1], "key version"));
      if (static_cast<int>(ring.versions_.size()) >= kMaxKeyVersions) {
        return ResourceExhausted(where + ": more than " + std::to_string(kMaxKeyVersions) + " key versions");
      }
      if (ring.Find(version) != nullptr) {
        return InvalidArgument(where + ": key version " + std::to_string(version) + " appears twice");
      }
      auto secret = crypto::HexDecode(f[4]);
      if (!secret.ok()) return InvalidArgument(where + ": the secret is not valid hex");
      auto v = MakeVersion(version, std::string(f[2]), std::string(f[3]), std::move(secret).value());
      if (!v.ok()) return v.status().WithContext(where);
      ring.versions_.push_back(std::move(v).value());
    } else {
      return InvalidArgument(where + ": unknown entry '" + std::string(f[0]) + "'");
    }
  }
  if (!have_magic) return InvalidArgument("keyring: empty file; not a tracemark keyring");
  if (ring.versions_.empty()) return InvalidArgument("keyring: no key versions");
  if (ring.active_ == 0) ring.active_ = ring.versions_.back().version;
  if (ring.Find(ring.active_) == nullptr) {
    return InvalidArgument("keyring: active version " + std::to_string(ring.active_) + " has no key");
  }
  return ring;
}

Result<Keyring> Keyring::Load(const std::string& path) {
  TM_ASSIGN_OR_RETURN(std::string text, crypto::ReadSecretFile(path));
  auto ring = Parse(text);
  OPENSSL_cleanse(text.data(), text.size());  // the file text holds the secrets in hex
  if (!ring.ok()) return ring.status().WithContext("'" + path + "'");
  return ring;
}

Result<Keyring> Keyring::FromSecret(std::span<const uint8_t> master, std::string_view scheme_spec) {
  Keyring ring;
  TM_ASSIGN_OR_RETURN(auto v, MakeVersion(1, NowUtc(), std::string(scheme_spec), crypto::SecretBytes(master)));
  ring.versions_.push_back(std::move(v));
  ring.active_ = 1;
  return ring;
}

Result<Keyring> Keyring::Create(const std::string& path, std::string_view scheme_spec) {
  crypto::SecretBytes master(kMasterSecretBytes);
  TM_RETURN_IF_ERROR(crypto::RandomBytes({master.data(), master.size()}));
  TM_ASSIGN_OR_RETURN(Keyring ring, FromSecret(master.span(), scheme_spec));
  std::string content = ring.Serialize();
  Status s = crypto::CreateSecretFile(path, content);
  OPENSSL_cleanse(content.data(), content.size());
  TM_RETURN_IF_ERROR(s);
  return ring;
}

Status Keyring::Rotate(const std::string& path, std::string_view scheme_spec) {
  const KeyVersion* active = Find(active_);
  const std::string scheme = scheme_spec.empty() ? active->scheme : std::string(scheme_spec);
  int next = 0;
  for (const auto& v : versions_) next = std::max(next, v.version);
  ++next;
  if (static_cast<int>(versions_.size()) >= kMaxKeyVersions) {
    return ResourceExhausted("keyring: already " + std::to_string(kMaxKeyVersions) + " versions");
  }
  crypto::SecretBytes master(kMasterSecretBytes);
  TM_RETURN_IF_ERROR(crypto::RandomBytes({master.data(), master.size()}));
  TM_ASSIGN_OR_RETURN(auto v, MakeVersion(next, NowUtc(), scheme, std::move(master)));
  versions_.push_back(std::move(v));
  const int old_active = active_;
  active_ = next;
  std::string content = Serialize();
  Status s = crypto::ReplaceSecretFile(path, content);
  OPENSSL_cleanse(content.data(), content.size());
  if (!s.ok()) {
    versions_.pop_back();
    active_ = old_active;
  }
  return s;
}

std::string Keyring::Serialize() const {
  std::string out(kHeaderComment);
  out += std::string(kMagic) + " " + std::to_string(kKeyringFormatVersion) + "\n";
  out += "active " + std::to_string(active_) + "\n";
  for (const auto& v : versions_) {
    out += "key " + std::to_string(v.version) + " " + v.created + " " + v.scheme + " " +
           crypto::HexEncode(v.master.span()) + "\n";
  }
  return out;
}

std::string Keyring::Describe() const {
  std::string out;
  for (const auto& v : versions_) {
    auto fp = Fingerprint(v.version);
    out += "version " + std::to_string(v.version) + (v.version == active_ ? " (active)" : "") +
           " created " + v.created + " scheme " + PublicSchemeSpec(v.scheme) + " fingerprint " +
           (fp.ok() ? *fp : std::string("?")) + "\n";
  }
  return out;
}

const KeyVersion* Keyring::Find(int version) const {
  for (const auto& v : versions_) {
    if (v.version == version) return &v;
  }
  return nullptr;
}

Result<crypto::SecretBytes> Keyring::Expand(const KeyVersion& v, const std::string& label) const {
  // HKDF-Expand(PRK, label, 32) = T(1) = HMAC(PRK, label || 0x01) (RFC 5869 section 2.3).
  static const uint8_t kCounter = 1;
  TM_ASSIGN_OR_RETURN(crypto::Digest block,
                      v.prk_mac->Mac(crypto::AsBytes(label), std::span<const uint8_t>(&kCounter, 1)));
  crypto::SecretBytes out(block);
  OPENSSL_cleanse(block.data(), block.size());
  return out;
}

Result<SchemeKeys> Keyring::DeriveSchemeKeys(int version) const {
  const KeyVersion* v = Find(version);
  if (v == nullptr) return NotFound("keyring: no key version " + std::to_string(version));
  const std::string suffix = "|version=" + std::to_string(v->version) + "|scheme=" + v->scheme;
  SchemeKeys keys;
  TM_ASSIGN_OR_RETURN(auto ctx, Expand(*v, "tracemark/v1/context" + suffix));
  TM_ASSIGN_OR_RETURN(auto prov, Expand(*v, "tracemark/v1/provider" + suffix));
  keys.context_key = ctx.Low64();
  keys.provider_key = prov.Low64();
  return keys;
}

Result<uint64_t> Keyring::DeriveAccountKey(int version, uint64_t account_id) const {
  const KeyVersion* v = Find(version);
  if (v == nullptr) return NotFound("keyring: no key version " + std::to_string(version));
  TM_ASSIGN_OR_RETURN(auto key, Expand(*v, "tracemark/v1/account|version=" + std::to_string(v->version) +
                                              "|scheme=" + v->scheme +
                                              "|account=" + std::to_string(account_id)));
  return key.Low64();
}

Result<std::string> Keyring::Fingerprint(int version) const {
  const KeyVersion* v = Find(version);
  if (v == nullptr) return NotFound("keyring: no key version " + std::to_string(version));
  TM_ASSIGN_OR_RETURN(auto fp, crypto::HkdfExpand(v->prk.span(),
                                                  crypto::AsBytes("tracemark/v1/fingerprint|version=" +
                                                                  std::to_string(v->version)),
                                                  8));
  return crypto::HexEncode(fp.span());
}

}  // namespace tracemark::watermark
