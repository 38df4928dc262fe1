/* Depthwise convolution (one filter per channel), whole map or one output row at a time.
   Weights are [k][k][c], as the map's channels, so that on the DSP extension four channels of
   a tap are loaded at once, widened in pairs (SXTAB16 / SXTB16) and accumulated separately
   (SMLABB / SMLATT); the int32 sums are the plain path's. */
#include <stddef.h>

#include "rp_dsp.h"
#include "rp_fixed_point.h"
#include "rp_nn.h"

void rp_depthwise_conv_row_s8(const rp_conv_s8_params *p, const int8_t *const *rows, int8_t *out_row) {
  const int32_t k = p->kernel, c = p->out_c, off = p->in_offset;
  for (int32_t ox = 0; ox < p->out_w; ox++) {
    /* the taps inside the map */
    int32_t kx0 = p->pad - ox * p->stride, kx1 = p->in_w + p->pad - ox * p->stride;
    kx0 = kx0 < 0 ? 0 : kx0;
    kx1 = kx1 > k ? k : kx1;
    const int32_t x0 = ox * p->stride - p->pad;
    int8_t *y = out_row + ox * c;
    int32_t o = 0;
#if RP_DSP
    const uint32_t off2 = rp_pair16(off);
    for (; o + 3 < c; o += 4) {
      int32_t a0 = p->bias[o], a1 = p->bias[o + 1], a2 = p->bias[o + 2], a3 = p->bias[o + 3];
      for (int32_t ky = 0; ky < k; ky++) {
        if (rows[ky] == NULL) continue;
        for (int32_t kx = kx0; kx < kx1; kx++) {
          uint32_t xv = rp_read_u32(rows[ky] + (x0 + kx) * c + o), wv = rp_read_u32(p->weight + (ky * k + kx) * c + o);
          uint32_t x02 = rp_sxtab16(off2, xv), x13 = rp_sxtab16(off2, rp_ror8(xv));
          uint32_t w02 = rp_sxtb16(wv), w13 = rp_sxtb16(rp_ror8(wv));
          a0 = rp_smlabb(x02, w02, a0);
          a2 = rp_smlatt(x02, w02, a2);
          a1 = rp_smlabb(x13, w13, a1);
          a3 = rp_smlatt(x13, w13, a3);
        }
      }
      y[o] = rp_conv_output_s8(p, o, a0);
      y[o + 1] = rp_conv_output_s8(p, o + 1, a1);
      y[o + 2] = rp_conv_output_s8(p, o + 2, a2);
      y[o + 3] = rp_conv_output_s8(p, o + 3, a3);
    }
#endif
    for (; o < c; o++) {
      int32_t acc = p->bias[o];
      for (int32_t ky = 0; ky < k; ky++) {
        if (rows[ky] == NULL) continue;
        for (int32_t kx = kx0; kx < kx1; kx++)
          acc += ((int32_t)rows[ky][(x0 + kx) * c + o] + off) * p->weight[(ky * k + kx) * c + o];
      }
      y[o] = rp_conv_output_s8(p, o, acc);
    }
  }
}

void rp_depthwise_conv_s8(const rp_conv_s8_params *p, const int8_t *in, int8_t *out) {
  const int8_t *rows[RP_MAX_KERNEL];
  const int32_t row_bytes = (int32_t)p->in_w * p->in_c;
  for (int32_t oy = 0; oy < p->out_h; oy++) {
    for (int32_t ky = 0; ky < p->kernel; ky++) {
      int32_t iy = oy * p->stride + ky - p->pad;
      rows[ky] = (iy < 0 || iy >= p->in_h) ? NULL : in + iy * row_bytes;
    }
    rp_depthwise_conv_row_s8(p, rows, out + oy * (int32_t)p->out_w * p->out_c);
  }
}
