// LedgerStore contract, run against every backend: SQLite (always) and PostgreSQL (a throwaway
// cluster started by tests/replicas/throwaway_servers.sh; skipped with a message only when the
// PostgreSQL server binaries are not installed). Two store objects on one database stand in for
// two processes or replicas.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ledger/store_backends.h"
#include "base/testing/throwaway_servers.h"
#include "tracemark/ledger/store.h"

namespace tracemark::ledger {
namespace {

constexpr int kScriptMissingServer = 3;  // throwaway_servers.sh: binaries not installed

std::string TempDir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("tm_store_backends_" + std::to_string(::getpid()));
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir.string();
}

using testing::RunScript;
std::string Script() { return testing::ThrowawayServersScript(); }

// One PostgreSQL cluster for the whole binary, stopped at exit.
class PostgresCluster {
 public:
  static PostgresCluster& Get() {
    static PostgresCluster c;
    return c;
  }
  ~PostgresCluster() { Stop(); }
  void Stop() {
    if (started_) {
      std::string ignored;
      RunScript(Script() + " pg-stop " + dir_ + " 2>/dev/null", &ignored);
      started_ = false;
    }
  }
  // "" with *skip set when no server is installed; "" with *error on other failures.
  std::string NewDatabase(bool* skip, std::string* error) {
    if (!started_ && !tried_) {
      tried_ = true;
      dir_ = TempDir() + "/pg";
      std::string url;
      const int rc = RunScript(Script() + " pg-start " + dir_, &url);
      if (rc == kScriptMissingServer) {
        missing_ = true;
      } else if (rc != 0) {
        start_error_ = "throwaway PostgreSQL did not start (exit " + std::to_string(rc) + "); see " + dir_;
      } else {
        started_ = true;
      }
    }
    *skip = missing_;
    if (!started_) {
      *error = start_error_;
      return "";
    }
    std::string url;
    const std::string name = "t" + std::to_string(next_db_++);
    if (RunScript(Script() + " pg-createdb " + dir_ + " " + name, &url) != 0) {
      *error = "createdb " + name + " failed";
      return "";
    }
    return url;
  }

 private:
  bool tried_ = false;
  bool started_ = false;
  bool missing_ = false;
  int next_db_ = 0;
  std::string dir_;
  std::string start_error_;
};

// Stops the cluster and removes the temporary files once every test has run.
class CleanupEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    PostgresCluster::Get().Stop();
    std::error_code ec;
    std::filesystem::remove_all(TempDir(), ec);
  }
};
const ::testing::Environment* const kCleanup = ::testing::AddGlobalTestEnvironment(new CleanupEnvironment);

class StoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    static int n = 0;
    if (GetParam() == "sqlite") {
      const std::string path = TempDir() + "/db" + std::to_string(n++) + ".sqlite";
      std::filesystem::remove(path);
      url_ = "sqlite:" + path;
      return;
    }
    bool skip = false;
    std::string error;
    url_ = PostgresCluster::Get().NewDatabase(&skip, &error);
    if (skip) GTEST_SKIP() << "PostgreSQL server binaries are not installed (apt install postgresql); "
                              "the PostgreSQL ledger backend is not tested";
    ASSERT_FALSE(url_.empty()) << error;
  }
  std::unique_ptr<LedgerStore> Open() {
    auto s = OpenLedgerStore(url_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::string url_;
};

TEST_P(StoreContract, AccountsKeysAndUsageRoundTrip) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  AccountRecord a{"acct_1", "alice", "active", "", 10, 10, {60, 1000, 5000, 0}, "org-a"};
  ASSERT_TRUE(store->CreateAccount(a).ok());
  EXPECT_FALSE(store->CreateAccount(a).ok());  // duplicate id
  AccountRecord b{"", "bob", "active", "", 11, 11, {}};
  EXPECT_EQ(*store->CreateAccount(b), "1");
  EXPECT_EQ(*store->CreateAccount(b), "2");
  ASSERT_EQ(store->ListAccounts()->size(), 3u);
  auto got = store->GetAccount("acct_1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->name, "alice");
  EXPECT_EQ((*got)->org, "org-a");
  EXPECT_EQ((*got)->limits.requests_per_minute, 60);
  EXPECT_EQ((*got)->limits.tokens_per_day, 5000);
  EXPECT_FALSE(store->GetAccount("nope")->has_value());
  ASSERT_TRUE(store->UpdateAccountState("acct_1", "suspended", "harvesting", 20).ok());
  EXPECT_EQ((*store->GetAccount("acct_1"))->state, "suspended");
  EXPECT_EQ((*store->GetAccount("acct_1"))->state_reason, "harvesting");
  EXPECT_EQ((*store->GetAccount("acct_1"))->updated_at_ms, 20);
  EXPECT_EQ(store->UpdateAccountState("nope", "active", "", 1).code(), StatusCode::kNotFound);
  ASSERT_TRUE(store->UpdateAccountLimits("1", {1, 2, 3, 4}, 21).ok());
  EXPECT_EQ((*store->GetAccount("1"))->limits.tokens_per_month, 4);
  EXPECT_EQ(store->UpdateAccountLimits("nope", {}, 1).code(), StatusCode::kNotFound);

  ApiKeyRecord k{"k1", "acct_1", {}, 11, 0};
  for (size_t i = 0; i < k.secret_hmac.size(); ++i) k.secret_hmac[i] = static_cast<uint8_t>(i * 37 + 1);
  k.secret_hmac[3] = 0;  // binary, not text
  ASSERT_TRUE(store->InsertApiKey(k).ok());
  EXPECT_FALSE(store->InsertApiKey(ApiKeyRecord{"k9", "no-such-account", {}, 1, 0}).ok());  // FK
  auto key = store->GetApiKey("k1");
  ASSERT_TRUE(key.ok() && key->has_value());
  EXPECT_EQ((*key)->secret_hmac, k.secret_hmac);
  EXPECT_FALSE((*store->GetApiKey("k2")).has_value());
  ASSERT_TRUE(store->InsertApiKey(ApiKeyRecord{"k2", "1", {}, 12, 0}).ok());
  EXPECT_EQ(store->ListApiKeys("acct_1")->size(), 1u);
  EXPECT_EQ(store->ListAllApiKeys()->size(), 2u);
  ASSERT_TRUE(store->RevokeApiKey("k1", 30).ok());
  EXPECT_EQ((*store->GetApiKey("k1"))->revoked_at_ms, 30);
  EXPECT_EQ(store->RevokeApiKey("k1", 31).code(), StatusCode::kNotFound);

  std::vector<UsageRecord> usage(2);
  usage[0] = {"req-1", "acct_1", "k1", "m", "completions", 5, 7, "gumbel", 1, 100, 200};
  usage[1] = {"req-2", "acct_1", "k1", "m", "completions", 1, 2, "gumbel", 1, 300, 400};
  ASSERT_TRUE(store->InsertUsage(usage).ok());
  ASSERT_TRUE(store->InsertUsage(usage).ok());  // replay: no duplicates
  auto list = store->ListUsage("acct_1");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].request_id, "req-2");
  EXPECT_EQ((*list)[1].wm_scheme, "gumbel");
  EXPECT_EQ(store->ListUsage("")->size(), 2u);
  EXPECT_EQ(*store->TokensSince("acct_1", 0), 15);
  EXPECT_EQ(*store->TokensSince("acct_1", 300), 3);
  EXPECT_EQ(*store->TokensSince("nobody", 0), 0);

  EXPECT_FALSE(store->GetMeta("x")->has_value());
  ASSERT_TRUE(store->SetMeta("x", "1").ok());
  ASSERT_TRUE(store->SetMeta("x", "two").ok());
  EXPECT_EQ(**store->GetMeta("x"), "two");
  // PostgreSQL 2: the audit frontier is kept by every append (SQLite keeps it without a version).
  EXPECT_EQ(**store->GetMeta("schema_version"), GetParam() == "postgresql" ? "2" : "1");
}

