// The cost ledger: every answered request with its tokens and price, kept in SQLite
// (`owl serve --ledger FILE`), summed by route, model, user or day (`owl usage`).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace owl::router {

struct LedgerEntry {
  int64_t unix_s = 0;
  std::string route;     // "" for a request that named a model
  std::string model;     // the model that answered
  std::string user;      // the request's `user`, else the API key's name, else ""
  std::string decision;  // the route's decision; "" for a model
  int status = 200;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double cost_usd = 0;
};

enum class UsageKey { kDay, kRoute, kModel, kUser };
core::Result<UsageKey> parse_usage_key(std::string_view name);  // day, route, model, user

struct UsageRow {
  std::string key;
  int64_t requests = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double cost_usd = 0;
};

// Where answers are recorded. Threading: every method may be called from any thread.
class Ledger {
 public:
  // The SQLite ledger: opens or creates the file (0600), with its table. Errors name the file.
  // (Gateways that share one ledger use Redis: serve::RedisLedger.)
  static core::Result<std::unique_ptr<Ledger>> open(const std::string& path);
  virtual ~Ledger() = default;

  virtual core::Status record(const LedgerEntry& entry) = 0;
  // Sums of the entries at or after `since_unix_s`, by `key`, largest cost first (then by key).
  virtual core::Result<std::vector<UsageRow>> usage(UsageKey key, int64_t since_unix_s) const = 0;
};

// One connection behind a mutex.
class SqliteLedger final : public Ledger {
 public:
  SqliteLedger(sqlite3* db, sqlite3_stmt* insert, std::string path) : db_(db), insert_(insert), path_(std::move(path)) {}
  ~SqliteLedger() override;
  SqliteLedger(const SqliteLedger&) = delete;
  SqliteLedger& operator=(const SqliteLedger&) = delete;

  core::Status record(const LedgerEntry& entry) override;
  core::Result<std::vector<UsageRow>> usage(UsageKey key, int64_t since_unix_s) const override;

 private:
  mutable std::mutex mutex_;
  sqlite3* db_;             // guarded by mutex_
  sqlite3_stmt* insert_;    // guarded by mutex_: prepared once, reused by every record()
  std::string path_;
};

// "YYYY-MM-DD" of a time, as the ledgers group days.
std::string utc_day(int64_t unix_s);

}  // namespace owl::router
