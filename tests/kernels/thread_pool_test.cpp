#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace owl::core {
namespace {

TEST(ThreadPool, EveryTaskRunsExactlyOnceOnAValidThread) {
  for (int n_threads : {1, 2, 3, 5}) {
    ThreadPool pool(n_threads);
    EXPECT_EQ(pool.n_threads(), n_threads);
    for (int64_t n_tasks : {0, 1, 2, 7, 1000}) {
      for (int rep = 0; rep < 50; ++rep) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n_tasks));
        std::atomic<int> bad_thread{0};
        pool.parallel_for(n_tasks, [&](int64_t task, int thread) {
          hits[static_cast<size_t>(task)].fetch_add(1, std::memory_order_relaxed);
          if (thread < 0 || thread >= n_threads) bad_thread.fetch_add(1);
        });
        for (int64_t t = 0; t < n_tasks; ++t) ASSERT_EQ(hits[t].load(), 1) << n_threads << " " << n_tasks;
        ASSERT_EQ(bad_thread.load(), 0);
      }
    }
  }
}

// Writes made inside tasks are visible after parallel_for returns (no atomics on the data).
TEST(ThreadPool, ResultsVisibleAfterReturnAndPerThreadScratchIsPrivate) {
  ThreadPool pool(3);
  std::vector<int64_t> out(4096);
  std::vector<int64_t> per_thread(3, 0);
  for (int rep = 0; rep < 200; ++rep) {
    pool.parallel_for(static_cast<int64_t>(out.size()), [&](int64_t task, int thread) {
      out[static_cast<size_t>(task)] = task * rep;
      per_thread[static_cast<size_t>(thread)] += 1;
    });
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], static_cast<int64_t>(i) * rep);
  }
  EXPECT_EQ(per_thread[0] + per_thread[1] + per_thread[2], 200 * 4096);
}

// More threads than cores: workers often wake after the caller has run every task and closed
// the job. Those late workers must neither run a task of a finished job nor miss later jobs.
TEST(ThreadPool, LateWorkersNeverRunAClosedJob) {
  ThreadPool pool(8);
  for (int rep = 0; rep < 3000; ++rep) {
    const int64_t n_tasks = 1 + rep % 5;
    std::vector<int> hits(static_cast<size_t>(n_tasks), 0);
    std::atomic<int> total{0};
    pool.parallel_for(n_tasks, [&](int64_t task, int) {
      hits[static_cast<size_t>(task)] += 1;  // each task on one thread only: no race
      total.fetch_add(1, std::memory_order_relaxed);
    });
    ASSERT_EQ(total.load(), n_tasks);
    for (int h : hits) ASSERT_EQ(h, 1);
  }
}

}  // namespace
}  // namespace owl::core
