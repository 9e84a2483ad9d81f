// PostgreSQL backend of LedgerStore (libpqxx). Same tables and semantics as the SQLite backend
// (docs/formats/ledger.md, "PostgreSQL"): migrations run at open under an advisory lock, every
// statement is prepared once per connection and takes its values as parameters (never spliced
// into SQL text), and the operations that SQLite runs in IMMEDIATE transactions (account id
// assignment, usage batches, audit appends) run here in transactions serialized across
// processes and replicas by transaction-scoped advisory locks. Audit appends are O(log n): the
// Merkle frontier of the log lives in meta('audit_frontier') and is updated in the append's
// transaction, as in the SQLite backend. Account and key changes are announced with NOTIFY in
// their transaction (delivered at commit); WaitForAccountChange LISTENs on a second connection.
#include <pqxx/pqxx>

#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "ledger/store_backends.h"

namespace tracemark::ledger {
namespace {

// 1: the tables. 2: meta('audit_frontier') is kept by every append (computed at migration).
constexpr int kSchemaVersion = 2;
constexpr const char* kFrontierMeta = "audit_frontier";
// pg_advisory_xact_lock keys ("TMLEDGER" + a small number): one per serialized operation.
constexpr int64_t kMigrationLockKey = 0x544d4c4544474500;
constexpr int64_t kAccountIdLockKey = 0x544d4c4544474501;
constexpr int64_t kAuditLockKey = 0x544d4c4544474502;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts(
  id TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL,
  state_reason TEXT NOT NULL DEFAULT '', created_at_ms BIGINT NOT NULL,
  updated_at_ms BIGINT NOT NULL, rpm BIGINT NOT NULL DEFAULT 0, tpm BIGINT NOT NULL DEFAULT 0,
  tokens_per_day BIGINT NOT NULL DEFAULT 0, tokens_per_month BIGINT NOT NULL DEFAULT 0);
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS org TEXT NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS api_keys(
  key_id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),
  secret_hmac BYTEA NOT NULL, created_at_ms BIGINT NOT NULL,
  revoked_at_ms BIGINT NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS api_keys_account ON api_keys(account_id);
CREATE TABLE IF NOT EXISTS usage(
  request_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, key_id TEXT NOT NULL,
  model TEXT NOT NULL, endpoint TEXT NOT NULL, prompt_tokens BIGINT NOT NULL,
  completion_tokens BIGINT NOT NULL, wm_scheme TEXT NOT NULL, wm_key_version BIGINT NOT NULL,
  started_at_ms BIGINT NOT NULL, finished_at_ms BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS usage_account_time ON usage(account_id, finished_at_ms);
CREATE TABLE IF NOT EXISTS audit_log(idx BIGINT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_checkpoints(
  tree_size BIGINT PRIMARY KEY, note TEXT NOT NULL, signature BYTEA NOT NULL,
  created_at_ms BIGINT NOT NULL);
)sql";

constexpr const char* kAccountCols =
    "SELECT id, name, state, state_reason, created_at_ms, updated_at_ms, rpm, tpm, "
    "tokens_per_day, tokens_per_month, org FROM accounts";
constexpr const char* kKeyCols =
    "SELECT key_id, account_id, encode(secret_hmac, 'hex'), created_at_ms, revoked_at_ms "
    "FROM api_keys";
constexpr const char* kUsageCols =
    "SELECT request_id, account_id, key_id, model, endpoint, prompt_tokens, completion_tokens, "
    "wm_scheme, wm_key_version, started_at_ms, finished_at_ms FROM usage";

// Every statement, prepared on each (re)connection. Binary columns travel as hex text through
// decode()/encode() so no binary parameter handling is needed.
struct Prepared {
  const char* name;
  std::string sql;
};
const std::vector<Prepared>& Statements() {
  static const std::vector<Prepared> kStatements = {
      {"account_insert",
       "INSERT INTO accounts(id, name, state, state_reason, created_at_ms, updated_at_ms, rpm, tpm, "
       "tokens_per_day, tokens_per_month, org) SELECT CASE WHEN $1 = '' THEN "
       "CAST(COALESCE(MAX(CASE WHEN id ~ '^[0-9]{1,18}$' THEN CAST(id AS BIGINT) END), 0) + 1 "
       "AS TEXT) ELSE $1 END, "
       "$2,$3,$4,$5,$6,$7,$8,$9,$10,$11 FROM accounts RETURNING id"},
      {"account_get", std::string(kAccountCols) + " WHERE id = $1"},
      {"account_list", std::string(kAccountCols) + " ORDER BY created_at_ms, id"},
      {"account_state",
       "UPDATE accounts SET state = $2, state_reason = $3, updated_at_ms = $4 WHERE id = $1"},
      {"account_limits",
       "UPDATE accounts SET rpm = $2, tpm = $3, tokens_per_day = $4, tokens_per_month = $5, "
       "updated_at_ms = $6 WHERE id = $1"},
      {"key_insert",
       "INSERT INTO api_keys(key_id, account_id, secret_hmac, created_at_ms, revoked_at_ms) "
       "VALUES($1, $2, decode($3, 'hex'), $4, $5)"},
      {"key_get", std::string(kKeyCols) + " WHERE key_id = $1"},
      {"key_list", std::string(kKeyCols) + " WHERE account_id = $1 ORDER BY created_at_ms, key_id"},
      {"key_list_all", std::string(kKeyCols) + " ORDER BY created_at_ms, key_id"},
      {"key_revoke",
       "UPDATE api_keys SET revoked_at_ms = $2 WHERE key_id = $1 AND revoked_at_ms = 0"},
      {"usage_insert",
       "INSERT INTO usage(request_id, account_id, key_id, model, endpoint, prompt_tokens, "
       "completion_tokens, wm_scheme, wm_key_version, started_at_ms, finished_at_ms) "
       "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT (request_id) DO NOTHING"},
      {"usage_list", std::string(kUsageCols) + " ORDER BY finished_at_ms, request_id"},
      {"usage_list_account",
       std::string(kUsageCols) + " WHERE account_id = $1 ORDER BY finished_at_ms, request_id"},
      {"usage_sum",
       "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0)::BIGINT FROM usage "
       "WHERE account_id = $1 AND finished_at_ms >= $2"},
      {"advisory_lock", "SELECT pg_advisory_xact_lock($1)"},
      {"notify_account", "SELECT pg_notify('" + std::string(kAccountChangeChannel) + "', $1)"},
      {"audit_read", "SELECT idx, body FROM audit_log ORDER BY idx"},
      {"audit_size", "SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_log"},
      {"audit_insert", "INSERT INTO audit_log(idx, body) VALUES($1, $2)"},
      {"checkpoint_upsert",
       "INSERT INTO audit_checkpoints(tree_size, note, signature, created_at_ms) "
       "VALUES($1, $2, decode($3, 'hex'), $4) ON CONFLICT (tree_size) DO UPDATE SET "
       "note = EXCLUDED.note, signature = EXCLUDED.signature, created_at_ms = EXCLUDED.created_at_ms"},
      {"checkpoint_read",
       "SELECT tree_size, note, encode(signature, 'hex'), created_at_ms FROM audit_checkpoints "
       "ORDER BY tree_size"},
      {"meta_get", "SELECT value FROM meta WHERE key = $1"},
      {"meta_set",
       "INSERT INTO meta(key, value) VALUES($1, $2) ON CONFLICT (key) DO UPDATE SET "
       "value = EXCLUDED.value"},
      {"meta_init", "INSERT INTO meta(key, value) VALUES('schema_version', $1) ON CONFLICT DO NOTHING"},
      {"meta_version", "SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'schema_version'"},
  };
  return kStatements;
}

constexpr char kHexDigits[] = "0123456789abcdef";

std::string BytesToHex(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kHexDigits[b >> 4]);
    out.push_back(kHexDigits[b & 15]);
  }
  return out;
}

// encode(..., 'hex') output back to bytes; "" when malformed (never from PostgreSQL).
std::string HexToBytes(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return std::string();
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::string();
    out[i] = static_cast<char>((hi << 4) | lo);
  }
  return out;
}

