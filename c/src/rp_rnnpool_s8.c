/* RNNPool over an int8 HWC map, patch by patch, read in place (the patch tensor is never built):
   RNN1 along each row then down each column (summaries in Q12 int16), RNN2 over the summaries
   forwards and backwards; output [row-fwd, row-bwd, col-fwd, col-bwd] requantised to int8, then
   the last row and column replicated as the original models do. */
#include <stddef.h>
#include <string.h>

#include "rp_fixed_point.h"
#include "rp_nn.h"

void rp_rnnpool_patch_q12(const rp_rnnpool_s8_params *p, const int8_t *const *rows, int32_t x0, int16_t *result,
                          int16_t *scratch) {
  const int32_t r = p->patch, h1 = p->rnn1->hidden, h2 = p->rnn2->hidden, ch = p->in_c;
  int16_t *summaries = scratch;        /* r * h1 */
  int16_t *state = summaries + r * h1; /* h2 */
  int16_t *next = state + h2 + 4 * h2; /* max(h1, h2), after the 4 h2 the layer kernel keeps */
  for (int32_t pass = 0; pass < 2; pass++) {
    for (int32_t a = 0; a < r; a++) {
      int16_t *h = summaries + a * h1;
      memset(h, 0, sizeof(int16_t) * (size_t)h1);
      for (int32_t b = 0; b < r; b++) {
        int32_t y = pass == 0 ? a : b, x = pass == 0 ? b : a;
        rp_fastgrnn_step_q12(p->rnn1, rows[y] + (x0 + x) * ch, p->in_offset, NULL, h, next, p->sigmoid_table,
                             p->tanh_table);
      }
    }
    for (int32_t backward = 0; backward < 2; backward++) {
      memset(state, 0, sizeof(int16_t) * (size_t)h2);
      for (int32_t s = 0; s < r; s++) {
        int32_t t = backward ? r - 1 - s : s;
        rp_fastgrnn_step_q12(p->rnn2, NULL, 0, summaries + t * h1, state, next, p->sigmoid_table, p->tanh_table);
      }
      memcpy(result + (2 * pass + backward) * h2, state, sizeof(int16_t) * (size_t)h2);
    }
  }
}

int8_t rp_rnnpool_output_s8(const rp_rnnpool_s8_params *p, int16_t q12) {
  return rp_clamp8(rp_requantize(q12, p->out_mult, p->out_shift) + p->out_offset, -128, 127);
}

void rp_rnnpool_s8(const rp_rnnpool_s8_params *p, const int8_t *in, int8_t *out, int16_t *scratch) {
  const int32_t oc = 4 * p->rnn2->hidden, ch = p->in_c;
  int16_t *result = scratch + p->patch * p->rnn1->hidden + p->rnn2->hidden; /* 4 * h2 */
  const int32_t ph = p->replicate ? p->out_h - 1 : p->out_h;
  const int32_t pw = p->replicate ? p->out_w - 1 : p->out_w;
  const int8_t *rows[RP_MAX_PATCH];
  for (int32_t py = 0; py < ph; py++) {
    for (int32_t y = 0; y < p->patch; y++) rows[y] = in + ((int32_t)py * p->stride + y) * p->in_w * ch;
    for (int32_t px = 0; px < pw; px++) {
      rp_rnnpool_patch_q12(p, rows, px * p->stride, result, scratch);
      int8_t *o = out + ((int32_t)py * p->out_w + px) * oc;
      for (int32_t i = 0; i < oc; i++) o[i] = rp_rnnpool_output_s8(p, result[i]);
    }
  }
  if (p->replicate) {
    for (int32_t y = 0; y < p->out_h - 1; y++) {
      int8_t *row = out + (int32_t)y * p->out_w * oc;
      memcpy(row + (p->out_w - 1) * oc, row + (p->out_w - 2) * oc, (size_t)oc);
    }
    memcpy(out + (p->out_h - 1) * p->out_w * oc, out + (p->out_h - 2) * p->out_w * oc, (size_t)p->out_w * oc);
  }
}
