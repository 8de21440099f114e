#include "serve/redis_store.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <cmath>
#include <limits>
#include <regex>

#include <fmt/format.h>

namespace owl::serve {
namespace {

constexpr int kTimeoutMs = 2000;
constexpr int kReservationTtlS = 3600;  // a reservation outlives its gateway by at most this

// Creates the key `id` when no key in force has its name. KEYS: key-name:<name>, key:<id>, key-ids.
constexpr const char* kCreate = R"(
if redis.call('SET', KEYS[1], ARGV[1], 'NX') == false then return 0 end
redis.call('HSET', KEYS[2], 'name', ARGV[2], 'salt', ARGV[3], 'hash', ARGV[4], 'created_unix', ARGV[5], 'revoked_unix', '0', 'limits', ARGV[6])
redis.call('RPUSH', KEYS[3], ARGV[1])
return 1)";

// Revokes the key in force named by KEYS[1] (key-name:<name>); ARGV: prefix, now.
constexpr const char* kRevoke = R"(
local id = redis.call('GET', KEYS[1])
if not id then return 0 end
redis.call('HSET', ARGV[1] .. 'key:' .. id, 'revoked_unix', ARGV[2])
redis.call('DEL', KEYS[1])
return 1)";

// Sums the live reservations of KEYS[1] (reserved:<id>), dropping lapsed ones.
constexpr const char* kSumReserved = R"(
local function sum_reserved(key, now)
  local sum = 0
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local usd, expiry = string.match(all[i + 1], '(%S+) (%S+)')
    if tonumber(expiry) < now then redis.call('HDEL', key, all[i]) else sum = sum + tonumber(usd) end
  end
  return sum
end
)";

// KEYS: spend:<id>:<period>, reserved:<id>; ARGV: budget, worst, ticket, ttl.
constexpr const char* kReserve = R"(
local now = tonumber(redis.call('TIME')[1])
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local reserved = sum_reserved(KEYS[2], now)
if spent + reserved + tonumber(ARGV[2]) > tonumber(ARGV[1]) then
  return {0, tostring(spent), tostring(reserved)}
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[2] .. ' ' .. tostring(now + tonumber(ARGV[4])))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
return {1, tostring(spent), tostring(reserved)})";

// KEYS: spend:<id>:<period>, reserved:<id>; ARGV: ticket, cost.
constexpr const char* kSettle = R"(
if ARGV[1] ~= '' then redis.call('HDEL', KEYS[2], ARGV[1]) end
if tonumber(ARGV[2]) > 0 then redis.call('INCRBYFLOAT', KEYS[1], ARGV[2]) end
return 1)";

// A token bucket, KEYS[1]; ARGV: capacity, refill per second, amount, "take" or "give".
// Returns {taken (0/1), level}.
constexpr const char* kBucket = R"(
local cap, rate, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local b = redis.call('HMGET', KEYS[1], 'level', 'updated')
local level, updated = tonumber(b[1]) or cap, tonumber(b[2]) or now
if now > updated then level = math.min(cap, level + (now - updated) * rate); updated = now end
local taken = 1
if ARGV[4] == 'take' then
  if level >= amount then level = level - amount else taken = 0 end
else
  level = math.min(cap, level + amount)
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'updated', tostring(updated))
if rate > 0 then redis.call('EXPIRE', KEYS[1], math.ceil(cap / rate) + 60) end
return {taken, tostring(level)})";

// One answer into the day's sums. ARGV: day, route, model, user, prompt, completion, cost.
constexpr const char* kRecord = R"(
local values = {day = ARGV[1], route = ARGV[2], model = ARGV[3], user = ARGV[4]}
redis.call('SADD', 'owl:usage-days', ARGV[1])
for _, dim in ipairs({'day', 'route', 'model', 'user'}) do
  local k = 'owl:usage:' .. ARGV[1] .. ':' .. dim
  redis.call('HINCRBY', k .. ':requests', values[dim], 1)
  redis.call('HINCRBY', k .. ':prompt', values[dim], ARGV[5])
  redis.call('HINCRBY', k .. ':completion', values[dim], ARGV[6])
  redis.call('HINCRBYFLOAT', k .. ':cost', values[dim], ARGV[7])
end
return 1)";

const std::string kPrefix = "owl:";

std::string num(double v) { return fmt::format("{:.17g}", v); }

