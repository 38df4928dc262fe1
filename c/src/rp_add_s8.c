/* TFLite's int8 add: both inputs shifted left 20 bits, scaled to a common scale, summed, requantised. */
#include "rp_fixed_point.h"
#include "rp_nn.h"

#define RP_ADD_LEFT_SHIFT 20

int8_t rp_add_s8(const rp_add_s8_params *p, int8_t a, int8_t b) {
  int32_t x1 = rp_requantize(((int32_t)a + p->in1_offset) * (1 << RP_ADD_LEFT_SHIFT), p->in1_mult, p->in1_shift);
  int32_t x2 = rp_requantize(((int32_t)b + p->in2_offset) * (1 << RP_ADD_LEFT_SHIFT), p->in2_mult, p->in2_shift);
  return rp_clamp8(rp_requantize(x1 + x2, p->out_mult, p->out_shift) + p->out_offset, -128, 127);
}