class PostgresStore final : public LedgerStore {
 public:
  PostgresStore(std::string url, std::string display) : url_(std::move(url)), display_(std::move(display)) {}

  Status Init() {
    std::lock_guard<std::mutex> lock(mu_);
    TM_RETURN_IF_ERROR(ConnectLocked());
    return Guard("migrate schema", [&]() -> Status {
      pqxx::work tx(*conn_);
      // Two processes opening a fresh database at once would race on CREATE TABLE IF NOT EXISTS.
      tx.exec_prepared("advisory_lock", kMigrationLockKey);
      tx.exec(kSchema);
      tx.exec_prepared("meta_init", std::to_string(kSchemaVersion));
      pqxx::result v = tx.exec_prepared("meta_version");
      const int64_t version = v.empty() ? 0 : v[0][0].as<int64_t>();
      if (version < 2) {
        // Version 1 kept no frontier: compute it once from the existing entries, under the audit
        // lock so that no append of an older replica interleaves.
        tx.exec_prepared("advisory_lock", kAuditLockKey);
        TM_ASSIGN_OR_RETURN(MerkleFrontier frontier, RebuildFrontier(tx));
        WriteFrontier(tx, frontier);
        tx.exec_prepared("meta_set", "schema_version", std::to_string(kSchemaVersion));
      }
      tx.commit();
      return Status::Ok();
    });
  }

