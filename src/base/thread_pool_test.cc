#include "tracemark/base/thread_pool.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace tracemark {
namespace {

TEST(ThreadPoolTest, SizeCountsCallerAndClamps) {
  EXPECT_EQ(ThreadPool(1).size(), 1);
  EXPECT_EQ(ThreadPool(0).size(), 1);
  EXPECT_EQ(ThreadPool(-3).size(), 1);
  EXPECT_EQ(ThreadPool(3).size(), 3);
}

TEST(ThreadPoolTest, EveryTaskRunsExactlyOnce) {
  for (int threads : {1, 2, 3, 4}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 7, 64, 1000, 10007}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      for (auto& h : hits) h.store(0);
      std::atomic<bool> bad_index{false};
      pool.Run(n, [&](int64_t task, int thread_index) {
        if (thread_index < 0 || thread_index >= pool.size()) bad_index = true;
        hits[static_cast<size_t>(task)].fetch_add(1);
      });
      EXPECT_FALSE(bad_index.load());
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "threads " << threads << " n " << n
                                                          << " task " << i;
      }
    }
  }
}

TEST(ThreadPoolTest, ManySmallDispatches) {
  ThreadPool pool(3);
  std::atomic<int64_t> sum{0};
  constexpr int kRounds = 20000;
  int64_t expected = 0;
  for (int r = 0; r < kRounds; ++r) {
    const int64_t n = 1 + r % 5;
    pool.Run(n, [&](int64_t task, int) { sum.fetch_add(task + 1, std::memory_order_relaxed); });
    expected += n * (n + 1) / 2;
    // Run() returns only when every task is done, so the total is exact after each round.
    ASSERT_EQ(sum.load(), expected) << "round " << r;
  }
}

TEST(ThreadPoolTest, WorkersWakeAfterSleeping) {
  ThreadPool pool(2);
  for (int r = 0; r < 3; ++r) {
    // Longer than the spin window: the worker goes to sleep on the condition variable.
    std::this_thread::sleep_for(std::chrono::microseconds(ThreadPool::kSpinMicros * 5));
    std::vector<int> out(100, 0);
    pool.Run(100, [&](int64_t task, int) { out[static_cast<size_t>(task)] = static_cast<int>(task); });
    for (int i = 0; i < 100; ++i) ASSERT_EQ(out[static_cast<size_t>(i)], i);
  }
}

TEST(ThreadPoolTest, BothThreadsParticipateInLongJobs) {
  ThreadPool pool(2);
  std::atomic<int> used[2] = {0, 0};
  // Tasks long enough that the worker claims some before the caller finishes them all.
  pool.Run(64, [&](int64_t, int thread_index) {
    used[thread_index].fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  EXPECT_EQ(used[0].load() + used[1].load(), 64);
  EXPECT_GT(used[1].load(), 0);
}

TEST(ThreadPoolTest, ResultsIndependentOfThreadCount) {
  auto compute = [](int threads) {
    ThreadPool pool(threads);
    std::vector<double> out(997);
    pool.Run(static_cast<int64_t>(out.size()), [&](int64_t task, int) {
      double acc = 0;
      for (int j = 1; j <= 100; ++j) acc += 1.0 / static_cast<double>(task * 100 + j);
      out[static_cast<size_t>(task)] = acc;
    });
    return out;
  };
  EXPECT_EQ(compute(1), compute(2));
  EXPECT_EQ(compute(1), compute(4));
}

TEST(ThreadPoolTest, DestructionWhileIdleAndRightAfterRun) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(4);
    if (i % 2 == 0) {
      std::atomic<int> count{0};
      pool.Run(10, [&](int64_t, int) { count.fetch_add(1); });
      EXPECT_EQ(count.load(), 10);
    }
  }
  {
    ThreadPool pool(2);
    std::this_thread::sleep_for(std::chrono::microseconds(ThreadPool::kSpinMicros * 5));
  }  // destroyed while the worker sleeps
}

TEST(ThreadPoolTest, SequentialPoolsAndReuse) {
  ThreadPool a(2);
  ThreadPool b(2);
  std::atomic<int> count{0};
  for (int i = 0; i < 100; ++i) {
    a.Run(3, [&](int64_t, int) { count.fetch_add(1); });
    b.Run(5, [&](int64_t, int) { count.fetch_add(1); });
  }
  EXPECT_EQ(count.load(), 800);
}

}  // namespace
}  // namespace tracemark