TEST_P(StoreContract, ReopenKeepsDataAndMigratesIdempotently) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateAccount(AccountRecord{"", "a", "active", "", 1, 1, {}}).ok());
  }
  auto again = Open();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->ListAccounts()->size(), 1u);
}

TEST_P(StoreContract, AuditAppendsAndCheckpointsRoundTrip) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 3; ++i) {
    auto idx = store->AppendAudit(
        [](uint64_t index) { return "{\"i\":" + std::to_string(index) + "}"; },
        [](std::span<const Hash> leaves) -> Result<CheckpointRow> {
          std::string sig(64, '\0');
          sig[1] = static_cast<char>(0xff);
          return CheckpointRow{leaves.size(), "note " + std::to_string(leaves.size()), sig, 5};
        });
    ASSERT_TRUE(idx.ok()) << idx.status().ToString();
    EXPECT_EQ(*idx, static_cast<uint64_t>(i));
  }
  // A signer failure rolls the entry back.
  auto failed = store->AppendAudit([](uint64_t) { return std::string("{}"); },
                                   [](std::span<const Hash>) -> Result<CheckpointRow> {
                                     return Internal("signer down");
                                   });
  EXPECT_FALSE(failed.ok());
  auto rows = store->ReadAudit();
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[2].body, "{\"i\":2}");
  auto cps = store->ReadCheckpoints();
  ASSERT_TRUE(cps.ok());
  ASSERT_EQ(cps->size(), 3u);
  EXPECT_EQ((*cps)[2].tree_size, 3u);
  EXPECT_EQ((*cps)[2].signature.size(), 64u);
  EXPECT_EQ(static_cast<unsigned char>((*cps)[2].signature[1]), 0xffu);
}

// Two stores on one database (two replicas): account ids and audit indexes stay unique and
// gap-free under concurrent writers; usage inserted by both lands exactly once.
TEST_P(StoreContract, ConcurrentWritersFromTwoConnections) {
  auto s1 = Open();
  auto s2 = Open();
  ASSERT_NE(s1, nullptr);
  ASSERT_NE(s2, nullptr);
  constexpr int kPerWriter = 15;
  std::atomic<int> failures{0};
  std::vector<std::string> ids1, ids2;
  auto writer = [&](LedgerStore* s, std::vector<std::string>* ids, const std::string& tag) {
    for (int i = 0; i < kPerWriter; ++i) {
      auto id = s->CreateAccount(AccountRecord{"", tag, "active", "", i, i, {}});
      if (!id.ok()) {
        ++failures;
        continue;
      }
      ids->push_back(*id);
      auto idx = s->AppendAudit(
          [&](uint64_t index) { return tag + std::to_string(index); },
          [](std::span<const Hash> leaves) -> Result<CheckpointRow> {
            return CheckpointRow{leaves.size(), "n", "s", 1};
          });
      if (!idx.ok()) ++failures;
      std::vector<UsageRecord> u(1);
      u[0] = {"shared-" + std::to_string(i), "1", "k", "m", "completions", 1, 1, "", 0, i, i};
      if (!s->InsertUsage(u).ok()) ++failures;
    }
  };
  std::thread t1(writer, s1.get(), &ids1, "a");
  std::thread t2(writer, s2.get(), &ids2, "b");
  t1.join();
  t2.join();
  EXPECT_EQ(failures.load(), 0);
  std::set<std::string> all(ids1.begin(), ids1.end());
  all.insert(ids2.begin(), ids2.end());
  EXPECT_EQ(all.size(), 2u * kPerWriter);
  for (int i = 1; i <= 2 * kPerWriter; ++i) EXPECT_TRUE(all.count(std::to_string(i))) << i;
  auto rows = s1->ReadAudit();
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u * kPerWriter);
  for (size_t i = 0; i < rows->size(); ++i) EXPECT_EQ((*rows)[i].index, i);
  EXPECT_EQ(s2->ListUsage("")->size(), static_cast<size_t>(kPerWriter));
}

