// The CPU device's in-order stream: one worker thread runs queued ops in FIFO order, each op
// spreading its loops over the thread pool. The JavaScript thread only validates and enqueues.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "status.h"
#include "thread_pool.h"

namespace sparq {

class CpuStream {
 public:
  using Task = std::function<Status()>;

  struct Failure {
    uint64_t seq = 0;     // sequence number of the op that failed
    std::string op;       // its name, e.g. "sparq.cast"
    Status status;
    uint64_t more = 0;    // failures after the first one, before it was reported
  };

  // The process-wide stream (created on first use, never destroyed: queued work may outlive
  // every JavaScript environment).
  static CpuStream& get();

  // Queues `task` and returns its sequence number (1, 2, ...). `op` must be a string literal.
  uint64_t enqueue(const char* op, Task task);

  uint64_t last_seq() const;
  uint64_t completed() const { return completed_.load(std::memory_order_acquire); }
  void wait(uint64_t seq);  // blocks the caller until every task up to `seq` ran
  bool idle() const { return completed() == last_seq(); }

  // The oldest unreported failure of a task with seq <= upto, removed from the stream.
  bool take_failure(uint64_t upto, Failure* out);
  uint64_t failed_seq() const;

  ThreadPool& pool() { return *pool_; }

 private:
  CpuStream();
  void worker_loop();

  struct Item {
    uint64_t seq;
    const char* op;
    Task task;
  };
  mutable std::mutex mu_;
  std::condition_variable has_work_, progressed_;
  std::deque<Item> queue_;
  uint64_t next_seq_ = 1;
  std::atomic<uint64_t> completed_{0};
  Failure failure_;  // failure_.seq == 0: none
  std::unique_ptr<ThreadPool> pool_;
  std::thread worker_;
};

}  // namespace sparq