  Result<std::string> CreateAccount(const AccountRecord& a) override {
    std::string id;
    TM_RETURN_IF_ERROR(Run("insert account " + a.id, [&]() -> Status {
      pqxx::work tx(*conn_);
      // MAX(id) + 1 must not be chosen by two transactions at once.
      tx.exec_prepared("advisory_lock", kAccountIdLockKey);
      pqxx::result r = tx.exec_prepared("account_insert", a.id, a.name, a.state, a.state_reason,
                                        a.created_at_ms, a.updated_at_ms, a.limits.requests_per_minute,
                                        a.limits.tokens_per_minute, a.limits.tokens_per_day,
                                        a.limits.tokens_per_month, a.org);
      if (r.size() != 1) return Internal("account insert returned no id");
      id = r[0][0].as<std::string>();
      tx.exec_prepared("notify_account", id);
      tx.commit();
      return Status::Ok();
    }));
    return id;
  }

  static AccountRecord ReadAccount(const pqxx::row& row) {
    AccountRecord a;
    a.id = row[0].as<std::string>();
    a.name = row[1].as<std::string>();
    a.state = row[2].as<std::string>();
    a.state_reason = row[3].as<std::string>();
    a.created_at_ms = row[4].as<int64_t>();
    a.updated_at_ms = row[5].as<int64_t>();
    a.limits.requests_per_minute = row[6].as<int64_t>();
    a.limits.tokens_per_minute = row[7].as<int64_t>();
    a.limits.tokens_per_day = row[8].as<int64_t>();
    a.limits.tokens_per_month = row[9].as<int64_t>();
    a.org = row[10].as<std::string>();
    return a;
  }

  Result<std::optional<AccountRecord>> GetAccount(std::string_view id) override {
    std::optional<AccountRecord> out;
    TM_RETURN_IF_ERROR(Run("select account", [&]() -> Status {
      pqxx::nontransaction tx(*conn_);
      pqxx::result r = tx.exec_prepared("account_get", std::string(id));
      if (!r.empty()) out = ReadAccount(r[0]);
      return Status::Ok();
    }));
    return out;
  }

  Result<std::vector<AccountRecord>> ListAccounts() override {
    std::vector<AccountRecord> out;
    TM_RETURN_IF_ERROR(Run("list accounts", [&]() -> Status {
      pqxx::nontransaction tx(*conn_);
      pqxx::result r = tx.exec_prepared("account_list");
      out.clear();
      out.reserve(r.size());
      for (const pqxx::row& row : r) out.push_back(ReadAccount(row));
      return Status::Ok();
    }));
    return out;
  }

  Status UpdateAccountState(std::string_view id, std::string_view state, std::string_view reason,
                            int64_t now_ms) override {
    return Run("update account state", [&]() -> Status {
      pqxx::work tx(*conn_);
      pqxx::result r = tx.exec_prepared("account_state", std::string(id), std::string(state),
                                        std::string(reason), now_ms);
      if (r.affected_rows() != 1) return NotFound("no account with id '" + std::string(id) + "'");
      tx.exec_prepared("notify_account", std::string(id));
      tx.commit();
      return Status::Ok();
    });
  }

