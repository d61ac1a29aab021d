#include <cuda_runtime.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "cuda_context.h"
#include "device_errors.h"

#ifndef SPARQ_CUDA_ARCHS
#define SPARQ_CUDA_ARCHS "unknown"
#endif

namespace sparq {
namespace cuda {
namespace {

std::string err_text(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

Status cuda_status(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return Status::OK();
  cudaGetLastError();  // clear a non-sticky error so it does not leak into the next call
  if (e == cudaErrorMemoryAllocation) return Status(Code::oom, what + ": out of device memory (" + err_text(e) + ")");
  return Status(Code::cuda, what + ": " + err_text(e));
}

// Page-locked host blocks of one size, taken and given back from any thread. Small reads and the
// error word are copied into them by the stream itself, so a completion needs no synchronous copy
// after its wait (each of those costs ~10 us on the critical path of a decode step).
class PinnedBlocks {
 public:
  PinnedBlocks(size_t block, size_t max_blocks) : block_(block), max_(max_blocks) {}
  size_t block() const { return block_; }
  // nullptr when the pool is exhausted or page-locked memory is refused: callers fall back.
  void* take() {
    std::lock_guard<std::mutex> lk(mu_);
    if (!free_.empty()) {
      void* p = free_.back();
      free_.pop_back();
      return p;
    }
    if (made_ == max_) return nullptr;
    void* p = nullptr;
    if (cudaHostAlloc(&p, block_, cudaHostAllocPortable) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    ++made_;
    return p;
  }
  void give(void* p) {
    std::lock_guard<std::mutex> lk(mu_);
    free_.push_back(p);
  }

 private:
  size_t block_, max_, made_ = 0;
  std::mutex mu_;
  std::vector<void*> free_;
};

PinnedBlocks& error_slots() {
  static PinnedBlocks* p = new PinnedBlocks(sizeof(int), 4096);  // one per completion in flight
  return *p;
}
PinnedBlocks& read_blocks() {
  static PinnedBlocks* p = new PinnedBlocks(64 << 10, 64);
  return *p;
}

// Waits for an event: polls for a short while (a blocking wait wakes ~10-50 us late, which small
// reads in a decode loop would pay every step), then sleeps in cudaEventSynchronize.
cudaError_t wait_event(cudaEvent_t ev) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
  cudaError_t e;
  while ((e = cudaEventQuery(ev)) == cudaErrorNotReady) {
    if (std::chrono::steady_clock::now() > until) return cudaEventSynchronize(ev);
    std::this_thread::yield();
  }
  return e;
}

// Waits on events in FIFO order and runs their callbacks, off the JavaScript thread. After each
// event it checks the device's error word as of that event (copied on the stream into a pinned
// slot, then cleared there), so data errors found by kernels fail the first completion after them.
class Completer {
 public:
  Completer(int device, int* error_word) : device_(device), error_word_(error_word) {
    std::thread([this] { loop(); }).detach();  // lives as long as the process
  }
  void push(cudaEvent_t ev, int* error_slot, std::function<void(Status)> fn) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      q_.push_back({ev, error_slot, std::move(fn)});
      queued_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_one();
  }

 private:
  struct Item {
    cudaEvent_t ev;
    int* error_slot;  // nullptr: read the error word synchronously
    std::function<void(Status)> fn;
  };
  void loop() {
    cudaSetDevice(device_);
    for (;;) {
      // Work tends to come in bursts (a decode loop reads every step): stay awake a moment before
      // sleeping, since waking a sleeping thread costs ~10 us more on virtual machines.
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
      while (queued_.load(std::memory_order_acquire) == 0 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
      Item it;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return !q_.empty(); });
        it = std::move(q_.front());
        q_.pop_front();
        queued_.fetch_sub(1, std::memory_order_relaxed);
      }
      Status st = cuda_status(wait_event(it.ev), "a queued CUDA operation failed");
      cudaEventDestroy(it.ev);
      if (st.ok()) st = it.error_slot ? error_status(*it.error_slot) : take_device_error();
      if (it.error_slot) error_slots().give(it.error_slot);
      it.fn(st);
    }
  }
  static Status error_status(int code) {
    if (code == 0) return Status::OK();
    return Status(Code::invalid_arg_value, std::string("a queued op found invalid data: ") + device_error_message(code));
  }
  Status take_device_error() {
    int code = 0;
    Status st = cuda_status(cudaMemcpy(&code, error_word_, sizeof(int), cudaMemcpyDeviceToHost), "reading the error word");
    if (!st.ok() || code == 0) return st;
    cudaMemset(error_word_, 0, sizeof(int));
    return error_status(code);
  }

