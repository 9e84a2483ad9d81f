// Loads the server's secrets from the keyring file: the API-key pepper and the audit-log
// Ed25519 seed, both derived (DeriveServerSecrets) from the keyring's FIRST version's master
// secret, so they stay the same when watermark keys rotate. Also resolves which keyring a
// command uses: the explicit path, else $TRACEMARK_KEYRING, else the path the server recorded
// in the ledger (meta key "keyring_path") when it started. Thread-compatible (start-up code).
#pragma once

#include <memory>
#include <string>

#include "tracemark/ledger/audit_log.h"
#include "tracemark/ledger/store.h"
#include "tracemark/policy/accounts.h"
#include "tracemark/watermark/keyring.h"

namespace tracemark::policy {

inline constexpr std::string_view kKeyringPathMeta = "keyring_path";
inline constexpr const char* kKeyringEnv = "TRACEMARK_KEYRING";

Result<std::string> ResolveKeyringPath(const std::string& explicit_path, ledger::LedgerStore& store);
Result<ServerSecrets> ServerSecretsFromKeyring(const watermark::Keyring& keyring);

// Everything an admin command needs, built from a store and a keyring.
struct AdminContext {
  std::unique_ptr<ledger::LedgerStore> store;
  std::unique_ptr<ledger::AuditSigner> signer;
  std::unique_ptr<ledger::AuditLog> audit;
  std::unique_ptr<SystemClock> clock;
  std::unique_ptr<AccountService> accounts;
};
Result<AdminContext> OpenAdminContext(const std::string& db_url, const std::string& keyring_path);

}  // namespace tracemark::policy
