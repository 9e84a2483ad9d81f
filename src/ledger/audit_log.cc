// Tamper-evident audit log: see include/tracemark/ledger/audit_log.h.
#include "tracemark/ledger/audit_log.h"

#include <openssl/evp.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

namespace tracemark::ledger {
namespace {

constexpr size_t kEd25519KeyBytes = 32;
constexpr size_t kEd25519SigBytes = 64;
constexpr const char* kPublicKeyMeta = "audit_public_key";

std::string Base64(std::span<const uint8_t> bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool Base64Decode32(std::string_view text, Hash& out) {
  if (text.size() != 44) return false;
  unsigned char buf[33];
  const int n = EVP_DecodeBlock(buf, reinterpret_cast<const unsigned char*>(text.data()), 44);
  if (n != 33 || text[43] != '=') return false;
  std::memcpy(out.data(), buf, 32);
  return true;
}

// Parses "origin\nsize\nbase64root\n".
bool ParseNote(std::string_view note, uint64_t& size, Hash& root) {
  const size_t a = note.find('\n');
  if (a == std::string_view::npos || note.substr(0, a) != kAuditOrigin) return false;
  const size_t b = note.find('\n', a + 1);
  if (b == std::string_view::npos) return false;
  const std::string_view size_text = note.substr(a + 1, b - a - 1);
  if (size_text.empty() || size_text.size() > 19) return false;
  size = 0;
  for (char c : size_text) {
    if (c < '0' || c > '9') return false;
    size = size * 10 + static_cast<uint64_t>(c - '0');
  }
  const size_t c = note.find('\n', b + 1);
  if (c == std::string_view::npos || c + 1 != note.size()) return false;
  return Base64Decode32(note.substr(b + 1, c - b - 1), root);
}

}  // namespace

Result<std::unique_ptr<AuditSigner>> AuditSigner::FromSeed(std::span<const uint8_t> seed) {
  if (seed.size() != kEd25519KeyBytes) {
    return InvalidArgument("audit signing seed must be 32 bytes, got " +
                           std::to_string(seed.size()));
  }
  EVP_PKEY* pkey =
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size());
  if (!pkey) return Internal("OpenSSL refused the Ed25519 private key");
  std::unique_ptr<AuditSigner> signer(new AuditSigner());
  signer->pkey_ = pkey;
  size_t len = kEd25519KeyBytes;
  if (EVP_PKEY_get_raw_public_key(pkey, signer->public_key_.data(), &len) != 1 ||
      len != kEd25519KeyBytes) {
    return Internal("OpenSSL could not derive the Ed25519 public key");
  }
  return signer;
}

AuditSigner::~AuditSigner() { EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey_)); }

Result<std::string> AuditSigner::Sign(std::string_view message) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::string sig(kEd25519SigBytes, '\0');
  size_t len = sig.size();
  const bool ok =
      ctx && EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(pkey_)) == 1 &&
      EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok || len != kEd25519SigBytes) return Internal("Ed25519 signing failed");
  return sig;
}

bool VerifyEd25519(std::span<const uint8_t> public_key, std::string_view message,
                   std::string_view signature) {
  if (public_key.size() != kEd25519KeyBytes || signature.size() != kEd25519SigBytes) return false;
  EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, public_key.data(),
                                               public_key.size());
  if (!pkey) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      ctx && EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pkey) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pkey);
  return ok;
}

