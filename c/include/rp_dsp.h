/* The Cortex-M4 DSP extension's dual 16-bit multiply-accumulates, through the ACLE intrinsics
   of arm_acle.h when the compiler targets it (__ARM_FEATURE_DSP, e.g. -mcpu=cortex-m4), else
   through exact C models when RP_DSP_MODEL is defined (so that the host tests run the same
   kernel path); RP_DSP is 0 otherwise, or with RP_NO_DSP, and the kernels take their plain C
   path. Pairs are packed low half first, as the little-endian loads of two int16 give them. */
#ifndef RP_DSP_H
#define RP_DSP_H

#include <stdint.h>
#include <string.h>

#if !defined(RP_NO_DSP) && defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#define RP_DSP 1
/* lo(a) * lo(b) + hi(a) * hi(b) + acc */
static inline int32_t rp_smlad(uint32_t a, uint32_t b, int32_t acc) { return __smlad(a, b, acc); }
/* the same into a 64-bit sum */
static inline int64_t rp_smlald(uint32_t a, uint32_t b, int64_t acc) { return __smlald(a, b, acc); }
/* bytes 0 and 2 of x sign-extended to two int16 */
static inline uint32_t rp_sxtb16(uint32_t x) { return __sxtb16(x); }
/* bytes 0 and 2 of x sign-extended and added to the int16 pair a */
static inline uint32_t rp_sxtab16(uint32_t a, uint32_t x) { return __sxtab16(a, x); }
/* lo(a) * lo(b) + acc, hi(a) * hi(b) + acc */
static inline int32_t rp_smlabb(uint32_t a, uint32_t b, int32_t acc) { return __smlabb(a, b, acc); }
static inline int32_t rp_smlatt(uint32_t a, uint32_t b, int32_t acc) { return __smlatt(a, b, acc); }
#elif !defined(RP_NO_DSP) && defined(RP_DSP_MODEL)
#define RP_DSP 1
static inline int32_t rp_lo16(uint32_t x) { return (int16_t)(x & 0xFFFFu); }
static inline int32_t rp_hi16(uint32_t x) { return (int16_t)(x >> 16); }
static inline int32_t rp_smlad(uint32_t a, uint32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(rp_lo16(a) * rp_lo16(b)) + (uint32_t)(rp_hi16(a) * rp_hi16(b)));
}
static inline int64_t rp_smlald(uint32_t a, uint32_t b, int64_t acc) {
  return acc + (int64_t)rp_lo16(a) * rp_lo16(b) + (int64_t)rp_hi16(a) * rp_hi16(b);
}
static inline uint32_t rp_sxtb16(uint32_t x) {
  return ((uint32_t)(int32_t)(int8_t)(x & 0xFFu) & 0xFFFFu) | ((uint32_t)(int32_t)(int8_t)((x >> 16) & 0xFFu) << 16);
}
static inline uint32_t rp_sxtab16(uint32_t a, uint32_t x) {
  uint32_t e = rp_sxtb16(x);
  return ((a + e) & 0xFFFFu) | (((a >> 16) + (e >> 16)) << 16);
}
static inline int32_t rp_smlabb(uint32_t a, uint32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(rp_lo16(a) * rp_lo16(b)));
}
static inline int32_t rp_smlatt(uint32_t a, uint32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(rp_hi16(a) * rp_hi16(b)));
}
#else
#define RP_DSP 0
#endif

#if RP_DSP
/* x rotated right by 8 bits: bytes 1 and 3 into the places rp_sxtb16 reads */
static inline uint32_t rp_ror8(uint32_t x) { return (x >> 8) | (x << 24); }

/* An int8 value's offset in both halves, for rp_sxtab16. */
static inline uint32_t rp_pair16(int32_t v) { return ((uint32_t)(uint16_t)v << 16) | (uint16_t)v; }

/* Four bytes / two int16 from memory in one 32-bit word (memcpy: any alignment, no aliasing
   trouble; gcc emits one load). */
static inline uint32_t rp_read_u32(const void *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
#endif

#endif
