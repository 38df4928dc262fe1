/* Standard convolution (groups = 1), any square kernel, stride and zero-point padding, one
   output row at a time from `kernel` input rows, so that a stem can be streamed. A kernel row's
   taps inside the map are one contiguous run of input bytes, as its weights are; on the DSP
   extension it is summed four bytes at a time (SXTAB16 / SXTB16 / SMLAD). */
#include <stddef.h>

#include "rp_dsp.h"
#include "rp_fixed_point.h"
#include "rp_nn.h"

/* sum over i < n of (x[i] + off) * w[i], added to acc; four at a time on the DSP extension */
static inline int32_t dot_s8(const int8_t *x, const int8_t *w, int32_t n, int32_t off, int32_t acc) {
  int32_t i = 0;
#if RP_DSP
  const uint32_t off2 = rp_pair16(off);
  for (; i + 3 < n; i += 4) {
    uint32_t xv = rp_read_u32(x + i), wv = rp_read_u32(w + i);
    acc = rp_smlad(rp_sxtab16(off2, xv), rp_sxtb16(wv), acc);
    acc = rp_smlad(rp_sxtab16(off2, rp_ror8(xv)), rp_sxtb16(rp_ror8(wv)), acc);
  }
#endif
  for (; i < n; i++) acc += ((int32_t)x[i] + off) * w[i];
  return acc;
}

void rp_convolve_row_s8(const rp_conv_s8_params *p, const int8_t *const *rows, int8_t *out_row) {
  const int32_t k = p->kernel, cin = p->in_c;
  for (int32_t ox = 0; ox < p->out_w; ox++) {
    /* the taps inside the map: one run of kx * cin contiguous bytes per kernel row */
    int32_t kx0 = p->pad - ox * p->stride, kx1 = p->in_w + p->pad - ox * p->stride;
    kx0 = kx0 < 0 ? 0 : kx0;
    kx1 = kx1 > k ? k : kx1;
    const int32_t x0 = ox * p->stride - p->pad, run = (kx1 - kx0) * cin;
    for (int32_t o = 0; o < p->out_c; o++) {
      int32_t acc = p->bias[o];
      for (int32_t ky = 0; ky < k; ky++) {
        if (rows[ky] == NULL) continue;
        acc = dot_s8(rows[ky] + (x0 + kx0) * cin, p->weight + ((o * k + ky) * k + kx0) * cin, run, p->in_offset, acc);
      }
      out_row[ox * p->out_c + o] = rp_conv_output_s8(p, o, acc);
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
