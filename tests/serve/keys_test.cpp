// API keys: the state file keeps hashes only and answers unknown, wrong, revoked and malformed
// keys alike; the key guard's limits hold, budgets cannot be overspent by concurrent requests,
// and every refusal gives back what it took.
#include "serve/key_guard.h"
#include "serve/keys.h"

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

class KeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path = "/tmp/owl_keys_test_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db";
    remove_files();
    auto s = KeyStore::open(path);
    ASSERT_TRUE(s.ok()) << s.message();
    store = std::shared_ptr<KeyStore>(std::move(*s));
  }
  void TearDown() override {
    store.reset();
    remove_files();
  }
  void remove_files() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  }
  std::string create(const std::string& name, const KeyLimits& limits = {}) {
    auto key = store->create(name, limits, kNow);
    EXPECT_TRUE(key.ok()) << key.message();
    return key.ok() ? *key : "";
  }
  KeyCheck check(const std::string& key, int64_t now = kNow) {
    auto c = store->check(key, now);
    EXPECT_TRUE(c.ok()) << c.message();
    return c.ok() ? c->first : KeyCheck::kInvalid;
  }
  std::string path;
  std::shared_ptr<KeyStore> store;
};

TEST_F(KeysTest, OnlyTheKeyInForceWithItsSecretIsValid) {
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

TEST_F(KeysTest, TheFileHoldsNoKeyAndOnlyItsOwnerReadsIt) {
  const std::string key = create("alice");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  const std::string secret = key.substr(key.rfind('-') + 1);
  for (const char* suffix : {"", "-wal"}) {
    std::ifstream in(path + suffix, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    EXPECT_EQ(bytes.str().find(secret), std::string::npos) << suffix;
  }
}

TEST_F(KeysTest, RevokedRotatedAndExpiredKeysStopWorking) {
  KeyLimits limits{.rpm = 5};
  limits.expires_unix = kNow + 60;
  const std::string key = create("alice", limits);
  EXPECT_EQ(check(key, kNow + 59), KeyCheck::kValid);
  EXPECT_EQ(check(key, kNow + 60), KeyCheck::kExpired);
  auto rotated = store->rotate("alice");
  ASSERT_TRUE(rotated.ok()) << rotated.message();
  EXPECT_EQ(check(key), KeyCheck::kInvalid);
  EXPECT_EQ(check(*rotated), KeyCheck::kValid);
  EXPECT_EQ(rotated->substr(0, 17), key.substr(0, 17));  // same id, so the same spend
  EXPECT_EQ(store->find("alice")->limits.rpm, 5);
  ASSERT_TRUE(store->revoke("alice", kNow).ok());
  EXPECT_EQ(check(*rotated), KeyCheck::kInvalid);
  EXPECT_FALSE(store->revoke("alice", kNow).ok());
  EXPECT_FALSE(store->rotate("alice").ok());
  const std::string again = create("alice");  // the name is free again
  EXPECT_EQ(check(again), KeyCheck::kValid);
  auto all = store->list();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_NE((*all)[0].revoked_unix, 0);
  EXPECT_EQ((*all)[1].revoked_unix, 0);
}

TEST_F(KeysTest, SpendIsKeptPerPeriod) {
  EXPECT_EQ(period_start(BudgetPeriod::kDay, kNow + 3600), kNow);
  EXPECT_EQ(period_end(BudgetPeriod::kDay, kNow + 3600), kNow + 86400);
  EXPECT_EQ(period_start(BudgetPeriod::kMonth, kNow + 3600), 1796083200);  // 2026-12-01
  EXPECT_EQ(period_end(BudgetPeriod::kMonth, kNow), 1798761600);          // 2027-01-01
  EXPECT_EQ(period_start(BudgetPeriod::kTotal, kNow), 0);
  ASSERT_TRUE(store->add_spend("abc", kNow, 0.25).ok());
  ASSERT_TRUE(store->add_spend("abc", kNow, 0.5).ok());
  ASSERT_TRUE(store->add_spend("abc", kNow + 86400, 1).ok());
  EXPECT_DOUBLE_EQ(*store->spent("abc", kNow), 0.75);
  EXPECT_DOUBLE_EQ(*store->spent("abc", kNow + 86400), 1);
  EXPECT_DOUBLE_EQ(*store->spent("other", kNow), 0);
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

class KeyGuardTest : public KeysTest {
 protected:
  void SetUp() override {
    KeysTest::SetUp();
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
  const Work small{.model = "small", .max_tokens = 8, .worst_tokens = 20};
  const auto denied = guard->admit(who, Work{.model = "big"});
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
  const auto too_big = guard->admit(who, Work{.model = "m", .prompt_tokens_bound = 80, .worst_tokens = 101});
  ASSERT_TRUE(too_big);
  EXPECT_EQ(too_big->status, 400);
  const Work w{.model = "m", .max_tokens = 20, .prompt_tokens_bound = 40, .worst_tokens = 60};
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
  EXPECT_FALSE(guard->admit(who, costly));
  const auto refused = guard->admit(who, costly);  // 0.6 reserved + 0.6 > 1
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 429);
  EXPECT_EQ(refused->code, "insufficient_quota");
  EXPECT_NEAR(refused->retry_after_s, 86400, 1e-9);  // until the next UTC day
  guard->settle(who, costly, {.cost_usd = 0.5});
  EXPECT_DOUBLE_EQ(*store->spent(who.key_id, kNow), 0.5);
  EXPECT_DOUBLE_EQ(guard->reserved_usd(who.key_id), 0);
  EXPECT_TRUE(guard->admit(who, costly));    // 0.5 + 0.6 > 1
  const Work half{.model = "m", .worst_usd = 0.5};
  EXPECT_FALSE(guard->admit(who, half));     // the refusals used none of the 2 requests
  guard->settle(who, half, {.cost_usd = 0.5});
  EXPECT_DOUBLE_EQ(*store->spent(who.key_id, kNow), 1.0);
  now = kNow + 86400;                         // a new day: nothing spent yet
  counters->set_now(MemoryCounters::Clock::time_point{} + std::chrono::hours(2));
  EXPECT_FALSE(guard->admit(who, costly));
  KeyLimits total;
  total.budget_usd = 0.1;
  total.period = BudgetPeriod::kTotal;
  const Principal bob = login(create("bob", total));
  const auto never = guard->admit(bob, costly);
  ASSERT_TRUE(never);
  EXPECT_TRUE(std::isinf(never->retry_after_s));
}

// Many threads admit and settle at once, each request costing a random share of its worst case:
// the spend never passes the budget, and every reservation is released.
TEST_F(KeyGuardTest, ConcurrentRequestsNeverOverspendTheBudget) {
  KeyLimits limits;
  limits.budget_usd = 1.0;
  limits.period = BudgetPeriod::kTotal;
  const Principal who = login(create("alice", limits));
  std::atomic<int> admitted{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t + 1));
      std::uniform_real_distribution<double> share(0.25, 1.0);
      for (int i = 0; i < 100; ++i) {
        const Work w{.model = "m", .worst_usd = 0.01 + 0.001 * (i % 7)};
        if (guard->admit(who, w)) {
          ++refused;
          continue;
        }
        ++admitted;
        std::this_thread::yield();
        guard->settle(who, w, {.cost_usd = w.worst_usd * share(rng)});
      }
    });
  }
  for (auto& t : threads) t.join();
  const double spent = *store->spent(who.key_id, 0);
  EXPECT_LE(spent, 1.0);
  EXPECT_GT(spent, 0.9);  // refused only once worst cases no longer fit
  EXPECT_GT(refused.load(), 0);
  EXPECT_GT(admitted.load(), 60);
  EXPECT_DOUBLE_EQ(guard->reserved_usd(who.key_id), 0);
}

}  // namespace
}  // namespace owl::serve
