// ThreadPool: persistent workers, dynamic task claiming with one 64-bit atomic word.
//
// The word `work` packs (generation << 32) | next_task_index. Run() fills the job slot for the
// next generation, then publishes it by storing a new word. Anyone (workers and the caller)
// claims a task with a CAS that succeeds only while the generation is unchanged and the index is
// below the job's task count, so a worker that wakes late can never run a task of a later job
// with an earlier job's function. Job slots are double-buffered by generation parity: while the
// word still shows generation G, slot G&1 holds job G (job G+2, the next writer of that slot,
// can only start after G+1 was published). Run() returns when the done counter reaches n_tasks.
#include "tracemark/base/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TM_CPU_RELAX() _mm_pause()
#else
#define TM_CPU_RELAX() std::this_thread::yield()
#endif

namespace tracemark {
namespace {

// Tasks per generation are limited by the 32-bit index half of the packed word.
constexpr int64_t kMaxTasksPerGeneration = int64_t{1} << 31;
// The caller's completion wait yields to the OS after this many pause iterations.
constexpr int kCallerSpinsBeforeYield = 1 << 14;
// Workers look at the clock once per this many spin iterations.
constexpr int kSpinsPerClockCheck = 128;

using TaskFn = std::function<void(int64_t, int)>;

inline uint32_t GenOf(uint64_t word) { return static_cast<uint32_t>(word >> 32); }
inline uint32_t IndexOf(uint64_t word) { return static_cast<uint32_t>(word); }

}  // namespace

struct ThreadPool::State {
  struct Job {
    std::atomic<const TaskFn*> fn{nullptr};
    std::atomic<int64_t> n_tasks{0};
    std::atomic<int64_t> base{0};
  };

  alignas(64) std::atomic<uint64_t> work{0};
  alignas(64) std::atomic<int64_t> done{0};
  alignas(64) Job jobs[2];
  std::atomic<int> sleepers{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::thread> threads;

  // Claims and runs tasks of generation `gen` until none is left. Returns the number run.
  int64_t Drain(uint32_t gen, int thread_index) {
    int64_t ran = 0;
    const Job& job = jobs[gen & 1];
    uint64_t v = work.load(std::memory_order_acquire);
    for (;;) {
      if (GenOf(v) != gen) break;
      const int64_t n = job.n_tasks.load(std::memory_order_relaxed);
      const TaskFn* fn = job.fn.load(std::memory_order_relaxed);
      const int64_t base = job.base.load(std::memory_order_relaxed);
      if (static_cast<int64_t>(IndexOf(v)) >= n) break;
      if (!work.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        continue;
      }
      (*fn)(base + static_cast<int64_t>(IndexOf(v)), thread_index);
      ++ran;
      done.fetch_add(1, std::memory_order_acq_rel);
      v = work.load(std::memory_order_acquire);
    }
    return ran;
  }

  void WorkerLoop(int thread_index) {
    // Generation 0 is the state at construction; a thread that starts late must still see
    // the first Run() as new.
    uint32_t seen = 0;
    for (;;) {
      // Spin for a while, then sleep until a new generation is published.
      auto spin_start = std::chrono::steady_clock::now();
      int spins = 0;
      for (;;) {
        if (stop.load(std::memory_order_acquire)) return;
        const uint32_t g = GenOf(work.load(std::memory_order_acquire));
        if (g != seen) {
          seen = g;
          Drain(g, thread_index);
          spin_start = std::chrono::steady_clock::now();
          spins = 0;
          continue;
        }
        TM_CPU_RELAX();
        if (++spins % kSpinsPerClockCheck == 0 &&
            std::chrono::steady_clock::now() - spin_start >
                std::chrono::microseconds(kSpinMicros)) {
          break;
        }
      }
      std::unique_lock<std::mutex> lock(mu);
      sleepers.fetch_add(1, std::memory_order_seq_cst);
      cv.wait(lock, [&] {
        return stop.load(std::memory_order_seq_cst) ||
               GenOf(work.load(std::memory_order_seq_cst)) != seen;
      });
      sleepers.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
};

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(std::clamp(n_threads, 1, kMaxThreads)), state_(new State) {
  state_->threads.reserve(static_cast<size_t>(n_threads_ - 1));
  for (int i = 1; i < n_threads_; ++i) {
    state_->threads.emplace_back([this, i] { state_->WorkerLoop(i); });
  }
}

ThreadPool::~ThreadPool() {
  state_->stop.store(true, std::memory_order_seq_cst);
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->cv.notify_all();
  }
  for (auto& t : state_->threads) t.join();
  delete state_;
}

void ThreadPool::Run(int64_t n_tasks, const std::function<void(int64_t, int)>& fn) {
  if (n_tasks <= 0) return;
  if (n_threads_ == 1 || n_tasks == 1) {
    for (int64_t i = 0; i < n_tasks; ++i) fn(i, 0);
    return;
  }
  State& s = *state_;
  for (int64_t base = 0; base < n_tasks; base += kMaxTasksPerGeneration) {
    const int64_t count = std::min(kMaxTasksPerGeneration, n_tasks - base);
    const uint32_t gen = GenOf(s.work.load(std::memory_order_relaxed)) + 1;
    State::Job& job = s.jobs[gen & 1];
    job.fn.store(&fn, std::memory_order_relaxed);
    job.n_tasks.store(count, std::memory_order_relaxed);
    job.base.store(base, std::memory_order_relaxed);
    s.done.store(0, std::memory_order_relaxed);
    s.work.store(static_cast<uint64_t>(gen) << 32, std::memory_order_seq_cst);
    if (s.sleepers.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(s.mu);
      s.cv.notify_all();
    }
    s.Drain(gen, 0);
    int spins = 0;
    while (s.done.load(std::memory_order_acquire) < count) {
      if (++spins < kCallerSpinsBeforeYield) {
        TM_CPU_RELAX();
      } else {
        std::this_thread::yield();
      }
    }
  }
}

}  // namespace tracemark