// O(log n) appends (AppendAuditRoot, the Merkle frontier) from two stores, mixed with appends of
// a build without the frontier (AppendAudit): every signed root equals the RFC 6962 root of the
// entries at that size, and indexes stay gap-free.
TEST_P(StoreContract, FrontierAppendsFromTwoStoresSignTheTrueRoots) {
  auto s1 = Open();
  auto s2 = Open();
  ASSERT_NE(s1, nullptr);
  ASSERT_NE(s2, nullptr);
  constexpr int kPerWriter = 12;
  std::mutex mu;
  std::vector<std::pair<uint64_t, Hash>> signed_roots;
  std::atomic<int> failures{0};
  auto writer = [&](LedgerStore* s, const std::string& tag) {
    for (int i = 0; i < kPerWriter; ++i) {
      auto make = [&](uint64_t index) { return tag + std::to_string(index); };
      Result<uint64_t> idx = Internal("unset");
      if (i % 4 == 3) {  // an older build's append: no frontier, reads every leaf
        idx = s->AppendAudit(make, [&](std::span<const Hash> leaves) -> Result<CheckpointRow> {
          std::lock_guard<std::mutex> lock(mu);
          signed_roots.emplace_back(leaves.size(), TreeHash(leaves));
          return CheckpointRow{leaves.size(), "n", "s", 1};
        });
      } else {
        idx = s->AppendAuditRoot(make, [&](uint64_t size, const Hash& root) -> Result<CheckpointRow> {
          std::lock_guard<std::mutex> lock(mu);
          signed_roots.emplace_back(size, root);
          return CheckpointRow{size, "n", "s", 1};
        });
      }
      if (!idx.ok()) ++failures;
    }
  };
  std::thread t1(writer, s1.get(), "a");
  std::thread t2(writer, s2.get(), "b");
  t1.join();
  t2.join();
  EXPECT_EQ(failures.load(), 0);
  auto rows = s1->ReadAudit();
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u * kPerWriter);
  std::vector<Hash> leaves;
  for (size_t i = 0; i < rows->size(); ++i) {
    EXPECT_EQ((*rows)[i].index, i);
    leaves.push_back(LeafHash((*rows)[i].body));
  }
  ASSERT_EQ(signed_roots.size(), 2u * kPerWriter);
  std::set<uint64_t> sizes;
  for (const auto& [size, root] : signed_roots) {
    sizes.insert(size);
    ASSERT_LE(size, leaves.size());
    EXPECT_EQ(root, TreeHash(std::span<const Hash>(leaves.data(), size))) << "size " << size;
  }
  EXPECT_EQ(sizes.size(), 2u * kPerWriter);
}

// A ledger written before the frontier existed (schema 1, no audit_frontier): reopening migrates
// it (PostgreSQL computes the frontier at open; SQLite on the first append) and the next append
// signs the root of every entry.
TEST_P(StoreContract, LogWithoutFrontierIsMigrated) {
  std::vector<Hash> leaves;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 5; ++i) {
      auto idx = store->AppendAudit([](uint64_t index) { return "old" + std::to_string(index); },
                                    [](std::span<const Hash> l) -> Result<CheckpointRow> {
                                      return CheckpointRow{l.size(), "n", "s", 1};
                                    });
      ASSERT_TRUE(idx.ok()) << idx.status().ToString();
      leaves.push_back(LeafHash("old" + std::to_string(i)));
    }
    ASSERT_TRUE(store->SetMeta("audit_frontier", "not a frontier").ok());
    ASSERT_TRUE(store->SetMeta("schema_version", "1").ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  if (GetParam() == "postgresql") {
    EXPECT_EQ(store->GetMeta("schema_version")->value_or(""), "2");
    const std::string hex = store->GetMeta("audit_frontier")->value_or("");
    std::string bytes(hex.size() / 2, '\0');
    ASSERT_TRUE(HexDecode(hex, std::span<uint8_t>(reinterpret_cast<uint8_t*>(bytes.data()), bytes.size())));
    auto f = MerkleFrontier::Parse(bytes);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->size(), 5u);
    EXPECT_EQ(f->Root(), TreeHash(leaves));
  }
  Hash signed_root{};
  auto idx = store->AppendAuditRoot([](uint64_t index) { return "new" + std::to_string(index); },
                                    [&](uint64_t size, const Hash& root) -> Result<CheckpointRow> {
                                      signed_root = root;
                                      return CheckpointRow{size, "n", "s", 1};
                                    });
  ASSERT_TRUE(idx.ok()) << idx.status().ToString();
  EXPECT_EQ(*idx, 5u);
  leaves.push_back(LeafHash("new5"));
  EXPECT_EQ(signed_root, TreeHash(leaves));
}