double to_double(const RedisValue& v) {
  double out = 0;
  if (v.kind == RedisValue::Kind::kInteger) return static_cast<double>(v.integer);
  const char* end = v.text.data() + v.text.size();
  std::from_chars(v.text.data(), end, out);
  return out;
}

int64_t to_int(const RedisValue& v) {
  if (v.kind == RedisValue::Kind::kInteger) return v.integer;
  int64_t out = 0;
  std::from_chars(v.text.data(), v.text.data() + v.text.size(), out);
  return out;
}

// Sends one command on `c`; null when the connection failed (c->errstr says why).
redisReply* send(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) argv.push_back(a.data()), lens.push_back(a.size());
  return static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
}

RedisValue convert(const redisReply* r) {
  RedisValue v;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      v.kind = RedisValue::Kind::kInteger;
      v.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      v.kind = RedisValue::Kind::kString;
      v.text.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      v.kind = RedisValue::Kind::kArray;
      for (size_t i = 0; i < r->elements; ++i) v.items.push_back(convert(r->element[i]));
      break;
    default:
      break;
  }
  return v;
}

}  // namespace

core::Result<RedisAddress> parse_redis_url(std::string_view url) {
  static const std::regex kUrl(R"(redis://(?::([^@]*)@)?([A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?(?:/(\d{1,2}))?/?)");
  std::cmatch m;
  if (!std::regex_match(url.data(), url.data() + url.size(), m, kUrl)) {
    return core::make_error("'{}' is not a Redis URL (redis://[:PASSWORD@]HOST[:PORT][/DB])", url);
  }
  RedisAddress a;
  a.password = m[1].str();
  a.host = m[2].str();
  if (m[3].matched) a.port = std::stoi(m[3].str());
  if (m[4].matched) a.db = std::stoi(m[4].str());
  if (a.port < 1 || a.port > 65535) return core::make_error("'{}': port {} out of range", url, a.port);
  return a;
}

RedisClient::~RedisClient() {
  if (context_ != nullptr) redisFree(context_);
}

std::string RedisClient::where() const { return fmt::format("redis {}:{}", address_.host, address_.port); }

core::Status RedisClient::connect_locked() {
  const timeval tv{.tv_sec = kTimeoutMs / 1000, .tv_usec = (kTimeoutMs % 1000) * 1000};
  context_ = redisConnectWithTimeout(address_.host.c_str(), address_.port, tv);
  if (context_ == nullptr || context_->err != 0) {
    std::string why = context_ != nullptr ? context_->errstr : "out of memory";
    if (context_ != nullptr) redisFree(context_);
    context_ = nullptr;
    return core::make_error("{}: {}", where(), why);
  }
  redisSetTimeout(context_, tv);
  auto run = [&](const std::vector<std::string>& args) -> core::Status {
    redisReply* r = send(context_, args);
    const bool failed = r == nullptr || r->type == REDIS_REPLY_ERROR;
    std::string why = r == nullptr ? context_->errstr : r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "";
    if (r != nullptr) freeReplyObject(r);
    if (failed) return core::make_error("{}: {}: {}", where(), args[0], why);
    return {};
  };
  core::Status ok;
  if (!address_.password.empty()) ok = run({"AUTH", address_.password});
  if (ok && address_.db != 0) ok = run({"SELECT", std::to_string(address_.db)});
  if (!ok) {
    redisFree(context_);
    context_ = nullptr;
  }
  return ok;
}

core::Result<RedisValue> RedisClient::command(const std::vector<std::string>& args) {
  std::lock_guard<std::mutex> lock(mutex_);
  // One retry on a fresh connection: a server restart or an idle timeout closes the old one.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (context_ == nullptr) {
      if (auto s = connect_locked(); !s) return s.error();
    }
    redisReply* r = send(context_, args);
    if (r == nullptr) {
      const std::string why = context_->errstr;
      redisFree(context_);
      context_ = nullptr;
      if (attempt == 1) return core::make_error("{}: {}", where(), why);
      continue;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      std::string why(r->str, r->len);
      freeReplyObject(r);
      return core::make_error("{}: {}", where(), why);
    }
    RedisValue v = convert(r);
    freeReplyObject(r);
    return v;
  }
  return core::make_error("{}: unreachable", where());
}

