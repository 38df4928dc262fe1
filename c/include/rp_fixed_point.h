/* Integer helpers shared by the kernels; crates/export/src/fixed.rs computes the same values
   in Rust, bit for bit (right shifts of negative values are arithmetic, as on gcc for Arm and x86). */
#ifndef RP_FIXED_POINT_H
#define RP_FIXED_POINT_H

#include <stdint.h>

static inline int32_t rp_sat32(int64_t x) {
  return x > INT32_MAX ? INT32_MAX : (x < INT32_MIN ? INT32_MIN : (int32_t)x);
}

static inline int16_t rp_sat16(int64_t x) {
  return x > INT16_MAX ? INT16_MAX : (x < INT16_MIN ? INT16_MIN : (int16_t)x);
}

static inline int8_t rp_clamp8(int32_t x, int32_t lo, int32_t hi) {
  return (int8_t)(x < lo ? lo : (x > hi ? hi : x));
}

/* x / 2^e rounded half up, e >= 0; the common 0 < e < 32 worked on 32-bit halves. */
static inline int64_t rp_rshift_round64(int64_t x, int32_t e) {
  if (e <= 0) return x;
  if (e >= 32) return (x + ((int64_t)1 << (e - 1))) >> e;
  x += (int32_t)(1u << (e - 1));
  uint32_t lo = (uint32_t)x;
  int32_t hi = (int32_t)(x >> 32);
  return (int64_t)((uint64_t)(uint32_t)(hi >> e) << 32 | ((lo >> e) | ((uint32_t)hi << (32 - e))));
}

/* gemmlowp's SaturatingRoundingDoublingHighMul and RoundingDivideByPOT: TFLite's
   MultiplyByQuantizedMultiplier, with a saturating left shift; shift in [-31, 30]. gemmlowp's
   nudge (2^30, or 1 - 2^30 for a negative product) followed by its truncating division by
   2^31 is, for every product, the floor of (a * mult + 2^30) / 2^31: one multiply-accumulate
   and a shift, as CMSIS-NN computes it. */
static inline int32_t rp_requantize(int32_t x, int32_t mult, int32_t shift) {
  int32_t a = shift > 0 ? rp_sat32((int64_t)x * ((int64_t)1 << shift)) : x;
  int32_t hi =
      (a == INT32_MIN && mult == INT32_MIN) ? INT32_MAX : (int32_t)(((int64_t)a * mult + ((int64_t)1 << 30)) >> 31);
  if (shift >= 0) return hi;
  int32_t right = -shift;
  int32_t mask = (int32_t)((1u << right) - 1u);
  int32_t remainder = hi & mask;
  int32_t threshold = (mask >> 1) + (hi < 0 ? 1 : 0);
  return (hi >> right) + (remainder > threshold ? 1 : 0);
}

/* A 513-entry Q15 table over [-8, 8] read at a Q12 input, with linear interpolation. */
static inline int32_t rp_lookup_q15(const int16_t *table, int32_t x_q12) {
  int32_t c = x_q12 < -32768 ? -32768 : (x_q12 > 32767 ? 32767 : x_q12);
  uint32_t u = (uint32_t)(c + 32768);
  uint32_t i = u >> 7;
  int32_t f = (int32_t)(u & 127u);
  int32_t a = table[i], b = table[i + 1];
  return a + (((b - a) * f + 64) >> 7);
}

/* Floor of the square root. */
static inline uint64_t rp_isqrt64(uint64_t x) {
  uint64_t rem = x, root = 0, bit = (uint64_t)1 << 62;
  while (bit > rem) bit >>= 2;
  while (bit != 0) {
    if (rem >= root + bit) {
      rem -= root + bit;
      root = (root >> 1) + bit;
    } else {
      root >>= 1;
    }
    bit >>= 2;
  }
  return root;
}

/* a / b rounded half away from zero, b > 0. */
static inline int64_t rp_div_round64(int64_t a, int64_t b) {
  return a >= 0 ? (a + b / 2) / b : -((-a + b / 2) / b);
}

#endif
