/* One FastGRNN step in fixed point: pre = W x + U h (Q12), z = sigmoid(pre + b_g),
   c = tanh(pre + b_h) from Q15 tables, h' = z h + (sigmoid(zeta) (1 - z) + sigmoid(nu)) c.
   The dot products run on the DSP extension's dual multiply-accumulates where there is one
   (rp_dsp.h); the sums stay 64-bit, as in the simulator, so both paths give the same bits. A
   step first finds every unit's pre-activation, then its new state: two short loops keep the
   registers for the work at hand; `pre` holds the pre-activations, then the new state. */
#include <stddef.h>

#include "rp_dsp.h"
#include "rp_fixed_point.h"
#include "rp_nn.h"

/* sum x[i] * a[i] and sum x[i] * b[i] over n int16 pairs, exactly: two rows of a matrix
   against one vector, so that each pair of x is loaded once */
static inline void dot2_s16(const int16_t *x, const int16_t *a, const int16_t *b, int32_t n, int64_t *sa,
                            int64_t *sb) {
  int64_t acc_a = 0, acc_b = 0;
  int32_t i = 0;
#if RP_DSP
  for (; i + 1 < n; i += 2) {
    uint32_t xx = rp_read_u32(x + i);
    acc_a = rp_smlald(xx, rp_read_u32(a + i), acc_a);
    acc_b = rp_smlald(xx, rp_read_u32(b + i), acc_b);
  }
#endif
  for (; i < n; i++) {
    acc_a += (int32_t)x[i] * a[i];
    acc_b += (int32_t)x[i] * b[i];
  }
  *sa = acc_a;
  *sb = acc_b;
}

/* The tables clamp to +-8 (Q12 +-32768) and |bias| < RP_FASTGRNN_BIAS_LIMIT (the exporter
   checks), so clamping pre to +-2^30 before the biases are added changes no lookup and keeps
   the rest 32-bit. */
static inline int32_t clamp_pre(int64_t pre) {
  return pre > (1 << 30) ? (1 << 30) : (pre < -(1 << 30) ? -(1 << 30) : (int32_t)pre);
}

void rp_fastgrnn_input_s8_q12(const rp_fastgrnn_q12_params *c, const int8_t *x8, int32_t in_offset, int32_t *wx) {
  const int32_t m = c->input;
  for (int32_t j = 0; j < c->hidden; j++) {
    const int16_t *w = c->w + j * m;
    int64_t acc = 0;
    if (c->x_pre_shift == 0) {
      /* the exporter's pre-shift is 0 only when the worst-case sum fits 32 bits */
      int32_t acc32 = 0;
      for (int32_t i = 0; i < m; i++) acc32 += ((int32_t)x8[i] + in_offset) * w[i];
      acc = acc32;
    } else {
      for (int32_t i = 0; i < m; i++) acc += ((int32_t)x8[i] + in_offset) * w[i];
    }
    wx[j] = rp_requantize(rp_sat32(rp_rshift_round64(acc, c->x_pre_shift)), c->x_mult, c->x_shift);
  }
}

void rp_fastgrnn_step_q12(const rp_fastgrnn_q12_params *c, const int32_t *wx, const int16_t *x16, int16_t *h,
                          int32_t *pre, const int16_t *sigmoid_table, const int16_t *tanh_table) {
  const int32_t n = c->hidden, m = c->input, u_exp = c->u_exp, w_exp = c->w_exp;
  for (int32_t j = 0; j < n; j += 2) {
    /* an odd last unit pairs with itself */
    int32_t k = j + 1 < n ? j + 1 : j;
    int64_t in0, in1, uh0, uh1;
    if (wx != NULL) {
      in0 = wx[j];
      in1 = wx[k];
    } else {
      dot2_s16(x16, c->w + j * m, c->w + k * m, m, &in0, &in1);
      in0 = rp_rshift_round64(in0, w_exp);
      in1 = rp_rshift_round64(in1, w_exp);
    }
    dot2_s16(h, c->u + j * n, c->u + k * n, n, &uh0, &uh1);
    pre[j] = clamp_pre(in0 + rp_rshift_round64(uh0, u_exp));
    pre[k] = clamp_pre(in1 + rp_rshift_round64(uh1, u_exp));
  }
  const int32_t zeta = c->zeta, nu = c->nu;
  const int32_t *bias_gate = c->bias_gate, *bias_update = c->bias_update;
  for (int32_t j = 0; j < n; j++) {
    /* z in [0, 32767] and zeta, nu in [0, 32768] (sigmoids in Q15): these products fit 32 bits */
    int32_t z = rp_lookup_q15(sigmoid_table, pre[j] + bias_gate[j]);
    int32_t cand = rp_lookup_q15(tanh_table, pre[j] + bias_update[j]);
    int32_t zh = (z * h[j] + (1 << 14)) >> 15;
    int32_t coef = ((zeta * (32768 - z) + (1 << 14)) >> 15) + nu;
    int32_t cc = (int32_t)(((int64_t)coef * cand + (1 << 17)) >> 18);
    pre[j] = rp_sat16(zh + cc);
  }
  for (int32_t j = 0; j < n; j++) h[j] = (int16_t)pre[j];
}
