// API keys: the state file keeps hashes only and answers unknown, wrong, revoked and malformed
// keys alike; the key guard's limits hold, budgets cannot be overspent by concurrent requests,
// and every refusal gives back what it took.
#include "serve/key_guard.h"
#include "serve/keys.h"
#include "serve/redis_store.h"
#include "support/redis_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace owl::serve {
namespace {

constexpr int64_t kNow = 1796601600;  // 2026-12-07T00:00:00Z

// A state file of the test's own, named after it; removed with its journal files at the end.
struct TempStateFile {
  TempStateFile() {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    path = "/tmp/owl_keys_test_" + std::to_string(::getpid()) + "_" + name.substr(0, name.find('/')) + ".db";
    remove();
  }
  ~TempStateFile() { remove(); }
  void remove() const {
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  }
  std::string path;
};

std::string create_key(KeyStore& store, const std::string& name, const KeyLimits& limits = {}) {
  auto key = store.create(name, limits, kNow);
  EXPECT_TRUE(key.ok()) << key.message();
  return key.ok() ? *key : "";
}

// A store of either kind: the SQLite state file, or Redis (a server of the test's own).
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    store = open_store();
    ASSERT_TRUE(store);
  }
  // A store over the same data, as another gateway has: another connection to Redis; the same
  // store for a state file, which one process serves (reservations live in that process).
  std::shared_ptr<KeyStore> open_store() {
    if (GetParam() == "sqlite" && store) return store;
    if (GetParam() == "redis") {
      if (!redis) redis = std::make_unique<owl::testing::RedisServer>();
      EXPECT_TRUE(redis->answers()) << "redis-server did not start (scripts/setup.sh installs it)";
      return std::make_shared<RedisKeyStore>(redis_client());
    }
    auto s = SqliteKeyStore::open(file.path);
    EXPECT_TRUE(s.ok()) << s.message();
    return s.ok() ? std::shared_ptr<KeyStore>(std::move(*s)) : nullptr;
  }
  std::shared_ptr<RedisClient> redis_client() { return std::make_shared<RedisClient>(*parse_redis_url(redis->url())); }
  // The counters a gateway over the store uses: Redis's own, or the process's.
  std::shared_ptr<Counters> counters_for_gateway() {
    if (GetParam() == "redis") return std::make_shared<RedisCounters>(redis_client());
    if (!memory) memory = std::make_shared<MemoryCounters>();
    return memory;  // gateways sharing a SQLite file are one process
  }
  std::string create(const std::string& name, const KeyLimits& limits = {}) { return create_key(*store, name, limits); }
  KeyCheck check(const std::string& key, int64_t now = kNow) {
    auto c = store->check(key, now);
    EXPECT_TRUE(c.ok()) << c.message();
    return c.ok() ? c->first : KeyCheck::kInvalid;
  }
  TempStateFile file;  // first: removed after the stores are closed
  std::unique_ptr<owl::testing::RedisServer> redis;
  std::shared_ptr<MemoryCounters> memory;
  std::shared_ptr<KeyStore> store;
};

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest, ::testing::Values("sqlite", "redis"), [](const auto& info) { return info.param; });

TEST_P(StoreTest, OnlyTheKeyInForceWithItsSecretIsValid) {
  const std::string key = create("alice");
  ASSERT_EQ(key.size(), 4u + 12 + 1 + 40);
  EXPECT_EQ(check(key), KeyCheck::kValid);
  EXPECT_EQ(store->check(key, kNow)->second.name, "alice");
  std::string wrong = key;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  EXPECT_EQ(check(wrong), KeyCheck::kInvalid);
  std::string unknown = key;
  unknown[5] = unknown[5] == '0' ? '1' : '0';  // another id
  EXPECT_EQ(check(unknown), KeyCheck::kInvalid);
  for (const std::string& bad : {std::string(), std::string("owl-"), key.substr(1), key + "0", std::string("sk-") + key.substr(3),
                                  std::string(key.size(), 'x')}) {
    EXPECT_EQ(check(bad), KeyCheck::kInvalid) << bad;
  }
  EXPECT_FALSE(store->create("alice", {}, kNow).ok());  // one key in force per name
  EXPECT_FALSE(store->create("", {}, kNow).ok());
}

