// Token buckets: takes never overdraw, even from many threads at once; time refills them;
// a budget (no refill) says it never will.
#include "serve/counters.h"

#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace owl::serve {
namespace {

TEST(MemoryCounters, TakesRefillAndGiveBack) {
  MemoryCounters c;
  const auto t0 = MemoryCounters::Clock::time_point{} + std::chrono::hours(1);
  c.set_now(t0);
  const BucketSpec rpm{.capacity = 3, .refill_per_s = 0.5};
  EXPECT_TRUE(c.take("k", rpm, 2).ok);
  const TakeResult refused = c.take("k", rpm, 2);
  EXPECT_FALSE(refused.ok);
  EXPECT_DOUBLE_EQ(refused.left, 1);
  EXPECT_DOUBLE_EQ(refused.retry_after_s, 2.0);  // 1 missing at 0.5 a second
  EXPECT_TRUE(c.take("other", rpm, 3).ok);       // buckets are per key
  c.set_now(t0 + std::chrono::seconds(2));
  EXPECT_TRUE(c.take("k", rpm, 2).ok);
  c.give_back("k", rpm, 10);                     // never above the capacity
  EXPECT_FALSE(c.take("k", rpm, 4).ok);
  EXPECT_TRUE(c.take("k", rpm, 3).ok);
  const BucketSpec budget{.capacity = 5, .refill_per_s = 0};
  EXPECT_TRUE(c.take("b", budget, 5).ok);
  EXPECT_TRUE(std::isinf(c.take("b", budget, 1).retry_after_s));
}

TEST(MemoryCounters, ConcurrentTakesNeverOverdraw) {
  MemoryCounters c;
  c.set_now(MemoryCounters::Clock::time_point{} + std::chrono::hours(1));
  const BucketSpec spec{.capacity = 1000, .refill_per_s = 0};
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 300; ++i) granted += c.take("shared", spec, 1).ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(granted.load(), 1000);
}

}  // namespace
}  // namespace owl::serve
