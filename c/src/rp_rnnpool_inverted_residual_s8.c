/* An RNNPool layer and the inverted residual after it, row by row: each RNNPool output row is
   computed (Q12) when the block's depthwise convolution first needs it, expanded straight from
   its 12-bit values, and kept in a ring of `kernel` rows for the residual. Neither the RNNPool
   map nor the expanded map is ever whole in RAM, and the expansion, whose folded BatchNorm
   amplifies the small RNNPool outputs, sees 12 bits instead of 8. The RNNPool reads its patches'
   rows from the last of `stages` (see rp_row_stage_s8.c), so a stem before it is streamed too,
   and the input rows it has finished with may hold this layer's output (the exporter's plan
   checks that, row step by row step). */
#include <stddef.h>
#include <string.h>

#include "rp_fixed_point.h"
#include "rp_nn.h"

void rp_rnnpool_inverted_residual_s8(const rp_rnnpool_inverted_residual_s8_params *p, rp_row_stage_s8 *stages,
                                     int32_t last_stage, int8_t *out, int8_t *scratch) {
  const rp_rnnpool_s8_params *pool = p->pool;
  const rp_inverted_residual_s8_params *b = p->block;
  const rp_conv_s8_params *dw = b->depthwise;
  const int32_t k = dw->kernel, w = pool->out_w, c = 4 * pool->rnn2->hidden, ce = dw->out_c;
  const int32_t out_row = (int32_t)b->project->out_w * b->project->out_c;
  const int32_t real_h = pool->replicate ? pool->out_h - 1 : pool->out_h;
  const int32_t real_w = pool->replicate ? pool->out_w - 1 : pool->out_w;
  int16_t *pool_ring = (int16_t *)(void *)scratch;      /* k rows of w * c */
  int8_t *ring = scratch + 2 * k * w * c;               /* k rows of w * ce */
  int8_t *dw_row = ring + k * w * ce;                   /* out_w * ce */
  int32_t used = 2 * k * w * c + k * w * ce + dw->out_w * ce;
  int16_t *cell = (int16_t *)(void *)(scratch + ((used + 3) / 4) * 4);
  int16_t *result = rp_rnnpool_result_q12(pool, cell);
  const int8_t *rows[RP_MAX_KERNEL], *patch_rows[RP_MAX_PATCH];
  int32_t computed = 0; /* RNNPool rows computed and expanded so far */
  for (int32_t oy = 0; oy < dw->out_h; oy++) {
    for (int32_t ky = 0; ky < k; ky++) {
      int32_t iy = oy * dw->stride + ky - dw->pad;
      if (iy < 0 || iy >= dw->in_h) {
        rows[ky] = NULL;
        continue;
      }
      while (computed <= iy) {
        int16_t *row = pool_ring + (computed % k) * w * c;
        if (computed >= real_h) {
          /* the replicated last row: the previous row, still in the ring */
          memcpy(row, pool_ring + ((computed - 1) % k) * w * c, sizeof(int16_t) * (size_t)(w * c));
        } else {
          for (int32_t y = 0; y < pool->patch; y++)
            patch_rows[y] = rp_stage_row_s8(stages, last_stage, computed * pool->stride + y);
          for (int32_t px = 0; px < real_w; px++) {
            rp_rnnpool_patch_q12(pool, patch_rows, px, computed, cell);
            memcpy(row + px * c, result, sizeof(int16_t) * (size_t)c);
          }
          if (pool->replicate) memcpy(row + real_w * c, row + (real_w - 1) * c, sizeof(int16_t) * (size_t)c);
        }
        rp_pointwise_conv_s16_s8(p->expand, row, w, ring + (computed % k) * w * ce);
        computed++;
      }
      rows[ky] = ring + (iy % k) * w * ce;
    }
    rp_depthwise_conv_row_s8(dw, rows, dw_row);
    int8_t *o = out + oy * out_row;
    rp_pointwise_conv_s8(b->project, dw_row, b->project->out_w, o);
    if (b->add != NULL) {
      const int16_t *skip = pool_ring + (oy % k) * w * c;
      for (int32_t i = 0; i < out_row; i++) o[i] = rp_add_s8(b->add, rp_rnnpool_output_s8(pool, skip[i]), o[i]);
    }
  }
}