TEST_P(StoreTest, RevokedRotatedAndExpiredKeysStopWorking) {
  KeyLimits limits{.rpm = 5, .budget_usd = 2.5, .models = {"a", "b"}};
  limits.expires_unix = kNow + 60;
  const std::string key = create("alice", limits);
  EXPECT_EQ(check(key, kNow + 59), KeyCheck::kValid);
  EXPECT_EQ(check(key, kNow + 60), KeyCheck::kExpired);
  auto rotated = store->rotate("alice");
  ASSERT_TRUE(rotated.ok()) << rotated.message();
  EXPECT_EQ(check(key), KeyCheck::kInvalid);
  EXPECT_EQ(check(*rotated), KeyCheck::kValid);
  EXPECT_EQ(rotated->substr(0, 17), key.substr(0, 17));  // same id, so the same spend
  const KeyInfo found = *store->find("alice");
  EXPECT_EQ(found.limits.rpm, 5);
  EXPECT_EQ(found.limits.budget_usd, 2.5);
  EXPECT_EQ(found.limits.models, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(store->revoke("alice", kNow).ok());
  EXPECT_EQ(check(*rotated), KeyCheck::kInvalid);
  EXPECT_FALSE(store->revoke("alice", kNow).ok());
  EXPECT_FALSE(store->rotate("alice").ok());
  EXPECT_FALSE(store->find("alice").ok());
  const std::string again = create("alice");  // the name is free again
  EXPECT_EQ(check(again), KeyCheck::kValid);
  auto all = store->list();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_NE((*all)[0].revoked_unix, 0);
  EXPECT_EQ((*all)[1].revoked_unix, 0);
}

TEST_P(StoreTest, SpendIsKeptPerPeriodAndReservationsAreReleased) {
  ASSERT_TRUE(store->settle("abc", kNow, "", 0.25).ok());
  ASSERT_TRUE(store->settle("abc", kNow, "", 0.5).ok());
  ASSERT_TRUE(store->settle("abc", kNow + 86400, "", 1).ok());
  EXPECT_DOUBLE_EQ(*store->spent("abc", kNow), 0.75);
  EXPECT_DOUBLE_EQ(*store->spent("abc", kNow + 86400), 1);
  EXPECT_DOUBLE_EQ(*store->spent("other", kNow), 0);
  auto a = store->reserve("abc", kNow, 1.0, 0.125, "t1");
  ASSERT_TRUE(a.ok()) << a.message();
  EXPECT_TRUE(a->ok);
  auto b = store->reserve("abc", kNow, 1.0, 0.25, "t2");  // 0.75 + 0.125 + 0.25 > 1
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->ok);
  EXPECT_DOUBLE_EQ(b->spent, 0.75);
  EXPECT_DOUBLE_EQ(b->reserved, 0.125);
  EXPECT_DOUBLE_EQ(*store->reserved("abc"), 0.125);
  ASSERT_TRUE(store->settle("abc", kNow, "t1", 0.0625).ok());
  EXPECT_DOUBLE_EQ(*store->reserved("abc"), 0);
  EXPECT_DOUBLE_EQ(*store->spent("abc", kNow), 0.8125);
}