  Status UpdateAccountLimits(std::string_view id, const AccountLimits& l, int64_t now_ms) override {
    return Run("update account limits", [&]() -> Status {
      pqxx::work tx(*conn_);
      pqxx::result r = tx.exec_prepared("account_limits", std::string(id), l.requests_per_minute,
                                        l.tokens_per_minute, l.tokens_per_day, l.tokens_per_month, now_ms);
      if (r.affected_rows() != 1) return NotFound("no account with id '" + std::string(id) + "'");
      tx.exec_prepared("notify_account", std::string(id));
      tx.commit();
      return Status::Ok();
    });
  }

  Status InsertApiKey(const ApiKeyRecord& k) override {
    return Run("insert api key", [&]() -> Status {
      pqxx::work tx(*conn_);
      tx.exec_prepared("key_insert", k.key_id, k.account_id, BytesToHex(std::string_view(reinterpret_cast<const char*>(k.secret_hmac.data()), k.secret_hmac.size())),
                       k.created_at_ms, k.revoked_at_ms);
      tx.exec_prepared("notify_account", k.account_id);
      tx.commit();
      return Status::Ok();
    });
  }

  static ApiKeyRecord ReadKey(const pqxx::row& row) {
    ApiKeyRecord k;
    k.key_id = row[0].as<std::string>();
    k.account_id = row[1].as<std::string>();
    const std::string blob = HexToBytes(row[2].as<std::string>());
    if (blob.size() == k.secret_hmac.size()) std::memcpy(k.secret_hmac.data(), blob.data(), blob.size());
    k.created_at_ms = row[3].as<int64_t>();
    k.revoked_at_ms = row[4].as<int64_t>();
    return k;
  }

  Result<std::optional<ApiKeyRecord>> GetApiKey(std::string_view key_id) override {
    std::optional<ApiKeyRecord> out;
    TM_RETURN_IF_ERROR(Run("select api key", [&]() -> Status {
      pqxx::nontransaction tx(*conn_);
      pqxx::result r = tx.exec_prepared("key_get", std::string(key_id));
      if (!r.empty()) out = ReadKey(r[0]);
      return Status::Ok();
    }));
    return out;
  }

  Result<std::vector<ApiKeyRecord>> ListApiKeys(std::string_view account_id) override {
    return ListKeys("key_list", account_id);
  }
  Result<std::vector<ApiKeyRecord>> ListAllApiKeys() override { return ListKeys("key_list_all", ""); }

  Status RevokeApiKey(std::string_view key_id, int64_t now_ms) override {
    return Run("revoke api key", [&]() -> Status {
      pqxx::work tx(*conn_);
      pqxx::result r = tx.exec_prepared("key_revoke", std::string(key_id), now_ms);
      if (r.affected_rows() != 1) {
        return NotFound("no active api key with id '" + std::string(key_id) + "'");
      }
      tx.exec_prepared("notify_account", std::string(key_id));
      tx.commit();
      return Status::Ok();
    });
  }

  Status InsertUsage(std::span<const UsageRecord> records) override {
    if (records.empty()) return Status::Ok();
    return Run("insert usage", [&]() -> Status {
      pqxx::work tx(*conn_);
      for (const UsageRecord& u : records) {
        tx.exec_prepared("usage_insert", u.request_id, u.account_id, u.key_id, u.model, u.endpoint,
                         u.prompt_tokens, u.completion_tokens, u.wm_scheme, u.wm_key_version,
                         u.started_at_ms, u.finished_at_ms);
      }
      tx.commit();
      return Status::Ok();
    });
  }

  Result<std::vector<UsageRecord>> ListUsage(std::string_view account_id) override {
    std::vector<UsageRecord> out;
    TM_RETURN_IF_ERROR(Run("list usage", [&]() -> Status {
      pqxx::nontransaction tx(*conn_);
      pqxx::result r = account_id.empty() ? tx.exec_prepared("usage_list")
                                          : tx.exec_prepared("usage_list_account", std::string(account_id));
      out.clear();
      out.reserve(r.size());
      for (const pqxx::row& row : r) {
        UsageRecord u;
        u.request_id = row[0].as<std::string>();
        u.account_id = row[1].as<std::string>();
        u.key_id = row[2].as<std::string>();
        u.model = row[3].as<std::string>();
        u.endpoint = row[4].as<std::string>();
        u.prompt_tokens = row[5].as<int64_t>();
        u.completion_tokens = row[6].as<int64_t>();
        u.wm_scheme = row[7].as<std::string>();
        u.wm_key_version = row[8].as<int64_t>();
        u.started_at_ms = row[9].as<int64_t>();
        u.finished_at_ms = row[10].as<int64_t>();
        out.push_back(std::move(u));
      }
      return Status::Ok();
    }));
    return out;
  }

