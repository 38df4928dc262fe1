/* 1x1 convolution of Q12 int16 inputs (the fused RNNPool's outputs) with int16 weights, into int8. */
#include "rp_fixed_point.h"
#include "rp_nn.h"

void rp_pointwise_conv_s16_s8(const rp_pointwise_s16_params *p, const int16_t *in, int32_t pixels, int8_t *out) {
  const int32_t cin = p->in_c, cout = p->out_c;
  for (int32_t px = 0; px < pixels; px++) {
    const int16_t *x = in + px * cin;
    for (int32_t o = 0; o < cout; o++) {
      const int16_t *w = p->weight + o * cin;
      int64_t acc = 0;
      for (int32_t i = 0; i < cin; i++) acc += (int32_t)x[i] * w[i];
      int32_t v = rp_sat32(rp_rshift_round64(acc, p->pre_shift) + p->bias[o]);
      out[px * cout + o] = rp_clamp8(rp_requantize(v, p->mult[o], p->shift[o]) + p->out_offset, p->act_min, p->act_max);
    }
  }
}
