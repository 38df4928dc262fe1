/* MobileNetV2's inverted residual computed row by row (paper App. E.1): the expanded map lives
   in a ring of `kernel` rows, each depthwise output row is projected at once, so neither the
   expanded nor the depthwise map is ever whole in RAM. */
#include <stddef.h>

#include "rp_fixed_point.h"
#include "rp_nn.h"

void rp_inverted_residual_s8(const rp_inverted_residual_s8_params *p, const int8_t *in, int8_t *out, int8_t *scratch) {
  const rp_conv_s8_params *dw = p->depthwise;
  const int32_t k = dw->kernel, w = dw->in_w, ce = dw->out_c;
  const int32_t in_row = (int32_t)w * (p->expand ? p->expand->in_c : ce);
  const int32_t out_row = (int32_t)p->project->out_w * p->project->out_c;
  int8_t *ring = scratch;
  int8_t *dw_row = p->expand ? scratch + k * w * ce : scratch;
  const int8_t *rows[RP_MAX_KERNEL];
  int32_t expanded = 0; /* input rows expanded so far */
  for (int32_t oy = 0; oy < dw->out_h; oy++) {
    for (int32_t ky = 0; ky < k; ky++) {
      int32_t iy = oy * dw->stride + ky - dw->pad;
      if (iy < 0 || iy >= dw->in_h) {
        rows[ky] = NULL;
      } else if (p->expand == NULL) {
        rows[ky] = in + iy * in_row;
      } else {
        /* Rows are needed in increasing order, so each is expanded exactly once. */
        while (expanded <= iy) {
          rp_pointwise_conv_s8(p->expand, in + expanded * in_row, w, ring + (expanded % k) * w * ce);
          expanded++;
        }
        rows[ky] = ring + (iy % k) * w * ce;
      }
    }
    rp_depthwise_conv_row_s8(dw, rows, dw_row);
    int8_t *o = out + oy * out_row;
    rp_pointwise_conv_s8(p->project, dw_row, p->project->out_w, o);
    if (p->add != NULL) {
      const int8_t *skip = in + oy * in_row;
      for (int32_t i = 0; i < out_row; i++) o[i] = rp_add_s8(p->add, skip[i], o[i]);
    }
  }
}