  Result<int64_t> TokensSince(std::string_view account_id, int64_t since_ms) override {
    int64_t total = 0;
    TM_RETURN_IF_ERROR(Run("sum usage", [&]() -> Status {
      pqxx::nontransaction tx(*conn_);
      pqxx::result r = tx.exec_prepared("usage_sum", std::string(account_id), since_ms);
      total = r.empty() ? 0 : r[0][0].as<int64_t>();
      return Status::Ok();
    }));
    return total;
  }

  Result<uint64_t> AppendAudit(
      const std::function<std::string(uint64_t)>& make_body,
      const std::function<Result<CheckpointRow>(std::span<const Hash>)>& sign) override {
    uint64_t index = 0;
    TM_RETURN_IF_ERROR(Run("append audit entry", [&]() -> Status {
      pqxx::work tx(*conn_);
      // Serializes appends across processes, like SQLite's BEGIN IMMEDIATE.
      tx.exec_prepared("advisory_lock", kAuditLockKey);
      std::vector<Hash> leaves;
      pqxx::result rows = tx.exec_prepared("audit_read");
      leaves.reserve(rows.size() + 1);
      for (const pqxx::row& row : rows) {
        if (row[0].as<uint64_t>() != leaves.size()) {
          return Internal("audit log has a gap at index " + std::to_string(leaves.size()) +
                          "; run `tracemark audit verify`");
        }
        leaves.push_back(LeafHash(row[1].as<std::string>()));
      }
      index = leaves.size();
      const std::string body = make_body(index);
      leaves.push_back(LeafHash(body));
      tx.exec_prepared("audit_insert", static_cast<int64_t>(index), body);
      Result<CheckpointRow> cp = sign(leaves);
      if (!cp.ok()) return cp.status();  // the transaction rolls back when tx is destroyed
      tx.exec_prepared("checkpoint_upsert", static_cast<int64_t>(cp->tree_size), cp->note,
                       BytesToHex(cp->signature), cp->created_at_ms);
      tx.commit();
      return Status::Ok();
    }));
    return index;
  }

  // O(log n): reads the frontier and the log size (the primary key's last entry), appends the
  // leaf, signs the new root and writes entry, checkpoint and frontier in one transaction under
  // the same advisory lock as AppendAudit, so appends from replicas, the CLI and older builds
  // (which append without the frontier) are serialized. A frontier that is missing or names
  // another size (an older build appended) is rebuilt once from every entry.
  Result<uint64_t> AppendAuditRoot(
      const std::function<std::string(uint64_t)>& make_body,
      const std::function<Result<CheckpointRow>(uint64_t, const Hash&)>& sign) override {
    uint64_t index = 0;
    TM_RETURN_IF_ERROR(Run("append audit entry", [&]() -> Status {
      pqxx::work tx(*conn_);
      tx.exec_prepared("advisory_lock", kAuditLockKey);
      const uint64_t size = tx.exec_prepared("audit_size")[0][0].as<uint64_t>();
      std::optional<MerkleFrontier> frontier;
      pqxx::result m = tx.exec_prepared("meta_get", kFrontierMeta);
      if (!m.empty()) {
        const std::string bytes = HexToBytes(m[0][0].as<std::string>());
        Result<MerkleFrontier> f = MerkleFrontier::Parse(bytes);
        if (f.ok() && f->size() == size) frontier = std::move(f).value();
      }
      if (!frontier) {
        TM_ASSIGN_OR_RETURN(frontier, RebuildFrontier(tx));
      }
      index = size;
      const std::string body = make_body(index);
      frontier->Append(LeafHash(body));
      tx.exec_prepared("audit_insert", static_cast<int64_t>(index), body);
      Result<CheckpointRow> cp = sign(frontier->size(), frontier->Root());
      if (!cp.ok()) return cp.status();  // the transaction rolls back when tx is destroyed
      tx.exec_prepared("checkpoint_upsert", static_cast<int64_t>(cp->tree_size), cp->note,
                       BytesToHex(cp->signature), cp->created_at_ms);
      WriteFrontier(tx, *frontier);
      tx.commit();
      return Status::Ok();
    }));
    return index;
  }