core::Result<std::string> RedisKeyStore::create(const std::string& name, const KeyLimits& limits, int64_t now_unix) {
  if (name.empty()) return core::make_error("a key needs a name");
  const std::string id = keys::random_hex(keys::kIdHex);
  const std::string key = keys::make_key(id);
  const std::string salt = keys::random_hex(keys::kSaltHex);
  auto r = redis_->command({"EVAL", kCreate, "3", kPrefix + "key-name:" + name, kPrefix + "key:" + id, kPrefix + "key-ids", id, name, salt,
                            keys::hash_key(salt, key), std::to_string(now_unix), keys::limits_to_json(limits)});
  if (!r) return r.error();
  if (r->integer == 0) return core::make_error("a key named '{}' exists (revoke it first, or rotate it)", name);
  return key;
}

core::Result<std::optional<KeyInfo>> RedisKeyStore::row(const std::string& id, std::pair<std::string, std::string>* secret) const {
  auto r = redis_->command({"HMGET", kPrefix + "key:" + id, "name", "salt", "hash", "created_unix", "revoked_unix", "limits"});
  if (!r) return r.error();
  if (r->items.size() != 6 || r->items[0].kind == RedisValue::Kind::kNil) return std::optional<KeyInfo>();
  auto limits = keys::limits_from_json(r->items[5].text);
  if (!limits) return core::make_error("{}: key {}: {}", redis_->where(), id, limits.message());
  if (secret != nullptr) *secret = {r->items[1].text, r->items[2].text};
  return std::optional<KeyInfo>(KeyInfo{.id = id, .name = r->items[0].text, .limits = *limits, .created_unix = to_int(r->items[3]),
                                        .revoked_unix = to_int(r->items[4])});
}

core::Result<std::vector<KeyInfo>> RedisKeyStore::list() const {
  auto ids = redis_->command({"LRANGE", kPrefix + "key-ids", "0", "-1"});
  if (!ids) return ids.error();
  std::vector<KeyInfo> out;
  for (const RedisValue& id : ids->items) {
    auto r = row(id.text, nullptr);
    if (!r) return r.error();
    if (*r) out.push_back(std::move(**r));
  }
  return out;
}

core::Result<KeyInfo> RedisKeyStore::find(const std::string& name) const {
  auto id = redis_->command({"GET", kPrefix + "key-name:" + name});
  if (!id) return id.error();
  if (id->kind == RedisValue::Kind::kNil) return core::make_error("no key in force is named '{}'", name);
  auto r = row(id->text, nullptr);
  if (!r) return r.error();
  if (!*r) return core::make_error("no key in force is named '{}'", name);
  return std::move(**r);
}

core::Status RedisKeyStore::revoke(const std::string& name, int64_t now_unix) {
  auto r = redis_->command({"EVAL", kRevoke, "1", kPrefix + "key-name:" + name, kPrefix, std::to_string(std::max<int64_t>(now_unix, 1))});
  if (!r) return r.error();
  if (r->integer == 0) return core::make_error("no key in force is named '{}'", name);
  return {};
}

core::Result<std::string> RedisKeyStore::rotate(const std::string& name) {
  auto info = find(name);
  if (!info) return info.error();
  const std::string key = keys::make_key(info->id);
  const std::string salt = keys::random_hex(keys::kSaltHex);
  auto r = redis_->command({"HSET", kPrefix + "key:" + info->id, "salt", salt, "hash", keys::hash_key(salt, key)});
  if (!r) return r.error();
  return key;
}

core::Result<std::pair<KeyCheck, KeyInfo>> RedisKeyStore::check(std::string_view presented, int64_t now_unix) const {
  std::pair<std::string, std::string> secret;
  auto r = row(keys::lookup_id(presented), &secret);
  if (!r) return r.error();
  if (*r && (*r)->revoked_unix != 0) r = std::optional<KeyInfo>();  // a revoked key is no key
  return keys::judge(presented, std::move(*r), secret, now_unix);
}

core::Result<double> RedisKeyStore::spent(const std::string& id, int64_t period_start_unix) const {
  auto r = redis_->command({"GET", fmt::format("{}spend:{}:{}", kPrefix, id, period_start_unix)});
  if (!r) return r.error();
  return to_double(*r);
}

