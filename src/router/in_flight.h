// The requests a provider runs on threads of its own (a hosted answer being relayed, a route's
// steps): their sinks, so that they can be cancelled, and their count, so that the provider's
// destructor can wait for them.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/events.h"

namespace owl::router {

// Threading: every method may be called from any thread. The owner calls cancel_and_wait()
// first in its destructor, before the members its threads use are destroyed.
class InFlight {
 public:
  // Runs `work` on a thread of its own, counted until it returns; `sink` is what cancels it.
  void start(std::shared_ptr<engine::EventSink> sink, std::function<void()> work) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++running_;
      std::erase_if(sinks_, [](const auto& w) { return w.expired(); });
      sinks_.push_back(std::move(sink));
    }
    std::thread([this, work = std::move(work)] {
      work();
      std::lock_guard<std::mutex> lock(mutex_);
      if (--running_ == 0) idle_.notify_all();
    }).detach();
  }
  void cancel_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& weak : sinks_) {
      if (auto sink = weak.lock()) sink->cancel();
    }
  }
  void cancel_and_wait() {
    cancel_all();
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [&] { return running_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  int running_ = 0;                                      // guarded by mutex_
  std::vector<std::weak_ptr<engine::EventSink>> sinks_;  // guarded by mutex_
};

}  // namespace owl::router