std::string CanonicalAuditEntry(uint64_t index, const AuditEvent& e) {
  nlohmann::json j;  // std::map-backed object: keys come out sorted
  j["index"] = index;
  j["time_ms"] = e.time_ms;
  j["actor"] = e.actor;
  j["action"] = e.action;
  j["target"] = e.target;
  j["reason"] = e.reason;
  j["evidence_sha256"] = e.evidence_sha256.empty() ? nlohmann::json() : nlohmann::json(e.evidence_sha256);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string CheckpointNote(uint64_t tree_size, const Hash& root) {
  return std::string(kAuditOrigin) + "\n" + std::to_string(tree_size) + "\n" + Base64(root) + "\n";
}

Result<uint64_t> AuditLog::Append(const AuditEvent& event) {
  const std::string pub_hex = HexEncode(signer_->public_key());
  TM_ASSIGN_OR_RETURN(std::optional<std::string> recorded, store_->GetMeta(kPublicKeyMeta));
  if (!recorded) {
    TM_RETURN_IF_ERROR(store_->SetMeta(kPublicKeyMeta, pub_hex));
  } else if (*recorded != pub_hex) {
    return PermissionDenied("audit log is signed with public key " + *recorded +
                            " but this server's keyring gives " + pub_hex +
                            "; use the keyring the log was created with");
  }
  AuditEvent e = event;
  if (e.time_ms == 0) {
    e.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  }
  const int64_t now_ms = e.time_ms;
  // O(log n) with a store that keeps the Merkle frontier (the SQLite store does).
  return store_->AppendAuditRoot(
      [&](uint64_t index) { return CanonicalAuditEntry(index, e); },
      [&](uint64_t tree_size, const Hash& root) -> Result<CheckpointRow> {
        CheckpointRow cp;
        cp.tree_size = tree_size;
        cp.note = CheckpointNote(cp.tree_size, root);
        TM_ASSIGN_OR_RETURN(cp.signature, signer_->Sign(cp.note));
        cp.created_at_ms = now_ms;
        return cp;
      });
}

Result<AuditVerifyReport> VerifyAuditLog(
    LedgerStore& store, const std::optional<std::array<uint8_t, 32>>& pinned_public_key) {
  AuditVerifyReport report;
  TM_ASSIGN_OR_RETURN(std::vector<AuditRow> rows, store.ReadAudit());
  TM_ASSIGN_OR_RETURN(std::vector<CheckpointRow> checkpoints, store.ReadCheckpoints());
  report.entries = rows.size();
  report.checkpoints = checkpoints.size();

  std::array<uint8_t, 32> pub{};
  if (pinned_public_key) {
    pub = *pinned_public_key;
    report.public_key_pinned = true;
  } else {
    TM_ASSIGN_OR_RETURN(std::optional<std::string> recorded, store.GetMeta(kPublicKeyMeta));
    if (!recorded || !HexDecode(*recorded, pub)) {
      if (!rows.empty()) report.problems.push_back("no audit public key recorded in the ledger");
    }
  }

  std::vector<Hash> leaves;
  leaves.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].index != i) {
      report.problems.push_back("entry index " + std::to_string(rows[i].index) + " found at position " +
                                std::to_string(i) + ": an entry was deleted or reordered");
    }
    // The body names its own index; a moved body is caught even if indexes were renumbered.
    nlohmann::json j = nlohmann::json::parse(rows[i].body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("index") ||
        !j["index"].is_number_unsigned() || j["index"].get<uint64_t>() != i) {
      report.problems.push_back("entry at position " + std::to_string(i) +
                                " does not carry index " + std::to_string(i));
    }
    leaves.push_back(LeafHash(rows[i].body));
  }

  uint64_t prev_size = 0;
  Hash prev_root = TreeHash({});
  for (const CheckpointRow& cp : checkpoints) {
    uint64_t size = 0;
    Hash root{};
    if (!ParseNote(cp.note, size, root) || size != cp.tree_size) {
      report.problems.push_back("checkpoint for size " + std::to_string(cp.tree_size) +
                                " is malformed");
      continue;
    }
    if (!VerifyEd25519(pub, cp.note, cp.signature)) {
      report.problems.push_back("checkpoint for size " + std::to_string(size) +
                                " has an invalid signature");
      continue;
    }
    if (size > leaves.size()) {
      report.problems.push_back("signed checkpoint covers " + std::to_string(size) +
                                " entries but only " + std::to_string(leaves.size()) +
                                " are stored: entries were deleted");
      continue;
    }
    const std::span<const Hash> prefix(leaves.data(), size);
    if (TreeHash(prefix) != root) {
      report.problems.push_back("entries 0.." + std::to_string(size) +
                                " do not hash to the signed root of checkpoint " +
                                std::to_string(size) + ": an entry was altered or removed");
      continue;
    }
    // Consistency with the previous valid checkpoint (RFC 6962 2.1.2 proof, RFC 9162 check).
    TM_ASSIGN_OR_RETURN(std::vector<Hash> proof, ConsistencyProof(prefix, prev_size));
    if (!VerifyConsistency(prev_size, size, prev_root, root, proof)) {
      report.problems.push_back("checkpoint " + std::to_string(size) +
                                " is not consistent with checkpoint " + std::to_string(prev_size));
      continue;
    }
    prev_size = size;
    prev_root = root;
  }
  report.signed_size = prev_size;
  if (prev_size < leaves.size()) {
    report.problems.push_back(std::to_string(leaves.size() - prev_size) +
                              " entries after the latest valid checkpoint are not signed");
  }
  // Inclusion proof of every signed entry against the latest valid checkpoint.
  const std::span<const Hash> signed_leaves(leaves.data(), prev_size);
  for (uint64_t i = 0; i < prev_size; ++i) {
    TM_ASSIGN_OR_RETURN(std::vector<Hash> proof, InclusionProof(signed_leaves, i));
    if (!VerifyInclusion(i, prev_size, leaves[i], proof, prev_root)) {
      report.problems.push_back("entry " + std::to_string(i) + " fails its inclusion proof");
    }
  }
  report.ok = report.problems.empty();
  return report;
}

}  // namespace tracemark::ledger