  Result<std::vector<AuditRow>> ReadAudit() override {
    std::vector<AuditRow> out;
    TM_RETURN_IF_ERROR(Run("read audit log", [&]() -> Status {
      pqxx::nontransaction tx(*conn_);
      pqxx::result r = tx.exec_prepared("audit_read");
      out.clear();
      for (const pqxx::row& row : r) out.push_back(AuditRow{row[0].as<uint64_t>(), row[1].as<std::string>()});
      return Status::Ok();
    }));
    return out;
  }

  Result<std::vector<CheckpointRow>> ReadCheckpoints() override {
    std::vector<CheckpointRow> out;
    TM_RETURN_IF_ERROR(Run("read checkpoints", [&]() -> Status {
      pqxx::nontransaction tx(*conn_);
      pqxx::result r = tx.exec_prepared("checkpoint_read");
      out.clear();
      for (const pqxx::row& row : r) {
        out.push_back(CheckpointRow{row[0].as<uint64_t>(), row[1].as<std::string>(),
                                    HexToBytes(row[2].as<std::string>()), row[3].as<int64_t>()});
      }
      return Status::Ok();
    }));
    return out;
  }

  // LISTEN on a connection of its own (opened on first use, reopened after a failure), so the
  // wait never holds the store's mutex. A failure sleeps out the timeout before it returns, so
  // a caller polling in a loop keeps its pace while the database is away.
  Result<bool> WaitForAccountChange(int64_t timeout_ms) override {
    std::lock_guard<std::mutex> lock(listen_mu_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    auto fail = [&](const std::string& what) -> Result<bool> {
      listener_.reset();
      listen_conn_.reset();
      std::this_thread::sleep_until(deadline);
      return IoError("ledger " + display_ + ": listen for account changes: " + what);
    };
    try {
      if (!listen_conn_ || !listen_conn_->is_open()) {
        listener_.reset();
        listen_conn_ = std::make_unique<pqxx::connection>(url_);
        listener_ = std::make_unique<ChangeListener>(*listen_conn_);
      }
      listener_->seen = 0;
      for (;;) {
        if (listen_conn_->get_notifs() > 0 || listener_->seen > 0) return true;
        const auto left = std::chrono::duration_cast<std::chrono::microseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        listen_conn_->await_notification(static_cast<long>(left.count() / 1'000'000),
                                         static_cast<long>(left.count() % 1'000'000));
        if (listener_->seen > 0) return true;
        if (!listen_conn_->is_open()) return fail("connection lost");
      }
    } catch (const std::exception& e) {
      return fail(FirstLine(e.what()));
    }
  }

  Result<std::optional<std::string>> GetMeta(std::string_view key) override {
    std::optional<std::string> out;
    TM_RETURN_IF_ERROR(Run("select meta", [&]() -> Status {
      pqxx::nontransaction tx(*conn_);
      pqxx::result r = tx.exec_prepared("meta_get", std::string(key));
      if (!r.empty()) out = r[0][0].as<std::string>();
      return Status::Ok();
    }));
    return out;
  }

  Status SetMeta(std::string_view key, std::string_view value) override {
    return Run("write meta", [&]() -> Status {
      pqxx::work tx(*conn_);
      tx.exec_prepared("meta_set", std::string(key), std::string(value));
      tx.commit();
      return Status::Ok();
    });
  }

 private:
  Status ConnectLocked() {
    try {
      conn_ = std::make_unique<pqxx::connection>(url_);
      for (const Prepared& p : Statements()) conn_->prepare(p.name, p.sql);
    } catch (const std::exception& e) {
      conn_.reset();
      return IoError("cannot connect to ledger " + display_ + ": " + FirstLine(e.what()));
    }
    return Status::Ok();
  }

  // Runs fn under the store mutex, reconnecting first when the last call lost the connection.
  // A call that fails because the connection broke is not retried (its commit may or may not
  // have happened); the next call reconnects.
  template <class Fn>
  Status Run(const std::string& what, Fn&& fn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!conn_ || !conn_->is_open()) TM_RETURN_IF_ERROR(ConnectLocked());
    return Guard(what, fn);
  }

