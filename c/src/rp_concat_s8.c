/* Channel concatenation (DenseNet's dense connections): each input rescaled to the output's scale. */
#include "rp_fixed_point.h"
#include "rp_nn.h"

static void copy_rescaled(const rp_rescale_s8 *r, const int8_t *in, int32_t n, int32_t out_offset, int8_t *out) {
  for (int32_t i = 0; i < n; i++)
    out[i] = rp_clamp8(rp_requantize((int32_t)in[i] + r->in_offset, r->mult, r->shift) + out_offset, -128, 127);
}

void rp_concat_s8(const rp_concat_s8_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
  const int32_t c1 = p->channels1, c2 = p->channels2;
  for (int32_t px = 0; px < p->pixels; px++) {
    copy_rescaled(&p->first, in1 + px * c1, c1, p->out_offset, out + px * (c1 + c2));
    copy_rescaled(&p->second, in2 + px * c2, c2, p->out_offset, out + px * (c1 + c2) + c1);
  }
}
