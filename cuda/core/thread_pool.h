// A fixed pool of threads for data-parallel loops inside one CPU op.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
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
  // One parallel_for call. Helpers that wake late hold it by shared_ptr: by then every chunk is
  // claimed, so they return without touching fn (which only lives during the call).
  struct Job {
    const std::function<void(int64_t, int64_t)>* fn;
    int64_t n, chunk, chunks;
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> finished{0};
  };

  void helper_loop();
  // Runs chunks of `job` until none is left; true if this thread finished its last chunk.
  static bool run_chunks(Job& job);

  std::vector<std::thread> helpers_;
  std::mutex caller_mu_;  // one parallel_for at a time
  std::mutex mu_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::shared_ptr<Job> job_;  // the current call's job (null between calls)
};

// Threads to use: SPARQ_NUM_THREADS if set to a positive integer, else the hardware's count.
int default_thread_count();

}  // namespace sparq
