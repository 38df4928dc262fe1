/* S3FD's L2Norm: y_c = x_c / ||x|| * gamma_c per pixel. The input scale cancels, so only the
   centred integers matter: y_c = out_offset + round(x_c * gain_c / (2^16 sqrt(sum x^2))). */
#include "rp_fixed_point.h"
#include "rp_nn.h"

void rp_l2norm_s8(const rp_l2norm_s8_params *p, const int8_t *in, int8_t *out) {
  const int32_t c = p->channels;
  for (int32_t px = 0; px < p->pixels; px++) {
    const int8_t *x = in + px * c;
    int8_t *y = out + px * c;
    int64_t sum = 0;
    for (int32_t i = 0; i < c; i++) {
      int64_t v = (int64_t)x[i] + p->in_offset;
      sum += v * v;
    }
    if (sum == 0) {
      for (int32_t i = 0; i < c; i++) y[i] = (int8_t)p->out_offset;
      continue;
    }
    int64_t n = (int64_t)rp_isqrt64((uint64_t)sum << 32);
    for (int32_t i = 0; i < c; i++) {
      int64_t v = rp_div_round64(((int64_t)x[i] + p->in_offset) * p->gain[i], n) + p->out_offset;
      y[i] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    }
  }
}
