// Reference-counted device memory. A Storage is freed when the last shared_ptr drops: JS handles
// and queued tasks each hold one, so dispose() in JS never frees memory a queued op still uses.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "device.h"
#include "dtype.h"
#include "status.h"

namespace sparq {

class Storage {
 public:
  // Zero bytes is valid and allocates nothing. Fails with Code::oom when memory is exhausted.
  static Status allocate(Device dev, size_t bytes, std::shared_ptr<Storage>* out);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  Storage(Device d, void* p, size_t n) : device_(d), ptr_(p), bytes_(n) {}
  Device device_;
  void* ptr_;
  size_t bytes_;
};

// Bytes of host memory held by live CPU storages (reported to V8 by the binding).
int64_t host_bytes_live();
int64_t host_storages_live();

// A contiguous row-major view into a Storage; `offset` counts elements.
struct TensorView {
  std::shared_ptr<Storage> storage;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  int64_t offset = 0;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  Device device() const { return storage->device(); }
  void* data() const { return static_cast<char*>(storage->data()) + offset * static_cast<int64_t>(dtype_size(dtype)); }
};

}  // namespace sparq