  int device_;
  int* error_word_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> q_;
  std::atomic<size_t> queued_{0};  // q_.size(), readable without the lock
};

struct DeviceState {
  std::once_flag once;
  Status init_status;
  cudaStream_t stream = nullptr;
  int* error_word = nullptr;
  Completer* completer = nullptr;
};

DeviceState* states() {
  static DeviceState* s = new DeviceState[64];  // never destroyed: work may be in flight at exit
  return s;
}

Status init_device(int index, DeviceState** out) {
  SPARQ_RETURN_IF_ERROR(require_device(index));
  if (index >= 64) return Status(Code::unsupported, "sparq supports at most 64 CUDA devices");
  DeviceState* st = &states()[index];
  std::call_once(st->once, [&] {
    cudaError_t e = cudaSetDevice(index);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) {
      // Keep freed blocks in the pool instead of returning them to the driver at every sync.
      cudaMemPool_t pool;
      e = cudaDeviceGetDefaultMemPool(&pool, index);
      uint64_t threshold = UINT64_MAX;
      if (e == cudaSuccess) e = cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
    }
    if (e == cudaSuccess) e = cudaMalloc(&st->error_word, sizeof(int));
    if (e == cudaSuccess) e = cudaMemset(st->error_word, 0, sizeof(int));
    st->init_status = cuda_status(e, "initialising cuda:" + std::to_string(index));
    if (st->init_status.ok()) st->completer = new Completer(index, st->error_word);
  });
  *out = st;
  return st->init_status;
}

Status enqueue_completion(int index, DeviceState* st, std::function<void(Status)> fn) {
  SPARQ_RETURN_IF_ERROR(cuda_status(cudaSetDevice(index), "cudaSetDevice"));  // events belong to the current device
  // The error word as of this point, copied and cleared in stream order (a later completion sees
  // only later errors).
  int* slot = static_cast<int*>(error_slots().take());
  if (slot) {
    cudaError_t e = cudaMemcpyAsync(slot, st->error_word, sizeof(int), cudaMemcpyDeviceToHost, st->stream);
    if (e == cudaSuccess) e = cudaMemsetAsync(st->error_word, 0, sizeof(int), st->stream);
    if (e != cudaSuccess) {
      cudaGetLastError();
      error_slots().give(slot);  // nothing queued reads it: the copy itself was refused
      slot = nullptr;
    }
  }
  cudaEvent_t ev;
  cudaError_t e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming | cudaEventBlockingSync);
  if (e == cudaSuccess) {
    e = cudaEventRecord(ev, st->stream);
    if (e != cudaSuccess) cudaEventDestroy(ev);
  }
  // On failure a queued copy may still write the slot: it is leaked rather than reused.
  SPARQ_RETURN_IF_ERROR(cuda_status(e, "cuda:" + std::to_string(index) + " event"));
  st->completer->push(ev, slot, std::move(fn));
  return Status::OK();
}

class EventMarker : public Marker {
 public:
  explicit EventMarker(cudaEvent_t e) : ev_(e) {}
  ~EventMarker() override { cudaEventDestroy(ev_); }
  Status elapsed_ms_since(const Marker& start, double* ms) const override {
    auto* s = dynamic_cast<const EventMarker*>(&start);
    if (!s) return Status(Code::invalid_arg_value, "markers come from different devices");
    float f = 0;
    SPARQ_RETURN_IF_ERROR(cuda_status(cudaEventElapsedTime(&f, s->ev_, ev_), "cudaEventElapsedTime"));
    *ms = f;
    return Status::OK();
  }

 private:
  cudaEvent_t ev_;
};

}  // namespace

const RuntimeInfo& runtime_info() {
  static RuntimeInfo* info = [] {
    auto* r = new RuntimeInfo();
    r->compiled = true;
    r->archs = SPARQ_CUDA_ARCHS;
    cudaRuntimeGetVersion(&r->runtime_version);
    if (cudaDriverGetVersion(&r->driver_version) != cudaSuccess) r->driver_version = 0;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    cudaGetLastError();
    if (e == cudaErrorInsufficientDriver) {
      r->unavailable = r->driver_version == 0
          ? "no NVIDIA driver is installed (cudaErrorInsufficientDriver)"
          : "the NVIDIA driver (CUDA " + std::to_string(r->driver_version / 1000) + "." +
                std::to_string(r->driver_version % 1000 / 10) + ") is older than this build's CUDA runtime " +
                std::to_string(r->runtime_version / 1000) + "." + std::to_string(r->runtime_version % 1000 / 10);
    } else if (e == cudaErrorNoDevice || (e == cudaSuccess && count == 0)) {
      r->unavailable = "the NVIDIA driver reports no CUDA device (cudaErrorNoDevice)";
    } else if (e != cudaSuccess) {
      r->unavailable = "cudaGetDeviceCount failed: " + err_text(e);
    }
    if (e == cudaSuccess) {
      for (int i = 0; i < count; ++i) {
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) { cudaGetLastError(); continue; }
        DeviceInfo d;
        d.index = i;
        d.name = p.name;
        d.total_memory = p.totalGlobalMem;
        d.major = p.major;
        d.minor = p.minor;
        d.multiprocessors = p.multiProcessorCount;
        r->devices.push_back(d);
      }
    }
    return r;
  }();
  return *info;
}

