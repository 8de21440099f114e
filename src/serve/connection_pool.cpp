#include "serve/connection_pool.h"

#include <system_error>

namespace owl::serve {

ConnectionPool::ConnectionPool(int max_threads, std::chrono::milliseconds idle_timeout)
    : max_threads_(max_threads < 1 ? 1 : max_threads), idle_timeout_(idle_timeout) {}

ConnectionPool::~ConnectionPool() { shutdown(); }

void ConnectionPool::enqueue(std::function<void()> fn) {
  std::unique_lock<std::mutex> lock(mutex_);
  join_finished(lock);
  jobs_.push_back(std::move(fn));
  if (static_cast<size_t>(idle_) >= jobs_.size() || static_cast<int>(threads_.size()) >= max_threads_) {
    wake_.notify_one();
    return;
  }
  try {
    std::thread t([this] { work(); });
    threads_.emplace(t.get_id(), std::move(t));
  } catch (const std::system_error&) {
    // The system refuses another thread: the job waits for one of the running threads.
  }
}

void ConnectionPool::shutdown() {
  std::map<std::thread::id, std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    threads.swap(threads_);
    finished_.clear();
  }
  wake_.notify_all();
  for (auto& [id, t] : threads) {
    if (t.joinable()) t.join();
  }
}

int ConnectionPool::threads() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(threads_.size() - finished_.size());
}

void ConnectionPool::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    ++idle_;
    wake_.wait_for(lock, idle_timeout_, [&] { return !jobs_.empty() || stopping_; });
    --idle_;
    if (jobs_.empty()) break;  // idle for idle_timeout_, or shutting down with nothing left
    std::function<void()> fn = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    fn();
    fn = nullptr;
    lock.lock();
  }
  if (!stopping_) finished_.push_back(std::this_thread::get_id());
}

void ConnectionPool::join_finished(std::unique_lock<std::mutex>& lock) {
  std::vector<std::thread> done;
  for (std::thread::id id : finished_) {
    auto it = threads_.find(id);
    if (it == threads_.end()) continue;
    done.push_back(std::move(it->second));
    threads_.erase(it);
  }
  finished_.clear();
  lock.unlock();
  for (std::thread& t : done) t.join();  // each has left work(): the join returns at once
  lock.lock();
}

}  // namespace owl::serve
