#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>

namespace sparq {
namespace {
thread_local bool t_inside_pool = false;
}

int default_thread_count() {
  if (const char* env = std::getenv("SPARQ_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0 && v <= 1024) return static_cast<int>(v);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < std::max(1, threads); ++i) helpers_.emplace_back([this] { helper_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : helpers_) t.join();
}

bool ThreadPool::run_chunks(Job& job) {
  bool last = false;
  for (;;) {
    int64_t c = job.next.fetch_add(1, std::memory_order_relaxed);
    if (c >= job.chunks) return last;
    int64_t begin = c * job.chunk;
    (*job.fn)(begin, std::min(job.n, begin + job.chunk));
    last = job.finished.fetch_add(1, std::memory_order_acq_rel) + 1 == job.chunks;
  }
}

void ThreadPool::helper_loop() {
  t_inside_pool = true;
  uint64_t seen = 0;
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lk(mu_);
      wake_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    if (job && run_chunks(*job)) {
      std::lock_guard<std::mutex> lk(mu_);  // the caller checks `finished` under mu_: no lost wake-up
      done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (t_inside_pool || helpers_.empty() || n <= grain) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> caller(caller_mu_);
  // About four chunks per thread balances uneven chunks without much scheduling overhead.
  int64_t target = static_cast<int64_t>(size()) * 4;
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  job->chunk = std::max(grain, (n + target - 1) / target);
  job->chunks = (n + job->chunk - 1) / job->chunk;
  {
    std::lock_guard<std::mutex> lk(mu_);
    job_ = job;
    ++generation_;
  }
  wake_.notify_all();
  t_inside_pool = true;
  run_chunks(*job);
  t_inside_pool = false;
  // Wait for the chunks, not for the helpers: one that has not woken yet (a busy machine) costs
  // nothing once the others have done the work.
  std::unique_lock<std::mutex> lk(mu_);
  done_.wait(lk, [&] { return job->finished.load(std::memory_order_acquire) == job->chunks; });
  job_.reset();
}

}  // namespace sparq
