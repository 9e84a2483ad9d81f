// Audit log: signed checkpoints, verification, and tamper detection by editing the SQLite file
// directly (what an attacker with file access would do).
#include "tracemark/ledger/audit_log.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

namespace tracemark::ledger {
namespace {

std::string TempDb(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("tm_audit_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / name;
  std::filesystem::remove(path);
  std::filesystem::remove(path.string() + "-wal");
  std::filesystem::remove(path.string() + "-shm");
  return path.string();
}

std::unique_ptr<AuditSigner> Signer(uint8_t fill) {
  std::array<uint8_t, 32> seed;
  seed.fill(fill);
  auto s = AuditSigner::FromSeed(seed);
  EXPECT_TRUE(s.ok());
  return std::move(s).value();
}

void RawSql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

// Builds a log of n entries at `path`.
void BuildLog(const std::string& path, int n, const AuditSigner& signer) {
  auto store = OpenLedgerStore("sqlite:" + path);
  ASSERT_TRUE(store.ok());
  AuditLog log(store->get(), &signer);
  for (int i = 0; i < n; ++i) {
    AuditEvent e{"cli:test", "account.suspend", "acct_" + std::to_string(i), "reason " + std::to_string(i),
                 i % 2 ? "ab" : "", 1000 + i};
    auto idx = log.Append(e);
    ASSERT_TRUE(idx.ok()) << idx.status().ToString();
    EXPECT_EQ(*idx, static_cast<uint64_t>(i));
  }
}

AuditVerifyReport Verify(const std::string& path, const std::optional<std::array<uint8_t, 32>>& pin = {}) {
  auto store = OpenLedgerStore("sqlite:" + path);
  EXPECT_TRUE(store.ok());
  auto r = VerifyAuditLog(**store, pin);
  EXPECT_TRUE(r.ok());
  return *r;
}

TEST(AuditSigner, SignsAndVerifies) {
  auto s = Signer(1);
  auto sig = s->Sign("hello");
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(VerifyEd25519(s->public_key(), "hello", *sig));
  EXPECT_FALSE(VerifyEd25519(s->public_key(), "hellO", *sig));
  EXPECT_FALSE(VerifyEd25519(Signer(2)->public_key(), "hello", *sig));
}

TEST(AuditLog, CleanLogVerifies) {
  const std::string path = TempDb("clean.db");
  auto signer = Signer(3);
  BuildLog(path, 7, *signer);
  AuditVerifyReport r = Verify(path, signer->public_key());
  EXPECT_TRUE(r.ok) << (r.problems.empty() ? "" : r.problems[0]);
  EXPECT_EQ(r.entries, 7u);
  EXPECT_EQ(r.checkpoints, 7u);
  EXPECT_EQ(r.signed_size, 7u);
  EXPECT_TRUE(r.public_key_pinned);
  EXPECT_TRUE(Verify(path).ok);
}

TEST(AuditLog, EntriesAreCanonicalJson) {
  AuditEvent e{"cli:x", "account.create", "acct_1", "new", "", 5};
  EXPECT_EQ(CanonicalAuditEntry(3, e),
            R"({"action":"account.create","actor":"cli:x","evidence_sha256":null,"index":3,)"
            R"("reason":"new","target":"acct_1","time_ms":5})");
}

// Appends keep the Merkle frontier in the store; a missing or stale frontier (an older build
// appended, or the meta row was deleted) is rebuilt from the entries, and the signed roots are
// the same as a full recomputation gives.
TEST(AuditLog, StaleOrMissingFrontierIsRebuilt) {
  const std::string path = TempDb("frontier.db");
  auto signer = Signer(9);
  BuildLog(path, 5, *signer);
  RawSql(path, "DELETE FROM meta WHERE key = 'audit_frontier'");
  {
    auto store = OpenLedgerStore("sqlite:" + path);
    ASSERT_TRUE(store.ok());
    AuditLog log(store->get(), signer.get());
    AuditEvent e{"cli:test", "account.reinstate", "acct_x", "after rebuild", "", 2000};
    auto idx = log.Append(e);
    ASSERT_TRUE(idx.ok()) << idx.status().ToString();
    EXPECT_EQ(*idx, 5u);
  }
  // A frontier for a smaller tree than the log holds is ignored, not trusted.
  RawSql(path, "UPDATE meta SET value = '0100000000000000' || substr(value, 17, 64) WHERE key = 'audit_frontier'");
  {
    auto store = OpenLedgerStore("sqlite:" + path);
    ASSERT_TRUE(store.ok());
    AuditLog log(store->get(), signer.get());
    for (int i = 0; i < 4; ++i) {
      auto idx = log.Append(AuditEvent{"cli:test", "account.suspend", "acct_y", "more", "", 3000 + i});
      ASSERT_TRUE(idx.ok()) << idx.status().ToString();
      EXPECT_EQ(*idx, 6u + static_cast<uint64_t>(i));
    }
    auto rows = (*store)->ReadAudit();
    ASSERT_TRUE(rows.ok());
    std::vector<Hash> leaves;
    for (const AuditRow& r : *rows) leaves.push_back(LeafHash(r.body));
    auto cps = (*store)->ReadCheckpoints();
    ASSERT_TRUE(cps.ok());
    ASSERT_EQ(cps->size(), 10u);
    for (const CheckpointRow& cp : *cps) {
      EXPECT_EQ(cp.note, CheckpointNote(cp.tree_size, TreeHash(std::span<const Hash>(leaves.data(), cp.tree_size))));
    }
  }
  AuditVerifyReport r = Verify(path, signer->public_key());
  EXPECT_TRUE(r.ok) << (r.problems.empty() ? "" : r.problems[0]);
  EXPECT_EQ(r.signed_size, 10u);
}

TEST(AuditLog, DetectsAlteredEntry) {
  const std::string path = TempDb("altered.db");
  auto signer = Signer(4);
  BuildLog(path, 6, *signer);
  RawSql(path, "UPDATE audit_log SET body = replace(body, 'reason 2', 'reason X') WHERE idx = 2");
  AuditVerifyReport r = Verify(path, signer->public_key());
  EXPECT_FALSE(r.ok);
  EXPECT_LT(r.signed_size, 3u);
}

TEST(AuditLog, DetectsDeletedMiddleEntry) {
  const std::string path = TempDb("deleted.db");
  auto signer = Signer(5);
  BuildLog(path, 6, *signer);
  RawSql(path, "DELETE FROM audit_log WHERE idx = 3");
  EXPECT_FALSE(Verify(path, signer->public_key()).ok);
}

TEST(AuditLog, DetectsDeletedLastEntry) {
  const std::string path = TempDb("tail.db");
  auto signer = Signer(6);
  BuildLog(path, 5, *signer);
  // The signed checkpoint for size 5 still exists, so dropping entry 4 is caught. (Dropping the
  // entry together with its checkpoint needs a verifier that pinned the newer checkpoint.)
  RawSql(path, "DELETE FROM audit_log WHERE idx = 4");
  AuditVerifyReport r = Verify(path, signer->public_key());
  EXPECT_FALSE(r.ok);
}

TEST(AuditLog, DetectsForgedCheckpoint) {
  const std::string path = TempDb("forged.db");
  auto signer = Signer(7);
  BuildLog(path, 4, *signer);
  // Rewrite entry 1 and re-sign every checkpoint with an attacker key recorded in meta: a
  // verifier that pins the real public key rejects it.
  auto attacker = Signer(8);
  RawSql(path, "UPDATE audit_log SET body = replace(body, 'reason 1', 'reason Y') WHERE idx = 1");
  {
    auto store = OpenLedgerStore("sqlite:" + path);
    ASSERT_TRUE(store.ok());
    auto rows = (*store)->ReadAudit();
    std::vector<Hash> leaves;
    for (auto& row : *rows) leaves.push_back(LeafHash(row.body));
    RawSql(path, "DELETE FROM audit_checkpoints");
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    for (size_t n = 1; n <= leaves.size(); ++n) {
      const std::string note = CheckpointNote(n, TreeHash(std::span(leaves.data(), n)));
      const std::string sig = *attacker->Sign(note);
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(db, "INSERT INTO audit_checkpoints VALUES(?1, ?2, ?3, 0)", -1, &st, nullptr);
      sqlite3_bind_int64(st, 1, static_cast<int64_t>(n));
      sqlite3_bind_text(st, 2, note.data(), static_cast<int>(note.size()), SQLITE_TRANSIENT);
      sqlite3_bind_blob(st, 3, sig.data(), static_cast<int>(sig.size()), SQLITE_TRANSIENT);
      EXPECT_EQ(sqlite3_step(st), SQLITE_DONE);
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
    RawSql(path, "UPDATE meta SET value = '" + HexEncode(attacker->public_key()) +
                     "' WHERE key = 'audit_public_key'");
  }
  EXPECT_FALSE(Verify(path, signer->public_key()).ok);
  // Unpinned verification trusts the recorded key and cannot notice; the report says so.
  AuditVerifyReport unpinned = Verify(path);
  EXPECT_TRUE(unpinned.ok);
  EXPECT_FALSE(unpinned.public_key_pinned);
}

TEST(AuditLog, RefusesSecondSigningKey) {
  const std::string path = TempDb("twokeys.db");
  auto a = Signer(9);
  BuildLog(path, 1, *a);
  auto store = OpenLedgerStore("sqlite:" + path);
  auto b = Signer(10);
  AuditLog log(store->get(), b.get());
  EXPECT_EQ(log.Append(AuditEvent{"x", "y", "z", "", "", 1}).status().code(),
            StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace tracemark::ledger
