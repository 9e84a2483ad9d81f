// SQLite (WAL) backend of LedgerStore. Schema: docs/formats/ledger.md.
#include <sqlite3.h>

#include <cstring>
#include <mutex>

#include "ledger/store_backends.h"
#include "tracemark/ledger/store.h"

namespace tracemark::ledger {
namespace {

// Waits this long for another process's write lock before failing with "database is locked".
constexpr int kBusyTimeoutMs = 5000;
constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts(
  id TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL,
  state_reason TEXT NOT NULL DEFAULT '', created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL, rpm INTEGER NOT NULL DEFAULT 0, tpm INTEGER NOT NULL DEFAULT 0,
  tokens_per_day INTEGER NOT NULL DEFAULT 0, tokens_per_month INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS api_keys(
  key_id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),
  secret_hmac BLOB NOT NULL, created_at_ms INTEGER NOT NULL,
  revoked_at_ms INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS api_keys_account ON api_keys(account_id);
CREATE TABLE IF NOT EXISTS usage(
  request_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, key_id TEXT NOT NULL,
  model TEXT NOT NULL, endpoint TEXT NOT NULL, prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL, wm_scheme TEXT NOT NULL, wm_key_version INTEGER NOT NULL,
  started_at_ms INTEGER NOT NULL, finished_at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS usage_account_time ON usage(account_id, finished_at_ms);
CREATE TABLE IF NOT EXISTS audit_log(idx INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_checkpoints(
  tree_size INTEGER PRIMARY KEY, note TEXT NOT NULL, signature BLOB NOT NULL,
  created_at_ms INTEGER NOT NULL);
)sql";

// RAII prepared statement.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  void Bind(int i, std::string_view s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void BindBlob(int i, const void* p, int n) { sqlite3_bind_blob(stmt_, i, p, n, SQLITE_TRANSIENT); }
  int Step() { return sqlite3_step(stmt_); }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::string Text(int col) {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string Blob(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p ? std::string(static_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

class SqliteStore final : public LedgerStore {
 public:
  explicit SqliteStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~SqliteStore() override { sqlite3_close_v2(db_); }

  Status Init() {
    TM_RETURN_IF_ERROR(Exec("PRAGMA journal_mode=WAL;"));
    // FULL: a committed transaction survives power loss, which the usage flusher relies on
    // before it deletes a journal segment.
    TM_RETURN_IF_ERROR(Exec("PRAGMA synchronous=FULL;"));
    TM_RETURN_IF_ERROR(Exec("PRAGMA foreign_keys=ON;"));
    TM_RETURN_IF_ERROR(Exec(kSchema));
    TM_RETURN_IF_ERROR(MigrateAccountsOrg());
    Stmt st(db_, "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', ?1)");
    if (!st.ok()) return Error("prepare");
    st.Bind(1, std::to_string(kSchemaVersion));
    if (st.Step() != SQLITE_DONE) return Error("write schema version");
    return Status::Ok();
  }

  Result<std::string> CreateAccount(const AccountRecord& a) override {
    std::lock_guard<std::mutex> lock(mu_);
    // One statement: the id is chosen and inserted under SQLite's write lock.
    Stmt st(db_,
            "INSERT INTO accounts(id, name, state, state_reason, created_at_ms, updated_at_ms, "
            "rpm, tpm, tokens_per_day, tokens_per_month, org) SELECT CASE WHEN ?1 = '' THEN "
            "CAST(COALESCE(MAX(CAST(id AS INTEGER)), 0) + 1 AS TEXT) ELSE ?1 END, "
            "?2,?3,?4,?5,?6,?7,?8,?9,?10,?11 FROM accounts RETURNING id");
    if (!st.ok()) return Error("prepare account insert");
    st.Bind(1, a.id);
    st.Bind(2, a.name);
    st.Bind(3, a.state);
    st.Bind(4, a.state_reason);
    st.Bind(5, a.created_at_ms);
    st.Bind(6, a.updated_at_ms);
    st.Bind(7, a.limits.requests_per_minute);
    st.Bind(8, a.limits.tokens_per_minute);
    st.Bind(9, a.limits.tokens_per_day);
    st.Bind(10, a.limits.tokens_per_month);
    st.Bind(11, a.org);
    if (st.Step() != SQLITE_ROW) return Error("insert account " + a.id);
    std::string id = st.Text(0);
    if (st.Step() != SQLITE_DONE) return Error("insert account " + a.id);
    return id;
  }

  static AccountRecord ReadAccount(Stmt& st) {
    AccountRecord a;
    a.id = st.Text(0);
    a.name = st.Text(1);
    a.state = st.Text(2);
    a.state_reason = st.Text(3);
    a.created_at_ms = st.Int(4);
    a.updated_at_ms = st.Int(5);
    a.limits.requests_per_minute = st.Int(6);
    a.limits.tokens_per_minute = st.Int(7);
    a.limits.tokens_per_day = st.Int(8);
    a.limits.tokens_per_month = st.Int(9);
    a.org = st.Text(10);
    return a;
  }

  static constexpr const char* kAccountCols =
      "SELECT id, name, state, state_reason, created_at_ms, updated_at_ms, rpm, tpm, "
      "tokens_per_day, tokens_per_month, org FROM accounts";

  Result<std::optional<AccountRecord>> GetAccount(std::string_view id) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string sql = std::string(kAccountCols) + " WHERE id = ?1";
    Stmt st(db_, sql.c_str());
    if (!st.ok()) return Error("prepare account select");
    st.Bind(1, id);
    const int rc = st.Step();
    if (rc == SQLITE_DONE) return std::optional<AccountRecord>();
    if (rc != SQLITE_ROW) return Error("select account");
    return std::optional<AccountRecord>(ReadAccount(st));
  }

  Result<std::vector<AccountRecord>> ListAccounts() override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string sql = std::string(kAccountCols) + " ORDER BY created_at_ms, id";
    Stmt st(db_, sql.c_str());
    if (!st.ok()) return Error("prepare account list");
    std::vector<AccountRecord> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) out.push_back(ReadAccount(st));
    if (rc != SQLITE_DONE) return Error("list accounts");
    return out;
  }

  Status UpdateAccountState(std::string_view id, std::string_view state, std::string_view reason,
                            int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    Stmt st(db_,
            "UPDATE accounts SET state = ?2, state_reason = ?3, updated_at_ms = ?4 WHERE id = ?1");
    if (!st.ok()) return Error("prepare state update");
    st.Bind(1, id);
    st.Bind(2, state);
    st.Bind(3, reason);
    st.Bind(4, now_ms);
    if (st.Step() != SQLITE_DONE) return Error("update account state");
    if (sqlite3_changes(db_) != 1) return NotFound("no account with id '" + std::string(id) + "'");
    return Status::Ok();
  }

  Status UpdateAccountLimits(std::string_view id, const AccountLimits& l, int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    Stmt st(db_,
            "UPDATE accounts SET rpm = ?2, tpm = ?3, tokens_per_day = ?4, tokens_per_month = ?5, "
            "updated_at_ms = ?6 WHERE id = ?1");
    if (!st.ok()) return Error("prepare limits update");
    st.Bind(1, id);
    st.Bind(2, l.requests_per_minute);
    st.Bind(3, l.tokens_per_minute);
    st.Bind(4, l.tokens_per_day);
    st.Bind(5, l.tokens_per_month);
    st.Bind(6, now_ms);
    if (st.Step() != SQLITE_DONE) return Error("update account limits");
    if (sqlite3_changes(db_) != 1) return NotFound("no account with id '" + std::string(id) + "'");
    return Status::Ok();
  }

  Status InsertApiKey(const ApiKeyRecord& k) override {
    std::lock_guard<std::mutex> lock(mu_);
    Stmt st(db_,
            "INSERT INTO api_keys(key_id, account_id, secret_hmac, created_at_ms, revoked_at_ms) "
            "VALUES(?1,?2,?3,?4,?5)");
    if (!st.ok()) return Error("prepare key insert");
    st.Bind(1, k.key_id);
    st.Bind(2, k.account_id);
    st.BindBlob(3, k.secret_hmac.data(), static_cast<int>(k.secret_hmac.size()));
    st.Bind(4, k.created_at_ms);
    st.Bind(5, k.revoked_at_ms);
    if (st.Step() != SQLITE_DONE) return Error("insert api key");
    return Status::Ok();
  }

  static ApiKeyRecord ReadKey(Stmt& st) {
    ApiKeyRecord k;
    k.key_id = st.Text(0);
    k.account_id = st.Text(1);
    const std::string blob = st.Blob(2);
    if (blob.size() == k.secret_hmac.size()) std::memcpy(k.secret_hmac.data(), blob.data(), blob.size());
    k.created_at_ms = st.Int(3);
    k.revoked_at_ms = st.Int(4);
    return k;
  }

  static constexpr const char* kKeyCols =
      "SELECT key_id, account_id, secret_hmac, created_at_ms, revoked_at_ms FROM api_keys";

  Result<std::optional<ApiKeyRecord>> GetApiKey(std::string_view key_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string sql = std::string(kKeyCols) + " WHERE key_id = ?1";
    Stmt st(db_, sql.c_str());
    if (!st.ok()) return Error("prepare key select");
    st.Bind(1, key_id);
    const int rc = st.Step();
    if (rc == SQLITE_DONE) return std::optional<ApiKeyRecord>();
    if (rc != SQLITE_ROW) return Error("select api key");
    return std::optional<ApiKeyRecord>(ReadKey(st));
  }

  Result<std::vector<ApiKeyRecord>> ListKeys(const char* where, std::string_view arg) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string sql = std::string(kKeyCols) + where + " ORDER BY created_at_ms, key_id";
    Stmt st(db_, sql.c_str());
    if (!st.ok()) return Error("prepare key list");
    if (!arg.empty()) st.Bind(1, arg);
    std::vector<ApiKeyRecord> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) out.push_back(ReadKey(st));
    if (rc != SQLITE_DONE) return Error("list api keys");
    return out;
  }
  Result<std::vector<ApiKeyRecord>> ListApiKeys(std::string_view account_id) override {
    return ListKeys(" WHERE account_id = ?1", account_id);
  }
  Result<std::vector<ApiKeyRecord>> ListAllApiKeys() override { return ListKeys("", ""); }

  Status RevokeApiKey(std::string_view key_id, int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    Stmt st(db_, "UPDATE api_keys SET revoked_at_ms = ?2 WHERE key_id = ?1 AND revoked_at_ms = 0");
    if (!st.ok()) return Error("prepare key revoke");
    st.Bind(1, key_id);
    st.Bind(2, now_ms);
    if (st.Step() != SQLITE_DONE) return Error("revoke api key");
    if (sqlite3_changes(db_) != 1) {
      return NotFound("no active api key with id '" + std::string(key_id) + "'");
    }
    return Status::Ok();
  }

  Status InsertUsage(std::span<const UsageRecord> records) override {
    if (records.empty()) return Status::Ok();
    std::lock_guard<std::mutex> lock(mu_);
    TM_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE;"));
    Stmt st(db_,
            "INSERT OR IGNORE INTO usage(request_id, account_id, key_id, model, endpoint, "
            "prompt_tokens, completion_tokens, wm_scheme, wm_key_version, started_at_ms, "
            "finished_at_ms) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)");
    if (!st.ok()) {
      Exec("ROLLBACK;").ok();
      return Error("prepare usage insert");
    }
    for (const UsageRecord& r : records) {
      st.Bind(1, r.request_id);
      st.Bind(2, r.account_id);
      st.Bind(3, r.key_id);
      st.Bind(4, r.model);
      st.Bind(5, r.endpoint);
      st.Bind(6, r.prompt_tokens);
      st.Bind(7, r.completion_tokens);
      st.Bind(8, r.wm_scheme);
      st.Bind(9, r.wm_key_version);
      st.Bind(10, r.started_at_ms);
      st.Bind(11, r.finished_at_ms);
      if (st.Step() != SQLITE_DONE) {
        Status s = Error("insert usage " + r.request_id);
        Exec("ROLLBACK;").ok();
        return s;
      }
      st.Reset();
    }
    return Exec("COMMIT;");
  }

  Result<std::vector<UsageRecord>> ListUsage(std::string_view account_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::string sql =
        "SELECT request_id, account_id, key_id, model, endpoint, prompt_tokens, completion_tokens, "
        "wm_scheme, wm_key_version, started_at_ms, finished_at_ms FROM usage";
    if (!account_id.empty()) sql += " WHERE account_id = ?1";
    sql += " ORDER BY finished_at_ms, request_id";
    Stmt st(db_, sql.c_str());
    if (!st.ok()) return Error("prepare usage list");
    if (!account_id.empty()) st.Bind(1, account_id);
    std::vector<UsageRecord> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      UsageRecord r;
      r.request_id = st.Text(0);
      r.account_id = st.Text(1);
      r.key_id = st.Text(2);
      r.model = st.Text(3);
      r.endpoint = st.Text(4);
      r.prompt_tokens = st.Int(5);
      r.completion_tokens = st.Int(6);
      r.wm_scheme = st.Text(7);
      r.wm_key_version = st.Int(8);
      r.started_at_ms = st.Int(9);
      r.finished_at_ms = st.Int(10);
      out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return Error("list usage");
    return out;
  }

  Result<int64_t> TokensSince(std::string_view account_id, int64_t since_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    Stmt st(db_,
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage "
            "WHERE account_id = ?1 AND finished_at_ms >= ?2");
    if (!st.ok()) return Error("prepare usage sum");
    st.Bind(1, account_id);
    st.Bind(2, since_ms);
    if (st.Step() != SQLITE_ROW) return Error("sum usage");
    return st.Int(0);
  }

  Result<uint64_t> AppendAudit(
      const std::function<std::string(uint64_t)>& make_body,
      const std::function<Result<CheckpointRow>(std::span<const Hash>)>& sign) override {
    std::lock_guard<std::mutex> lock(mu_);
    TM_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE;"));
    auto fail = [&](Status s) -> Status {
      Exec("ROLLBACK;").ok();
      return s;
    };
    std::vector<Hash> leaves;
    {
      Stmt st(db_, "SELECT idx, body FROM audit_log ORDER BY idx");
      if (!st.ok()) return fail(Error("prepare audit read"));
      int rc;
      while ((rc = st.Step()) == SQLITE_ROW) {
        if (static_cast<uint64_t>(st.Int(0)) != leaves.size()) {
          return fail(Internal("audit log has a gap at index " + std::to_string(leaves.size()) +
                               "; run `tracemark audit verify`"));
        }
        leaves.push_back(LeafHash(st.Text(1)));
      }
      if (rc != SQLITE_DONE) return fail(Error("read audit log"));
    }
    const uint64_t index = leaves.size();
    const std::string body = make_body(index);
    leaves.push_back(LeafHash(body));
    {
      Stmt st(db_, "INSERT INTO audit_log(idx, body) VALUES(?1, ?2)");
      if (!st.ok()) return fail(Error("prepare audit insert"));
      st.Bind(1, static_cast<int64_t>(index));
      st.Bind(2, body);
      if (st.Step() != SQLITE_DONE) return fail(Error("insert audit entry"));
    }
    Result<CheckpointRow> cp = sign(leaves);
    if (!cp.ok()) return fail(cp.status());
    {
      Stmt st(db_,
              "INSERT OR REPLACE INTO audit_checkpoints(tree_size, note, signature, created_at_ms) "
              "VALUES(?1, ?2, ?3, ?4)");
      if (!st.ok()) return fail(Error("prepare checkpoint insert"));
      st.Bind(1, static_cast<int64_t>(cp->tree_size));
      st.Bind(2, cp->note);
      st.BindBlob(3, cp->signature.data(), static_cast<int>(cp->signature.size()));
      st.Bind(4, cp->created_at_ms);
      if (st.Step() != SQLITE_DONE) return fail(Error("insert checkpoint"));
    }
    TM_RETURN_IF_ERROR(Exec("COMMIT;"));
    return index;
  }

  // O(log n): the Merkle frontier of the log lives in meta("audit_frontier", hex) and is updated
  // in the append's transaction. When it is missing or does not match the log (an older build
  // appended) it is rebuilt once from every entry.
  Result<uint64_t> AppendAuditRoot(
      const std::function<std::string(uint64_t)>& make_body,
      const std::function<Result<CheckpointRow>(uint64_t, const Hash&)>& sign) override {
    static constexpr const char* kFrontierMeta = "audit_frontier";
    std::lock_guard<std::mutex> lock(mu_);
    TM_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE;"));
    auto fail = [&](Status s) -> Status {
      Exec("ROLLBACK;").ok();
      return s;
    };
    uint64_t size = 0;
    {
      Stmt st(db_, "SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_log");
      if (!st.ok() || st.Step() != SQLITE_ROW) return fail(Error("read audit log size"));
      size = static_cast<uint64_t>(st.Int(0));
    }
    std::optional<MerkleFrontier> frontier;
    {
      Stmt st(db_, "SELECT value FROM meta WHERE key = ?1");
      if (!st.ok()) return fail(Error("prepare meta select"));
      st.Bind(1, kFrontierMeta);
      if (st.Step() == SQLITE_ROW) {
        const std::string hex = st.Text(0);
        std::string bytes(hex.size() / 2, '\0');
        if (HexDecode(hex, std::span<uint8_t>(reinterpret_cast<uint8_t*>(bytes.data()), bytes.size()))) {
          Result<MerkleFrontier> f = MerkleFrontier::Parse(bytes);
          if (f.ok() && f->size() == size) frontier = std::move(f).value();
        }
      }
    }
    if (!frontier) {
      frontier.emplace();
      Stmt st(db_, "SELECT idx, body FROM audit_log ORDER BY idx");
      if (!st.ok()) return fail(Error("prepare audit read"));
      int rc;
      while ((rc = st.Step()) == SQLITE_ROW) {
        if (static_cast<uint64_t>(st.Int(0)) != frontier->size()) {
          return fail(Internal("audit log has a gap at index " + std::to_string(frontier->size()) +
                               "; run `tracemark audit verify`"));
        }
        frontier->Append(LeafHash(st.Text(1)));
      }
      if (rc != SQLITE_DONE) return fail(Error("read audit log"));
    }
    const uint64_t index = size;
    const std::string body = make_body(index);
    frontier->Append(LeafHash(body));
    {
      Stmt st(db_, "INSERT INTO audit_log(idx, body) VALUES(?1, ?2)");
      if (!st.ok()) return fail(Error("prepare audit insert"));
      st.Bind(1, static_cast<int64_t>(index));
      st.Bind(2, body);
      if (st.Step() != SQLITE_DONE) return fail(Error("insert audit entry"));
    }
    Result<CheckpointRow> cp = sign(frontier->size(), frontier->Root());
    if (!cp.ok()) return fail(cp.status());
    {
      Stmt st(db_,
              "INSERT OR REPLACE INTO audit_checkpoints(tree_size, note, signature, created_at_ms) "
              "VALUES(?1, ?2, ?3, ?4)");
      if (!st.ok()) return fail(Error("prepare checkpoint insert"));
      st.Bind(1, static_cast<int64_t>(cp->tree_size));
      st.Bind(2, cp->note);
      st.BindBlob(3, cp->signature.data(), static_cast<int>(cp->signature.size()));
      st.Bind(4, cp->created_at_ms);
      if (st.Step() != SQLITE_DONE) return fail(Error("insert checkpoint"));
    }
    {
      const std::string bytes = frontier->Serialize();
      Stmt st(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)");
      if (!st.ok()) return fail(Error("prepare meta write"));
      st.Bind(1, kFrontierMeta);
      st.Bind(2, HexEncode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())));
      if (st.Step() != SQLITE_DONE) return fail(Error("write audit frontier"));
    }
    TM_RETURN_IF_ERROR(Exec("COMMIT;"));
    return index;
  }

