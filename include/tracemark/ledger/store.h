// LedgerStore: durable state of the gateway behind one interface (accounts, API keys, usage
// records, the audit log and its signed checkpoints, small metadata). SQLite (WAL mode) is the
// embedded backend (`sqlite:PATH`); PostgreSQL (`postgresql://...`, libpqxx) serves several
// replicas from one database.
// The on-disk schema is documented in docs/formats/ledger.md.
//
// Thread-safety: a LedgerStore may be used from any number of threads; both backends serialize
// calls on one connection. Several processes may open the same database (server replicas and
// the `tracemark accounts` CLI): writes that must be atomic across processes (audit appends,
// account ids) run in IMMEDIATE transactions (SQLite) or under advisory locks (PostgreSQL).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/ledger/merkle.h"

namespace tracemark::ledger {

// Per-account limits; 0 means unlimited.
struct AccountLimits {
  int64_t requests_per_minute = 0;
  int64_t tokens_per_minute = 0;
  int64_t tokens_per_day = 0;
  int64_t tokens_per_month = 0;
};

struct AccountRecord {
  std::string id;          // decimal 1, 2, ...: also the watermark payload's account id
  std::string name;
  std::string state;       // policy::AccountState name: active, throttled, suspended, ...
  std::string state_reason;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  AccountLimits limits;
  // Organization / payment attribute given at creation ("" when none); a linkage signal for the
  // distillation monitor. Column added by migration to ledgers created before it.
  std::string org = "";
};

struct ApiKeyRecord {
  std::string key_id;      // public part of the key, used for lookup and redacted display
  std::string account_id;
  Hash secret_hmac{};      // HMAC-SHA256(pepper, full key); the key itself is never stored
  int64_t created_at_ms = 0;
  int64_t revoked_at_ms = 0;  // 0 while the key is valid
};

struct UsageRecord {
  std::string request_id;  // unique; re-inserting the same id is a no-op (idempotent replay)
  std::string account_id;
  std::string key_id;
  std::string model;
  std::string endpoint;    // "chat.completions" or "completions"
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  std::string wm_scheme;   // watermark scheme name ("" when none)
  int64_t wm_key_version = 0;
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
};

struct AuditRow {
  uint64_t index = 0;
  std::string body;        // canonical JSON of the entry; the Merkle leaf is exactly these bytes
};

struct CheckpointRow {
  uint64_t tree_size = 0;
  std::string note;        // C2SP tlog-checkpoint body: origin, size, base64 root (3 lines)
  std::string signature;   // raw Ed25519 signature over `note`
  int64_t created_at_ms = 0;
};

class LedgerStore {
 public:
  virtual ~LedgerStore() = default;

  // Inserts the account; an empty id is assigned the next integer (1, 2, ...) atomically.
  // Returns the id.
  virtual Result<std::string> CreateAccount(const AccountRecord& account) = 0;
  virtual Result<std::optional<AccountRecord>> GetAccount(std::string_view id) = 0;
  virtual Result<std::vector<AccountRecord>> ListAccounts() = 0;
  virtual Status UpdateAccountState(std::string_view id, std::string_view state,
                                    std::string_view reason, int64_t now_ms) = 0;
  virtual Status UpdateAccountLimits(std::string_view id, const AccountLimits& limits,
                                     int64_t now_ms) = 0;

  virtual Status InsertApiKey(const ApiKeyRecord& key) = 0;
  virtual Result<std::optional<ApiKeyRecord>> GetApiKey(std::string_view key_id) = 0;
  virtual Result<std::vector<ApiKeyRecord>> ListApiKeys(std::string_view account_id) = 0;
  virtual Result<std::vector<ApiKeyRecord>> ListAllApiKeys() = 0;
  virtual Status RevokeApiKey(std::string_view key_id, int64_t now_ms) = 0;

  // Inserts in one transaction; a record whose request_id exists is skipped.
  virtual Status InsertUsage(std::span<const UsageRecord> records) = 0;
  // All records of one account ("" = every account), ordered by finish time.
  virtual Result<std::vector<UsageRecord>> ListUsage(std::string_view account_id) = 0;
  // prompt + completion tokens of an account finished at or after since_ms.
  virtual Result<int64_t> TokensSince(std::string_view account_id, int64_t since_ms) = 0;

  // Appends an entry at the next index atomically (across processes) and returns its index.
  // `make_body(index)` builds the entry bytes; `sign(leaf_hashes_including_new)` returns the
  // checkpoint to store in the same transaction (tree_size == index + 1).
  virtual Result<uint64_t> AppendAudit(
      const std::function<std::string(uint64_t)>& make_body,
      const std::function<Result<CheckpointRow>(std::span<const Hash>)>& sign) = 0;
  // The same, but `sign(tree_size, root)` gets the new tree's RFC 6962 root. A store that keeps
  // the Merkle frontier (SQLite: meta key "audit_frontier") appends in O(log n) without reading
  // earlier entries; this default reads every leaf (O(n)).
  virtual Result<uint64_t> AppendAuditRoot(
      const std::function<std::string(uint64_t)>& make_body,
      const std::function<Result<CheckpointRow>(uint64_t, const Hash&)>& sign) {
    return AppendAudit(make_body, [&](std::span<const Hash> leaves) { return sign(leaves.size(), TreeHash(leaves)); });
  }
  virtual Result<std::vector<AuditRow>> ReadAudit() = 0;
  virtual Result<std::vector<CheckpointRow>> ReadCheckpoints() = 0;

  virtual Result<std::optional<std::string>> GetMeta(std::string_view key) = 0;
  virtual Status SetMeta(std::string_view key, std::string_view value) = 0;

  // Blocks up to timeout_ms for a change to accounts or API keys made by any process (state,
  // limits, new account or key, revocation); returns true when one was announced. PostgreSQL
  // announces every such change with NOTIFY on kAccountChangeChannel and listens on its own
  // connection, so a replica polling with this reacts within milliseconds. This default (SQLite,
  // one host: nothing to listen to) sleeps for the timeout and returns false. May be called from
  // one thread concurrently with every other call.
  virtual Result<bool> WaitForAccountChange(int64_t timeout_ms);
};

// The PostgreSQL NOTIFY channel of account and key changes (payload: the account or key id).
inline constexpr std::string_view kAccountChangeChannel = "tracemark_accounts";

// Opens (creating if needed) the store named by url: "sqlite:PATH" or a libpq URI
// "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?PARAMS]" (also "postgres://"). Both migrate the
// schema at open.
Result<std::unique_ptr<LedgerStore>> OpenLedgerStore(std::string_view url);

// Whether url names a PostgreSQL ledger.
bool IsPostgresUrl(std::string_view url);

// The file path of a sqlite: URL, or an error for other schemes.
Result<std::string> SqlitePathFromUrl(std::string_view url);

}  // namespace tracemark::ledger
