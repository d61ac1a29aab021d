// KIVI group quantization, one definition for the CPU and CUDA backends so that both produce the
// same code bits. Every rounding step is explicit (no fused multiply-add can change a result):
//   mn, mx      = min, max of the group (NaN never wins a comparison)
//   scale       = meta((mx - mn) / (2^b - 1)),  min = meta(mn)   (meta = round to the stored dtype)
//   code        = scale > 0 ? RNE(clamp((x - min) / scale, 0, 2^b - 1)) : 0
//   dequantized = code * scale + min      (a zero-range group gives min exactly, never NaN)
#pragma once
#include <cstdint>

#include "../core/convert.h"

namespace sparq {
namespace kivi {

SPARQ_HD float widen(float v) { return v; }
SPARQ_HD float widen(f16_t v) { return f16_to_f32(v.bits); }
SPARQ_HD float widen(bf16_t v) { return bf16_to_f32(v.bits); }

// The stored scale and min of a group with extremes mn, mx; sf/mf get their widened values.
template <typename M>
SPARQ_HD void group_params(float mn, float mx, int bits, M* scale, M* min, float* sf, float* mf) {
  const float qmax = static_cast<float>((1 << bits) - 1);
  *scale = Convert<M>::from(fdiv(fsub(mx, mn), qmax));
  *min = Convert<M>::from(mn);
  *sf = widen(*scale);
  *mf = widen(*min);
}

// The code of x in a group with stored scale s and min m. Round to nearest even by the 2^23
// trick (exact for 0 <= r <= 255, and vectorisable on every x86 level).
SPARQ_HD uint32_t code_of(float x, float s, float m, int bits) {
  const float qmax = static_cast<float>((1 << bits) - 1);
  float r = fdiv(fsub(x, m), s);
  r = r > 0.0f ? r : 0.0f;  // also maps NaN to 0
  r = r < qmax ? r : qmax;
  const float rounded = fsub(fadd(r, 8388608.0f), 8388608.0f);
  // Through int32 (exact: 0 <= rounded <= 255): SSE2 and AVX2 convert floats to signed integers only.
  const int32_t code = static_cast<int32_t>(rounded);
  return static_cast<uint32_t>(s > 0.0f ? code : 0);
}

// Unfused on the device; host files that need the same bits (kivi_cpu.cc) are built without FMA.
SPARQ_HD float dequant(uint32_t code, float s, float m) { return fadd(fmul(static_cast<float>(code), s), m); }

SPARQ_HD bool less(float a, float b) { return a < b; }

}  // namespace kivi
}  // namespace sparq
