#include "serve/counters.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace owl::serve {

MemoryCounters::Clock::time_point MemoryCounters::now() const { return fixed_now_ ? *fixed_now_ : Clock::now(); }

void MemoryCounters::set_now(Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  fixed_now_ = now;
}

MemoryCounters::Bucket& MemoryCounters::refill(const std::string& key, const BucketSpec& spec) {
  const Clock::time_point t = now();
  auto [it, created] = buckets_.try_emplace(key, Bucket{spec.capacity, t});
  Bucket& b = it->second;
  if (!created) {
    const double elapsed = std::chrono::duration<double>(t - b.updated).count();
    if (elapsed > 0) b.level = std::min(spec.capacity, b.level + elapsed * spec.refill_per_s);
    b.updated = std::max(b.updated, t);
  }
  return b;
}

TakeResult MemoryCounters::take(const std::string& key, const BucketSpec& spec, double amount) {
  std::lock_guard<std::mutex> lock(mutex_);
  Bucket& b = refill(key, spec);
  if (b.level >= amount) {
    b.level -= amount;
    return {.ok = true, .left = b.level};
  }
  const double missing = amount - b.level;
  const double wait = spec.refill_per_s > 0 && amount <= spec.capacity ? missing / spec.refill_per_s
                                                                        : std::numeric_limits<double>::infinity();
  return {.ok = false, .retry_after_s = wait, .left = b.level};
}

void MemoryCounters::give_back(const std::string& key, const BucketSpec& spec, double amount) {
  std::lock_guard<std::mutex> lock(mutex_);
  Bucket& b = refill(key, spec);
  b.level = std::min(spec.capacity, b.level + amount);
}

}  // namespace owl::serve