Status require_device(int index) {
  const RuntimeInfo& r = runtime_info();
  if (!r.unavailable.empty()) return Status(Code::device, "CUDA is unavailable: " + r.unavailable);
  if (index < 0 || index >= static_cast<int>(r.devices.size()))
    return Status(Code::device, "cuda:" + std::to_string(index) + " does not exist (" +
                                    std::to_string(r.devices.size()) + " CUDA device(s) found)");
  return Status::OK();
}

Status stream(int index, cudaStream_t* out) {
  DeviceState* st;
  SPARQ_RETURN_IF_ERROR(init_device(index, &st));
  SPARQ_RETURN_IF_ERROR(cuda_status(cudaSetDevice(index), "cudaSetDevice"));
  *out = st->stream;
  return Status::OK();
}

Status error_word(int index, int** out) {
  DeviceState* st;
  SPARQ_RETURN_IF_ERROR(init_device(index, &st));
  *out = st->error_word;
  return Status::OK();
}

Status alloc(int index, size_t bytes, void** out) {
  cudaStream_t s;
  SPARQ_RETURN_IF_ERROR(stream(index, &s));
  return cuda_status(cudaMallocAsync(out, bytes, s),
                     "allocating " + std::to_string(bytes) + " bytes on cuda:" + std::to_string(index));
}

void free(int index, void* p) {
  cudaStream_t s;
  if (!stream(index, &s).ok()) return;
  if (cudaFreeAsync(p, s) != cudaSuccess) cudaGetLastError();
}

Status memory(int index, MemoryInfo* out) {
  cudaStream_t s;
  SPARQ_RETURN_IF_ERROR(stream(index, &s));
  SPARQ_RETURN_IF_ERROR(cuda_status(cudaMemGetInfo(&out->free, &out->total), "cudaMemGetInfo"));
  cudaMemPool_t pool;
  SPARQ_RETURN_IF_ERROR(cuda_status(cudaDeviceGetDefaultMemPool(&pool, index), "cudaDeviceGetDefaultMemPool"));
  uint64_t reserved = 0, used = 0;
  cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved);
  cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used);
  out->pool_reserved = reserved;
  out->pool_used = used;
  return Status::OK();
}

Status trim_pool(int index) {
  cudaStream_t s;
  SPARQ_RETURN_IF_ERROR(stream(index, &s));
  cudaMemPool_t pool;
  SPARQ_RETURN_IF_ERROR(cuda_status(cudaDeviceGetDefaultMemPool(&pool, index), "cudaDeviceGetDefaultMemPool"));
  return cuda_status(cudaMemPoolTrimTo(pool, 0), "cudaMemPoolTrimTo");
}

Status check_launch(const char* op) {
  return cuda_status(cudaGetLastError(), std::string(op) + " kernel launch");
}

Status copy_to_device(int index, void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return Status::OK();
  cudaStream_t s;
  SPARQ_RETURN_IF_ERROR(stream(index, &s));
  // From pageable memory this returns once `src` has been staged, so the caller may free it.
  return cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), "host-to-device copy");
}

Status copy_on_device(int index, void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return Status::OK();
  cudaStream_t s;
  SPARQ_RETURN_IF_ERROR(stream(index, &s));
  return cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s), "device copy");
}

Status copy_between_devices(int dst_index, void* dst, int src_index, const void* src, size_t bytes,
                            std::shared_ptr<void> keep_src) {
  if (bytes == 0) return Status::OK();
  cudaStream_t src_s, dst_s;
  SPARQ_RETURN_IF_ERROR(stream(src_index, &src_s));
  SPARQ_RETURN_IF_ERROR(stream(dst_index, &dst_s));
  // dst waits for the source's producers; the copy runs on dst's stream; the source is released
  // from the completion thread once the copy is done.
  cudaEvent_t ready;
  // An event belongs to the device current at its creation and is recorded on that device's stream.
  SPARQ_RETURN_IF_ERROR(cuda_status(cudaSetDevice(src_index), "cudaSetDevice"));
  SPARQ_RETURN_IF_ERROR(cuda_status(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "event"));
  cudaError_t e = cudaEventRecord(ready, src_s);
  if (e == cudaSuccess) e = cudaSetDevice(dst_index);
  if (e == cudaSuccess) e = cudaStreamWaitEvent(dst_s, ready, 0);
  if (e == cudaSuccess) e = cudaMemcpyPeerAsync(dst, dst_index, src, src_index, bytes, dst_s);
  cudaEventDestroy(ready);
  SPARQ_RETURN_IF_ERROR(cuda_status(e, "copy cuda:" + std::to_string(src_index) + " -> cuda:" + std::to_string(dst_index)));
  return when_done(dst_index, [keep_src](Status) {});
}