// A state change made through one store wakes a WaitForAccountChange on another (PostgreSQL
// LISTEN/NOTIFY) long before its timeout; SQLite has nothing to listen to and times out.
TEST_P(StoreContract, AccountChangeWakesTheOtherStore) {
  auto writer = Open();
  auto reader = Open();
  ASSERT_NE(writer, nullptr);
  ASSERT_NE(reader, nullptr);
  auto id = writer->CreateAccount(AccountRecord{"", "n", "active", "", 1, 1, {}});
  ASSERT_TRUE(id.ok());
  using SteadyClock = std::chrono::steady_clock;
  if (GetParam() != "postgresql") {
    const auto t0 = SteadyClock::now();
    auto changed = reader->WaitForAccountChange(30);
    ASSERT_TRUE(changed.ok());
    EXPECT_FALSE(*changed);
    EXPECT_GE(SteadyClock::now() - t0, std::chrono::milliseconds(30));
    return;
  }
  // The first call starts listening (and may see the CreateAccount above).
  ASSERT_TRUE(reader->WaitForAccountChange(50).ok());
  constexpr int64_t kTimeoutMs = 5000;
  std::atomic<bool> woke{false};
  std::atomic<int64_t> waited_ms{-1};
  std::thread waiter([&] {
    const auto t0 = SteadyClock::now();
    auto changed = reader->WaitForAccountChange(kTimeoutMs);
    waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t0).count();
    woke = changed.ok() && *changed;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto t_change = SteadyClock::now();
  ASSERT_TRUE(writer->UpdateAccountState(*id, "suspended", "test", 2).ok());
  waiter.join();
  const double after_ms =
      std::chrono::duration<double, std::milli>(SteadyClock::now() - t_change).count();
  std::printf("account change notification: waiter woke %.1f ms after the commit began\n", after_ms);
  EXPECT_TRUE(woke.load());
  EXPECT_LT(waited_ms.load(), kTimeoutMs / 2);
  // Nothing changed since: the next wait times out.
  auto quiet = reader->WaitForAccountChange(50);
  ASSERT_TRUE(quiet.ok());
  EXPECT_FALSE(*quiet);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(StoreFactory, RejectsUnknownSchemesAndRedactsPasswords) {
  auto bad = OpenLedgerStore("mysql://u:secret@h/db");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().find("secret"), std::string::npos);
  EXPECT_EQ(RedactDatabaseUrl("postgresql://u:pw@h:5/db"), "postgresql://u:***@h:5/db");
  EXPECT_EQ(RedactDatabaseUrl("postgresql://u@h:5/db?password=pw&x=1"), "postgresql://u@h:5/db?password=***&x=1");
  EXPECT_EQ(RedactDatabaseUrl("postgresql://h/db"), "postgresql://h/db");
  EXPECT_TRUE(IsPostgresUrl("postgres://h/db"));
  EXPECT_FALSE(IsPostgresUrl("sqlite:/x"));
}

TEST(StoreFactory, UnreachablePostgresIsAnIoErrorWithoutPassword) {
  // Port 1 on localhost: nothing listens; libpq fails fast.
  auto s = OpenLedgerStore("postgresql://u:hunter2@127.0.0.1:1/db?connect_timeout=2");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kIoError);
  EXPECT_EQ(s.status().message().find("hunter2"), std::string::npos) << s.status().message();
}

}  // namespace
}  // namespace tracemark::ledger
