// Server secrets from the keyring: see include/tracemark/policy/server_keys.h.
#include "tracemark/policy/server_keys.h"

#include <cstdlib>

namespace tracemark::policy {

Result<std::string> ResolveKeyringPath(const std::string& explicit_path, ledger::LedgerStore& store) {
  if (!explicit_path.empty()) return explicit_path;
  if (const char* env = std::getenv(kKeyringEnv); env && *env) return std::string(env);
  TM_ASSIGN_OR_RETURN(std::optional<std::string> recorded, store.GetMeta(kKeyringPathMeta));
  if (recorded && !recorded->empty()) return *recorded;
  return InvalidArgument(
      "no keyring given: pass --keyring FILE, set TRACEMARK_KEYRING, or start `tracemark serve` "
      "once with this --db so it records its keyring");
}

Result<ServerSecrets> ServerSecretsFromKeyring(const watermark::Keyring& keyring) {
  if (keyring.versions().empty()) return InvalidArgument("the keyring has no versions");
  return DeriveServerSecrets(keyring.versions().front().master.span());
}

Result<AdminContext> OpenAdminContext(const std::string& db_url, const std::string& keyring_path) {
  AdminContext c;
  TM_ASSIGN_OR_RETURN(c.store, ledger::OpenLedgerStore(db_url));
  TM_ASSIGN_OR_RETURN(std::string path, ResolveKeyringPath(keyring_path, *c.store));
  TM_ASSIGN_OR_RETURN(watermark::Keyring keyring, watermark::Keyring::Load(path));
  TM_ASSIGN_OR_RETURN(ServerSecrets secrets, ServerSecretsFromKeyring(keyring));
  TM_ASSIGN_OR_RETURN(c.signer, ledger::AuditSigner::FromSeed(secrets.audit_signing_seed.span()));
  c.audit = std::make_unique<ledger::AuditLog>(c.store.get(), c.signer.get());
  c.clock = std::make_unique<SystemClock>();
  TM_ASSIGN_OR_RETURN(c.accounts, AccountService::Create(c.store.get(), secrets.api_key_pepper,
                                                         c.audit.get(), c.clock.get()));
  return c;
}

}  // namespace tracemark::policy