  template <class Fn>
  Status Guard(const std::string& what, Fn&& fn) {
    try {
      return fn();
    } catch (const pqxx::broken_connection& e) {
      conn_.reset();
      return IoError("ledger " + display_ + ": " + what + ": connection lost: " + FirstLine(e.what()));
    } catch (const std::exception& e) {
      return IoError("ledger " + display_ + ": " + what + ": " + FirstLine(e.what()));
    }
  }

  static std::string FirstLine(const char* msg) {
    std::string s(msg);
    const size_t nl = s.find('\n');
    if (nl != std::string::npos) s.resize(nl);
    return s;
  }

  // The frontier of every entry in the log (O(n)); inside the caller's transaction.
  static Result<MerkleFrontier> RebuildFrontier(pqxx::work& tx) {
    MerkleFrontier frontier;
    pqxx::result rows = tx.exec_prepared("audit_read");
    for (const pqxx::row& row : rows) {
      if (row[0].as<uint64_t>() != frontier.size()) {
        return Internal("audit log has a gap at index " + std::to_string(frontier.size()) +
                        "; run `tracemark audit verify`");
      }
      frontier.Append(LeafHash(row[1].as<std::string>()));
    }
    return frontier;
  }

  static void WriteFrontier(pqxx::work& tx, const MerkleFrontier& frontier) {
    tx.exec_prepared("meta_set", kFrontierMeta, BytesToHex(frontier.Serialize()));
  }

  Result<std::vector<ApiKeyRecord>> ListKeys(const char* stmt, std::string_view account_id) {
    std::vector<ApiKeyRecord> out;
    TM_RETURN_IF_ERROR(Run("list api keys", [&]() -> Status {
      pqxx::nontransaction tx(*conn_);
      pqxx::result r = account_id.empty() ? tx.exec_prepared(stmt) : tx.exec_prepared(stmt, std::string(account_id));
      out.clear();
      out.reserve(r.size());
      for (const pqxx::row& row : r) out.push_back(ReadKey(row));
      return Status::Ok();
    }));
    return out;
  }

  // Counts the notifications on kAccountChangeChannel.
  class ChangeListener final : public pqxx::notification_receiver {
   public:
    explicit ChangeListener(pqxx::connection_base& c)
        : pqxx::notification_receiver(c, std::string(kAccountChangeChannel)) {}
    void operator()(const std::string&, int) override { ++seen; }
    int seen = 0;
  };

  std::mutex listen_mu_;  // guards the listening connection (WaitForAccountChange)
  std::unique_ptr<pqxx::connection> listen_conn_;
  std::unique_ptr<ChangeListener> listener_;  // destroyed before listen_conn_
  std::mutex mu_;
  std::unique_ptr<pqxx::connection> conn_;
  const std::string url_;
  const std::string display_;  // url_ without its password
};

}  // namespace

std::string RedactDatabaseUrl(std::string_view url) {
  std::string out(url);
  // password=... in the query string
  constexpr std::string_view kPasswordParam = "password=";
  const size_t pw = out.find(kPasswordParam);
  if (pw != std::string::npos) {
    const size_t from = pw + kPasswordParam.size();
    const size_t end = out.find('&', from);
    out.replace(from, (end == std::string::npos ? out.size() : end) - from, "***");
  }
  // scheme://user:password@host/... -> scheme://user:***@host/...
  const size_t scheme_end = out.find("://");
  if (scheme_end == std::string::npos) return out;
  const size_t auth_start = scheme_end + 3;
  const size_t at = out.find('@', auth_start);
  const size_t slash = out.find('/', auth_start);
  if (at == std::string::npos || (slash != std::string::npos && slash < at)) return out;
  const size_t colon = out.find(':', auth_start);
  if (colon == std::string::npos || colon > at) return out;
  return out.substr(0, colon + 1) + "***" + out.substr(at);
}

Result<std::unique_ptr<LedgerStore>> OpenPostgresStore(std::string_view url) {
  std::string conninfo(url);
  // libpq understands postgresql:// and postgres:// URIs as they are.
  auto store = std::make_unique<PostgresStore>(conninfo, RedactDatabaseUrl(url));
  TM_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<LedgerStore>(std::move(store));
}

}  // namespace tracemark::ledger
