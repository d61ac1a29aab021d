// CPU-only build: the CUDA runtime API of cuda_context.h, answering that this binary has no CUDA
// backend. Nothing here pretends to work.
#include "cuda_context.h"

namespace sparq {
namespace cuda {
namespace {
Status no_cuda() {
  return Status(Code::device, "CUDA is unavailable: this sparq binary was built without the CUDA backend (CPU-only build)");
}
}  // namespace

const RuntimeInfo& runtime_info() {
  static const RuntimeInfo* info = [] {
    auto* r = new RuntimeInfo();
    r->unavailable = "this sparq binary was built without the CUDA backend (CPU-only build)";
    return r;
  }();
  return *info;
}
Status require_device(int) { return no_cuda(); }
Status stream(int, cudaStream_t*) { return no_cuda(); }
Status alloc(int, size_t, void**) { return no_cuda(); }
void free(int, void*) {}
Status memory(int, MemoryInfo*) { return no_cuda(); }
Status trim_pool(int) { return no_cuda(); }
Status error_word(int, int**) { return no_cuda(); }
Status check_launch(const char*) { return no_cuda(); }
Status copy_to_device(int, void*, const void*, size_t) { return no_cuda(); }
Status copy_on_device(int, void*, const void*, size_t) { return no_cuda(); }
Status copy_between_devices(int, void*, int, const void*, size_t, std::shared_ptr<void>) { return no_cuda(); }
Status read_async(int, const void*, size_t, void*, std::function<void(Status)>) { return no_cuda(); }
Status when_done(int, std::function<void(Status)>) { return no_cuda(); }
Status synchronize(int) { return no_cuda(); }
Status record_marker(int, std::shared_ptr<Marker>*) { return no_cuda(); }
Status hold_stream(int, std::function<void()>*) { return no_cuda(); }

}  // namespace cuda
}  // namespace sparq
