/* One FastGRNN step in fixed point: pre = W x + U h (Q12), z = sigmoid(pre + b_g),
   c = tanh(pre + b_h) from Q15 tables, h' = z h + (sigmoid(zeta) (1 - z) + sigmoid(nu)) c. */
#include <stddef.h>

#include "rp_fixed_point.h"
#include "rp_nn.h"

void rp_fastgrnn_step_q12(const rp_fastgrnn_q12_params *c, const int8_t *x8, int32_t in_offset, const int16_t *x16,
                          int16_t *h, int16_t *next, const int16_t *sigmoid_table, const int16_t *tanh_table) {
  for (int32_t j = 0; j < c->hidden; j++) {
    const int16_t *w = c->w + j * c->input;
    int64_t wx = 0;
    if (x8 != NULL) {
      for (int32_t i = 0; i < c->input; i++) wx += ((int64_t)x8[i] + in_offset) * w[i];
      wx = rp_requantize(rp_sat32(rp_rshift_round64(wx, c->x_pre_shift)), c->x_mult, c->x_shift);
    } else {
      for (int32_t i = 0; i < c->input; i++) wx += (int64_t)x16[i] * w[i];
      wx = rp_rshift_round64(wx, c->w_exp);
    }
    const int16_t *u = c->u + j * c->hidden;
    int64_t uh = 0;
    for (int32_t i = 0; i < c->hidden; i++) uh += (int64_t)h[i] * u[i];
    int64_t pre = wx + rp_rshift_round64(uh, c->u_exp);
    int64_t z = rp_lookup_q15(sigmoid_table, rp_sat32(pre + c->bias_gate[j]));
    int64_t cand = rp_lookup_q15(tanh_table, rp_sat32(pre + c->bias_update[j]));
    int64_t zh = (z * h[j] + (1 << 14)) >> 15;
    int64_t coef = (((int64_t)c->zeta * (32768 - z) + (1 << 14)) >> 15) + c->nu;
    int64_t cc = (coef * cand + (1 << 17)) >> 18;
    next[j] = rp_sat16(zh + cc);
  }
  for (int32_t j = 0; j < c->hidden; j++) h[j] = next[j];
}
