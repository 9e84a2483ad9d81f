// SQLite ledger store: round trips, idempotent usage inserts, URL parsing.
#include "tracemark/ledger/store.h"

#include <gtest/gtest.h>

#include <sqlite3.h>

#include <filesystem>

namespace tracemark::ledger {
namespace {

std::string TempDb(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("tm_ledger_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / name;
  std::filesystem::remove(path);
  return path.string();
}

TEST(SqliteStore, AccountsKeysAndUsageRoundTrip) {
  auto store = OpenLedgerStore("sqlite:" + TempDb("roundtrip.db"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  AccountRecord a{"acct_1", "alice", "active", "", 10, 10, {60, 1000, 5000, 0}};
  ASSERT_TRUE((*store)->CreateAccount(a).ok());
  EXPECT_FALSE((*store)->CreateAccount(a).ok());  // duplicate id
  AccountRecord b{"", "bob", "active", "", 10, 10, {}};
  EXPECT_EQ(*(*store)->CreateAccount(b), "1");
  EXPECT_EQ(*(*store)->CreateAccount(b), "2");
  EXPECT_EQ((*store)->ListAccounts()->size(), 3u);
  auto got = (*store)->GetAccount("acct_1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->name, "alice");
  EXPECT_EQ((*got)->limits.tokens_per_day, 5000);
  ASSERT_TRUE((*store)->UpdateAccountState("acct_1", "suspended", "harvesting", 20).ok());
  EXPECT_EQ((*(*store)->GetAccount("acct_1"))->state, "suspended");
  EXPECT_EQ((*store)->UpdateAccountState("nope", "active", "", 1).code(), StatusCode::kNotFound);

  ApiKeyRecord k{"k1", "acct_1", {}, 11, 0};
  k.secret_hmac[0] = 7;
  ASSERT_TRUE((*store)->InsertApiKey(k).ok());
  auto key = (*store)->GetApiKey("k1");
  ASSERT_TRUE(key.ok() && key->has_value());
  EXPECT_EQ((*key)->secret_hmac, k.secret_hmac);
  EXPECT_FALSE((*(*store)->GetApiKey("k2")).has_value());
  ASSERT_TRUE((*store)->RevokeApiKey("k1", 30).ok());
  EXPECT_EQ((*(*store)->GetApiKey("k1"))->revoked_at_ms, 30);
  EXPECT_EQ((*store)->RevokeApiKey("k1", 31).code(), StatusCode::kNotFound);

  std::vector<UsageRecord> usage(2);
  usage[0] = {"req-1", "acct_1", "k1", "m", "completions", 5, 7, "gumbel", 1, 100, 200};
  usage[1] = {"req-2", "acct_1", "k1", "m", "completions", 1, 2, "gumbel", 1, 300, 400};
  ASSERT_TRUE((*store)->InsertUsage(usage).ok());
  ASSERT_TRUE((*store)->InsertUsage(usage).ok());  // replay: no duplicates
  auto list = (*store)->ListUsage("acct_1");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);
  EXPECT_EQ(*(*store)->TokensSince("acct_1", 0), 15);
  EXPECT_EQ(*(*store)->TokensSince("acct_1", 300), 3);
}

TEST(SqliteStore, UrlsAreValidated) {
  EXPECT_EQ(*SqlitePathFromUrl("sqlite:/tmp/x.db"), "/tmp/x.db");
  EXPECT_EQ(*SqlitePathFromUrl("sqlite:///tmp/x.db"), "/tmp/x.db");
  EXPECT_FALSE(SqlitePathFromUrl("mysql://x").ok());
  EXPECT_FALSE(SqlitePathFromUrl("sqlite:").ok());
  // PostgreSQL URLs go to the PostgreSQL backend (store_backends_test.cc); nothing listens on port 1.
  EXPECT_EQ(OpenLedgerStore("postgresql://127.0.0.1:1/x").status().code(), StatusCode::kIoError);
  EXPECT_FALSE(OpenLedgerStore("sqlite:/nonexistent-dir/x/y.db").ok());
}

// Regression: ledgers created before the accounts.org column must open (migration adds it) and
// keep their accounts; new accounts round-trip their org.
TEST(SqliteStore, MigratesAccountsWithoutOrgColumn) {
  const std::string path = TempDb("pre_org.db");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const char* old_schema =
        "CREATE TABLE accounts(id TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL, "
        "state_reason TEXT NOT NULL DEFAULT '', created_at_ms INTEGER NOT NULL, "
        "updated_at_ms INTEGER NOT NULL, rpm INTEGER NOT NULL DEFAULT 0, tpm INTEGER NOT NULL DEFAULT 0, "
        "tokens_per_day INTEGER NOT NULL DEFAULT 0, tokens_per_month INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO accounts VALUES('1','old','active','',1,1,60,1000,0,0);";
    ASSERT_EQ(sqlite3_exec(db, old_schema, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  for (int open = 0; open < 2; ++open) {  // the second open finds the column already there
    auto store = OpenLedgerStore("sqlite:" + path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto old = (*store)->GetAccount("1");
    ASSERT_TRUE(old.ok() && old->has_value());
    EXPECT_EQ((*old)->name, "old");
    EXPECT_EQ((*old)->org, "");
    if (open == 0) {
      AccountRecord b{"", "bob", "active", "", 10, 10, {}};
      b.org = "acme-card-42";
      EXPECT_EQ(*(*store)->CreateAccount(b), "2");
    }
    EXPECT_EQ((*(*store)->GetAccount("2"))->org, "acme-card-42");
  }
}

}  // namespace
}  // namespace tracemark::ledger
