#include "router/ledger.h"

#include "core/sqlite.h"
#include "core/utc.h"

#include <sqlite3.h>


#include <ctime>

namespace owl::router {
namespace {

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS requests ("
    " unix_s INTEGER NOT NULL, day TEXT NOT NULL, route TEXT NOT NULL, model TEXT NOT NULL, user TEXT NOT NULL,"
    " decision TEXT NOT NULL, status INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,"
    " completion_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL);"
    "CREATE INDEX IF NOT EXISTS requests_time ON requests(unix_s);";


}  // namespace

std::string utc_day(int64_t unix_s) { return core::format_utc(unix_s, "%Y-%m-%d"); }

core::Result<UsageKey> parse_usage_key(std::string_view name) {
  if (name == "day") return UsageKey::kDay;
  if (name == "route") return UsageKey::kRoute;
  if (name == "model") return UsageKey::kModel;
  if (name == "user") return UsageKey::kUser;
  return core::make_error("'{}' is not one of: day, route, model, user", name);
}

core::Result<std::unique_ptr<Ledger>> Ledger::open(const std::string& path) {
  // Private: costs by user are not for everyone to read.
  auto opened = core::open_private_sqlite(path, kSchema, "ledger", "an owl ledger");
  if (!opened) return opened.error();
  sqlite3* db = *opened;
  sqlite3_stmt* insert = nullptr;
  if (sqlite3_prepare_v2(db, "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &insert, nullptr) != SQLITE_OK) {
    std::string message = sqlite3_errmsg(db);
    sqlite3_close(db);
    return core::make_error("ledger {}: {}", path, message);
  }
  return std::unique_ptr<Ledger>(new SqliteLedger(db, insert, path));
}

SqliteLedger::~SqliteLedger() {
  sqlite3_finalize(insert_);
  sqlite3_close(db_);
}

core::Status SqliteLedger::record(const LedgerEntry& e) {
  std::lock_guard<std::mutex> lock(mutex_);
  sqlite3_stmt* st = insert_;
  sqlite3_reset(st);
  const std::string day = utc_day(e.unix_s);
  sqlite3_bind_int64(st, 1, e.unix_s);
  sqlite3_bind_text(st, 2, day.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, e.route.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 4, e.model.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 5, e.user.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 6, e.decision.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 7, e.status);
  sqlite3_bind_int64(st, 8, e.prompt_tokens);
  sqlite3_bind_int64(st, 9, e.completion_tokens);
  sqlite3_bind_double(st, 10, e.cost_usd);
  if (sqlite3_step(st) != SQLITE_DONE) return core::make_error("ledger {}: {}", path_, sqlite3_errmsg(db_));
  return {};
}

core::Result<std::vector<UsageRow>> SqliteLedger::usage(UsageKey key, int64_t since_unix_s) const {
  const char* column = key == UsageKey::kDay ? "day" : key == UsageKey::kRoute ? "route" : key == UsageKey::kModel ? "model" : "user";
  const std::string sql = std::string("SELECT ") + column +
                          ", COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd) FROM requests"
                          " WHERE unix_s >= ? GROUP BY 1 ORDER BY 5 DESC, 1";
  std::lock_guard<std::mutex> lock(mutex_);
  core::Statement st;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st.s, nullptr) != SQLITE_OK) return core::make_error("ledger {}: {}", path_, sqlite3_errmsg(db_));
  sqlite3_bind_int64(st.s, 1, since_unix_s);
  std::vector<UsageRow> rows;
  int rc = 0;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    rows.push_back({.key = core::column_text(st.s, 0), .requests = sqlite3_column_int64(st.s, 1),
                    .prompt_tokens = sqlite3_column_int64(st.s, 2), .completion_tokens = sqlite3_column_int64(st.s, 3),
                    .cost_usd = sqlite3_column_double(st.s, 4)});
  }
  if (rc != SQLITE_DONE) return core::make_error("ledger {}: {}", path_, sqlite3_errmsg(db_));
  return rows;
}

}  // namespace owl::router
