/* RNNPool over an int8 HWC map, patch by patch, read in place (the patch tensor is never built):
   RNN1 along each row then down each column (summaries in Q12 int16), RNN2 over the summaries
   forwards and backwards; output [row-fwd, row-bwd, col-fwd, col-bwd] requantised to int8, then
   the last row and column replicated as the original models do.

   Patches overlap when the stride is below the patch side, and a row's summary depends only on
   the row and the patch's columns: the patch below repeats the last patch - stride rows of the
   one above, the patch to the right the last columns of the one to its left. Patches are made
   in raster order, so those summaries are kept (a row of patches' worth of row summaries, one
   patch's column summaries) and RNN1 runs once per distinct summary, with the same bits. */
#include <stddef.h>
#include <string.h>

#include "rp_fixed_point.h"
#include "rp_nn.h"

/* The scratch's parts, in order (int32 first, so 4-byte aligned). */
typedef struct {
  int32_t *wx;          /* patch * patch * h1: RNN1's input projection of the patch's pixels */
  int32_t *work;        /* max(h1, h2): a cell's temporary */
  int16_t *row_cache;   /* patches across * (patch - stride) * h1: rows for the patch below */
  int16_t *col_cache;   /* (patch - stride) * h1: columns for the patch to the right */
  int16_t *summaries;   /* patch * h1 */
  int16_t *state;       /* h2 */
  int16_t *result;      /* 4 * h2 */
} layout;

static int32_t patches_across(const rp_rnnpool_s8_params *p) { return p->replicate ? p->out_w - 1 : p->out_w; }

static int32_t overlap(const rp_rnnpool_s8_params *p) { return p->stride < p->patch ? p->patch - p->stride : 0; }

static layout lay_out(const rp_rnnpool_s8_params *p, int16_t *scratch) {
  const int32_t r = p->patch, h1 = p->rnn1->hidden, h2 = p->rnn2->hidden, o = overlap(p);
  layout l;
  l.wx = (int32_t *)(void *)scratch;
  l.work = l.wx + r * r * h1;
  l.row_cache = (int16_t *)(void *)(l.work + (h1 > h2 ? h1 : h2));
  l.col_cache = l.row_cache + patches_across(p) * o * h1;
  l.summaries = l.col_cache + o * h1;
  l.state = l.summaries + r * h1;
  l.result = l.state + h2;
  return l;
}

int16_t *rp_rnnpool_result_q12(const rp_rnnpool_s8_params *p, int16_t *scratch) { return lay_out(p, scratch).result; }

/* RNN1 over pixels (a, 0..r) (rows) or (0..r, a) (columns) into summary `h`. */
static void summary(const rp_rnnpool_s8_params *p, const layout *l, int32_t a, int32_t columns, int16_t *h) {
  const int32_t r = p->patch, h1 = p->rnn1->hidden;
  memset(h, 0, sizeof(int16_t) * (size_t)h1);
  for (int32_t b = 0; b < r; b++) {
    int32_t pixel = columns ? b * r + a : a * r + b;
    rp_fastgrnn_step_q12(p->rnn1, l->wx + pixel * h1, NULL, h, l->work, p->sigmoid_table, p->tanh_table);
  }
}

/* RNN2 forwards and backwards over the summaries, into result[2 * pass] and [2 * pass + 1]. */
static void bidirectional(const rp_rnnpool_s8_params *p, const layout *l, int32_t pass) {
  const int32_t r = p->patch, h1 = p->rnn1->hidden, h2 = p->rnn2->hidden;
  for (int32_t backward = 0; backward < 2; backward++) {
    memset(l->state, 0, sizeof(int16_t) * (size_t)h2);
    for (int32_t s = 0; s < r; s++) {
      int32_t t = backward ? r - 1 - s : s;
      rp_fastgrnn_step_q12(p->rnn2, NULL, l->summaries + t * h1, l->state, l->work, p->sigmoid_table, p->tanh_table);
    }
    memcpy(l->result + (2 * pass + backward) * h2, l->state, sizeof(int16_t) * (size_t)h2);
  }
}

void rp_rnnpool_patch_q12(const rp_rnnpool_s8_params *p, const int8_t *const *rows, int32_t px, int32_t py,
                          int16_t *scratch) {
  const int32_t r = p->patch, h1 = p->rnn1->hidden, s = p->stride, o = overlap(p), ch = p->in_c;
  const layout l = lay_out(p, scratch);
  int16_t *row_cache = l.row_cache + px * o * h1;
  /* the first rows come from the patch above, the first columns from the patch to the left */
  const int32_t cached_rows = py > 0 ? o : 0, cached_cols = px > 0 ? o : 0;
  for (int32_t y = 0; y < r; y++)
    for (int32_t x = 0; x < r; x++)
      if (y >= cached_rows || x >= cached_cols)
        rp_fastgrnn_input_s8_q12(p->rnn1, rows[y] + (px * s + x) * ch, p->in_offset, l.wx + (y * r + x) * h1);
  memcpy(l.summaries, row_cache, sizeof(int16_t) * (size_t)(cached_rows * h1));
  for (int32_t a = cached_rows; a < r; a++) summary(p, &l, a, 0, l.summaries + a * h1);
  memcpy(row_cache, l.summaries + (r - o) * h1, sizeof(int16_t) * (size_t)(o * h1));
  bidirectional(p, &l, 0);
  memcpy(l.summaries, l.col_cache, sizeof(int16_t) * (size_t)(cached_cols * h1));
  for (int32_t a = cached_cols; a < r; a++) summary(p, &l, a, 1, l.summaries + a * h1);
  memcpy(l.col_cache, l.summaries + (r - o) * h1, sizeof(int16_t) * (size_t)(o * h1));
  bidirectional(p, &l, 1);
}

int8_t rp_rnnpool_output_s8(const rp_rnnpool_s8_params *p, int16_t q12) {
  return rp_clamp8(rp_requantize(q12, p->out_mult, p->out_shift) + p->out_offset, -128, 127);
}

void rp_rnnpool_s8(const rp_rnnpool_s8_params *p, const int8_t *in, int8_t *out, int16_t *scratch) {
  const int32_t oc = 4 * p->rnn2->hidden, ch = p->in_c;
  int16_t *result = rp_rnnpool_result_q12(p, scratch);
  const int32_t ph = p->replicate ? p->out_h - 1 : p->out_h;
  const int32_t pw = patches_across(p);
  const int8_t *rows[RP_MAX_PATCH];
  for (int32_t py = 0; py < ph; py++) {
    for (int32_t y = 0; y < p->patch; y++) rows[y] = in + ((int32_t)py * p->stride + y) * p->in_w * ch;
    for (int32_t px = 0; px < pw; px++) {
      rp_rnnpool_patch_q12(p, rows, px, py, scratch);
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
