#include "core/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace owl::core {
namespace {

// Spinning keeps a decode step's many short loops cheap; past this the thread sleeps so that
// an idle engine costs no CPU.
constexpr int kSpinIterations = 20000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::thread::hardware_concurrency());
  n_threads_ = n_threads < 1 ? 1 : n_threads;
  workers_.reserve(n_threads_ - 1);
  for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { worker_loop(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void ThreadPool::work(int thread) {
  const TaskRef& fn = *job_;
  for (;;) {
    const int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= n_tasks_) break;
    fn(task, thread);
  }
}

void ThreadPool::run(int64_t n_tasks, TaskRef fn) {
  if (n_tasks <= 0) return;
  if (n_threads_ == 1 || n_tasks == 1) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
    return;
  }
  job_ = &fn;
  n_tasks_ = n_tasks;
  next_task_.store(0, std::memory_order_relaxed);
  open_.store(true, std::memory_order_seq_cst);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  work(0);
  // Every task has been claimed. Close the job so that a worker that wakes up only now does not
  // join it, then wait for the workers that did join: they may still run their last task. A
  // worker the OS has not scheduled yet is not waited for, so a busy machine costs this call
  // nothing beyond doing the work on fewer threads.
  open_.store(false, std::memory_order_seq_cst);
  for (int spin = 0;; ++spin) {
    const int active = active_workers_.load(std::memory_order_seq_cst);
    if (active == 0) break;
    if (spin < kSpinIterations) {
      cpu_relax();
    } else {
      active_workers_.wait(active, std::memory_order_acquire);
    }
  }
  job_ = nullptr;
}

void ThreadPool::worker_loop(int thread) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen; ++spin) {
      if (spin < kSpinIterations) {
        cpu_relax();
      } else {
        generation_.wait(seen, std::memory_order_acquire);
      }
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load(std::memory_order_relaxed)) return;
    // Announce, then look: run() closes the job before it reads active_workers_, so either it
    // sees this worker (and waits for it) or this worker sees the job closed (and skips it).
    // A job opened after this worker's generation was read is a valid job to help with.
    active_workers_.fetch_add(1, std::memory_order_seq_cst);
    if (open_.load(std::memory_order_seq_cst)) work(thread);
    if (active_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) active_workers_.notify_one();
  }
}

}  // namespace owl::core
