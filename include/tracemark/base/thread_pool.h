// A fixed pool of worker threads for data-parallel kernels (matmul rows, attention heads).
//
// Run(n_tasks, fn) calls fn(task, thread_index) for every task in [0, n_tasks) across the
// calling thread and the workers, and returns when all are done. Designed for the decode hot
// path: workers spin briefly on a generation counter before sleeping, so a dispatch costs a few
// microseconds and no allocation. Run() must be called from one thread at a time (the owner);
// fn must be safe to call concurrently for different tasks.
#pragma once

#include <cstdint>
#include <functional>

namespace tracemark {

class ThreadPool {
 public:
  // n_threads counts the caller: ThreadPool(1) runs everything inline.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // fn(task, thread_index); thread_index < size().
  void Run(int64_t n_tasks, const std::function<void(int64_t, int)>& fn);

 private:
  struct State;
  int n_threads_;
  State* state_;
};

}  // namespace tracemark
