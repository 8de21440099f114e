// A fixed pool of threads that runs parallel loops: the engine's only source of parallelism.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace owl::core {

// A non-owning reference to a callable `void(int64_t task, int thread)`: a pointer and a
// trampoline, so that handing a loop body to the pool allocates nothing.
class TaskRef {
 public:
  template <typename F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, TaskRef>)
  TaskRef(F& f)  // NOLINT: implicit by design, as std::function_ref
      : ctx_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* ctx, int64_t task, int thread) { (*static_cast<F*>(ctx))(task, thread); }) {}
  void operator()(int64_t task, int thread) const { call_(ctx_, task, thread); }

 private:
  void* ctx_;
  void (*call_)(void*, int64_t, int);
};

// ThreadPool runs parallel_for(n_tasks, fn): every task index in [0, n_tasks) is passed to fn
// exactly once, on one of n_threads() threads; thread indices are in [0, n_threads()), the
// calling thread is thread 0 and works too. Tasks are handed out dynamically (an atomic
// counter), so uneven tasks and a busy machine balance themselves.
//
// Threading contract:
//  - parallel_for is called by one thread at a time (the owner, usually the engine thread);
//    it is not reentrant: fn must not call parallel_for on the same pool.
//  - parallel_for returns after every task has finished; everything fn wrote happens-before
//    the return. It waits only for workers that joined the job: one the OS has not scheduled
//    yet is left out, and the caller runs the remaining tasks itself.
//  - fn must not throw. Two tasks run concurrently only on different thread indices, so
//    per-thread scratch indexed by `thread` needs no locking.
//  - The hot path allocates nothing: workers spin briefly on a generation counter, then
//    sleep on it (std::atomic::wait, a futex on Linux).
//  - The destructor joins the workers; it must not run concurrently with parallel_for.
class ThreadPool {
 public:
  // n_threads <= 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return n_threads_; }

  template <typename F>
  void parallel_for(int64_t n_tasks, F&& fn) {
    auto& f = fn;
    run(n_tasks, TaskRef(f));
  }

  void run(int64_t n_tasks, TaskRef fn);

 private:
  void worker_loop(int thread);
  void work(int thread);

  int n_threads_;
  std::vector<std::thread> workers_;
  // One job at a time: published by bumping generation_ (release), read by workers (acquire).
  const TaskRef* job_ = nullptr;
  int64_t n_tasks_ = 0;
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int64_t> next_task_{0};
  alignas(64) std::atomic<int> active_workers_{0};  // workers inside a job right now
  std::atomic<bool> open_{false};                    // the current job still takes workers
  std::atomic<bool> stop_{false};
};

}  // namespace owl::core
