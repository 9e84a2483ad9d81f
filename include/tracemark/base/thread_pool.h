// A fixed pool of worker threads for data-parallel kernels (matmul rows, attention heads).
//
// Run(n_tasks, fn) calls fn(task, thread_index) for every task in [0, n_tasks) across the
// calling thread and the workers, and returns when all are done. Designed for the decode hot
// path: workers spin briefly on a generation counter before sleeping on a condition variable,
// so a dispatch costs a few microseconds and no allocation. Tasks are claimed dynamically, and
// the caller works too, so a worker that the OS has descheduled never delays a Run: the caller
// simply takes its share. Which thread runs which task is not deterministic; callers that need
// results independent of the thread count must make each task's output depend only on the task
// index (the matmul kernels do).
//
// Thread-safety: Run() must be called from one thread at a time (the owner) and must not be
// called from inside fn (no nesting); fn must be safe to call concurrently for different tasks
// and must not throw. size() is safe from any thread.
#pragma once

#include <cstdint>
#include <functional>

namespace tracemark {

class ThreadPool {
 public:
  // Upper bound on n_threads; larger requests are clamped.
  static constexpr int kMaxThreads = 256;
  // How long an idle worker spins on the generation counter before it sleeps.
  static constexpr int64_t kSpinMicros = 200;

  // n_threads counts the caller: ThreadPool(1) runs everything inline. Values < 1 mean 1.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // fn(task, thread_index); thread_index < size(). The caller is thread 0.
  void Run(int64_t n_tasks, const std::function<void(int64_t, int)>& fn);

 private:
  struct State;
  int n_threads_;
  State* state_;
};

}  // namespace tracemark
