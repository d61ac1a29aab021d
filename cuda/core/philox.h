// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11) and the transforms to
// uniform and normal values. Every value depends only on (seed, element index), and every
// transform uses IEEE-exact double operations (no libm, no FMA), so the CPU and CUDA backends
// produce the same bits for the same seed.
#pragma once
#include <cstdint>

#include "hd.h"

namespace sparq {

struct Philox4 {
  uint32_t v[4];
};

SPARQ_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  *lo = static_cast<uint32_t>(p);
}

SPARQ_HD Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(0xD2511F53u, ctr.v[0], &hi0, &lo0);
    mulhilo32(0xCD9E8D57u, ctr.v[2], &hi1, &lo1);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
  }
  return ctr;
}

// The four 32-bit words of block `block` for `seed`: counter = (block, 0), key = seed.
SPARQ_HD Philox4 philox_block(uint64_t seed, uint64_t block) {
  Philox4 c{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u}};
  return philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Natural log for x in (0, 1]: x = 2^e * m with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s),
// s = (m - 1) / (m + 1), |s| <= 0.172, summed to double precision.
SPARQ_HD double det_log(double x) {
  uint64_t b = f64_bits(x);
  int e = static_cast<int>((b >> 52) & 0x7FF) - 1023;
  double m = f64_from_bits((b & 0xFFFFFFFFFFFFFull) | 0x3FF0000000000000ull);  // [1, 2)
  if (m > 1.4142135623730951) {
    m = dmul(m, 0.5);
    e += 1;
  }
  double s = ddiv(dadd(m, -1.0), dadd(m, 1.0));
  double s2 = dmul(s, s);
  // 2 * (1 + s2/3 + s2^2/5 + ... + s2^11/23) * s, by Horner
  const double c[12] = {1.0 / 1, 1.0 / 3, 1.0 / 5, 1.0 / 7, 1.0 / 9, 1.0 / 11,
                        1.0 / 13, 1.0 / 15, 1.0 / 17, 1.0 / 19, 1.0 / 21, 1.0 / 23};
  double p = c[11];
  for (int i = 10; i >= 0; --i) p = dadd(dmul(p, s2), c[i]);
  double ln_m = dmul(dmul(2.0, s), p);
  return dadd(dmul(static_cast<double>(e), 0.6931471805599453), ln_m);
}

// sin and cos of phi in [0, pi/4] by Taylor series (terms to phi^19).
SPARQ_HD void det_sincos_small(double phi, double* s, double* c) {
  double x2 = dmul(phi, phi);
  // sin: phi * (1 - x2/3! + x2^2/5! - ... ), cos: 1 - x2/2! + x2^2/4! - ...
  const double sc[10] = {1.0, -0.16666666666666666, 0.008333333333333333, -0.0001984126984126984,
                         2.7557319223985893e-06, -2.505210838544172e-08, 1.6059043836821613e-10,
                         -7.647163731819816e-13, 2.8114572543455206e-15, -8.22063524662433e-18};
  const double cc[10] = {1.0, -0.5, 0.041666666666666664, -0.001388888888888889, 2.48015873015873e-05,
                         -2.755731922398589e-07, 2.08767569878681e-09, -1.1470745597729725e-11,
                         4.779477332387385e-14, -1.5619206968586225e-16};
  double ps = sc[9], pc = cc[9];
  for (int i = 8; i >= 0; --i) {
    ps = dadd(dmul(ps, x2), sc[i]);
    pc = dadd(dmul(pc, x2), cc[i]);
  }
  *s = dmul(phi, ps);
  *c = pc;
}

// sin and cos of 2*pi*r/2^32, reduced exactly by quadrant and octant.
SPARQ_HD void det_sincos_turn(uint32_t r, double* s, double* c) {
  uint32_t quadrant = r >> 30;
  double f = static_cast<double>(r & 0x3FFFFFFFu) * (1.0 / 1073741824.0);  // [0, 1) of a quarter turn
  bool upper = f > 0.5;
  double g = upper ? dadd(1.0, -f) : f;
  double sg, cg;
  det_sincos_small(dmul(g, 1.5707963267948966), &sg, &cg);
  double sin_t = upper ? cg : sg, cos_t = upper ? sg : cg;  // angle within the quadrant
  switch (quadrant) {
    case 0: *s = sin_t; *c = cos_t; break;
    case 1: *s = cos_t; *c = -sin_t; break;
    case 2: *s = -sin_t; *c = -cos_t; break;
    default: *s = -cos_t; *c = sin_t; break;
  }
}

// Elements 4k..4k+3 of a uniform [0, 1) stream: the top 24 bits of the words of block k, exactly
// representable in float32.
SPARQ_HD void uniform01_block(uint64_t seed, uint64_t k, double out[4]) {
  Philox4 r = philox_block(seed, k);
  for (int j = 0; j < 4; ++j) out[j] = static_cast<double>(r.v[j] >> 8) * (1.0 / 16777216.0);
}

// Elements 4k..4k+3 of a standard normal stream: Box-Muller on the word pairs (0,1) and (2,3) of
// block k; even elements take the cosine branch, odd ones the sine branch.
SPARQ_HD void standard_normal_block(uint64_t seed, uint64_t k, double out[4]) {
  Philox4 r = philox_block(seed, k);
  for (int p = 0; p < 2; ++p) {
    double u1 = dmul(dadd(static_cast<double>(r.v[2 * p]), 0.5), 1.0 / 4294967296.0);  // (0, 1)
    double radius = dsqrt(dmul(-2.0, det_log(u1)));
    double s, c;
    det_sincos_turn(r.v[2 * p + 1], &s, &c);
    out[2 * p] = dmul(radius, c);
    out[2 * p + 1] = dmul(radius, s);
  }
}

}  // namespace sparq