// Two gateways (each its own connection and guard) admit and settle from many threads at once,
// each request costing a random share of its worst case: the spend never passes the budget, and
// every reservation is released.
TEST_P(StoreTest, ConcurrentRequestsOnTwoGatewaysNeverOverspendTheBudget) {
  KeyLimits limits;
  limits.budget_usd = 1.0;
  limits.period = BudgetPeriod::kTotal;
  const std::string key = create("alice", limits);
  std::vector<std::shared_ptr<KeyGuard>> gateways;
  for (int g = 0; g < 2; ++g) gateways.push_back(std::make_shared<KeyGuard>(open_store(), counters_for_gateway()));
  std::atomic<int> admitted{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      KeyGuard& guard = *gateways[static_cast<size_t>(t % 2)];
      auto who = guard.authenticate(Caller{.authorization = "Bearer " + key});
      ASSERT_TRUE(std::holds_alternative<Principal>(who));
      std::mt19937 rng(static_cast<uint32_t>(t + 1));
      std::uniform_real_distribution<double> share(0.25, 1.0);
      for (int i = 0; i < 60; ++i) {
        Work w{.model = "m", .worst_usd = 0.02 + 0.002 * (i % 7)};
        if (auto e = guard.admit(std::get<Principal>(who), w)) {
          EXPECT_EQ(e->code, "insufficient_quota");
          ++refused;
          continue;
        }
        ++admitted;
        std::this_thread::yield();
        guard.settle(std::get<Principal>(who), w, {.cost_usd = w.worst_usd * share(rng)});
      }
    });
  }
  for (auto& t : threads) t.join();
  const std::string id = store->check(key, kNow)->second.id;
  const double spent = *store->spent(id, 0);
  EXPECT_LE(spent, 1.0 + 1e-12);
  EXPECT_GT(spent, 0.85);  // refused only once worst cases no longer fit
  EXPECT_GT(refused.load(), 0);
  EXPECT_GT(admitted.load(), 30);
  EXPECT_DOUBLE_EQ(*store->reserved(id), 0);
}

// A burst from many threads on two gateways: exactly the key's requests per minute are admitted
// (and what flows back while the burst lasts).
TEST_P(StoreTest, RequestsPerMinuteHoldAcrossGateways) {
  const std::string key = create("alice", KeyLimits{.rpm = 40});
  std::vector<std::shared_ptr<KeyGuard>> gateways;
  for (int g = 0; g < 2; ++g) gateways.push_back(std::make_shared<KeyGuard>(open_store(), counters_for_gateway()));
  std::atomic<int> admitted{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      KeyGuard& guard = *gateways[static_cast<size_t>(t % 2)];
      auto who = std::get<Principal>(guard.authenticate(Caller{.authorization = "Bearer " + key}));
      for (int i = 0; i < 15; ++i) {
        Work w{.model = "m"};
        if (!guard.admit(who, w)) ++admitted;
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(admitted.load(), 40);
  EXPECT_LE(admitted.load(), 40 + static_cast<int>(seconds * 40 / 60) + 1);
}

TEST(RedisStore, AnUnreachableRedisFailsClosed) {
  auto redis = std::make_unique<owl::testing::RedisServer>();
  ASSERT_TRUE(redis->answers()) << "redis-server did not start (scripts/setup.sh installs it)";
  auto client = std::make_shared<RedisClient>(*parse_redis_url(redis->url()));
  auto store = std::make_shared<RedisKeyStore>(client);
  KeyLimits limits{.rpm = 10};
  limits.budget_usd = 5;
  const std::string key = *store->create("alice", limits, kNow);
  KeyGuard guard(store, std::make_shared<RedisCounters>(client));
  auto who = guard.authenticate(Caller{.authorization = "Bearer " + key});
  ASSERT_TRUE(std::holds_alternative<Principal>(who));
  redis->stop();
  Work w{.model = "m", .worst_usd = 0.1};
  const auto refused = guard.admit(std::get<Principal>(who), w);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(refused->code, "state_unavailable");
  auto again = guard.authenticate(Caller{.authorization = "Bearer " + key});
  ASSERT_TRUE(std::holds_alternative<ApiError>(again));
  EXPECT_EQ(std::get<ApiError>(again).status, 503);
  auto listed = store->list();
  ASSERT_FALSE(listed.ok());
  EXPECT_NE(listed.message().find("redis 127.0.0.1:" + std::to_string(redis->port())), std::string::npos) << listed.message();
}

// The Redis ledger keeps sums where the SQLite one keeps rows: both give the same usage.
TEST(RedisStore, TheLedgerSumsAsTheSqliteLedgerDoes) {
  owl::testing::RedisServer redis;
  ASSERT_TRUE(redis.answers()) << "redis-server did not start (scripts/setup.sh installs it)";
  RedisLedger shared(std::make_shared<RedisClient>(*parse_redis_url(redis.url())));
  const TempStateFile ledger_file;
  auto file = router::Ledger::open(ledger_file.path);
  ASSERT_TRUE(file.ok()) << file.message();
  const std::vector<router::LedgerEntry> entries = {
      {.unix_s = kNow - 86400, .route = "auto", .model = "small", .user = "ann", .prompt_tokens = 10, .completion_tokens = 5, .cost_usd = 0.25},
      {.unix_s = kNow, .route = "auto", .model = "big", .user = "bob", .prompt_tokens = 7, .completion_tokens = 3, .cost_usd = 1.5},
      {.unix_s = kNow + 60, .route = "", .model = "small", .user = "ann", .prompt_tokens = 4, .completion_tokens = 2, .cost_usd = 0.125}};
  for (const auto& e : entries) {
    ASSERT_TRUE(shared.record(e).ok());
    ASSERT_TRUE((*file)->record(e).ok());
  }
  for (auto key : {router::UsageKey::kDay, router::UsageKey::kRoute, router::UsageKey::kModel, router::UsageKey::kUser}) {
    for (int64_t since : {int64_t{0}, kNow}) {
      const auto a = *shared.usage(key, since), b = *(*file)->usage(key, since);
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].key, b[i].key);
        EXPECT_EQ(a[i].requests, b[i].requests);
        EXPECT_EQ(a[i].prompt_tokens, b[i].prompt_tokens);
        EXPECT_EQ(a[i].completion_tokens, b[i].completion_tokens);
        EXPECT_DOUBLE_EQ(a[i].cost_usd, b[i].cost_usd);
      }
    }
  }
}