core::Result<BudgetCheck> RedisKeyStore::reserve(const std::string& id, int64_t period_start_unix, double budget_usd, double worst_usd,
                                                 const std::string& ticket) {
  auto r = redis_->command({"EVAL", std::string(kSumReserved) + kReserve, "2", fmt::format("{}spend:{}:{}", kPrefix, id, period_start_unix),
                            kPrefix + "reserved:" + id, num(budget_usd), num(worst_usd), ticket, std::to_string(kReservationTtlS)});
  if (!r) return r.error();
  if (r->items.size() != 3) return core::make_error("{}: an unexpected reply to the budget script", redis_->where());
  return BudgetCheck{.ok = r->items[0].integer == 1, .spent = to_double(r->items[1]), .reserved = to_double(r->items[2])};
}

core::Status RedisKeyStore::settle(const std::string& id, int64_t period_start_unix, const std::string& ticket, double cost_usd) {
  auto r = redis_->command({"EVAL", kSettle, "2", fmt::format("{}spend:{}:{}", kPrefix, id, period_start_unix), kPrefix + "reserved:" + id,
                            ticket, num(cost_usd)});
  if (!r) return r.error();
  return {};
}

core::Result<double> RedisKeyStore::reserved(const std::string& id) const {
  auto r = redis_->command({"EVAL", std::string(kSumReserved) + "return tostring(sum_reserved(KEYS[1], tonumber(redis.call('TIME')[1])))",
                            "1", kPrefix + "reserved:" + id});
  if (!r) return r.error();
  return to_double(*r);
}

core::Status RedisLedger::record(const router::LedgerEntry& e) {
  auto r = redis_->command({"EVAL", kRecord, "0", router::utc_day(e.unix_s), e.route, e.model, e.user, std::to_string(e.prompt_tokens),
                            std::to_string(e.completion_tokens), num(e.cost_usd)});
  if (!r) return r.error();
  return {};
}

core::Result<std::vector<router::UsageRow>> RedisLedger::usage(router::UsageKey key, int64_t since_unix_s) const {
  const char* dim = key == router::UsageKey::kDay ? "day" : key == router::UsageKey::kRoute ? "route" : key == router::UsageKey::kModel ? "model" : "user";
  auto days = redis_->command({"SMEMBERS", "owl:usage-days"});
  if (!days) return days.error();
  const std::string since = router::utc_day(since_unix_s);
  std::map<std::string, router::UsageRow> rows;
  for (const RedisValue& day : days->items) {
    if (day.text < since) continue;
    for (const std::string_view field : {"requests", "prompt", "completion", "cost"}) {
      auto h = redis_->command({"HGETALL", fmt::format("owl:usage:{}:{}:{}", day.text, dim, field)});
      if (!h) return h.error();
      for (size_t i = 0; i + 1 < h->items.size(); i += 2) {
        router::UsageRow& row = rows[h->items[i].text];
        row.key = h->items[i].text;
        const RedisValue& v = h->items[i + 1];
        if (field == "requests") row.requests += to_int(v);
        else if (field == "prompt") row.prompt_tokens += to_int(v);
        else if (field == "completion") row.completion_tokens += to_int(v);
        else row.cost_usd += to_double(v);
      }
    }
  }
  std::vector<router::UsageRow> out;
  for (auto& [k, row] : rows) out.push_back(std::move(row));
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.cost_usd > b.cost_usd; });
  return out;
}

TakeResult RedisCounters::take(const std::string& key, const BucketSpec& spec, double amount) {
  auto r = redis_->command({"EVAL", kBucket, "1", kPrefix + "bucket:" + key, num(spec.capacity), num(spec.refill_per_s), num(amount), "take"});
  if (!r || r->items.size() != 2) return {.ok = false, .retry_after_s = 1, .unavailable = true};
  const bool ok = r->items[0].integer == 1;
  const double level = to_double(r->items[1]);
  if (ok) return {.ok = true, .left = level};
  const double wait = spec.refill_per_s > 0 && amount <= spec.capacity ? (amount - level) / spec.refill_per_s
                                                                        : std::numeric_limits<double>::infinity();
  return {.ok = false, .retry_after_s = wait, .left = level};
}

void RedisCounters::give_back(const std::string& key, const BucketSpec& spec, double amount) {
  (void)redis_->command({"EVAL", kBucket, "1", kPrefix + "bucket:" + key, num(spec.capacity), num(spec.refill_per_s), num(amount), "give"});
}

}  // namespace owl::serve
