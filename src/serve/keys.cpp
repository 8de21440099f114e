#include "serve/keys.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include <algorithm>
#include <ctime>

#include <nlohmann/json.hpp>

#include "core/sha256.h"
#include "core/sqlite.h"

namespace owl::serve {
namespace {

using Json = nlohmann::json;

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS keys ("
    " id TEXT PRIMARY KEY, name TEXT NOT NULL, salt TEXT NOT NULL, hash TEXT NOT NULL,"
    " created_unix INTEGER NOT NULL, revoked_unix INTEGER NOT NULL DEFAULT 0, limits TEXT NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS keys_in_force ON keys(name) WHERE revoked_unix = 0;"
    "CREATE TABLE IF NOT EXISTS spend ("
    " key_id TEXT NOT NULL, period_start INTEGER NOT NULL, usd REAL NOT NULL, PRIMARY KEY (key_id, period_start));";

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

constexpr std::string_view kPrefix = "owl-";

}  // namespace

namespace keys {

std::string random_hex(size_t n_hex) {
  std::vector<unsigned char> bytes((n_hex + 1) / 2);
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    // OpenSSL's generator failing means no key can be made safely.
    std::fprintf(stderr, "owl: fatal: RAND_bytes failed\n");
    std::abort();
  }
  return core::hex(bytes.data(), bytes.size()).substr(0, n_hex);
}

std::string make_key(const std::string& id) { return std::string(kPrefix) + id + "-" + random_hex(kSecretHex); }

std::string hash_key(std::string_view salt, std::string_view key) { return core::sha256_hex(salt, key); }

std::string key_id(std::string_view key) {
  if (key.size() != kPrefix.size() + kIdHex + 1 + kSecretHex || !key.starts_with(kPrefix)) return "";
  const std::string_view id = key.substr(kPrefix.size(), kIdHex);
  if (key[kPrefix.size() + kIdHex] != '-' || !is_hex(id) || !is_hex(key.substr(kPrefix.size() + kIdHex + 1))) return "";
  return std::string(id);
}

bool key_matches(std::string_view presented, const std::string* salt, const std::string* hash) {
  static const std::string kNoSalt(kSaltHex, '0');
  static const std::string kNoHash(64, '0');
  const bool found = salt != nullptr && hash != nullptr && salt->size() == kSaltHex && hash->size() == kNoHash.size();
  const std::string computed = hash_key(found ? *salt : kNoSalt, presented);
  const std::string& stored = found ? *hash : kNoHash;
  return CRYPTO_memcmp(computed.data(), stored.data(), stored.size()) == 0 && found && !key_id(presented).empty();
}

std::pair<KeyCheck, KeyInfo> judge(std::string_view presented, std::optional<KeyInfo> row,
                                   const std::pair<std::string, std::string>& secret, int64_t now_unix) {
  const bool found = row.has_value();
  if (!key_matches(presented, found ? &secret.first : nullptr, found ? &secret.second : nullptr)) return {KeyCheck::kInvalid, KeyInfo{}};
  const bool expired = row->limits.expires_unix != 0 && now_unix >= row->limits.expires_unix;
  return {expired ? KeyCheck::kExpired : KeyCheck::kValid, std::move(*row)};
}

std::string lookup_id(std::string_view presented) {
  const std::string id = key_id(presented);
  return id.empty() ? std::string(kIdHex, 'x') : id;
}

std::string limits_to_json(const KeyLimits& l) {
  Json j = {{"rpm", l.rpm},
            {"tpm", l.tpm},
            {"max_parallel", l.max_parallel},
            {"max_tokens", l.max_tokens},
            {"period", budget_period_name(l.period)},
            {"models", l.models},
            {"routes", l.routes},
            {"expires_unix", l.expires_unix}};
  if (l.budget_usd) j["budget_usd"] = *l.budget_usd;
  return j.dump();
}

core::Result<KeyLimits> limits_from_json(const std::string& text) {
  try {
    const Json j = Json::parse(text);
    KeyLimits l;
    l.rpm = j.at("rpm").get<int64_t>();
    l.tpm = j.at("tpm").get<int64_t>();
    l.max_parallel = j.at("max_parallel").get<int64_t>();
    l.max_tokens = j.at("max_tokens").get<int64_t>();
    auto period = parse_budget_period(j.at("period").get<std::string>());
    if (!period) return period.error();
    l.period = *period;
    l.models = j.at("models").get<std::vector<std::string>>();
    l.routes = j.at("routes").get<std::vector<std::string>>();
    l.expires_unix = j.at("expires_unix").get<int64_t>();
    if (j.contains("budget_usd")) l.budget_usd = j["budget_usd"].get<double>();
    return l;
  } catch (const Json::exception& e) {
    return core::make_error("limits {}: {}", text, e.what());
  }
}

}  // namespace keys

core::Result<BudgetPeriod> parse_budget_period(std::string_view name) {
  if (name == "day") return BudgetPeriod::kDay;
  if (name == "month") return BudgetPeriod::kMonth;
  if (name == "total") return BudgetPeriod::kTotal;
  return core::make_error("'{}' is not one of: day, month, total", name);
}

std::string_view budget_period_name(BudgetPeriod period) {
  switch (period) {
    case BudgetPeriod::kDay: return "day";
    case BudgetPeriod::kMonth: return "month";
    case BudgetPeriod::kTotal: return "total";
  }
  return "total";
}

int64_t period_start(BudgetPeriod period, int64_t unix_s) {
  if (period == BudgetPeriod::kTotal) return 0;
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  if (period == BudgetPeriod::kMonth) tm.tm_mday = 1;
  return static_cast<int64_t>(timegm(&tm));
}

int64_t period_end(BudgetPeriod period, int64_t unix_s) {
  if (period == BudgetPeriod::kTotal) return std::numeric_limits<int64_t>::max();
  const std::time_t t = static_cast<std::time_t>(period_start(period, unix_s));
  std::tm tm{};
  gmtime_r(&t, &tm);
  if (period == BudgetPeriod::kDay) tm.tm_mday += 1;
  else tm.tm_mon += 1;
  return static_cast<int64_t>(timegm(&tm));  // timegm normalizes the day or month past the end
}

bool KeyLimits::allows(std::string_view id) const {
  if (models.empty() && routes.empty()) return true;
  auto listed = [](const std::vector<std::string>& list, std::string_view name) {
    return std::find(list.begin(), list.end(), name) != list.end();
  };
  if (listed(models, id) || listed(routes, id)) return true;
  const size_t colon = id.find(':');
  return colon != std::string_view::npos && listed(models, id.substr(0, colon));
}

core::Result<std::unique_ptr<SqliteKeyStore>> SqliteKeyStore::open(const std::string& path) {
  auto db = core::open_private_sqlite(path, kSchema, "state", "an owl state file");
  if (!db) return db.error();
  return std::unique_ptr<SqliteKeyStore>(new SqliteKeyStore(*db, path));
}

SqliteKeyStore::~SqliteKeyStore() { sqlite3_close(db_); }

core::Result<std::string> SqliteKeyStore::create(const std::string& name, const KeyLimits& limits, int64_t now_unix) {
  if (name.empty()) return core::make_error("a key needs a name");
  const std::string id = keys::random_hex(keys::kIdHex);
  const std::string key = keys::make_key(id);
  const std::string salt = keys::random_hex(keys::kSaltHex);
  std::lock_guard<std::mutex> lock(mutex_);
  core::Statement st;
  sqlite3_prepare_v2(db_, "INSERT INTO keys (id, name, salt, hash, created_unix, limits) VALUES (?, ?, ?, ?, ?, ?)", -1, &st.s, nullptr);
  const std::string limits_text = keys::limits_to_json(limits);
  sqlite3_bind_text(st.s, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 2, name.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 3, salt.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 4, keys::hash_key(salt, key).c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st.s, 5, now_unix);
  sqlite3_bind_text(st.s, 6, limits_text.c_str(), -1, SQLITE_TRANSIENT);
  const int rc = sqlite3_step(st.s);
  if (rc == SQLITE_CONSTRAINT) return core::make_error("a key named '{}' exists (revoke it first, or rotate it)", name);
  if (rc != SQLITE_DONE) return core::make_error("state {}: {}", path_, sqlite3_errmsg(db_));
  return key;
}

core::Result<std::optional<KeyInfo>> SqliteKeyStore::row(const char* where, const std::string& value,
                                                         std::pair<std::string, std::string>* secret) const {
  core::Statement st;
  const std::string sql =
      std::string("SELECT id, name, salt, hash, created_unix, revoked_unix, limits FROM keys WHERE ") + where + " ORDER BY created_unix";
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st.s, nullptr) != SQLITE_OK) {
    return core::make_error("state {}: {}", path_, sqlite3_errmsg(db_));
  }
  sqlite3_bind_text(st.s, 1, value.c_str(), -1, SQLITE_TRANSIENT);
  const int rc = sqlite3_step(st.s);
  if (rc == SQLITE_DONE) return std::optional<KeyInfo>();
  if (rc != SQLITE_ROW) return core::make_error("state {}: {}", path_, sqlite3_errmsg(db_));
  auto limits = keys::limits_from_json(core::column_text(st.s, 6));
  if (!limits) return core::make_error("state {}: key {}: {}", path_, core::column_text(st.s, 0), limits.message());
  if (secret != nullptr) *secret = {core::column_text(st.s, 2), core::column_text(st.s, 3)};
  return std::optional<KeyInfo>(KeyInfo{.id = core::column_text(st.s, 0), .name = core::column_text(st.s, 1), .limits = *limits,
                                        .created_unix = sqlite3_column_int64(st.s, 4), .revoked_unix = sqlite3_column_int64(st.s, 5)});
}

