// A small persistent thread pool and parallel_for over a fixed partition of [0, n).
// Determinism: callers split work so that every output element is computed by one task in a fixed
// order; which thread runs a task never changes the arithmetic, so results are bitwise identical
// for any thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define LAYERKIT_HAS_FORK 1
#endif

namespace layerkit {

// A non-owning reference to a callable taking a task index: unlike std::function it never
// allocates, so a parallel kernel call costs no heap traffic.
class TaskRef {
 public:
  template <typename F>
  TaskRef(F& f) : obj_(&f), call_([](void* o, std::size_t i) { (*static_cast<F*>(o))(i); }) {}
  void operator()(std::size_t i) const { call_(obj_, i); }

 private:
  void* obj_;
  void (*call_)(void*, std::size_t);
};

class ThreadPool {
 public:
  ThreadPool() = default;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() { stop_workers(); }

  // Threads used by run(), the calling thread included; at least 1.
  std::size_t num_threads() const { return threads_.load(); }

  void set_num_threads(std::size_t n) {
    n = std::max<std::size_t>(n, 1);
    std::lock_guard<std::mutex> run_lock(run_mutex_);  // never resize under a running job
    if (n == threads_.load() && workers_.size() + 1 == n) return;
    stop_workers();
    threads_.store(n);
    start_workers();
  }

  // Calls task(i) for every i in [0, ntasks) and returns when all are done. When another thread
  // is already running a job on the pool, this one runs its tasks itself: same results, no wait.
  void run(std::size_t ntasks, TaskRef task) {
    // A task that itself calls run() (nested parallelism) runs its inner tasks inline.
    thread_local bool inside_task = false;
    std::unique_lock<std::mutex> run_lock(run_mutex_, std::defer_lock);
    if (ntasks > 1 && !inside_task && run_lock.try_lock()) {
      if (workers_.empty() && threads_.load() > 1) start_workers();  // first job after a fork
    }
    if (ntasks <= 1 || !run_lock.owns_lock() || workers_.empty()) {
      for (std::size_t i = 0; i < ntasks; ++i) task(i);
      return;
    }
    inside_task = true;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = task;
      ntasks_ = std::min(ntasks, kMaxTasks);
      for (std::size_t i = 0; i < ntasks_; ++i) claimed_[i].store(false, std::memory_order_relaxed);
      pending_.store(workers_.size());
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    // The calling thread runs task 0, then any task whose worker has not started it yet: a worker
    // that the OS has not scheduled (the cores busy with another library's threads, say) then
    // costs no waiting. Tasks beyond the table (never in practice) run here too.
    for (std::size_t i = 0; i < ntasks_; ++i) claim_and_run(i);
    for (std::size_t i = ntasks_; i < ntasks; ++i) task_(i);
    inside_task = false;
    // Workers usually finish within microseconds of this thread: spin briefly before sleeping.
    if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [this] { return pending_.load() == 0; });
    }
  }

 private:
  // Polls ready() for up to 1 ms. Waking a sleeping thread costs tens to hundreds of
  // microseconds on virtual machines, more than many kernels take, so workers stay awake a little
  // after each job for the next one; they yield the core now and then, so that other threads
  // (another library's, say) are not starved while they wait.
  template <typename Ready>
  static bool spin_until(Ready ready) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(1000);
    for (unsigned i = 1;; ++i) {
      if (ready()) return true;
      if (i % 256 == 0) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::yield();
      }
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }

  // Runs task i unless another thread already has. While it runs, slot() is i: kernels keep
  // their scratch per task slot, so the buffers they need are all made during the first call of
  // a given shape, whichever thread ends up running each task.
  void claim_and_run(std::size_t i) {
    if (claimed_[i].exchange(true, std::memory_order_acq_rel)) return;
    current_slot() = static_cast<int>(i);
    task_(i);
    current_slot() = -1;
  }

 public:
  static constexpr std::size_t kMaxTasks = 256;

  // In a forked child, which has one thread: the workers do not exist there, and the mutexes
  // and condition variables may hold the parent's waiters (glibc's broadcast would wait for them
  // forever). Start afresh; the next job starts new workers.
  void reset_after_fork() {
    new (&run_mutex_) std::mutex();
    new (&mutex_) std::mutex();
    new (&wake_) std::condition_variable();
    new (&done_) std::condition_variable();
    new std::vector<std::thread>(std::move(workers_));  // leaked on purpose: never joined
    workers_.clear();
    pending_.store(0);
    stop_.store(false);
  }

  // The task slot the calling thread is running, or -1 outside a pooled job.
  static int& current_slot() {
    thread_local int slot = -1;
    return slot;
  }

 private:
  void start_workers() {
    stop_ = false;
    for (std::size_t i = 1; i < threads_.load(); ++i)
      workers_.emplace_back([this, i, seen = generation_.load()] { worker_loop(i, seen); });
  }

  // `seen` is the generation when the worker was made: a job published before the thread got
  // going is still picked up.
  void worker_loop(std::size_t index, std::size_t seen) {
    for (;;) {
      if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
      }
      if (stop_) return;
      seen = generation_.load(std::memory_order_acquire);
      if (index < ntasks_) claim_and_run(index);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);  // pairs with the waiter's predicate check
        done_.notify_one();
      }
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      generation_.fetch_add(1);  // wakes spinning workers too
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::atomic<std::size_t> threads_{1};
  std::vector<std::thread> workers_;
  static inline auto noop_ = [](std::size_t) {};
  std::mutex run_mutex_;  // one job at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  TaskRef task_ = TaskRef(noop_);
  std::size_t ntasks_ = 0;
  std::atomic<std::size_t> pending_{0}, generation_{0};
  std::atomic<bool> claimed_[kMaxTasks] = {};
  std::atomic<bool> stop_{false};
};

// The process-wide pool that every kernel uses. Never destroyed: joining workers during
// interpreter shutdown (or in a forked child) is a hang waiting to happen.
inline ThreadPool& thread_pool() {
  static ThreadPool* pool = [] {
    auto* p = new ThreadPool();
#ifdef LAYERKIT_HAS_FORK
    pthread_atfork(nullptr, nullptr, [] { thread_pool().reset_after_fork(); });
#endif
    return p;
  }();
  return *pool;
}

// Splits [0, n) into chunks of at least `grain` items (one chunk per thread at most) and calls
// body(begin, end) for each. Chunk boundaries depend on the thread count, so body must compute
// each item independently of where its chunk starts.
template <typename F>
void parallel_for(std::size_t n, std::size_t grain, F&& body) {
  ThreadPool& pool = thread_pool();
  const std::size_t max_chunks = grain ? std::max<std::size_t>(n / grain, 1) : n;
  const std::size_t chunks = std::min(pool.num_threads(), max_chunks);
  if (chunks <= 1) {
    if (n) body(std::size_t(0), n);
    return;
  }
  auto task = [&](std::size_t c) {
    const std::size_t begin = n * c / chunks, end = n * (c + 1) / chunks;
    if (begin < end) body(begin, end);
  };
  pool.run(chunks, task);
}

}  // namespace layerkit
