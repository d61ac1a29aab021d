// Random streams as float32, four elements (one Philox block) at a time.
#pragma once
#include "philox.h"
#include "random.h"

namespace sparq {

// Elements 4k..4k+3 of a random stream as float32 (before conversion to the output dtype).
SPARQ_HD void random_block(Distribution dist, uint64_t seed, uint64_t k, double a, double b, float out[4]) {
  double v[4];
  if (dist == Distribution::kUniform) {
    uniform01_block(seed, k, v);
    for (int j = 0; j < 4; ++j) out[j] = static_cast<float>(dadd(a, dmul(dadd(b, -a), v[j])));
  } else {
    standard_normal_block(seed, k, v);
    for (int j = 0; j < 4; ++j) out[j] = static_cast<float>(dadd(a, dmul(b, v[j])));
  }
}

}  // namespace sparq
