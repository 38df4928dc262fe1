/* 1x1 convolution of Q12 int16 inputs (the fused RNNPool's outputs) with int16 weights, into
   int8; 64-bit sums, two output channels at a time on the DSP extension (SMLALD). */
#include "rp_dsp.h"
#include "rp_fixed_point.h"
#include "rp_nn.h"

static inline int8_t output(const rp_pointwise_s16_params *p, int32_t o, int64_t acc) {
  int32_t v = rp_sat32(rp_rshift_round64(acc, p->pre_shift) + p->bias[o]);
  return rp_clamp8(rp_requantize(v, p->mult[o], p->shift[o]) + p->out_offset, p->act_min, p->act_max);
}

void rp_pointwise_conv_s16_s8(const rp_pointwise_s16_params *p, const int16_t *in, int32_t pixels, int8_t *out) {
  const int32_t cin = p->in_c, cout = p->out_c;
  for (int32_t px = 0; px < pixels; px++) {
    const int16_t *x = in + px * cin;
    int8_t *y = out + px * cout;
    int32_t o = 0;
#if RP_DSP
    for (; o + 1 < cout; o += 2) {
      const int16_t *w0 = p->weight + o * cin, *w1 = w0 + cin;
      int64_t a0 = 0, a1 = 0;
      int32_t i = 0;
      for (; i + 1 < cin; i += 2) {
        uint32_t xv = rp_read_u32(x + i);
        a0 = rp_smlald(xv, rp_read_u32(w0 + i), a0);
        a1 = rp_smlald(xv, rp_read_u32(w1 + i), a1);
      }
      for (; i < cin; i++) {
        a0 += (int32_t)x[i] * w0[i];
        a1 += (int32_t)x[i] * w1[i];
      }
      y[o] = output(p, o, a0);
      y[o + 1] = output(p, o + 1, a1);
    }
#endif
    for (; o < cout; o++) {
      const int16_t *w = p->weight + o * cin;
      int64_t acc = 0;
      for (int32_t i = 0; i < cin; i++) acc += (int32_t)x[i] * w[i];
      y[o] = output(p, o, acc);
    }
  }
}
