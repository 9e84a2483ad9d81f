// The LedgerStore backends behind OpenLedgerStore (store.cc picks one by URL scheme). Internal
// to the ledger module: keeps sqlite3.h and libpqxx out of every other translation unit.
// Thread-safety: the functions may be called from any thread; see store.h for the stores.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "tracemark/ledger/store.h"

namespace tracemark::ledger {

// Opens (creating if needed) the SQLite database file at path.
Result<std::unique_ptr<LedgerStore>> OpenSqliteStore(const std::string& path);

// Connects to the PostgreSQL database named by a libpq URI (postgresql://... or postgres://...)
// and migrates its schema.
Result<std::unique_ptr<LedgerStore>> OpenPostgresStore(std::string_view url);

// The URL with its password (user:PASSWORD@ or password=...) replaced by ***, for messages.
std::string RedactDatabaseUrl(std::string_view url);

}  // namespace tracemark::ledger
