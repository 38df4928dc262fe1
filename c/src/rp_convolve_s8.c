/* Standard convolution (groups = 1), any square kernel, stride and zero-point padding, one
   output row at a time from `kernel` input rows, so that a stem can be streamed. */
#include <stddef.h>

#include "rp_fixed_point.h"
#include "rp_nn.h"

void rp_convolve_row_s8(const rp_conv_s8_params *p, const int8_t *const *rows, int8_t *out_row) {
  const int32_t k = p->kernel, cin = p->in_c;
  for (int32_t ox = 0; ox < p->out_w; ox++) {
    for (int32_t o = 0; o < p->out_c; o++) {
      int32_t acc = p->bias[o];
      for (int32_t ky = 0; ky < k; ky++) {
        if (rows[ky] == NULL) continue;
        for (int32_t kx = 0; kx < k; kx++) {
          int32_t ix = ox * p->stride + kx - p->pad;
          if (ix < 0 || ix >= p->in_w) continue;
          const int8_t *x = rows[ky] + ix * cin;
          const int8_t *w = p->weight + ((o * k + ky) * k + kx) * cin;
          for (int32_t i = 0; i < cin; i++) acc += ((int32_t)x[i] + p->in_offset) * w[i];
        }
      }
      int32_t v = rp_requantize(acc, p->mult[o], p->shift[o]) + p->out_offset;
      out_row[ox * p->out_c + o] = rp_clamp8(v, p->act_min, p->act_max);
    }
  }
}

void rp_convolve_rows_s8(const rp_conv_s8_params *p, rp_row_stage_s8 *input, int8_t *out) {
  const int8_t *rows[RP_MAX_KERNEL];
  for (int32_t oy = 0; oy < p->out_h; oy++) {
    for (int32_t ky = 0; ky < p->kernel; ky++) {
      int32_t iy = oy * p->stride + ky - p->pad;
      rows[ky] = (iy < 0 || iy >= p->in_h) ? NULL : rp_stage_row_s8(input, 0, iy);
    }
    rp_convolve_row_s8(p, rows, out + oy * (int32_t)p->out_w * p->out_c);
  }
}

void rp_convolve_s8(const rp_conv_s8_params *p, const int8_t *in, int8_t *out) {
  rp_row_stage_s8 frame = {.frame = in, .row_bytes = (int32_t)p->in_w * p->in_c};
  rp_convolve_rows_s8(p, &frame, out);
}