Status read_async(int index, const void* src, size_t bytes, void* dst, std::function<void(Status)> done) {
  DeviceState* st;
  SPARQ_RETURN_IF_ERROR(init_device(index, &st));
  if (bytes == 0) return enqueue_completion(index, st, std::move(done));
  // Small reads: straight into a pinned block on the stream, then a host memcpy after the wait.
  void* pin = bytes <= read_blocks().block() ? read_blocks().take() : nullptr;
  if (pin) {
    SPARQ_RETURN_IF_ERROR(cuda_status(cudaSetDevice(index), "cudaSetDevice"));
    Status s = cuda_status(cudaMemcpyAsync(pin, src, bytes, cudaMemcpyDeviceToHost, st->stream), "device-to-host copy");
    if (!s.ok()) {
      read_blocks().give(pin);
      return s;
    }
    return enqueue_completion(index, st, [pin, bytes, dst, done](Status status) {
      if (status.ok()) std::memcpy(dst, pin, bytes);
      read_blocks().give(pin);
      done(status);
    });
  }
  void* tmp = nullptr;
  SPARQ_RETURN_IF_ERROR(alloc(index, bytes, &tmp));
  Status s = copy_on_device(index, tmp, src, bytes);
  if (!s.ok()) {
    free(index, tmp);
    return s;
  }
  return enqueue_completion(index, st, [index, tmp, bytes, dst, done](Status status) {
    if (status.ok()) {
      cudaSetDevice(index);
      // tmp is private and complete, so a plain synchronous copy on the legacy stream is safe.
      status = cuda_status(cudaMemcpy(dst, tmp, bytes, cudaMemcpyDeviceToHost), "device-to-host copy");
    }
    free(index, tmp);
    done(status);
  });
}

Status when_done(int index, std::function<void(Status)> done) {
  DeviceState* st;
  SPARQ_RETURN_IF_ERROR(init_device(index, &st));
  return enqueue_completion(index, st, std::move(done));
}

Status synchronize(int index) {
  std::promise<Status> done;
  std::future<Status> fut = done.get_future();
  SPARQ_RETURN_IF_ERROR(when_done(index, [&done](Status s) { done.set_value(s); }));
  return fut.get();  // through the completion thread, so that data errors are reported too
}

Status record_marker(int index, std::shared_ptr<Marker>* out) {
  cudaStream_t s;
  SPARQ_RETURN_IF_ERROR(stream(index, &s));
  cudaEvent_t ev;
  SPARQ_RETURN_IF_ERROR(cuda_status(cudaEventCreate(&ev), "cudaEventCreate"));
  cudaError_t e = cudaEventRecord(ev, s);
  if (e != cudaSuccess) {
    cudaEventDestroy(ev);
    return cuda_status(e, "cudaEventRecord");
  }
  out->reset(new EventMarker(ev));
  return Status::OK();
}

namespace {
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
};
void CUDART_CB wait_gate(void* data) {
  auto* holder = static_cast<std::shared_ptr<Gate>*>(data);
  Gate& g = **holder;
  std::unique_lock<std::mutex> lk(g.mu);
  g.cv.wait_for(lk, std::chrono::seconds(60), [&] { return g.open; });  // never hold a stream forever
  lk.unlock();
  delete holder;
}
}  // namespace

Status hold_stream(int index, std::function<void()>* release) {
  cudaStream_t s;
  SPARQ_RETURN_IF_ERROR(stream(index, &s));
  auto gate = std::make_shared<Gate>();
  auto* holder = new std::shared_ptr<Gate>(gate);
  cudaError_t e = cudaLaunchHostFunc(s, wait_gate, holder);
  if (e != cudaSuccess) {
    delete holder;
    return cuda_status(e, "cudaLaunchHostFunc");
  }
  *release = [gate] {
    std::lock_guard<std::mutex> lk(gate->mu);
    gate->open = true;
    gate->cv.notify_all();
  };
  return Status::OK();
}

}  // namespace cuda
}  // namespace sparq
