// Accounts, API keys and authentication: see include/tracemark/policy/accounts.h.
#include "tracemark/policy/accounts.h"

#include <cstring>
#include <mutex>

namespace tracemark::policy {
namespace {

constexpr std::string_view kBase62 =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kPepperCheckMeta = "api_key_pepper_check";
constexpr std::string_view kPepperCheckMessage = "tracemark pepper check v1";
constexpr std::string_view kServerSalt = "tracemark/v1/server";

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
bool IsBase62(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Uniform base62 characters by rejection sampling of random bytes.
Result<std::string> RandomBase62(size_t n) {
  std::string out;
  uint8_t buf[64];
  while (out.size() < n) {
    TM_RETURN_IF_ERROR(crypto::RandomBytes(buf));
    for (uint8_t b : buf) {
      if (b < 248 && out.size() < n) out.push_back(kBase62[b % 62]);  // 248 = 4 * 62
    }
  }
  return out;
}

Result<std::string> RandomHex(size_t n_bytes) {
  std::vector<uint8_t> buf(n_bytes);
  TM_RETURN_IF_ERROR(crypto::RandomBytes(buf));
  return crypto::HexEncode(buf);
}

}  // namespace

Result<ServerSecrets> DeriveServerSecrets(std::span<const uint8_t> master_secret) {
  if (master_secret.size() < 16) return InvalidArgument("keyring master secret is too short");
  TM_ASSIGN_OR_RETURN(crypto::SecretBytes prk,
                      crypto::HkdfExtract(crypto::AsBytes(kServerSalt), master_secret));
  ServerSecrets s;
  TM_ASSIGN_OR_RETURN(s.api_key_pepper,
                      crypto::HkdfExpand(prk.span(), crypto::AsBytes("api-key-pepper"), 32));
  TM_ASSIGN_OR_RETURN(s.audit_signing_seed,
                      crypto::HkdfExpand(prk.span(), crypto::AsBytes("audit-ed25519-seed"), 32));
  return s;
}

Result<ParsedApiKey> ParseApiKey(std::string_view key) {
  if (key.size() != kApiKeyChars || key.substr(0, kApiKeyPrefix.size()) != kApiKeyPrefix ||
      key[kApiKeyPrefix.size() + kKeyIdChars] != '-') {
    return InvalidArgument("malformed API key");
  }
  const std::string_view id = key.substr(kApiKeyPrefix.size(), kKeyIdChars);
  const std::string_view secret = key.substr(kApiKeyPrefix.size() + kKeyIdChars + 1);
  for (char c : id) {
    if (!IsHex(c)) return InvalidArgument("malformed API key");
  }
  for (char c : secret) {
    if (!IsBase62(c)) return InvalidArgument("malformed API key");
  }
  return ParsedApiKey{std::string(id)};
}

std::string RedactApiKey(std::string_view key) {
  // Like OpenAI's 401 message: a short head and the last 4 characters.
  if (key.size() < 12) return "****";
  const size_t head = std::min<size_t>(key.size() - 8, kApiKeyPrefix.size() + 5);
  return std::string(key.substr(0, head)) + "****" + std::string(key.substr(key.size() - 4));
}

Result<std::unique_ptr<AccountService>> AccountService::Create(ledger::LedgerStore* store,
                                                               crypto::SecretBytes pepper,
                                                               ledger::AuditLog* audit,
                                                               const Clock* clock) {
  if (pepper.size() < 16) return InvalidArgument("API key pepper is too short");
  const crypto::Digest check = crypto::HmacSha256(pepper.span(), crypto::AsBytes(kPepperCheckMessage));
  const std::string check_hex = crypto::HexEncode(check);
  TM_ASSIGN_OR_RETURN(std::optional<std::string> recorded, store->GetMeta(kPepperCheckMeta));
  if (!recorded) {
    TM_RETURN_IF_ERROR(store->SetMeta(kPepperCheckMeta, check_hex));
  } else if (!crypto::ConstantTimeEqual(crypto::AsBytes(*recorded), crypto::AsBytes(check_hex))) {
    return PermissionDenied(
        "this ledger's API keys were created with a different keyring; pass the keyring the "
        "ledger was created with (--keyring)");
  }
  return std::unique_ptr<AccountService>(new AccountService(store, std::move(pepper), audit, clock));
}

ledger::Hash AccountService::KeyHmac(std::string_view key) const {
  const crypto::Digest d = crypto::HmacSha256(pepper_.span(), crypto::AsBytes(key));
  ledger::Hash h;
  std::memcpy(h.data(), d.data(), h.size());
  return h;
}

Status AccountService::Audit(std::string_view actor, std::string_view action, std::string_view target,
                             std::string_view reason, std::string_view evidence) {
  if (!audit_) return Status::Ok();
  ledger::AuditEvent e{std::string(actor), std::string(action), std::string(target),
                       std::string(reason), std::string(evidence), clock_->NowMs()};
  return audit_->Append(e).status();
}

Result<std::string> AccountService::NewKey(std::string_view account_id, std::string* key_id) {
  TM_ASSIGN_OR_RETURN(std::string id, RandomHex(kKeyIdChars / 2));
  TM_ASSIGN_OR_RETURN(std::string secret, RandomBase62(kKeySecretChars));
  std::string key = std::string(kApiKeyPrefix) + id + "-" + secret;
  ledger::ApiKeyRecord rec;
  rec.key_id = id;
  rec.account_id = std::string(account_id);
  rec.secret_hmac = KeyHmac(key);
  rec.created_at_ms = clock_->NowMs();
  TM_RETURN_IF_ERROR(store_->InsertApiKey(rec));
  *key_id = id;
  return key;
}

Result<NewAccount> AccountService::CreateAccount(std::string_view name,
                                                 const ledger::AccountLimits& limits,
                                                 std::string_view actor, std::string_view org) {
  if (name.empty() || name.size() > 200) {
    return InvalidArgument("account name must be 1 to 200 characters");
  }
  if (org.size() > kMaxOrgBytes) {
    return InvalidArgument("org must be at most " + std::to_string(kMaxOrgBytes) + " bytes");
  }
  if (limits.requests_per_minute < 0 || limits.tokens_per_minute < 0 || limits.tokens_per_day < 0 ||
      limits.tokens_per_month < 0) {
    return InvalidArgument("limits must not be negative");
  }
  NewAccount out;
  out.account.name = std::string(name);
  out.account.state = std::string(AccountStateName(AccountState::kActive));
  out.account.created_at_ms = out.account.updated_at_ms = clock_->NowMs();
  out.account.limits = limits;
  out.account.org = std::string(org);
  TM_ASSIGN_OR_RETURN(out.account.id, store_->CreateAccount(out.account));
  if (out.account.id.size() > 7 || std::stoull(out.account.id) >= kMaxAccounts) {
    return ResourceExhausted("account id space of the watermark payload is exhausted");
  }
  TM_ASSIGN_OR_RETURN(out.api_key, NewKey(out.account.id, &out.key_id));
  TM_RETURN_IF_ERROR(Audit(actor, "account.create", out.account.id,
                           "name=" + out.account.name + (org.empty() ? "" : " org=" + out.account.org)));
  TM_RETURN_IF_ERROR(Audit(actor, "api_key.create", out.key_id, "account=" + out.account.id));
  return out;
}

Result<NewAccount> AccountService::CreateKey(std::string_view account_id, std::string_view actor) {
  TM_ASSIGN_OR_RETURN(std::optional<ledger::AccountRecord> acct, store_->GetAccount(account_id));
  if (!acct) return NotFound("no account with id '" + std::string(account_id) + "'");
  NewAccount out;
  out.account = *acct;
  TM_ASSIGN_OR_RETURN(out.api_key, NewKey(account_id, &out.key_id));
  TM_RETURN_IF_ERROR(Audit(actor, "api_key.create", out.key_id, "account=" + std::string(account_id)));
  return out;
}

Status AccountService::RevokeKey(std::string_view key_id, std::string_view actor, std::string_view reason) {
  TM_RETURN_IF_ERROR(store_->RevokeApiKey(key_id, clock_->NowMs()));
  return Audit(actor, "api_key.revoke", key_id, reason);
}

Status AccountService::Transition(std::string_view account_id, AccountState to, std::string_view actor,
                                  std::string_view reason, std::string_view evidence_sha256) {
  TM_ASSIGN_OR_RETURN(std::optional<ledger::AccountRecord> acct, store_->GetAccount(account_id));
  if (!acct) return NotFound("no account with id '" + std::string(account_id) + "'");
  TM_ASSIGN_OR_RETURN(AccountState from, ParseAccountState(acct->state));
  if (!CanTransition(from, to)) {
    return InvalidArgument("account " + std::string(account_id) + " is " +
                           std::string(AccountStateName(from)) + " and cannot become " +
                           std::string(AccountStateName(to)));
  }
  TM_RETURN_IF_ERROR(store_->UpdateAccountState(account_id, AccountStateName(to), reason, clock_->NowMs()));
  return Audit(actor, "account." + std::string(AccountStateName(to)), account_id, reason, evidence_sha256);
}

Status AccountService::SetLimits(std::string_view account_id, const ledger::AccountLimits& l,
                                 std::string_view actor, std::string_view reason) {
  TM_RETURN_IF_ERROR(store_->UpdateAccountLimits(account_id, l, clock_->NowMs()));
  return Audit(actor, "account.limits", account_id,
               std::string(reason) + " rpm=" + std::to_string(l.requests_per_minute) +
                   " tpm=" + std::to_string(l.tokens_per_minute) +
                   " tpd=" + std::to_string(l.tokens_per_day) +
                   " tpmo=" + std::to_string(l.tokens_per_month));
}

Status AuthCache::Refresh() {
  ledger::LedgerStore* store = service_->store();
  TM_ASSIGN_OR_RETURN(std::vector<ledger::AccountRecord> accounts, store->ListAccounts());
  TM_ASSIGN_OR_RETURN(std::vector<ledger::ApiKeyRecord> keys, store->ListAllApiKeys());
  std::unordered_map<std::string, ledger::ApiKeyRecord> key_map;
  std::unordered_map<std::string, ledger::AccountRecord> account_map;
  for (auto& k : keys) key_map.emplace(k.key_id, std::move(k));
  for (auto& a : accounts) account_map.emplace(a.id, std::move(a));
  std::unique_lock<std::shared_mutex> lock(mu_);
  keys_.swap(key_map);
  accounts_.swap(account_map);
  return Status::Ok();
}

std::vector<ledger::AccountRecord> AuthCache::Accounts() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<ledger::AccountRecord> out;
  for (const auto& [id, a] : accounts_) out.push_back(a);
  return out;
}

AuthResult AuthCache::Authenticate(std::string_view api_key) {
  AuthResult r;
  if (api_key.empty()) {
    r.error = AuthError::kMissingKey;
    return r;
  }
  Result<ParsedApiKey> parsed = ParseApiKey(api_key);
  if (!parsed.ok()) {
    r.error = AuthError::kInvalidKey;
    return r;
  }
  const ledger::Hash presented = service_->KeyHmac(api_key);
  ledger::ApiKeyRecord key;
  bool found = false;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto it = keys_.find(parsed->key_id);
    if (it != keys_.end()) {
      key = it->second;
      found = true;
      auto acct = accounts_.find(key.account_id);
      if (acct != accounts_.end()) r.account = acct->second;
    }
  }
  if (!found) {
    // A key created since the last refresh: one indexed lookup, then cached.
    Result<std::optional<ledger::ApiKeyRecord>> k = service_->store()->GetApiKey(parsed->key_id);
    if (!k.ok() || !k->has_value()) {
      r.error = AuthError::kInvalidKey;
      return r;
    }
    Result<std::optional<ledger::AccountRecord>> a = service_->store()->GetAccount((*k)->account_id);
    if (!a.ok() || !a->has_value()) {
      r.error = AuthError::kInvalidKey;
      return r;
    }
    key = **k;
    r.account = **a;
    std::unique_lock<std::shared_mutex> lock(mu_);
    keys_[key.key_id] = key;
    accounts_[r.account.id] = r.account;
  }
  if (!crypto::ConstantTimeEqual(presented, key.secret_hmac) || key.revoked_at_ms != 0 ||
      r.account.id.empty()) {
    r.error = AuthError::kInvalidKey;
    return r;
  }
  r.key_id = key.key_id;
  Result<AccountState> state = ParseAccountState(r.account.state);
  r.state = state.ok() ? *state : AccountState::kSuspended;  // unknown state: fail closed
  if (r.state == AccountState::kTerminated) {
    r.error = AuthError::kTerminated;
  } else if (!MayServe(r.state)) {
    r.error = AuthError::kSuspended;
  }
  return r;
}

}  // namespace tracemark::policy
