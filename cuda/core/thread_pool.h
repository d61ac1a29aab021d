// A fixed pool of threads for data-parallel loops inside one CPU op.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sparq {

class ThreadPool {
 public:
  // `threads` counts the calling thread, which always takes part: threads - 1 helpers are spawned.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(helpers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint chunks covering [0, n), each at least `grain` long (but the
  // last). Blocks until every chunk ran. A nested call from inside fn runs inline.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void helper_loop();
  void run_chunks();

  std::vector<std::thread> helpers_;
  std::mutex caller_mu_;  // one parallel_for at a time
  std::mutex mu_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  int busy_ = 0;
  bool stop_ = false;
  // The current job.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1;
  std::atomic<int64_t> next_{0};
};

// Threads to use: SPARQ_NUM_THREADS if set to a positive integer, else the hardware's count.
int default_thread_count();

}  // namespace sparq
