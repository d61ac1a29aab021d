// The CUDA side of the runtime, declared without CUDA headers so CPU-only code can include it.
// Every device gets one non-blocking stream, a stream-ordered memory pool (cudaMallocAsync) and a
// completion thread that waits on events and runs callbacks (promise resolution, read-backs).
// A CPU-only build links cuda_context_none.cc, whose functions report why CUDA is unavailable.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "status.h"

struct CUstream_st;
typedef CUstream_st* cudaStream_t;

namespace sparq {
namespace cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  size_t total_memory = 0;
  int major = 0, minor = 0;
  int multiprocessors = 0;
};

struct RuntimeInfo {
  bool compiled = false;         // this binary contains the CUDA backend
  std::string archs;             // architectures it was compiled for, e.g. "75-real;90"
  int runtime_version = 0;       // e.g. 13000
  int driver_version = 0;        // 0 when no driver is installed
  std::string unavailable;       // empty when at least one device is usable
  std::vector<DeviceInfo> devices;
};

// Probed once per process (thread-safe); never fails, explains instead.
const RuntimeInfo& runtime_info();

// Ok when cuda:index exists; otherwise ERR_SPARQ_DEVICE saying why (CPU-only build, no driver, ...).
Status require_device(int index);

Status stream(int index, cudaStream_t* out);
Status alloc(int index, size_t bytes, void** out);  // ERR_SPARQ_OOM when the device is full
void free(int index, void* p);                      // stream-ordered

struct MemoryInfo {
  size_t free = 0, total = 0;          // whole device (cudaMemGetInfo)
  size_t pool_reserved = 0, pool_used = 0;  // sparq's stream-ordered pool
};
Status memory(int index, MemoryInfo* out);
// Returns the pool's unused memory to the driver.
Status trim_pool(int index);

// The device's error word (see device_errors.h): kernels that validate data write a DeviceError
// code there; the next completed read or synchronize on that device rejects with its message
// (ERR_INVALID_ARG_VALUE).
Status error_word(int index, int** out);

// After a kernel launch: turns a launch error into ERR_SPARQ_CUDA naming `op`.
Status check_launch(const char* op);

// Stream-ordered copies. `src` host memory may be reused as soon as copy_to_device returns.
Status copy_to_device(int index, void* dst, const void* src, size_t bytes);
Status copy_on_device(int index, void* dst, const void* src, size_t bytes);
// dst on dst_index, src on src_index; `keep_src` stays referenced until the copy has finished.
Status copy_between_devices(int dst_index, void* dst, int src_index, const void* src, size_t bytes,
                            std::shared_ptr<void> keep_src);

// Snapshots `bytes` at `src` as the stream reaches this point, then, on the completion thread,
// copies them into host memory at `dst` and calls done(status). `dst` must stay valid until then.
Status read_async(int index, const void* src, size_t bytes, void* dst, std::function<void(Status)> done);
// Calls done(status) on the completion thread once all work queued so far has finished.
Status when_done(int index, std::function<void(Status)> done);
// Blocks until all work queued so far on the device's stream has finished.
Status synchronize(int index);

// Benchmark support: a timestamp recorded on the stream, and a gate that holds the stream.
class Marker {
 public:
  virtual ~Marker() = default;
  virtual Status elapsed_ms_since(const Marker& start, double* ms) const = 0;
};
Status record_marker(int index, std::shared_ptr<Marker>* out);
Status hold_stream(int index, std::function<void()>* release);

}  // namespace cuda
}  // namespace sparq