  Result<std::vector<AuditRow>> ReadAudit() override {
    std::lock_guard<std::mutex> lock(mu_);
    Stmt st(db_, "SELECT idx, body FROM audit_log ORDER BY idx");
    if (!st.ok()) return Error("prepare audit read");
    std::vector<AuditRow> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      out.push_back(AuditRow{static_cast<uint64_t>(st.Int(0)), st.Text(1)});
    }
    if (rc != SQLITE_DONE) return Error("read audit log");
    return out;
  }

  Result<std::vector<CheckpointRow>> ReadCheckpoints() override {
    std::lock_guard<std::mutex> lock(mu_);
    Stmt st(db_,
            "SELECT tree_size, note, signature, created_at_ms FROM audit_checkpoints "
            "ORDER BY tree_size");
    if (!st.ok()) return Error("prepare checkpoint read");
    std::vector<CheckpointRow> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      out.push_back(CheckpointRow{static_cast<uint64_t>(st.Int(0)), st.Text(1), st.Blob(2),
                                  st.Int(3)});
    }
    if (rc != SQLITE_DONE) return Error("read checkpoints");
    return out;
  }

  Result<std::optional<std::string>> GetMeta(std::string_view key) override {
    std::lock_guard<std::mutex> lock(mu_);
    Stmt st(db_, "SELECT value FROM meta WHERE key = ?1");
    if (!st.ok()) return Error("prepare meta select");
    st.Bind(1, key);
    const int rc = st.Step();
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    if (rc != SQLITE_ROW) return Error("select meta");
    return std::optional<std::string>(st.Text(0));
  }

  Status SetMeta(std::string_view key, std::string_view value) override {
    std::lock_guard<std::mutex> lock(mu_);
    Stmt st(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)");
    if (!st.ok()) return Error("prepare meta write");
    st.Bind(1, key);
    st.Bind(2, value);
    if (st.Step() != SQLITE_DONE) return Error("write meta");
    return Status::Ok();
  }

 private:
  Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      return IoError("ledger " + path_ + ": " + msg);
    }
    return Status::Ok();
  }
  // Ledgers created before the org attribute lack its column: add it (idempotent; another
  // process may add it concurrently, which is not an error).
  Status MigrateAccountsOrg() {
    auto has_org = [&] {
      Stmt probe(db_, "SELECT org FROM accounts LIMIT 0");
      return probe.ok();
    };
    if (has_org()) return Status::Ok();
    Status s = Exec("ALTER TABLE accounts ADD COLUMN org TEXT NOT NULL DEFAULT ''");
    if (!s.ok() && !has_org()) return s;
    return Status::Ok();
  }
  Status Error(const std::string& what) {
    return IoError("ledger " + path_ + ": " + what + ": " + sqlite3_errmsg(db_));
  }

  std::mutex mu_;
  sqlite3* db_;
  std::string path_;
};

}  // namespace

Result<std::string> SqlitePathFromUrl(std::string_view url) {
  constexpr std::string_view kPrefix = "sqlite:";
  if (url.substr(0, kPrefix.size()) != kPrefix || url.size() == kPrefix.size()) {
    return InvalidArgument("database URL '" + std::string(url) +
                           "' is not of the form sqlite:PATH");
  }
  std::string_view path = url.substr(kPrefix.size());
  // Accept sqlite:///abs/path and sqlite://rel as well as sqlite:path.
  if (path.substr(0, 2) == "//") path.remove_prefix(2);
  return std::string(path);
}

Result<std::unique_ptr<LedgerStore>> OpenSqliteStore(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return IoError("cannot open ledger database " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  auto store = std::make_unique<SqliteStore>(db, path);
  TM_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<LedgerStore>(std::move(store));
}

}  // namespace tracemark::ledger
