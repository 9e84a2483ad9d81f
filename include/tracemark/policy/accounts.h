// Accounts and API keys: creation (key shown once), authentication, key revocation and
// rotation, and state transitions, each admin or enforcement action appended to the audit log.
//
// API keys look like "tm-<key id: 16 hex>-<secret: 43 base62>" (typed prefix for secret
// scanners, public key id for O(1) lookup and redacted display). Only HMAC-SHA256(pepper, key)
// is stored; the pepper is derived from the server keyring (DeriveServerSecrets) and never
// written to the database, so a stolen database alone does not let anyone test key guesses.
// Comparison is constant-time.
//
// Thread-safety: AccountService methods may be called from any thread (the store and audit
// log serialize). AuthCache is safe from any thread (a shared mutex; Refresh replaces the maps).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/crypto/crypto.h"
#include "tracemark/ledger/audit_log.h"
#include "tracemark/ledger/store.h"
#include "tracemark/policy/account_state.h"
#include "tracemark/policy/rate_limiter.h"

namespace tracemark::policy {

inline constexpr std::string_view kApiKeyPrefix = "tm-";
inline constexpr size_t kKeyIdChars = 16;
inline constexpr size_t kKeySecretChars = 43;  // ~256 bits of base62
inline constexpr size_t kApiKeyChars = 3 + kKeyIdChars + 1 + kKeySecretChars;

// Account ids are 1, 2, ... and double as the watermark payload id (2^20 ids with the default
// scheme's 5 hex digits).
inline constexpr uint64_t kMaxAccounts = 1 << 20;

// Default limits of a new account (overridable at creation).
inline constexpr int64_t kDefaultRequestsPerMinute = 600;
inline constexpr int64_t kDefaultTokensPerMinute = 200'000;
inline constexpr size_t kMaxOrgBytes = 200;

// Secrets the server derives from the keyring master secret with HKDF-SHA256
// (salt "tracemark/v1/server", info "api-key-pepper" / "audit-ed25519-seed").
struct ServerSecrets {
  crypto::SecretBytes api_key_pepper;      // 32 bytes
  crypto::SecretBytes audit_signing_seed;  // 32 bytes, Ed25519 private key
};
Result<ServerSecrets> DeriveServerSecrets(std::span<const uint8_t> master_secret);

struct ParsedApiKey {
  std::string key_id;
};
// Checks the shape of a presented key; returns its key id.
Result<ParsedApiKey> ParseApiKey(std::string_view key);
// "tm-0123456789abcdef-****...wXyZ": safe for logs and error messages.
std::string RedactApiKey(std::string_view key);

struct NewAccount {
  ledger::AccountRecord account;
  std::string api_key;  // shown once
  std::string key_id;
};

class AccountService {
 public:
  // Objects are not owned. Fails if the pepper does not match the one the ledger was created
  // with (a different keyring would make every stored key unusable).
  static Result<std::unique_ptr<AccountService>> Create(ledger::LedgerStore* store,
                                                        crypto::SecretBytes pepper,
                                                        ledger::AuditLog* audit, const Clock* clock);

  // `org`: optional organization / payment attribute (at most kMaxOrgBytes), stored with the
  // account and used by the distillation monitor to link accounts.
  Result<NewAccount> CreateAccount(std::string_view name, const ledger::AccountLimits& limits,
                                   std::string_view actor, std::string_view org = "");
  // A new key for an existing account (rotation: create, deploy, then RevokeKey the old one).
  Result<NewAccount> CreateKey(std::string_view account_id, std::string_view actor);
  Status RevokeKey(std::string_view key_id, std::string_view actor, std::string_view reason);
  // Moves the account to `to` if the transition table allows it; audit-logged.
  Status Transition(std::string_view account_id, AccountState to, std::string_view actor,
                    std::string_view reason, std::string_view evidence_sha256 = "");
  Status SetLimits(std::string_view account_id, const ledger::AccountLimits& limits,
                   std::string_view actor, std::string_view reason);

  // HMAC-SHA256(pepper, key).
  ledger::Hash KeyHmac(std::string_view key) const;
  ledger::LedgerStore* store() const { return store_; }

 private:
  AccountService(ledger::LedgerStore* store, crypto::SecretBytes pepper, ledger::AuditLog* audit,
                 const Clock* clock)
      : store_(store), pepper_(std::move(pepper)), audit_(audit), clock_(clock) {}
  Result<std::string> NewKey(std::string_view account_id, std::string* key_id);
  Status Audit(std::string_view actor, std::string_view action, std::string_view target,
               std::string_view reason, std::string_view evidence = "");

  ledger::LedgerStore* store_;
  crypto::SecretBytes pepper_;
  ledger::AuditLog* audit_;
  const Clock* clock_;
};

enum class AuthError { kNone, kMissingKey, kInvalidKey, kSuspended, kTerminated };

struct AuthResult {
  AuthError error = AuthError::kNone;
  std::string key_id;
  ledger::AccountRecord account;  // valid when error is kNone, kSuspended or kTerminated
  AccountState state = AccountState::kActive;
};

// In-memory view of accounts and keys for the request path: no database round trip per
// request. Refresh() reloads everything (the server calls it every kAuthRefreshInterval, so a
// suspension made by another process or replica takes effect within that bound); a key id not
// in the cache is looked up once in the store.
inline constexpr int64_t kAuthRefreshIntervalMs = 500;

class AuthCache {
 public:
  AuthCache(const AccountService* service) : service_(service) {}  // not owned
  Status Refresh();
  AuthResult Authenticate(std::string_view api_key);
  std::vector<ledger::AccountRecord> Accounts() const;

 private:
  const AccountService* service_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, ledger::ApiKeyRecord> keys_;
  std::unordered_map<std::string, ledger::AccountRecord> accounts_;
};

}  // namespace tracemark::policy