TEST(RedisStore, Urls) {
  auto a = parse_redis_url("redis://:s3cret@cache.internal:6380/2");
  ASSERT_TRUE(a.ok()) << a.message();
  EXPECT_EQ(a->host, "cache.internal");
  EXPECT_EQ(a->port, 6380);
  EXPECT_EQ(a->password, "s3cret");
  EXPECT_EQ(a->db, 2);
  EXPECT_EQ(parse_redis_url("redis://localhost")->port, 6379);
  for (const char* bad : {"localhost:6379", "http://x", "redis://", "redis://h:99999", "redis://h:1/x"}) {
    EXPECT_FALSE(parse_redis_url(bad).ok()) << bad;
  }
}

// The SQLite state file keeps no key and is its owner's alone.
class SqliteFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = SqliteKeyStore::open(file.path);
    ASSERT_TRUE(s.ok()) << s.message();
    store = std::shared_ptr<SqliteKeyStore>(std::move(*s));
  }
  std::string create(const std::string& name, const KeyLimits& limits = {}) { return create_key(*store, name, limits); }
  TempStateFile file;  // first: removed after the store is closed
  std::shared_ptr<SqliteKeyStore> store;
};

TEST_F(SqliteFileTest, TheFileHoldsNoKeyAndOnlyItsOwnerReadsIt) {
  const std::string key = create("alice");
  struct stat st {};
  ASSERT_EQ(::stat(file.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  const std::string secret = key.substr(key.rfind('-') + 1);
  for (const char* suffix : {"", "-wal"}) {
    std::ifstream in(file.path + suffix, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    EXPECT_EQ(bytes.str().find(secret), std::string::npos) << suffix;
  }
}

TEST(KeyLimits, ModelsAndRoutesAllowed) {
  KeyLimits open;
  EXPECT_TRUE(open.allows("anything"));
  KeyLimits some{.models = {"small"}, .routes = {"auto"}};
  EXPECT_TRUE(some.allows("small"));
  EXPECT_TRUE(some.allows("small:support"));  // an adapter of a listed model
  EXPECT_TRUE(some.allows("auto"));
  EXPECT_FALSE(some.allows("big"));
  EXPECT_FALSE(some.allows("smaller"));
}

TEST(BudgetPeriods, StartAndEndInUtc) {
  EXPECT_EQ(period_start(BudgetPeriod::kDay, kNow + 3600), kNow);
  EXPECT_EQ(period_end(BudgetPeriod::kDay, kNow + 3600), kNow + 86400);
  EXPECT_EQ(period_start(BudgetPeriod::kMonth, kNow + 3600), 1796083200);  // 2026-12-01
  EXPECT_EQ(period_end(BudgetPeriod::kMonth, kNow), 1798761600);          // 2027-01-01
  EXPECT_EQ(period_start(BudgetPeriod::kTotal, kNow), 0);
}

class KeyGuardTest : public SqliteFileTest {
 protected:
  void SetUp() override {
    SqliteFileTest::SetUp();
    counters = std::make_shared<MemoryCounters>();
    counters->set_now(MemoryCounters::Clock::time_point{} + std::chrono::hours(1));
    guard = std::make_shared<KeyGuard>(store, counters, [this] { return now.load(); });
  }
  Principal login(const std::string& key) {
    const std::string header = "Bearer " + key;
    auto who = guard->authenticate(Caller{.method = "POST", .path = "/v1/chat/completions", .authorization = header});
    EXPECT_TRUE(std::holds_alternative<Principal>(who)) << std::get<ApiError>(who).message;
    return std::holds_alternative<Principal>(who) ? std::get<Principal>(who) : Principal{};
  }
  std::atomic<int64_t> now{kNow};
  std::shared_ptr<MemoryCounters> counters;
  std::shared_ptr<KeyGuard> guard;
};

TEST_F(KeyGuardTest, AuthenticationAnswersAreTheSameForEveryBadKey) {
  const std::string key = create("alice");
  auto status = [&](const std::string& header) {
    auto who = guard->authenticate(Caller{.authorization = header});
    return std::holds_alternative<ApiError>(who) ? std::get<ApiError>(who) : ApiError{.status = 200};
  };
  EXPECT_EQ(status("Bearer " + key).status, 200);
  EXPECT_EQ(status("bearer  " + key + " ").status, 200);
  const ApiError missing = status("");
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.code, "invalid_api_key");
  std::string wrong = key;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  const ApiError a = status("Bearer " + wrong), b = status("Bearer owl-000000000000-" + std::string(40, '0')), c = status("Basic x");
  EXPECT_EQ(a.status, 401);
  EXPECT_EQ(a.message, b.message);
  EXPECT_EQ(c.status, 401);
  KeyLimits expiring;
  expiring.expires_unix = kNow + 10;
  const std::string soon = create("bob", expiring);
  now = kNow + 10;
  const ApiError expired = status("Bearer " + soon);
  EXPECT_EQ(expired.status, 401);
  EXPECT_EQ(expired.code, "expired_api_key");
  EXPECT_NE(expired.message.find("2026-12-07 00:00 UTC"), std::string::npos) << expired.message;
}

TEST_F(KeyGuardTest, ModelsRequestsAndParallelLimits) {
  const Principal who = login(create("alice", KeyLimits{.rpm = 3, .max_parallel = 2, .models = {"small"}}));
  Work small{.model = "small", .max_tokens = 8, .worst_tokens = 20};
  Work big{.model = "big"};
  const auto denied = guard->admit(who, big);
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 403);
  EXPECT_EQ(denied->code, "model_not_allowed");
  EXPECT_FALSE(guard->admit(who, small));
  EXPECT_FALSE(guard->admit(who, small));
  auto third = guard->admit(who, small);  // two running
  ASSERT_TRUE(third);
  EXPECT_EQ(third->status, 429);
  EXPECT_NE(third->message.find("2 requests running"), std::string::npos) << third->message;
  guard->settle(who, small, {});
  EXPECT_FALSE(guard->admit(who, small));  // the third request of the minute
  guard->settle(who, small, {});
  guard->settle(who, small, {});
  auto fourth = guard->admit(who, small);
  ASSERT_TRUE(fourth);
  EXPECT_EQ(fourth->status, 429);
  EXPECT_EQ(fourth->code, "rate_limit_exceeded");
  EXPECT_NEAR(fourth->retry_after_s, 20.0, 1e-9);  // one request flows back every 20 s
  // The refusal by rate took no parallel slot: two may run once the minute allows.
  counters->set_now(MemoryCounters::Clock::time_point{} + std::chrono::hours(1) + std::chrono::seconds(40));
  EXPECT_FALSE(guard->admit(who, small));
  EXPECT_FALSE(guard->admit(who, small));
}

TEST_F(KeyGuardTest, TokensPerMinuteReserveTheWorstCaseAndSettleTheUse) {
  const Principal who = login(create("alice", KeyLimits{.tpm = 100}));
  EXPECT_TRUE(who.needs_bound);
  Work over{.model = "m", .prompt_tokens_bound = 80, .worst_tokens = 101};
  const auto too_big = guard->admit(who, over);
  ASSERT_TRUE(too_big);
  EXPECT_EQ(too_big->status, 400);
  Work w{.model = "m", .max_tokens = 20, .prompt_tokens_bound = 40, .worst_tokens = 60};
  EXPECT_FALSE(guard->admit(who, w));
  auto second = guard->admit(who, w);  // 40 left of 100
  ASSERT_TRUE(second);
  EXPECT_EQ(second->type, "tokens");
  EXPECT_NEAR(second->retry_after_s, 20 * 60.0 / 100, 1e-9);
  guard->settle(who, w, {.prompt_tokens = 10, .completion_tokens = 10});  // 40 of the 60 come back
  EXPECT_FALSE(guard->admit(who, w));
}

TEST_F(KeyGuardTest, ABudgetRefusalGivesBackTheRequestItTook) {
  KeyLimits limits{.rpm = 2};
  limits.budget_usd = 1.0;
  limits.period = BudgetPeriod::kDay;
  const Principal who = login(create("alice", limits));
  const Work costly{.model = "m", .worst_usd = 0.6};
  Work first = costly, second = costly, third = costly, half{.model = "m", .worst_usd = 0.5};
  EXPECT_FALSE(guard->admit(who, first));
  const auto refused = guard->admit(who, second);  // 0.6 reserved + 0.6 > 1
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 429);
  EXPECT_EQ(refused->code, "insufficient_quota");
  EXPECT_NEAR(refused->retry_after_s, 86400, 1e-9);  // until the next UTC day
  EXPECT_TRUE(second.ticket.empty());
  guard->settle(who, first, {.cost_usd = 0.5});
  EXPECT_DOUBLE_EQ(*store->spent(who.key_id, kNow), 0.5);
  EXPECT_DOUBLE_EQ(*store->reserved(who.key_id), 0);
  EXPECT_TRUE(guard->admit(who, third));    // 0.5 + 0.6 > 1
  EXPECT_FALSE(guard->admit(who, half));    // the refusals used none of the 2 requests
  guard->settle(who, half, {.cost_usd = 0.5});
  EXPECT_DOUBLE_EQ(*store->spent(who.key_id, kNow), 1.0);
  now = kNow + 86400;                         // a new day: nothing spent yet
  counters->set_now(MemoryCounters::Clock::time_point{} + std::chrono::hours(2));
  Work next_day = costly;
  EXPECT_FALSE(guard->admit(who, next_day));
  KeyLimits total;
  total.budget_usd = 0.1;
  total.period = BudgetPeriod::kTotal;
  const Principal bob = login(create("bob", total));
  Work bobs = costly;
  const auto never = guard->admit(bob, bobs);
  ASSERT_TRUE(never);
  EXPECT_TRUE(std::isinf(never->retry_after_s));
}

}  // namespace
}  // namespace owl::serve
