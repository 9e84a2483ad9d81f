// Audit log append cost at a given log size: pre-fills the SQLite audit table with N canonical
// entries (one bulk transaction, no checkpoints), appends once to warm up, then times K appends
// through AuditLog (each one a signed checkpoint in its own transaction).
// Usage: audit_append_bench [N=10000] [K=50] [DIR=/tmp]
// With a postgresql:// URL in place of DIR the same runs against that PostgreSQL database (its
// audit tables are emptied first: use a throwaway one, tests/replicas/throwaway_servers.sh).
#include <sqlite3.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tracemark/ledger/audit_log.h"
#include "tracemark/ledger/store.h"

namespace {

using Clock = std::chrono::steady_clock;

int Fail(const char* what) {
  std::fprintf(stderr, "audit_append_bench: %s\n", what);
  return 1;
}

// Empties the audit tables of the PostgreSQL ledger at url and bulk-loads n entries (COPY).
int PrefillPostgres(const std::string& url, uint64_t n) {
  try {
    pqxx::connection conn(url);
    pqxx::work tx(conn);
    tx.exec("TRUNCATE audit_log, audit_checkpoints");
    tx.exec("DELETE FROM meta WHERE key IN ('audit_frontier', 'audit_public_key')");
    // A ledger written by a build before the frontier (schema 1): the next open migrates it.
    tx.exec("UPDATE meta SET value = '1' WHERE key = 'schema_version'");
    pqxx::stream_to out(tx, "audit_log", std::vector<std::string>{"idx", "body"});
    tracemark::ledger::AuditEvent e{"bench", "account.suspend", "42", "prefill", "", 1700000000000};
    for (uint64_t i = 0; i < n; ++i) {
      out << std::make_tuple(static_cast<int64_t>(i), tracemark::ledger::CanonicalAuditEntry(i, e));
    }
    out.complete();
    tx.commit();
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "audit_append_bench: PostgreSQL prefill failed: %s\n", ex.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 10000;
  const int k = argc > 2 ? std::atoi(argv[2]) : 50;
  const std::string dir = argc > 3 ? argv[3] : "/tmp";
  const bool postgres = tracemark::ledger::IsPostgresUrl(dir);
  const std::string path = dir + "/audit_append_bench_" + std::to_string(n) + ".db";
  const std::string url = postgres ? dir : "sqlite:" + path;
  if (postgres) {
    {
      auto store = tracemark::ledger::OpenLedgerStore(url);  // creates or migrates the schema
      if (!store.ok()) return Fail("cannot open the PostgreSQL ledger");
    }
    if (PrefillPostgres(url, n) != 0) return 1;
  }
  if (!postgres) std::filesystem::remove(path);
  if (!postgres) std::filesystem::remove(path + "-wal");
  if (!postgres) std::filesystem::remove(path + "-shm");
  if (!postgres) {
    auto store = tracemark::ledger::OpenLedgerStore("sqlite:" + path);
    if (!store.ok()) return Fail("cannot create the ledger");
  }
  if (!postgres) {
    sqlite3* db = nullptr;
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return Fail("cannot open the ledger");
    sqlite3_exec(db, "BEGIN;", nullptr, nullptr, nullptr);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "INSERT INTO audit_log(idx, body) VALUES(?1, ?2)", -1, &st, nullptr);
    tracemark::ledger::AuditEvent e{"bench", "account.suspend", "42", "prefill", "", 1700000000000};
    for (uint64_t i = 0; i < n; ++i) {
      const std::string body = tracemark::ledger::CanonicalAuditEntry(i, e);
      sqlite3_bind_int64(st, 1, static_cast<sqlite3_int64>(i));
      sqlite3_bind_text(st, 2, body.data(), static_cast<int>(body.size()), SQLITE_TRANSIENT);
      if (sqlite3_step(st) != SQLITE_DONE) return Fail("prefill insert failed");
      sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_exec(db, "COMMIT;", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  const auto o0 = Clock::now();
  auto store = tracemark::ledger::OpenLedgerStore(url);
  if (!store.ok()) return Fail("cannot reopen the ledger");
  const double open_ms = std::chrono::duration<double, std::milli>(Clock::now() - o0).count();
  std::array<uint8_t, 32> seed{};
  seed[0] = 7;
  auto signer = tracemark::ledger::AuditSigner::FromSeed(seed);
  if (!signer.ok()) return Fail("no signer");
  tracemark::ledger::AuditLog log(store->get(), signer->get());
  tracemark::ledger::AuditEvent e{"bench", "account.reinstate", "42", "timed", "", 0};
  const auto w0 = Clock::now();
  if (!log.Append(e).ok()) return Fail("warm-up append failed");
  const double first_ms = std::chrono::duration<double, std::milli>(Clock::now() - w0).count();
  std::vector<double> ms;
  for (int i = 0; i < k; ++i) {
    const auto t0 = Clock::now();
    if (!log.Append(e).ok()) return Fail("append failed");
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  double sum = 0;
  for (double v : ms) sum += v;
  std::printf("{\"backend\":\"%s\",\"entries\":%llu,\"appends\":%d,\"open_ms\":%.3f,\"first_append_ms\":%.3f,\"mean_ms\":%.3f,\"p50_ms\":%.3f,"
              "\"max_ms\":%.3f,\"appends_per_second\":%.0f}\n",
              postgres ? "postgresql" : "sqlite", static_cast<unsigned long long>(n), k, open_ms, first_ms, sum / k, ms[ms.size() / 2], ms.back(),
              1000.0 * k / sum);
  if (!postgres) {
    std::filesystem::remove(path);
    std::filesystem::remove(path + "-wal");
    std::filesystem::remove(path + "-shm");
  }
  return 0;
}
