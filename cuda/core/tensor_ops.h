// Device-generic tensor operations used by the binding: allocation, copies between devices,
// cast, fill and random. Each validates, allocates its output and enqueues; none waits.
#pragma once
#include <vector>

#include "device.h"
#include "dtype.h"
#include "random.h"
#include "status.h"
#include "storage.h"

namespace sparq {

// A new uninitialised tensor; checks the device and that the byte size fits.
Status allocate_tensor(Device dev, DType dtype, const std::vector<int64_t>& shape, TensorView* out);

// A copy of `src` on `dst` (a clone when dst is src's own device).
Status copy_to_device(const TensorView& src, Device dst, TensorView* out);
Status cast_tensor(const TensorView& src, DType dtype, TensorView* out);
Status fill_tensor(const TensorView& t, uint64_t pattern);
Status random_tensor(const TensorView& t, Distribution dist, uint64_t seed, double a, double b);

// Host data (already in `dtype`'s representation) into a tensor on `dev`.
Status upload_tensor(const void* host, const TensorView& dst);

}  // namespace sparq
