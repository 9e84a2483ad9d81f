// AuditLog: the tamper-evident log of admin and enforcement actions (who, what, why, evidence
// hash). Each entry is one canonical JSON object, a leaf of an RFC 6962 Merkle tree; every
// append also stores a checkpoint for the new tree size, signed with Ed25519 (OpenSSL 3) in the
// C2SP tlog-checkpoint note format. Verify() recomputes the tree from the stored entries and
// checks every checkpoint's signature and root, the consistency proofs between successive
// checkpoints and each entry's inclusion proof: a deleted, reordered or altered entry fails.
// Format: docs/formats/ledger.md.
//
// Thread-safety: Append() may be called from any thread and from several processes at once
// (the store serializes appends). An AuditSigner is immutable and thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/ledger/store.h"

namespace tracemark::ledger {

// The origin line of every checkpoint note.
inline constexpr std::string_view kAuditOrigin = "tracemark/audit/v1";

class AuditSigner {
 public:
  // seed: the 32-byte Ed25519 private key (RFC 8032), e.g. derived from the keyring with HKDF.
  static Result<std::unique_ptr<AuditSigner>> FromSeed(std::span<const uint8_t> seed);
  ~AuditSigner();
  AuditSigner(const AuditSigner&) = delete;
  AuditSigner& operator=(const AuditSigner&) = delete;

  Result<std::string> Sign(std::string_view message) const;
  const std::array<uint8_t, 32>& public_key() const { return public_key_; }

 private:
  AuditSigner() = default;
  void* pkey_ = nullptr;  // EVP_PKEY*
  std::array<uint8_t, 32> public_key_{};
};

bool VerifyEd25519(std::span<const uint8_t> public_key, std::string_view message,
                   std::string_view signature);

struct AuditEvent {
  std::string actor;     // "cli:<user>", "admin-api", "policy:auto"
  std::string action;    // "account.create", "account.suspend", "api_key.revoke", ...
  std::string target;    // account or key id
  std::string reason;    // free text from the operator
  std::string evidence_sha256;  // hex SHA-256 of the evidence bundle, "" when none
  int64_t time_ms = 0;
};

// The canonical entry bytes for an event at `index` (sorted keys, no spaces).
std::string CanonicalAuditEntry(uint64_t index, const AuditEvent& event);

// Builds the checkpoint note "origin\nsize\nbase64(root)\n".
std::string CheckpointNote(uint64_t tree_size, const Hash& root);

class AuditLog {
 public:
  // `store` and `signer` are not owned and must outlive the log. On first use the signer's
  // public key is recorded in the store's metadata (audit_public_key); a different key later
  // is refused, so a log is never signed by two keys.
  AuditLog(LedgerStore* store, const AuditSigner* signer) : store_(store), signer_(signer) {}

  Result<uint64_t> Append(const AuditEvent& event);

 private:
  LedgerStore* store_;
  const AuditSigner* signer_;
};

struct AuditVerifyReport {
  bool ok = false;
  uint64_t entries = 0;
  uint64_t checkpoints = 0;
  uint64_t signed_size = 0;           // size of the latest valid checkpoint
  bool public_key_pinned = false;     // true when checked against a key given by the caller
  std::vector<std::string> problems;  // one line each; empty when ok
};

// Verifies the whole log. `pinned_public_key`: the key the checkpoints must verify under (from
// the keyring); when absent the key recorded in the store is used and the report says so.
Result<AuditVerifyReport> VerifyAuditLog(LedgerStore& store,
                                         const std::optional<std::array<uint8_t, 32>>& pinned_public_key);

}  // namespace tracemark::ledger
