// Caching host allocator for large blocks. Freshly mapped memory costs a page fault per 4 KiB on
// first touch, which halves the speed of bandwidth-bound ops; keeping freed blocks and handing
// them out again for the same rounded size avoids that (decode loops allocate the same sizes every
// step). Blocks under 64 KiB go straight to malloc. The cache holds at most SPARQ_HOST_CACHE_MB
// (default: 1/8 of RAM, at most 2 GiB); empty_host_cache() returns everything to the system.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sparq {

// 64-byte aligned; nullptr when memory is exhausted even after emptying the cache.
void* host_alloc(size_t bytes);
void host_free(void* p, size_t bytes);
void empty_host_cache();
int64_t host_cache_bytes();

}  // namespace sparq
