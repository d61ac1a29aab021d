#include "host_cache.h"

#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace sparq {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kCachedMin = size_t{1} << 16;  // glibc gives freed blocks from ~128 KiB back to the system

// Rounds up so that sizes within 25% share a bucket: at most 25% of a block is slack.
size_t bucket(size_t bytes) {
  if (bytes < kCachedMin) return (bytes + kAlign - 1) / kAlign * kAlign;
  int top = 63 - __builtin_clzll(bytes);
  size_t step = size_t{1} << (top - 2);
  return (bytes + step - 1) / step * step;
}

size_t default_cap() {
  if (const char* env = std::getenv("SPARQ_HOST_CACHE_MB")) {
    char* end = nullptr;
    long long mb = std::strtoll(env, &end, 10);
    if (end != env && *end == '\0' && mb >= 0) return static_cast<size_t>(mb) << 20;
  }
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  size_t ram = pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : (size_t{8} << 30);
  size_t cap = ram / 8;
  return cap < (size_t{2} << 30) ? cap : (size_t{2} << 30);
}

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;
  size_t bytes = 0;
  size_t cap = default_cap();
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: storages may be freed during exit
  return *c;
}

}  // namespace

void* host_alloc(size_t bytes) {
  size_t b = bucket(bytes);
  if (b < bytes) return nullptr;  // overflow
  if (b >= kCachedMin) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lk(c.mu);
    auto it = c.free_blocks.find(b);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.bytes -= b;
      return p;
    }
  }
  void* p = std::aligned_alloc(kAlign, b);
  if (!p && host_cache_bytes() > 0) {
    empty_host_cache();
    p = std::aligned_alloc(kAlign, b);
  }
  return p;
}

void host_free(void* p, size_t bytes) {
  if (!p) return;
  size_t b = bucket(bytes);
  if (b >= kCachedMin) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lk(c.mu);
    if (c.bytes + b <= c.cap) {
      c.free_blocks[b].push_back(p);
      c.bytes += b;
      return;
    }
  }
  std::free(p);
}

void empty_host_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mu);
  for (auto& kv : c.free_blocks)
    for (void* p : kv.second) std::free(p);
  c.free_blocks.clear();
  c.bytes = 0;
}

int64_t host_cache_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mu);
  return static_cast<int64_t>(c.bytes);
}

}  // namespace sparq