core::Result<std::vector<KeyInfo>> SqliteKeyStore::list() const {
  std::lock_guard<std::mutex> lock(mutex_);
  core::Statement st;
  sqlite3_prepare_v2(db_, "SELECT id FROM keys ORDER BY created_unix, rowid", -1, &st.s, nullptr);
  std::vector<std::string> ids;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) ids.push_back(core::column_text(st.s, 0));
  if (rc != SQLITE_DONE) return core::make_error("state {}: {}", path_, sqlite3_errmsg(db_));
  std::vector<KeyInfo> out;
  for (const std::string& id : ids) {
    auto r = row("id = ?", id, nullptr);
    if (!r) return r.error();
    if (*r) out.push_back(std::move(**r));
  }
  return out;
}

core::Result<KeyInfo> SqliteKeyStore::find(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto r = row("name = ? AND revoked_unix = 0", name, nullptr);
  if (!r) return r.error();
  if (!*r) return core::make_error("no key in force is named '{}'", name);
  return std::move(**r);
}

core::Status SqliteKeyStore::revoke(const std::string& name, int64_t now_unix) {
  std::lock_guard<std::mutex> lock(mutex_);
  core::Statement st;
  sqlite3_prepare_v2(db_, "UPDATE keys SET revoked_unix = ? WHERE name = ? AND revoked_unix = 0", -1, &st.s, nullptr);
  sqlite3_bind_int64(st.s, 1, std::max<int64_t>(now_unix, 1));
  sqlite3_bind_text(st.s, 2, name.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE) return core::make_error("state {}: {}", path_, sqlite3_errmsg(db_));
  if (sqlite3_changes(db_) == 0) return core::make_error("no key in force is named '{}'", name);
  return {};
}

