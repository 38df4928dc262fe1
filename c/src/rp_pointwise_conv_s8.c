/* 1x1 convolution over a run of pixels (a row inside an inverted residual, or a linear layer). */
#include "rp_fixed_point.h"
#include "rp_nn.h"

void rp_pointwise_conv_s8(const rp_conv_s8_params *p, const int8_t *in, int32_t pixels, int8_t *out) {
  const int32_t cin = p->in_c, cout = p->out_c;
  for (int32_t px = 0; px < pixels; px++) {
    const int8_t *x = in + px * cin;
    for (int32_t o = 0; o < cout; o++) {
      const int8_t *w = p->weight + o * cin;
      int32_t acc = p->bias[o];
      for (int32_t i = 0; i < cin; i++) acc += ((int32_t)x[i] + p->in_offset) * w[i];
      int32_t v = rp_requantize(acc, p->mult[o], p->shift[o]) + p->out_offset;
      out[px * cout + o] = rp_clamp8(v, p->act_min, p->act_max);
    }
  }
}
