// Accounts, keys, authentication and audited transitions on a real SQLite ledger.
#include "tracemark/policy/accounts.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace tracemark::policy {
namespace {

struct Fixture {
  explicit Fixture(const std::string& name, uint8_t master_fill = 1) {
    const auto dir = std::filesystem::temp_directory_path() / ("tm_policy_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    path = (dir / name).string();
    Open(master_fill, true);
  }
  void Open(uint8_t master_fill, bool fresh) {
    if (fresh) {
      for (auto suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
    }
    std::vector<uint8_t> master(32, master_fill);
    auto secrets = DeriveServerSecrets(master);
    ASSERT_TRUE(secrets.ok());
    store = std::move(OpenLedgerStoreOrDie());
    auto s = ledger::AuditSigner::FromSeed(secrets->audit_signing_seed.span());
    ASSERT_TRUE(s.ok());
    signer = std::move(s).value();
    audit = std::make_unique<ledger::AuditLog>(store.get(), signer.get());
    auto svc = AccountService::Create(store.get(), secrets->api_key_pepper, audit.get(), &clock);
    service_status = svc.status();
    if (svc.ok()) service = std::move(svc).value();
  }
  std::unique_ptr<ledger::LedgerStore> OpenLedgerStoreOrDie() {
    auto st = ledger::OpenLedgerStore("sqlite:" + path);
    EXPECT_TRUE(st.ok());
    return std::move(st).value();
  }
  std::string path;
  ManualClock clock{1000};
  std::unique_ptr<ledger::LedgerStore> store;
  std::unique_ptr<ledger::AuditSigner> signer;
  std::unique_ptr<ledger::AuditLog> audit;
  std::unique_ptr<AccountService> service;
  Status service_status;
};

TEST(ApiKey, ParseAndRedact) {
  const std::string key = "tm-0123456789abcdef-" + std::string(kKeySecretChars, 'A');
  auto p = ParseApiKey(key);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->key_id, "0123456789abcdef");
  EXPECT_FALSE(ParseApiKey("sk-abc").ok());
  EXPECT_FALSE(ParseApiKey("tm-0123456789abcdeX-" + std::string(kKeySecretChars, 'A')).ok());
  EXPECT_FALSE(ParseApiKey("tm-0123456789abcdef-" + std::string(kKeySecretChars - 1, 'A') + "_").ok());
  const std::string red = RedactApiKey(key);
  EXPECT_EQ(red, "tm-01234****AAAA");
  EXPECT_EQ(red.find(std::string(10, 'A')), std::string::npos);
}

TEST(AccountService, CreateAuthenticateAndSuspend) {
  Fixture f("create.db");
  ASSERT_TRUE(f.service);
  auto created = f.service->CreateAccount("alice", {60, 1000, 0, 0}, "test");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(created->api_key.size(), kApiKeyChars);
  EXPECT_EQ(created->api_key.rfind("tm-", 0), 0u);
  // The key is not stored anywhere in the database in clear.
  auto key = f.store->GetApiKey(created->key_id);
  ASSERT_TRUE(key.ok() && key->has_value());
  EXPECT_EQ((*key)->secret_hmac, f.service->KeyHmac(created->api_key));

  AuthCache cache(f.service.get());
  ASSERT_TRUE(cache.Refresh().ok());
  AuthResult ok = cache.Authenticate(created->api_key);
  EXPECT_EQ(ok.error, AuthError::kNone);
  EXPECT_EQ(ok.account.id, created->account.id);
  EXPECT_EQ(ok.key_id, created->key_id);

  std::string wrong = created->api_key;
  wrong.back() = wrong.back() == 'a' ? 'b' : 'a';
  EXPECT_EQ(cache.Authenticate(wrong).error, AuthError::kInvalidKey);
  EXPECT_EQ(cache.Authenticate("").error, AuthError::kMissingKey);
  EXPECT_EQ(cache.Authenticate("sk-nope").error, AuthError::kInvalidKey);

  ASSERT_TRUE(f.service->Transition(created->account.id, AccountState::kSuspended, "test", "harvesting").ok());
  ASSERT_TRUE(cache.Refresh().ok());
  EXPECT_EQ(cache.Authenticate(created->api_key).error, AuthError::kSuspended);
  // suspended -> active is not in the table; reinstated is.
  EXPECT_FALSE(f.service->Transition(created->account.id, AccountState::kActive, "test", "").ok());
  ASSERT_TRUE(f.service->Transition(created->account.id, AccountState::kReinstated, "test", "cleared").ok());
  ASSERT_TRUE(cache.Refresh().ok());
  EXPECT_EQ(cache.Authenticate(created->api_key).error, AuthError::kNone);
  ASSERT_TRUE(f.service->Transition(created->account.id, AccountState::kTerminated, "test", "confirmed").ok());
  ASSERT_TRUE(cache.Refresh().ok());
  EXPECT_EQ(cache.Authenticate(created->api_key).error, AuthError::kTerminated);
  EXPECT_FALSE(f.service->Transition(created->account.id, AccountState::kReinstated, "test", "").ok());

  // Every action is in the audit log and the log verifies.
  auto rows = f.store->ReadAudit();
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 5u);  // create, key, suspend, reinstate, terminate
  auto report = ledger::VerifyAuditLog(*f.store, f.signer->public_key());
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok);
}

TEST(AccountService, RotateAndRevokeKeys) {
  Fixture f("rotate.db");
  auto created = f.service->CreateAccount("bob", {}, "test");
  ASSERT_TRUE(created.ok());
  auto second = f.service->CreateKey(created->account.id, "test");
  ASSERT_TRUE(second.ok());
  AuthCache cache(f.service.get());
  ASSERT_TRUE(cache.Refresh().ok());
  EXPECT_EQ(cache.Authenticate(created->api_key).error, AuthError::kNone);
  EXPECT_EQ(cache.Authenticate(second->api_key).error, AuthError::kNone);
  ASSERT_TRUE(f.service->RevokeKey(created->key_id, "test", "rotated").ok());
  ASSERT_TRUE(cache.Refresh().ok());
  EXPECT_EQ(cache.Authenticate(created->api_key).error, AuthError::kInvalidKey);
  EXPECT_EQ(cache.Authenticate(second->api_key).error, AuthError::kNone);
  EXPECT_FALSE(f.service->CreateKey("acct_missing", "test").ok());
}

TEST(AccountService, KeyCreatedElsewhereIsFoundWithoutRefresh) {
  Fixture f("late.db");
  AuthCache cache(f.service.get());
  ASSERT_TRUE(cache.Refresh().ok());
  auto created = f.service->CreateAccount("carol", {}, "test");
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(cache.Authenticate(created->api_key).error, AuthError::kNone);
}

TEST(AccountService, RefusesADifferentKeyring) {
  Fixture f("pepper.db", 1);
  ASSERT_TRUE(f.service);
  f.service.reset();
  f.audit.reset();
  f.Open(2, false);
  EXPECT_EQ(f.service_status.code(), StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace tracemark::policy