core::Result<std::string> SqliteKeyStore::rotate(const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto r = row("name = ? AND revoked_unix = 0", name, nullptr);
  if (!r) return r.error();
  if (!*r) return core::make_error("no key in force is named '{}'", name);
  const std::string key = keys::make_key((*r)->id);
  const std::string salt = keys::random_hex(keys::kSaltHex);
  core::Statement st;
  sqlite3_prepare_v2(db_, "UPDATE keys SET salt = ?, hash = ? WHERE id = ?", -1, &st.s, nullptr);
  sqlite3_bind_text(st.s, 1, salt.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 2, keys::hash_key(salt, key).c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 3, (*r)->id.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE) return core::make_error("state {}: {}", path_, sqlite3_errmsg(db_));
  return key;
}

core::Result<std::pair<KeyCheck, KeyInfo>> SqliteKeyStore::check(std::string_view presented, int64_t now_unix) const {
  std::pair<std::string, std::string> secret;
  core::Result<std::optional<KeyInfo>> r = std::optional<KeyInfo>();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    r = row("id = ? AND revoked_unix = 0", keys::lookup_id(presented), &secret);
  }
  if (!r) return r.error();
  return keys::judge(presented, std::move(*r), secret, now_unix);
}

core::Result<double> SqliteKeyStore::spent_locked(const std::string& id, int64_t period_start_unix) const {
  core::Statement st;
  sqlite3_prepare_v2(db_, "SELECT usd FROM spend WHERE key_id = ? AND period_start = ?", -1, &st.s, nullptr);
  sqlite3_bind_text(st.s, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st.s, 2, period_start_unix);
  const int rc = sqlite3_step(st.s);
  if (rc == SQLITE_ROW) return sqlite3_column_double(st.s, 0);
  if (rc == SQLITE_DONE) return 0.0;
  return core::make_error("state {}: {}", path_, sqlite3_errmsg(db_));
}

