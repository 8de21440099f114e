// Keys, spend, budget reservations and rate-limit buckets in Redis (`--redis redis://HOST:PORT`),
// shared by every gateway that names the same server, so that a key's limits and budget hold
// across nodes. Every check-and-take is one Lua script, which Redis runs atomically; time comes
// from Redis (TIME), so gateways with skewed clocks agree. When Redis cannot be reached, every
// call fails (the guard answers 503: keys and budgets fail closed).
//
// Layout (prefix "owl:"): key:<id> hash (name, salt, hash, created_unix, revoked_unix, limits);
// key-name:<name> the id of the key in force; key-ids the ids, oldest first; spend:<id>:<period
// start> dollars; reserved:<id> hash ticket -> "dollars expiry" (a reservation whose gateway died
// lapses after an hour); bucket:<name> hash level, updated.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/result.h"
#include "serve/counters.h"
#include "router/ledger.h"
#include "serve/keys.h"

struct redisContext;

namespace owl::serve {

struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string password;  // "" : no AUTH
  int db = 0;
};
// redis://[:PASSWORD@]HOST[:PORT][/DB]
core::Result<RedisAddress> parse_redis_url(std::string_view url);

// A reply reduced to what owl reads: nil, an integer, a string (status and bulk), or an array.
struct RedisValue {
  enum class Kind { kNil, kInteger, kString, kArray } kind = Kind::kNil;
  long long integer = 0;
  std::string text;
  std::vector<RedisValue> items;
};

// One connection behind a mutex, opened again after a failure.
// Threading: every method may be called from any thread.
class RedisClient {
 public:
  explicit RedisClient(RedisAddress address) : address_(std::move(address)) {}
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;
  // Runs one command; errors (unreachable, a Redis error reply) name the server.
  core::Result<RedisValue> command(const std::vector<std::string>& args);
  std::string where() const;

 private:
  core::Status connect_locked();
  RedisAddress address_;
  std::mutex mutex_;
  redisContext* context_ = nullptr;  // guarded by mutex_
};

class RedisKeyStore final : public KeyStore {
 public:
  explicit RedisKeyStore(std::shared_ptr<RedisClient> redis) : redis_(std::move(redis)) {}
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
  // The key `id`'s row; nullopt when there is none. With secret, its salt and hash.
  core::Result<std::optional<KeyInfo>> row(const std::string& id, std::pair<std::string, std::string>* secret) const;
  std::shared_ptr<RedisClient> redis_;
};

// The cost ledger in Redis (`--ledger redis://...`), shared by every gateway: each answer adds to
// per-day sums by day, route, model and user (owl:usage:<day>:<dimension>:<requests|prompt|
// completion|cost>, one hash each, the set owl:usage-days), so `owl usage` reads sums, not rows.
class RedisLedger final : public router::Ledger {
 public:
  explicit RedisLedger(std::shared_ptr<RedisClient> redis) : redis_(std::move(redis)) {}
  core::Status record(const router::LedgerEntry& entry) override;
  core::Result<std::vector<router::UsageRow>> usage(router::UsageKey key, int64_t since_unix_s) const override;

 private:
  std::shared_ptr<RedisClient> redis_;
};

// Token buckets in Redis. A take that cannot reach Redis is refused as unavailable.
class RedisCounters final : public Counters {
 public:
  explicit RedisCounters(std::shared_ptr<RedisClient> redis) : redis_(std::move(redis)) {}
  TakeResult take(const std::string& key, const BucketSpec& spec, double amount) override;
  void give_back(const std::string& key, const BucketSpec& spec, double amount) override;

 private:
  std::shared_ptr<RedisClient> redis_;
};

}  // namespace owl::serve
