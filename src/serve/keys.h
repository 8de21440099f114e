// API keys and what each may spend, in a key store: the state file (SQLite, `--state FILE`,
// created 0600) on one node, or Redis (`--redis URL`) shared by many. `owl keys` writes it, `owl
// serve --auth` reads a key's row on every request, so that a revocation or a new limit holds from
// the next request. A key is `owl-<id>-<secret>`: the id (12 hex digits) names its row, and only
// SHA-256(salt || key) with a salt of its own is kept.
#pragma once

#include <cstdint>
#include <map>
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

// What a budget reservation found: whether the worst case fit, and what was spent and reserved
// before it.
struct BudgetCheck {
  bool ok = false;
  double spent = 0;
  double reserved = 0;
};

// Where keys, their spend and the budget reservations of running requests are kept: a SQLite
// file on one node (SqliteKeyStore), Redis shared by many (redis_store.h).
// Threading: every method may be called from any thread, concurrently.
class KeyStore {
 public:
  virtual ~KeyStore() = default;
  // A new key for `name` (unique among keys in force): the key itself, shown only now.
  virtual core::Result<std::string> create(const std::string& name, const KeyLimits& limits, int64_t now_unix) = 0;
  // Every key, revoked ones included, oldest first.
  virtual core::Result<std::vector<KeyInfo>> list() const = 0;
  // The key in force named `name`.
  virtual core::Result<KeyInfo> find(const std::string& name) const = 0;
  virtual core::Status revoke(const std::string& name, int64_t now_unix) = 0;
  // A new secret for the key `name`, same id, limits and spend; the old secret stops working.
  virtual core::Result<std::string> rotate(const std::string& name) = 0;
  // The key `presented` names, when it is in force and its secret matches. Unknown ids, wrong
  // secrets and malformed keys cost the same lookup, hash and comparison, so that timing does not
  // tell them apart. An error only when the store cannot be read.
  virtual core::Result<std::pair<KeyCheck, KeyInfo>> check(std::string_view presented, int64_t now_unix) const = 0;

  // Dollars spent by key `id` in the period starting at `period_start_unix`.
  virtual core::Result<double> spent(const std::string& id, int64_t period_start_unix) const = 0;
  // Atomically: when spent + reserved + worst_usd fits `budget_usd`, reserves worst_usd under
  // `ticket` (unique per request).
  virtual core::Result<BudgetCheck> reserve(const std::string& id, int64_t period_start_unix, double budget_usd, double worst_usd,
                                            const std::string& ticket) = 0;
  // Atomically: releases `ticket`'s reservation (if any) and adds `cost_usd` to the period's spend.
  virtual core::Status settle(const std::string& id, int64_t period_start_unix, const std::string& ticket, double cost_usd) = 0;
  // Dollars reserved by key `id`'s running requests.
  virtual core::Result<double> reserved(const std::string& id) const = 0;
};

// The store of one node: a SQLite file (created 0600) for keys and spend, reservations in this
// process. One connection behind a mutex, held from reading the spend to reserving, and from
// releasing to recording, so that concurrent requests cannot overspend. Other processes (`owl
// keys` beside a running server) share the file through SQLite's locking.
class SqliteKeyStore final : public KeyStore {
 public:
  // Opens or creates the file with its tables. Errors name the file.
  static core::Result<std::unique_ptr<SqliteKeyStore>> open(const std::string& path);
  ~SqliteKeyStore() override;
  SqliteKeyStore(const SqliteKeyStore&) = delete;
  SqliteKeyStore& operator=(const SqliteKeyStore&) = delete;

  core::Result<std::string> create(const std::string& name, const KeyLimits& limits, int64_t now_unix) override;
  core::Result<std::vector<KeyInfo>> list() const override;
  core::Result<KeyInfo> find(const std::string& name) const override;
  core::Status revoke(const std::string& name, int64_t now_unix) override;
  core::Result<std::string> rotate(const std::string& name) override;
  core::Result<std::pair<KeyCheck, KeyInfo>> check(std::string_view presented, int64_t now_unix) const override;
  core::Result<double> spent(const std::string& id, int64_t period_start_unix) const override;
  core::Result<BudgetCheck> reserve(const std::string& id, int64_t period_start_unix, double budget_usd, double worst_usd,
                                    const std::string& ticket) override;
  core::Status settle(const std::string& id, int64_t period_start_unix, const std::string& ticket, double cost_usd) override;
  core::Result<double> reserved(const std::string& id) const override;

 private:
  SqliteKeyStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  // The row matching `where` = value; with `secret`, its salt and hash.
  core::Result<std::optional<KeyInfo>> row(const char* where, const std::string& value, std::pair<std::string, std::string>* secret) const;
  core::Result<double> spent_locked(const std::string& id, int64_t period_start_unix) const;
  double reserved_locked(const std::string& id) const;
  mutable std::mutex mutex_;
  sqlite3* db_;  // guarded by mutex_
  std::string path_;
  std::map<std::string, std::map<std::string, double>> reservations_;  // key id -> ticket -> dollars; guarded by mutex_
};

// What stores share: key syntax, salted hashes, the limits' JSON.
namespace keys {
inline constexpr size_t kIdHex = 12;
inline constexpr size_t kSecretHex = 40;  // 160 bits
inline constexpr size_t kSaltHex = 32;
std::string random_hex(size_t n_hex);
std::string make_key(const std::string& id);       // "owl-<id>-<secret>"
std::string hash_key(std::string_view salt, std::string_view key);  // SHA-256, hex
std::string key_id(std::string_view key);          // of a well-formed key; "" otherwise
// Compares a presented key with a stored salt and hash in constant time; a missing row compares
// against a dummy of the same length, so that the work is the same.
bool key_matches(std::string_view presented, const std::string* salt, const std::string* hash);
// What a store's check() answers: `row` is the key in force with the presented key's id (none
// when there is no such key), `secret` its salt and hash.
std::pair<KeyCheck, KeyInfo> judge(std::string_view presented, std::optional<KeyInfo> row,
                                   const std::pair<std::string, std::string>& secret, int64_t now_unix);
// The id to look up for a presented key: its own, or one no key has (the same lookup either way).
std::string lookup_id(std::string_view presented);
std::string limits_to_json(const KeyLimits& limits);
core::Result<KeyLimits> limits_from_json(const std::string& text);
}  // namespace keys

}  // namespace owl::serve