core::Result<double> SqliteKeyStore::spent(const std::string& id, int64_t period_start_unix) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return spent_locked(id, period_start_unix);
}

double SqliteKeyStore::reserved_locked(const std::string& id) const {
  auto it = reservations_.find(id);
  if (it == reservations_.end()) return 0;
  double sum = 0;
  for (const auto& [ticket, usd] : it->second) sum += usd;
  return sum;
}

core::Result<BudgetCheck> SqliteKeyStore::reserve(const std::string& id, int64_t period_start_unix, double budget_usd, double worst_usd,
                                                  const std::string& ticket) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto spent = spent_locked(id, period_start_unix);
  if (!spent) return spent.error();
  BudgetCheck c{.spent = *spent, .reserved = reserved_locked(id)};
  c.ok = c.spent + c.reserved + worst_usd <= budget_usd;
  if (c.ok) reservations_[id][ticket] = worst_usd;
  return c;
}

core::Status SqliteKeyStore::settle(const std::string& id, int64_t period_start_unix, const std::string& ticket, double cost_usd) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = reservations_.find(id); it != reservations_.end()) {
    it->second.erase(ticket);
    if (it->second.empty()) reservations_.erase(it);
  }
  if (cost_usd <= 0) return {};
  core::Statement st;
  sqlite3_prepare_v2(db_,
                     "INSERT INTO spend (key_id, period_start, usd) VALUES (?, ?, ?)"
                     " ON CONFLICT (key_id, period_start) DO UPDATE SET usd = usd + excluded.usd",
                     -1, &st.s, nullptr);
  sqlite3_bind_text(st.s, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st.s, 2, period_start_unix);
  sqlite3_bind_double(st.s, 3, cost_usd);
  if (sqlite3_step(st.s) != SQLITE_DONE) return core::make_error("state {}: {}", path_, sqlite3_errmsg(db_));
  return {};
}

core::Result<double> SqliteKeyStore::reserved(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return reserved_locked(id);
}

}  // namespace owl::serve
