/* Rows of a map made on demand, the way a camera delivers a frame: a stage is the model's input
   (a frame in the arena, or rows from a reader into a ring) or a convolution of the stage
   before it, whose rows are computed into a ring of `depth` rows when first asked for. Readers
   ask for rows in increasing order and never for more than `depth` rows back, so each row is
   read or computed exactly once and no map of a streamed stem is ever whole in RAM. */
#include <stddef.h>

#include "rp_nn.h"

const int8_t *rp_stage_row_s8(rp_row_stage_s8 *stages, int32_t s, int32_t y) {
  rp_row_stage_s8 *st = &stages[s];
  if (st->frame != NULL) return st->frame + y * st->row_bytes;
  while (st->next <= y) {
    int8_t *row = st->ring + (st->next % st->depth) * st->row_bytes;
    if (s == 0) {
      st->read(st->ctx, st->next, row);
    } else {
      const rp_conv_s8_params *c = st->conv;
      const int8_t *rows[RP_MAX_KERNEL];
      for (int32_t ky = 0; ky < c->kernel; ky++) {
        int32_t iy = st->next * c->stride + ky - c->pad;
        rows[ky] = (iy < 0 || iy >= c->in_h) ? NULL : rp_stage_row_s8(stages, s - 1, iy);
      }
      rp_convolve_row_s8(c, rows, row);
    }
    st->next++;
  }
  return st->ring + (y % st->depth) * st->row_bytes;
}
