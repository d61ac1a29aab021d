#include "storage.h"

#include <atomic>
#include <string>

#include "cuda_context.h"
#include "host_cache.h"

namespace sparq {
namespace {
std::atomic<int64_t> g_host_bytes{0};
std::atomic<int64_t> g_host_storages{0};
}  // namespace

int64_t host_bytes_live() { return g_host_bytes.load(std::memory_order_relaxed); }
int64_t host_storages_live() { return g_host_storages.load(std::memory_order_relaxed); }

Status Storage::allocate(Device dev, size_t bytes, std::shared_ptr<Storage>* out) {
  void* p = nullptr;
  if (bytes > 0) {
    if (dev.is_cpu()) {
      p = host_alloc(bytes);
      if (!p) return Status(Code::oom, "out of host memory allocating " + std::to_string(bytes) + " bytes");
    } else {
      SPARQ_RETURN_IF_ERROR(cuda::alloc(dev.index, bytes, &p));
    }
  }
  if (dev.is_cpu()) {
    g_host_bytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
    g_host_storages.fetch_add(1, std::memory_order_relaxed);
  }
  out->reset(new Storage(dev, p, bytes));
  return Status::OK();
}

Storage::~Storage() {
  if (device_.is_cpu()) {
    host_free(ptr_, bytes_);
    g_host_bytes.fetch_sub(static_cast<int64_t>(bytes_), std::memory_order_relaxed);
    g_host_storages.fetch_sub(1, std::memory_order_relaxed);
  } else if (ptr_) {
    cuda::free(device_.index, ptr_);  // stream-ordered: safe after work already queued on the stream
  }
}

}  // namespace sparq
