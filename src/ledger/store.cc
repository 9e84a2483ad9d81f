// OpenLedgerStore: picks the LedgerStore backend from the database URL (store.h).
#include <chrono>
#include <string>
#include <thread>

#include "ledger/store_backends.h"
#include "tracemark/ledger/store.h"

namespace tracemark::ledger {

Result<bool> LedgerStore::WaitForAccountChange(int64_t timeout_ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
  return false;
}

bool IsPostgresUrl(std::string_view url) {
  return url.substr(0, 13) == "postgresql://" || url.substr(0, 11) == "postgres://";
}

Result<std::unique_ptr<LedgerStore>> OpenLedgerStore(std::string_view url) {
  if (IsPostgresUrl(url)) return OpenPostgresStore(url);
  if (url.substr(0, 7) != "sqlite:") {
    return InvalidArgument("database URL '" + RedactDatabaseUrl(url) +
                           "' is neither sqlite:PATH nor postgresql://USER@HOST:PORT/DB");
  }
  TM_ASSIGN_OR_RETURN(std::string path, SqlitePathFromUrl(url));
  return OpenSqliteStore(path);
}

}  // namespace tracemark::ledger
