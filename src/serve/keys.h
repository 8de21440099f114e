// API keys and what each may spend, in the server's state file (SQLite, `--state FILE`, created
// 0600): `owl keys` writes it, `owl serve --auth` reads a key's row on every request, so that a
// revocation or a new limit holds from the next request. A key is `owl-<id>-<secret>`: the id (12
// hex digits) names its row, and only SHA-256(salt || key) with a salt of its own is kept.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

struct sqlite3;

namespace owl::serve {

enum class BudgetPeriod { kDay, kMonth, kTotal };
core::Result<BudgetPeriod> parse_budget_period(std::string_view name);  // day, month, total
std::string_view budget_period_name(BudgetPeriod period);
// The start of the period holding `unix_s` (UTC midnight, the first of the month; 0 for total),
// and the start of the next one (INT64_MAX for total).
int64_t period_start(BudgetPeriod period, int64_t unix_s);
int64_t period_end(BudgetPeriod period, int64_t unix_s);

struct KeyLimits {
  int64_t rpm = 0;            // requests per minute; 0: no limit
  int64_t tpm = 0;            // tokens (prompt and completion) per minute; 0: no limit
  int64_t max_parallel = 0;   // requests at once; 0: no limit
  int64_t max_tokens = 0;     // the most one request may ask to generate per choice; 0: no cap
  std::optional<double> budget_usd;               // US dollars per period
  BudgetPeriod period = BudgetPeriod::kMonth;
  std::vector<std::string> models;  // models the key may use; with routes empty: all
  std::vector<std::string> routes;  // routes the key may use
  int64_t expires_unix = 0;   // 0: never
  // A request must have its worst case bounded for these limits to hold.
  bool need_bound() const { return tpm > 0 || budget_usd.has_value(); }
  // May this key use `id` (a model, a "model:adapter" whose model is listed, or a route)?
  bool allows(std::string_view id) const;
};

struct KeyInfo {
  std::string id;      // public: the part of the key between "owl-" and the secret
  std::string name;
  KeyLimits limits;
  int64_t created_unix = 0;
  int64_t revoked_unix = 0;  // 0: in force
};

// What checking a presented key found.
enum class KeyCheck { kValid, kInvalid, kExpired };

// Threading: every method may be called from any thread; one connection behind a mutex. Other
// processes (`owl keys` beside a running server) share the file through SQLite's locking.
class KeyStore {
 public:
  // Opens or creates the file (0600) with its tables. Errors name the file.
  static core::Result<std::unique_ptr<KeyStore>> open(const std::string& path);
  ~KeyStore();
  KeyStore(const KeyStore&) = delete;
  KeyStore& operator=(const KeyStore&) = delete;

  // A new key for `name` (unique among keys in force): the key itself, shown only now.
  core::Result<std::string> create(const std::string& name, const KeyLimits& limits, int64_t now_unix);
  // Every key, revoked ones included, oldest first.
  core::Result<std::vector<KeyInfo>> list() const;
  // The key in force named `name`.
  core::Result<KeyInfo> find(const std::string& name) const;
  core::Status revoke(const std::string& name, int64_t now_unix);
  // A new secret for the key `name`, same id, limits and spend; the old secret stops working.
  core::Result<std::string> rotate(const std::string& name);
  // The key `presented` names, when it is in force and its secret matches. Unknown ids, wrong
  // secrets and malformed keys cost the same hash and comparison, so that timing does not tell
  // them apart. An error only when the file cannot be read.
  core::Result<std::pair<KeyCheck, KeyInfo>> check(std::string_view presented, int64_t now_unix) const;

  // Dollars spent by key `id` in the period starting at `period_start_unix`.
  core::Result<double> spent(const std::string& id, int64_t period_start_unix) const;
  core::Status add_spend(const std::string& id, int64_t period_start_unix, double usd);

 private:
  KeyStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  core::Result<std::optional<KeyInfo>> row(const char* where, const std::string& value, std::string* salt_hash) const;
  mutable std::mutex mutex_;
  sqlite3* db_;  // guarded by mutex_
  std::string path_;
};

}  // namespace owl::serve
