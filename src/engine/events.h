// The events of generation: what the engine reports about each sequence as it computes it (text
// deltas with their tokens, then one end or error), and the sinks that receive them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>

#include "engine/request.h"
#include "sample/sampler.h"

namespace owl::engine {

using Clock = std::chrono::steady_clock;

// What the engine knows about one sequence when it ends.
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
  int index = 0;             // the choice, among its request's
  std::string text;          // kToken: whole UTF-8 text completed now (may be empty); kError: message
  bool has_token = false;    // kToken: the token is part of the output (false for end-of-generation)
  sample::Sampled sampled;   // kToken: the token sampled, with its log-probabilities if asked
  FinishReason finish = FinishReason::kLength;  // kEnd
  ChoiceStats stats;         // kEnd
  // kEnd of a hosted model's answer: the tool calls it made, as its API gave them (the engine's
  // own answers are read for calls by the API layer instead).
  struct ToolCall {
    std::string id, name, arguments;  // arguments: a JSON object's text
  };
  std::vector<ToolCall> tool_calls;
  // The first event of a sequence that asked for its prompt's log-probabilities
  // (SequenceRequest::prompt_logprobs_from): one per prompt token from that index on.
  std::vector<sample::Sampled> prompt_logprobs;
};

// Where the events of one request's sequences go.
// Threading: push() is called from the thread that drives the scheduler; cancel() and
// cancelled() from any thread.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void push(Event event) = 0;
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

  const Clock::time_point t_arrival = Clock::now();

 private:
  std::atomic<bool> cancelled_{false};
};

// A sink read by another thread (an HTTP handler): a queue of events.
// Threading: the engine thread calls push(); one reader thread calls pop(), finished(), pending().
class RequestStream : public EventSink {
 public:
  explicit RequestStream(int n_choices) : n_open_(n_choices) {}

  void push(Event event) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (event.kind == Event::Kind::kEnd || event.kind == Event::Kind::kError) --n_open_;
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
  // Waits up to `timeout` until an event is there to pop; false when none came.
  bool wait(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return ready_.wait_for(lock, timeout, [&] { return !events_.empty(); });
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

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Event> events_;
  int n_open_;
};

}  // namespace owl::engine
