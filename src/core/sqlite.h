// owl's SQLite files (the ledger, the state file of keys and model versions): created 0600 before
// SQLite opens them (their journal files take the same mode), in WAL mode with a busy timeout so
// that several processes can share them.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace owl::core {

// Opens or creates `path` and runs `schema` (CREATE ... IF NOT EXISTS). Errors read
// "<what> <path>: <reason>", and a schema that fails adds "(is it <kind>?)".
Result<sqlite3*> open_private_sqlite(const std::string& path, std::string_view schema, std::string_view what, std::string_view kind);

// A prepared statement, finalized on every path.
struct Statement {
  sqlite3_stmt* s = nullptr;
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();
};

// Column `i` of the current row as text ("" for NULL).
std::string column_text(sqlite3_stmt* s, int i);

}  // namespace owl::core
