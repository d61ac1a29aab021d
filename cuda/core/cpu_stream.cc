#include "cpu_stream.h"

#include <exception>
#include <new>

namespace sparq {

CpuStream& CpuStream::get() {
  static CpuStream* s = new CpuStream();  // intentionally leaked, see header
  return *s;
}

CpuStream::CpuStream() {
  // The worker is the pool's calling thread, so the pool spawns one thread fewer.
  pool_.reset(new ThreadPool(default_thread_count()));
  worker_ = std::thread([this] { worker_loop(); });
  worker_.detach();
}

uint64_t CpuStream::enqueue(const char* op, Task task) {
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lk(mu_);
    seq = next_seq_++;
    queue_.push_back(Item{seq, op, std::move(task)});
  }
  has_work_.notify_one();
  return seq;
}

uint64_t CpuStream::last_seq() const {
  std::lock_guard<std::mutex> lk(mu_);
  return next_seq_ - 1;
}

void CpuStream::wait(uint64_t seq) {
  std::unique_lock<std::mutex> lk(mu_);
  progressed_.wait(lk, [&] { return completed_.load(std::memory_order_acquire) >= seq; });
}

bool CpuStream::take_failure(uint64_t upto, Failure* out) {
  std::lock_guard<std::mutex> lk(mu_);
  if (failure_.seq == 0 || failure_.seq > upto) return false;
  *out = std::move(failure_);
  failure_ = Failure();
  return true;
}

uint64_t CpuStream::failed_seq() const {
  std::lock_guard<std::mutex> lk(mu_);
  return failure_.seq;
}

void CpuStream::worker_loop() {
  for (;;) {
    Item item;
    {
      std::unique_lock<std::mutex> lk(mu_);
      has_work_.wait(lk, [&] { return !queue_.empty(); });
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    Status st;
    try {
      st = item.task();
    } catch (const std::bad_alloc&) {
      st = Status(Code::oom, "out of host memory");
    } catch (const std::exception& e) {
      st = Status(Code::internal, std::string("unexpected C++ exception: ") + e.what());
    } catch (...) {
      st = Status(Code::internal, "unexpected C++ exception");
    }
    item.task = nullptr;  // drop the task's references (inputs, outputs) before signalling
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!st.ok()) {
        if (failure_.seq == 0) {
          failure_.seq = item.seq;
          failure_.op = item.op;
          failure_.status = std::move(st);
          failure_.more = 0;
        } else {
          ++failure_.more;
        }
      }
      completed_.store(item.seq, std::memory_order_release);
    }
    progressed_.notify_all();
  }
}

}  // namespace sparq
