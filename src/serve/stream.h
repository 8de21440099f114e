// The channel from the engine thread to the HTTP handler of one request: the events of its
// choices (text deltas with their tokens, then one end per choice), and a cancel flag the
// handler sets when its client goes away.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>

#include "sample/generate.h"
#include "sample/sampler.h"

namespace owl::serve {

using Clock = std::chrono::steady_clock;

// What the engine knows about one choice when it ends.
struct ChoiceStats {
  int64_t n_prompt = 0;     // prompt tokens
  int64_t n_cached = 0;     // of which were reused from the KV cache
  int64_t n_generated = 0;  // tokens sampled, end-of-generation included
  Clock::time_point t_admitted{};
  Clock::time_point t_first_token{};
  Clock::time_point t_end{};
  int slot = -1;
};

struct Event {
  enum class Kind { kToken, kEnd, kError };
  Kind kind = Kind::kToken;
  int index = 0;             // the choice
  std::string text;          // kToken: whole UTF-8 text completed now (may be empty); kError: message
  bool has_token = false;    // kToken: false for a final flush that carries only text
  sample::Sampled sampled;   // kToken
  sample::FinishReason finish = sample::FinishReason::kLength;  // kEnd
  ChoiceStats stats;         // kEnd
};

// Threading: the engine thread calls push(); one HTTP thread calls pop(); cancel() and
// cancelled() may be called from any thread.
class RequestStream {
 public:
  explicit RequestStream(int n_choices) : n_open_(n_choices) {}

  void push(Event event) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (event.kind != Event::Kind::kToken) --n_open_;
      events_.push_back(std::move(event));
    }
    ready_.notify_one();
  }
  // Waits up to `timeout` for an event; false when none came.
  bool pop(Event& out, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!ready_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return false;
    out = std::move(events_.front());
    events_.pop_front();
    return true;
  }
  // True once every choice has ended and every event was popped.
  bool finished() {
    std::lock_guard<std::mutex> lock(mutex_);
    return n_open_ <= 0 && events_.empty();
  }
  size_t pending() {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_.size();
  }
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

  const Clock::time_point t_arrival = Clock::now();

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Event> events_;
  int n_open_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace owl::serve
