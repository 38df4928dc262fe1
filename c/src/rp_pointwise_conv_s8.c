/* 1x1 convolution over a run of pixels (a row inside an inverted residual, or a linear layer).
   With the DSP extension, four input bytes are widened at once into two int16 pairs with the
   input offset added (SXTAB16) and two output channels share them (SMLAD); the int32 sums are
   the plain path's. */
#include "rp_dsp.h"
#include "rp_fixed_point.h"
#include "rp_nn.h"

void rp_pointwise_conv_s8(const rp_conv_s8_params *p, const int8_t *in, int32_t pixels, int8_t *out) {
  const int32_t cin = p->in_c, cout = p->out_c, off = p->in_offset;
  for (int32_t px = 0; px < pixels; px++) {
    const int8_t *x = in + px * cin;
    int8_t *y = out + px * cout;
    int32_t o = 0;
#if RP_DSP
    const uint32_t off2 = rp_pair16(off);
    for (; o + 1 < cout; o += 2) {
      const int8_t *w0 = p->weight + o * cin, *w1 = w0 + cin;
      int32_t a0 = p->bias[o], a1 = p->bias[o + 1], i = 0;
      for (; i + 3 < cin; i += 4) {
        uint32_t xv = rp_read_u32(x + i), v0 = rp_read_u32(w0 + i), v1 = rp_read_u32(w1 + i);
        uint32_t x02 = rp_sxtab16(off2, xv), x13 = rp_sxtab16(off2, rp_ror8(xv));
        a0 = rp_smlad(x02, rp_sxtb16(v0), a0);
        a0 = rp_smlad(x13, rp_sxtb16(rp_ror8(v0)), a0);
        a1 = rp_smlad(x02, rp_sxtb16(v1), a1);
        a1 = rp_smlad(x13, rp_sxtb16(rp_ror8(v1)), a1);
      }
      for (; i < cin; i++) {
        int32_t v = (int32_t)x[i] + off;
        a0 += v * w0[i];
        a1 += v * w1[i];
      }
      y[o] = rp_conv_output_s8(p, o, a0);
      y[o + 1] = rp_conv_output_s8(p, o + 1, a1);
    }
#endif
    for (; o < cout; o++) {
      const int8_t *w = p->weight + o * cin;
      int32_t acc = p->bias[o];
      for (int32_t i = 0; i < cin; i++) acc += ((int32_t)x[i] + off) * w[i];
      y[o] = rp_conv_output_s8(p, o, acc);
    }
  }
}
