/* Depthwise convolution (one filter per channel), whole map or one output row at a time. */
#include <stddef.h>

#include "rp_fixed_point.h"
#include "rp_nn.h"

void rp_depthwise_conv_row_s8(const rp_conv_s8_params *p, const int8_t *const *rows, int8_t *out_row) {
  const int32_t k = p->kernel, c = p->out_c;
  for (int32_t ox = 0; ox < p->out_w; ox++) {
    for (int32_t o = 0; o < c; o++) {
      int32_t acc = p->bias[o];
      for (int32_t ky = 0; ky < k; ky++) {
        if (rows[ky] == NULL) continue;
        for (int32_t kx = 0; kx < k; kx++) {
          int32_t ix = ox * p->stride + kx - p->pad;
          if (ix < 0 || ix >= p->in_w) continue;
          acc += ((int32_t)rows[ky][ix * c + o] + p->in_offset) * p->weight[(o * k + ky) * k + kx];
        }
      }
      int32_t v = rp_requantize(acc, p->mult[o], p->shift[o]) + p->out_offset;
      out_row[ox * c + o] = rp_clamp8(v, p->act_min, p->act_max);
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
