// The HTTP server's task queue: each connection being served gets a thread, started on demand
// and ended after a spell without work, so that idle or slow clients holding their connections
// never keep others waiting behind them (a fixed pool of N threads is stalled by N idle
// keep-alive connections). At most max_threads connections are served at once; beyond that,
// new connections wait for one to end.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <httplib.h>

namespace owl::serve {

// Threading: enqueue() from httplib's accept thread; shutdown() once, from that thread too.
class ConnectionPool : public httplib::TaskQueue {
 public:
  ConnectionPool(int max_threads, std::chrono::milliseconds idle_timeout);
  ~ConnectionPool() override;
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  void enqueue(std::function<void()> fn) override;
  // Runs the jobs still queued, then joins every thread.
  void shutdown() override;

  int threads() const;  // live threads, idle ones included

 private:
  void work();
  void join_finished(std::unique_lock<std::mutex>& lock);

  const int max_threads_;
  const std::chrono::milliseconds idle_timeout_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  std::map<std::thread::id, std::thread> threads_;
  std::vector<std::thread::id> finished_;  // threads that have left work(), to join
  int idle_ = 0;
  bool stopping_ = false;
};

}  // namespace owl::serve
