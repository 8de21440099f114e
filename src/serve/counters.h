// Token buckets by key (requests or tokens per minute, budgets), behind an interface so that a
// store shared by many nodes (Redis) can stand in for the one in this process. A take is atomic:
// concurrent takes never overdraw a bucket.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace owl::serve {

struct BucketSpec {
  double capacity = 0;        // the most the bucket holds (the burst)
  double refill_per_s = 0;    // what flows back per second; 0: never (a budget)
};

struct TakeResult {
  bool ok = false;
  double retry_after_s = 0;   // when !ok: until enough has flowed back; infinity when it never will
  double left = 0;            // in the bucket after the take (or now, when refused)
  bool unavailable = false;   // refused because the shared store could not be reached
};

// Threading: every method may be called from any thread, concurrently.
class Counters {
 public:
  virtual ~Counters() = default;
  // Takes `amount` from the bucket `key` (created full) if it holds that much.
  virtual TakeResult take(const std::string& key, const BucketSpec& spec, double amount) = 0;
  // Returns what a take reserved beyond what was used (up to the capacity).
  virtual void give_back(const std::string& key, const BucketSpec& spec, double amount) = 0;
};

// The buckets of this process, under one mutex; time from a steady clock (settable for tests).
class MemoryCounters final : public Counters {
 public:
  using Clock = std::chrono::steady_clock;
  TakeResult take(const std::string& key, const BucketSpec& spec, double amount) override;
  void give_back(const std::string& key, const BucketSpec& spec, double amount) override;
  // Tests: the time the buckets see, instead of the clock.
  void set_now(Clock::time_point now);

 private:
  struct Bucket {
    double level = 0;
    Clock::time_point updated{};
  };
  Bucket& refill(const std::string& key, const BucketSpec& spec);
  Clock::time_point now() const;

  std::mutex mutex_;
  std::map<std::string, Bucket> buckets_;
  std::optional<Clock::time_point> fixed_now_;
};

}  // namespace owl::serve
